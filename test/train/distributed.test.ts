// Data-parallel training (torch.distributed, Gloo): two processes started by `vgl train
// --nproc-per-node 2` reproduce one process training the same global batch — the same tuples mined
// from a sharded cache, the same loss at every step, the same weights at the end, within float
// tolerance (only the head trains, so no BatchNorm sees a split batch: DDP does not sync BN either).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadCheckpoint } from '../../src/torch/checkpoint.ts';
import { distributedAvailable } from '../../src/torch/distributed.ts';
import { train } from '../../src/train/train.ts';
import { flattenConfig, withOptions } from '../../src/train/config.ts';
import { shardOf, unsupportedInDataParallel } from '../../src/train/distributed.ts';
import { useTinyCity, quiet, readLog } from '../helpers/tiny-city.ts';
import { freePort } from '../../src/cli/launch.ts';

const REPO = join(import.meta.dirname, '..', '..');
const city = useTinyCity('vgl-dist-train-', {
  backbone: 'resnet18conv4', resnetWidths: [8, 8, 16, 16], aggregation: 'netvlad', netvladClusters: 8, freezeBackbone: 'all', epochs: 1, batchSize: 3,
});
const skip = distributedAvailable() ? false : 'the addon was built without Gloo (libgloo-dev)';

test('shards: contiguous, covering, sizes differing by at most one', () => {
  assert.deepEqual([0, 1, 2].map((r) => shardOf(7, r, 3)), [[0, 3], [3, 5], [5, 7]]);
  assert.deepEqual([0, 1].map((r) => shardOf(1, r, 2)), [[0, 1], [1, 1]], 'a rank may get nothing of a short last batch');
});

test('what data-parallel training does not take yet is named', () => {
  const c = city.config({ invarianceWeight: 1, augment: { noise: 0.1 }, averageWeights: true, freezeBackbone: 'reference' });
  assert.deepEqual(unsupportedInDataParallel(c).map((s) => s.split(' ')[0]), ['invarianceWeight', 'averageWeights']);
});

test('vgl train --nproc-per-node 2 reproduces one process: tuples, the loss at every step, the final weights', { skip, timeout: 600_000 }, async () => {
  const one = city.config();
  await train(one, quiet);
  const two = withOptions(one, { outputFolder: join(city.root, 'two-processes') });
  const file = join(city.root, 'two.json');
  writeFileSync(file, JSON.stringify(flattenConfig(two)));
  await promisify(execFile)(process.execPath, [join(REPO, 'bin/vgl.js'), 'train', '--config', file, '--nproc-per-node', '2'], { cwd: REPO, env: { ...process.env, VGL_DEVICE: 'cpu' } });

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
  // Validation described in shards finds what one process finds (recall in %, of 16 val queries).
  const val = (dir: string) => readLog(dir).flatMap((e) => (e.event === 'validation' ? [e.recalls] : []));
  assert.deepEqual(val(two.run.outputFolder), val(one.run.outputFolder));
  const [wa, wb] = await Promise.all([one, two].map(async (c) => (await loadCheckpoint(join(c.run.outputFolder, 'last.pth'))).stateDict));
  let largest = 0;
  for (const [name, t] of wa) {
    const u = wb.get(name)!;
    assert.deepEqual(u.shape, t.shape, name);
    const x = t.data as Float32Array, y = u.data as Float32Array;
    if (!t.dtype.startsWith('float')) continue;
    for (let i = 0; i < x.length; i++) largest = Math.max(largest, Math.abs(x[i] - y[i]));
  }
  assert.ok(largest < 1e-5, `largest weight difference ${largest}`);

  // Resumed with the other process count, one more epoch each: the two-process run in one process,
  // the one-process run in two. last.pth does not depend on how many processes wrote it.
  await train(withOptions(two, { epochs: 2 }), quiet);
  writeFileSync(file, JSON.stringify(flattenConfig(withOptions(one, { epochs: 2 }))));
  await promisify(execFile)(process.execPath, [join(REPO, 'bin/vgl.js'), 'train', '--config', file, '--nproc-per-node', '2'], { cwd: REPO, env: { ...process.env, VGL_DEVICE: 'cpu' } });
  const second = (dir: string) => steps(dir).filter((e) => e.epoch === 1);
  const [c, d] = [second(one.run.outputFolder), second(two.run.outputFolder)];
  assert.ok(c.length >= 6 && d.length === c.length, `${c.length} and ${d.length} steps in the resumed epoch`);
  for (const [i, s] of c.entries()) assert.ok(Math.abs(d[i].loss - s.loss) <= 1e-4 * Math.max(1, Math.abs(s.loss)), `resumed step ${i}: ${d[i].loss} vs ${s.loss}`);
});

test('with BatchNorm training on each share of the batch, the ranks keep rank 0\'s statistics (DDP\'s broadcast_buffers): the weight check passes', { skip, timeout: 600_000 }, async () => {
  // layer3 and layer4 train, their BatchNorm statistics from each rank's share; without the buffers'
  // broadcast after each step the epoch's weight checksum differs across ranks and the run stops.
  const c = city.config({ freezeBackbone: 'reference', outputFolder: join(city.root, 'bn-two') });
  const file = join(city.root, 'bn.json');
  writeFileSync(file, JSON.stringify(flattenConfig(c)));
  await promisify(execFile)(process.execPath, [join(REPO, 'bin/vgl.js'), 'train', '--config', file, '--nproc-per-node', '2'], { cwd: REPO, env: { ...process.env, VGL_DEVICE: 'cpu' } });
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
