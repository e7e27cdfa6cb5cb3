// The thread adapter against a simulated machine: step times per thread count that change with the load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ThreadAdapter, adaptiveThreadsRequested } from '../../src/torch/index.ts';

/** A machine whose step takes cost[threads] ms (per phase), with a clock the steps advance. */
function machine(costs: Record<number, number>) {
  let clock = 0;
  let threads = 0;
  const calls: number[] = [];
  return {
    costs,
    calls,
    now: () => clock,
    setThreads: (n: number) => { threads = n; calls.push(n); },
    work: () => { clock += costs[threads]!; return threads; },
  };
}

test('ThreadAdapter keeps the fastest count: stays at 2 when idle, moves to 1 under load, and back when the load goes', () => {
  const m = machine({ 2: 360, 1: 510 }); // idle: the MobileNetV2 step measured here
  const a = new ThreadAdapter({ candidates: [2, 1], period: 10, trial: 3, setThreads: m.setThreads, now: m.now });
  m.setThreads(a.threads);
  const ran: number[] = [];
  for (let i = 0; i < 60; i++) ran.push(a.step(m.work));
  assert.equal(a.threads, 2);
  assert.equal(a.changes.length, 0);
  // Tried 1 thread for 3 steps after every 10 at 2, and went back.
  assert.deepEqual(ran.slice(0, 16), [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2]);

  m.costs[2] = 670; m.costs[1] = 480; // another process takes a core
  for (let i = 0; i < 30; i++) a.step(m.work);
  assert.equal(a.threads, 1);
  assert.deepEqual(a.changes.map((c) => [c.from, c.to]), [[2, 1]]);
  assert.deepEqual(a.changes[0].ms, [670, 480]);

  m.costs[2] = 360; m.costs[1] = 510; // idle again
  for (let i = 0; i < 30; i++) a.step(m.work);
  assert.equal(a.threads, 2);
  assert.deepEqual(a.changes.map((c) => [c.from, c.to]), [[2, 1], [1, 2]]);
});

test('ThreadAdapter: a count is kept only when more than the margin faster; one candidate never changes', () => {
  const m = machine({ 2: 100, 1: 95 }); // 5% faster: within the 10% margin
  const a = new ThreadAdapter({ candidates: [2, 1], period: 5, trial: 3, setThreads: m.setThreads, now: m.now });
  m.setThreads(a.threads);
  for (let i = 0; i < 40; i++) a.step(m.work);
  assert.equal(a.threads, 2);
  assert.equal(a.changes.length, 0);
  const single = machine({ 4: 100 });
  const b = new ThreadAdapter({ candidates: [4], period: 2, trial: 2, setThreads: single.setThreads, now: single.now });
  single.setThreads(b.threads);
  for (let i = 0; i < 20; i++) b.step(single.work);
  assert.deepEqual(single.calls, [4]);
});

test('VGL_NUM_THREADS=auto asks for adaptation; a number or nothing does not', () => {
  assert.equal(adaptiveThreadsRequested({ VGL_NUM_THREADS: 'auto' }), true);
  assert.equal(adaptiveThreadsRequested({ VGL_NUM_THREADS: '2' }), false);
  assert.equal(adaptiveThreadsRequested({}), false);
});
