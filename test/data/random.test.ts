import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, deriveSeed, mix32 } from '../../src/data/random.ts';

test('matches an independent implementation of splitmix32 seeding + mulberry32', () => {
  // Reference values from a separate Python implementation of the published definitions
  // (mix32 of the seed as the initial state, then mulberry32 steps):
  //   seed 0  -> 2673918951 1525398398 1851933717 1087923286
  //   seed 42 -> 763744907 2711839145 2121928412 3759587137
  const r0 = new Rng(0);
  assert.deepEqual([0, 1, 2, 3].map(() => r0.nextUint32()), [2673918951, 1525398398, 1851933717, 1087923286]);
  const r42 = new Rng(42);
  assert.deepEqual([0, 1, 2, 3].map(() => r42.nextUint32()), [763744907, 2711839145, 2121928412, 3759587137]);
  assert.equal(new Rng(42).next(), 763744907 / 2 ** 32);
});

test('same seed gives the same stream, another seed a different one', () => {
  const draw = (seed: number) => {
    const r = new Rng(seed);
    return [r.next(), r.uniform(-3, 5), r.int(0, 1000), r.normal(), r.shuffle([1, 2, 3, 4, 5, 6, 7, 8])];
  };
  assert.deepEqual(draw(7), draw(7));
  assert.notDeepEqual(draw(7), draw(8));
});

test('uniform, int, normal have the right ranges and moments', () => {
  const r = new Rng(123);
  const n = 100_000;
  let sum = 0;
  let sumN = 0;
  let sumN2 = 0;
  const counts = new Array<number>(5).fill(0);
  for (let i = 0; i < n; i++) {
    const u = r.uniform(2, 4);
    assert.ok(u >= 2 && u < 4);
    sum += u;
    const k = r.int(-2, 3);
    assert.ok(Number.isInteger(k) && k >= -2 && k < 3);
    counts[k + 2]!++;
    const z = r.normal(1, 2);
    sumN += z;
    sumN2 += z * z;
  }
  assert.ok(Math.abs(sum / n - 3) < 0.01);
  for (const c of counts) assert.ok(Math.abs(c / n - 0.2) < 0.01, `int bucket share ${c / n}`);
  const mean = sumN / n;
  assert.ok(Math.abs(mean - 1) < 0.03, `normal mean ${mean}`);
  assert.ok(Math.abs(Math.sqrt(sumN2 / n - mean * mean) - 2) < 0.03);
  // Spans above 2^32 stay in range and reach beyond 2^32.
  let big = 0;
  for (let i = 0; i < 1000; i++) big = Math.max(big, r.int(0, 2 ** 40));
  assert.ok(big > 2 ** 32 && big < 2 ** 40);
  assert.throws(() => r.int(3, 3), /lo < hi/);
  assert.throws(() => r.int(0, 1.5), /integers/);
});

test('shuffle, permutation and sample are permutations / distinct draws', () => {
  const r = new Rng(5);
  const p = r.permutation(50);
  assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
  assert.notDeepEqual(p, Array.from({ length: 50 }, (_, i) => i));
  const s = r.sample(1000, 100);
  assert.equal(new Set(s).size, 100);
  assert.ok(s.every((v) => v >= 0 && v < 1000));
  assert.throws(() => r.sample(3, 4), /cannot draw 4/);
  // Every position of a 3-element shuffle is uniform (6 orders, ~1/6 each).
  const orders = new Map<string, number>();
  for (let i = 0; i < 60_000; i++) {
    const k = r.shuffle(['a', 'b', 'c']).join('');
    orders.set(k, (orders.get(k) ?? 0) + 1);
  }
  assert.equal(orders.size, 6);
  for (const c of orders.values()) assert.ok(Math.abs(c / 60_000 - 1 / 6) < 0.01);
});

test('deriveSeed separates keys and their order; mix32 is a bijection on a sample', () => {
  const seeds = new Set<number>();
  for (let e = 0; e < 10; e++) for (let i = 0; i < 100; i++) seeds.add(deriveSeed(1, e, i));
  assert.equal(seeds.size, 1000);
  assert.notEqual(deriveSeed(1, 2, 3), deriveSeed(1, 3, 2));
  assert.notEqual(deriveSeed(1, 2), deriveSeed(2, 2));
  assert.equal(deriveSeed(9, 4, 4), deriveSeed(9, 4, 4));
  assert.notEqual(deriveSeed(0, 1), deriveSeed(0, 1 + 2 ** 32));
  const outs = new Set<number>();
  for (let i = 0; i < 10_000; i++) outs.add(mix32(i));
  assert.equal(outs.size, 10_000);
});
