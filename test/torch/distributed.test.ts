// torch.distributed through the addon: two processes join a Gloo group (through a FileStore, and
// through torchrun's TCP store) and run every collective training uses, with values derived by hand;
// a rank that dies makes its peer's collective fail with an error naming the peer's rank, not hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import { launchEnv, distributedAvailable } from '../../src/torch/distributed.ts';
import { freePort } from '../../src/cli/launch.ts';

const WORKER = join(import.meta.dirname, 'distributed', 'worker.ts');
// A libtorch tree without gloo's headers (LIBTORCH=...) builds the addon without process groups.
const skip = distributedAvailable() ? false : 'the addon was built without Gloo (libgloo-dev)';

interface Result { rank: number; summed?: number[]; meaned?: number[]; broadcast?: number[]; gathered?: number[][]; error?: string }

/** Runs `n` ranks of the worker; resolves with each rank's printed result and exit code. */
function runRanks(n: number, where: string, scenario: string, timeoutMs: number): Promise<{ result: Result | null; code: number | null; stderr: string }[]> {
  return Promise.all(Array.from({ length: n }, (_, rank) => new Promise<{ result: Result | null; code: number | null; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', WORKER, String(rank), String(n), where, scenario, String(timeoutMs)],
      { env: { ...process.env, VGL_NUM_THREADS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ result: out.trim() ? JSON.parse(out.trim().split('\n').at(-1)!) as Result : null, code, stderr: err }));
  })));
}

function checkCollectives(results: { result: Result | null; code: number | null; stderr: string }[]): void {
  for (const [rank, { result, code, stderr }] of results.entries()) {
    assert.equal(code, 0, `rank ${rank} exited ${code}: ${stderr.slice(-500)} ${JSON.stringify(result)}`);
    // sum of [r+1, 10(r+1)] over r = 0, 1: [3, 30]; mean of [[r, 2r], [3r, 4]]: [[0.5, 1], [1.5, 4]];
    // broadcast from rank 1: [1, 1, 1]; all-gather of [100r, 100r+1]: [[0, 1], [100, 101]].
    assert.deepEqual(result, { rank, summed: [3, 30], meaned: [0.5, 1, 1.5, 4], broadcast: [1, 1, 1], gathered: [[0, 1], [100, 101]] });
  }
}

test('two ranks through a FileStore: all-reduce (sum, mean), broadcast, all-gather and barrier give the hand-derived values', { skip }, async () => {
  checkCollectives(await runRanks(2, join(tempDir('vgl-dist-'), 'store'), 'ok', 60_000));
});

test('three ranks: the same collectives, values by hand', { skip }, async () => {
  for (const [rank, { result, code, stderr }] of (await runRanks(3, join(tempDir('vgl-dist-'), 'store'), 'ok', 60_000)).entries()) {
    assert.equal(code, 0, stderr.slice(-500));
    // sum of [r+1, 10(r+1)] over r = 0..2: [6, 60]; mean of [[r, 2r], [3r, 4]]: [[1, 2], [3, 4]];
    // broadcast from rank 1: [1, 1, 1]; all-gather: [[0, 1], [100, 101], [200, 201]].
    assert.deepEqual(result, { rank, summed: [6, 60], meaned: [1, 2, 3, 4], broadcast: [1, 1, 1], gathered: [[0, 1], [100, 101], [200, 201]] });
  }
});

test("two ranks through torchrun's TCP store (rank 0 serves it): the same values", { skip }, async () => {
  checkCollectives(await runRanks(2, `tcp:${await freePort()}`, 'ok', 60_000));
});

test('a rank that dies stops its peer with an error naming the peer\'s rank, within the timeout', { skip }, async () => {
  const t0 = Date.now();
  const [zero, one] = await runRanks(2, join(tempDir('vgl-dist-'), 'store'), 'die', 3_000);
  assert.equal(one.code, 0);
  assert.equal(zero.code, 3, zero.stderr);
  assert.match(zero.result!.error!, /all-reduce failed on rank 0 of 2/);
  assert.ok(Date.now() - t0 < 60_000, 'no hang');
});

test("torchrun's environment: WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, with errors that name the variable", () => {
  assert.equal(launchEnv({}), undefined);
  assert.deepEqual(launchEnv({ WORLD_SIZE: '4', RANK: '3', LOCAL_RANK: '1', MASTER_ADDR: 'node0', MASTER_PORT: '29511' }),
    { rank: 3, worldSize: 4, localRank: 1, host: 'node0', port: 29511 });
  assert.deepEqual(launchEnv({ WORLD_SIZE: '2', RANK: '0' }), { rank: 0, worldSize: 2, localRank: 0, host: '127.0.0.1', port: 29500 });
  assert.throws(() => launchEnv({ WORLD_SIZE: '2' }), /RANK is not set/);
  assert.throws(() => launchEnv({ WORLD_SIZE: '2', RANK: '2' }), /RANK=2 is not in \[0, WORLD_SIZE=2\)/);
  assert.throws(() => launchEnv({ WORLD_SIZE: '2', RANK: 'one' }), /RANK="one" is not a non-negative integer/);
  assert.equal(launchEnv({ WORLD_SIZE: '2', RANK: '1', VGL_DIST_TIMEOUT: '2.5' })!.timeoutMs, 2500);
  assert.throws(() => launchEnv({ WORLD_SIZE: '2', RANK: '1', VGL_DIST_TIMEOUT: '0' }), /VGL_DIST_TIMEOUT="0" is not a number of seconds > 0/);
});
