// Data-parallel training (torch.distributed, Gloo): two processes started by `vgl train
// --nproc-per-node 2` reproduce one process training the same global batch — the same tuples mined
// from a sharded cache, the same loss at every step, the same weights at the end, within float
// tolerance (only the head trains, so no BatchNorm sees a split batch: DDP does not sync BN either).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadCheckpoint } from '../../src/torch/checkpoint.ts';
import { distributedAvailable } from '../../src/torch/distributed.ts';
import { train } from '../../src/train/train.ts';
import { flattenConfig, withOptions, type TrainConfig } from '../../src/train/config.ts';
import { shardOf } from '../../src/train/distributed.ts';
import { useTinyCity, quiet, readLog } from '../helpers/tiny-city.ts';
import { freePort } from '../../src/cli/launch.ts';

const REPO = join(import.meta.dirname, '..', '..');
const city = useTinyCity('vgl-dist-train-', {
  backbone: 'resnet18conv4', resnetWidths: [8, 8, 16, 16], aggregation: 'netvlad', netvladClusters: 8, freezeBackbone: 'all', epochs: 1, batchSize: 3,
});
const skip = distributedAvailable() ? false : 'the addon was built without Gloo (libgloo-dev)';

/** `vgl train --config <name>.json --nproc-per-node 2` on `config`. */
async function trainInTwo(config: TrainConfig, name: string): Promise<void> {
  const file = join(city.root, `${name}.json`);
  writeFileSync(file, JSON.stringify(flattenConfig(config)));
  await promisify(execFile)(process.execPath, [join(REPO, 'bin/vgl.js'), 'train', '--config', file, '--nproc-per-node', '2'], { cwd: REPO, env: { ...process.env, VGL_DEVICE: 'cpu' } });
}

/** `config` trained in this process, and the same in the folder `name` in two processes. */
async function oneAndTwo(one: TrainConfig, name: string): Promise<[TrainConfig, TrainConfig]> {
  await train(one, quiet);
  const two = withOptions(one, { outputFolder: join(city.root, name) });
  await trainInTwo(two, name);
  return [one, two];
}

/** The largest difference between the float tensors of a checkpoint of two runs (the same names and shapes). */
async function largestDifference(a: TrainConfig, b: TrainConfig, checkpoint: string): Promise<number> {
  const [wa, wb] = await Promise.all([a, b].map(async (c) => (await loadCheckpoint(join(c.run.outputFolder, checkpoint))).stateDict));
  let largest = 0;
  for (const [name, t] of wa) {
    const u = wb.get(name)!;
    assert.deepEqual(u.shape, t.shape, name);
    if (!t.dtype.startsWith('float')) continue;
    const x = t.data as Float32Array, y = u.data as Float32Array;
    for (let i = 0; i < x.length; i++) largest = Math.max(largest, Math.abs(x[i] - y[i]));
  }
  return largest;
}

test('shards: contiguous, covering, sizes differing by at most one', () => {
  assert.deepEqual([0, 1, 2].map((r) => shardOf(7, r, 3)), [[0, 3], [3, 5], [5, 7]]);
  assert.deepEqual([0, 1].map((r) => shardOf(1, r, 2)), [[0, 1], [1, 1]], 'a rank may get nothing of a short last batch');
});

test('vgl train --nproc-per-node 2 reproduces one process: tuples, the loss at every step, the final weights', { skip, timeout: 600_000 }, async () => {
  const [one, two] = await oneAndTwo(city.config(), 'two');

  // The same cache and the same mined tuples, loop by loop (distances equal up to float rounding: the
  // shards are described in other batches, with one thread each).
  const loops = (dir: string) => readLog(dir).flatMap((e) => (e.event === 'loop' ? [e] : []));
  const [la, lb] = [loops(one.run.outputFolder), loops(two.run.outputFolder)];
  assert.equal(lb.length, la.length);
  for (const [i, l] of la.entries()) {
    const m = lb[i];
    assert.deepEqual([m.cachedImages, m.steps, m.images, m.mining!.triplets, m.mining!.violatingShare], [l.cachedImages, l.steps, l.images, l.mining!.triplets, l.mining!.violatingShare], `loop ${i}`);
    const [ma, mb] = [l.mining!, m.mining!];
    assert.ok(Math.abs(mb.meanPositiveDistance! - ma.meanPositiveDistance!) < 1e-5 && Math.abs(mb.meanHardestNegativeDistance! - ma.meanHardestNegativeDistance!) < 1e-5, `loop ${i}: mining distances`);
  }
  const steps = (dir: string) => readLog(dir).filter((e) => e.event === 'step').map((e) => (e.event === 'step' ? e : null)!);
  const [a, b] = [steps(one.run.outputFolder), steps(two.run.outputFolder)];
  assert.equal(b.length, a.length);
  assert.ok(a.length >= 6);
  for (const [i, s] of a.entries()) {
    assert.deepEqual([b[i].epoch, b[i].loop, b[i].batch], [s.epoch, s.loop, s.batch]);
    assert.ok(Math.abs(b[i].loss - s.loss) <= 1e-5 * Math.max(1, Math.abs(s.loss)), `step ${i}: loss ${b[i].loss} vs ${s.loss}`);
  }
  assert.ok(readLog(two.run.outputFolder).some((e) => e.event === 'distributed' && e.worldSize === 2));
  assert.deepEqual([one, two].map((c) => JSON.parse(readFileSync(join(c.run.outputFolder, 'config.json'), 'utf8')).worldSize), [1, 2], 'config.json records the processes');
  // Validation and the final test described in shards find what one process finds (recall in %, of 16 val and 24 test queries).
  const val = (dir: string) => readLog(dir).flatMap((e) => (e.event === 'validation' ? [e.recalls] : []));
  assert.deepEqual(val(two.run.outputFolder), val(one.run.outputFolder));
  const tested = (dir: string) => readLog(dir).flatMap((e) => (e.event === 'test' ? [e.recalls] : []));
  assert.equal(tested(one.run.outputFolder).length, 1);
  assert.deepEqual(tested(two.run.outputFolder), tested(one.run.outputFolder));
  const largest = await largestDifference(one, two, 'last.pth');
  assert.ok(largest < 1e-5, `largest weight difference ${largest}`);

  // Resumed with the other process count, one more epoch each: the two-process run in one process,
  // the one-process run in two. last.pth does not depend on how many processes wrote it.
  await train(withOptions(two, { epochs: 2 }), quiet);
  await trainInTwo(withOptions(one, { epochs: 2 }), 'one-resumed');
  const second = (dir: string) => steps(dir).filter((e) => e.epoch === 1);
  const [c, d] = [second(one.run.outputFolder), second(two.run.outputFolder)];
  assert.ok(c.length >= 6 && d.length === c.length, `${c.length} and ${d.length} steps in the resumed epoch`);
  for (const [i, s] of c.entries()) assert.ok(Math.abs(d[i].loss - s.loss) <= 1e-4 * Math.max(1, Math.abs(s.loss)), `resumed step ${i}: ${d[i].loss} vs ${s.loss}`);
});

test('with BatchNorm training on each share of the batch, the ranks keep rank 0\'s statistics (DDP\'s broadcast_buffers): the weight check passes', { skip, timeout: 600_000 }, async () => {
  // layer3 and layer4 train, their BatchNorm statistics from each rank's share; without the buffers'
  // broadcast after each step the epoch's weight checksum differs across ranks and the run stops.
  const c = city.config({ freezeBackbone: 'reference', outputFolder: join(city.root, 'bn-two') });
  await trainInTwo(c, 'bn');
  assert.ok(readLog(c.run.outputFolder).some((e) => e.event === 'validation'), 'the epoch was validated and checked');
});

test('--nnodes 2 --node-rank 0|1 --master-addr --master-port: two "machines" of one process each join one run of 2', { skip, timeout: 600_000 }, async () => {
  const c = city.config({ outputFolder: join(city.root, 'two-nodes') });
  const file = join(city.root, 'nodes.json');
  writeFileSync(file, JSON.stringify(flattenConfig(c)));
  const port = String(await freePort());
  const node = (rank: number) => promisify(execFile)(process.execPath, [join(REPO, 'bin/vgl.js'), 'train', '--config', file, '--nproc-per-node', '1',
    '--nnodes', '2', '--node-rank', String(rank), '--master-addr', '127.0.0.1', '--master-port', port], { cwd: REPO, env: { ...process.env, VGL_DEVICE: 'cpu' } });
  await Promise.all([node(0), node(1)]);
  assert.ok(readLog(c.run.outputFolder).some((e) => e.event === 'distributed' && e.worldSize === 2));
  await assert.rejects(promisify(execFile)(process.execPath, [join(REPO, 'bin/vgl.js'), 'train', '--config', file, '--nproc-per-node', '1', '--nnodes', '2'], { cwd: REPO }),
    /--nnodes > 1: give --master-addr and --master-port/);
});

test('a rank killed mid-epoch: the other exits non-zero within the collective timeout, naming the failure; the run resumes from last.pth in one process', { skip, timeout: 600_000 }, async () => {
  // Two ranks as torchrun starts them (one process each, as on two machines): no launcher stops the
  // survivor, only its own collectives can. Enough cache loops that the kill lands inside the epoch.
  const c = city.config({ outputFolder: join(city.root, 'killed'), epochs: 1, queriesPerEpoch: 24, cacheRefreshRate: 2 });
  const file = join(city.root, 'killed.json');
  writeFileSync(file, JSON.stringify(flattenConfig(c)));
  const port = String(await freePort());
  const rank = (r: number) => spawn(process.execPath, [join(REPO, 'bin/vgl.js'), 'train', '--config', file], {
    cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, VGL_DEVICE: 'cpu', VGL_NUM_THREADS: '1', WORLD_SIZE: '2', RANK: String(r), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, VGL_DIST_TIMEOUT: '30' },
  });
  const [r0, r1] = [rank(0), rank(1)];
  let stderr0 = '';
  r0.stderr!.on('data', (d: Buffer) => { stderr0 += String(d); });
  r1.stderr!.resume();
  const exited = (p: ReturnType<typeof spawn>) => new Promise<{ code: number | null; signal: string | null }>((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })));
  const [e0, e1] = [exited(r0), exited(r1)];
  // Kill rank 1 once rank 0 has logged the first cache loop (its last.pth written).
  const log = join(c.run.outputFolder, 'log.jsonl');
  const deadline = Date.now() + 300_000;
  while (!(existsSync(log) && readFileSync(log, 'utf8').includes('"event":"loop"'))) {
    assert.ok(Date.now() < deadline, 'the run never finished a cache loop');
    await new Promise((r) => setTimeout(r, 25));
  }
  r1.kill('SIGKILL');
  const killedAt = Date.now();
  assert.equal((await e1).signal, 'SIGKILL');
  const survivor = await e0;
  const waited = Date.now() - killedAt;
  assert.notEqual(survivor.code, 0, `rank 0 exited with ${survivor.code}: ${stderr0.slice(-2000)}`);
  assert.ok(waited < 60_000, `rank 0 took ${waited} ms to stop`);
  // e.g. "all-gather failed on rank 0 of 2 (a peer may have stopped, or exceeded the 30000 ms timeout): ... Connection reset by peer"
  assert.match(stderr0, /failed on rank 0 of 2 \(a peer may have stopped, or exceeded the 30000 ms timeout\)/);
  const loopsBefore = readLog(c.run.outputFolder).filter((e) => e.event === 'loop').length;
  assert.ok(loopsBefore >= 1 && loopsBefore < 12, `${loopsBefore} of 12 cache loops before the kill`);
  // Resumed in one process: the epoch goes on from the next cache loop, config.json says 1 process now.
  await train(c, quiet);
  const entries = readLog(c.run.outputFolder);
  assert.equal(entries.filter((e) => e.event === 'loop').length, 12, 'every cache loop ran once, none twice');
  assert.ok(entries.some((e) => e.event === 'resume-changes' && e.changes.some((x: string) => /world-size 2 -> 1/.test(x))), 'the resume records the other process count');
  assert.equal(JSON.parse(readFileSync(join(c.run.outputFolder, 'config.json'), 'utf8')).worldSize, 1);
  assert.ok(entries.some((e) => e.event === 'validation'));
});

test('the camera-invariance term and weight averaging in two processes: the same step losses, invariance values, averaged model and its recall as one process', { skip, timeout: 600_000 }, async () => {
  // The term on descriptors (the head trains); each rank takes 2 of the step's 4 images, normalised by
  // the teacher's energy over all 4, so the ranks' parts add up to one process's term.
  const [one, two] = await oneAndTwo(city.config({ outputFolder: join(city.root, 'inv-one'), invarianceWeight: 0.5, invarianceOn: 'descriptors', invarianceBatch: 4,
    augment: { noise: 0.1, brightness: 0.3 }, averageWeights: true, epochs: 2 }), 'inv-two');
  const steps = (dir: string) => readLog(dir).flatMap((e) => (e.event === 'step' ? [e] : []));
  const [a, b] = [steps(one.run.outputFolder), steps(two.run.outputFolder)];
  assert.equal(b.length, a.length);
  assert.ok(a.length >= 12 && a.every((s) => s.invariance !== undefined && s.invariance > 0), 'every step has the term');
  const close = (x: number, y: number, tol: number) => Math.abs(x - y) <= tol * Math.max(1, Math.abs(y));
  for (const [i, s] of a.entries()) {
    assert.ok(close(b[i].loss, s.loss, 1e-5), `step ${i}: loss ${b[i].loss} vs ${s.loss}`);
    assert.ok(close(b[i].invariance!, s.invariance!, 1e-5), `step ${i}: invariance ${b[i].invariance} vs ${s.invariance}`);
  }
  const averages = (dir: string) => readLog(dir).flatMap((e) => (e.event === 'average' ? [[e.epochs, e.recalls]] : []));
  assert.deepEqual(averages(two.run.outputFolder), averages(one.run.outputFolder));
  assert.equal(averages(one.run.outputFolder).length, 2);
  const tested = (dir: string) => readLog(dir).flatMap((e) => (e.event === 'test' ? [e.recalls] : []));
  assert.deepEqual(tested(two.run.outputFolder), tested(one.run.outputFolder), 'the averaged model tested in shards');
  const largest = await largestDifference(one, two, 'average.pth');
  assert.ok(largest < 1e-5, `average.pth: largest weight difference ${largest}`);
});

test('data-parallel refuses an invariance batch that leaves a process without an image, naming the option', { skip, timeout: 120_000 }, async () => {
  const c = city.config({ outputFolder: join(city.root, 'inv-small'), invarianceWeight: 1, invarianceOn: 'descriptors', invarianceBatch: 1, augment: { noise: 0.1 } });
  await assert.rejects(trainInTwo(c, 'inv-small'), /--invariance-batch 1: the invariance term's images must give every one of the 2 processes one/);
});
