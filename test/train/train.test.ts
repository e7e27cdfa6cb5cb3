// The training loop end to end on a tiny synthetic city (rendered into a temp folder): resuming equals
// never stopping (weights, optimizer, losses), a non-finite loss stops the run and keeps the last good
// checkpoint, interrupted checkpoint writes leave nothing behind, and a short training raises recall@1.
// The mechanics run ResNet-18 to conv4 at widths 8/8/16/16 on 48x64 images (about a second per run;
// MobileNetV2 took 3x as long on the same settings); the recall test uses MobileNetV2 with the
// repository's ImageNet weights, which a few dozen steps can improve.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { spawn, spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../../src/torch/index.ts';
import type { HostTensor } from '../../src/torch/dtype.ts';
import { generateCity } from '../../src/data/synth/generate.ts';
import { withOptions, type TrainConfig, type TrainConfigInput } from '../../src/train/config.ts';
import { openDataset } from '../../src/data/dataset.ts';
import { loadCheckpoint, loadWeights, saveCheckpoint } from '../../src/torch/checkpoint.ts';
import { buildModel, initialiseHeadFromData } from '../../src/models/assemble.ts';
import { checkRunMemory } from '../../src/train/memory.ts';
import { UsageError } from '../../src/errors.ts';
import { useTinyCity, CITY, quiet, readLog, stepLosses, bytesOf, assertSameTensors, countDiffering } from '../helpers/tiny-city.ts';
import { train, recallsOn, optimizerFor, NonFiniteLossError, type LogEntry, type TrainHooks } from '../../src/train/train.ts';
import { initOptions } from '../../src/train/start.ts';
import { STALE_CHECKPOINT_TEMP } from '../../src/train/resume.ts';
import { commandLineMessage } from '../../src/errors.ts';

const MOBILENETV2_WEIGHTS = fileURLToPath(new URL('../../weights/mobilenet_v2_0.35_imagenet', import.meta.url));

const city = useTinyCity('vgl-train-test-', {
  backbone: 'resnet18conv4', resnetWidths: [8, 8, 16, 16], aggregation: 'netvlad', netvladClusters: 8,
});
const tinyConfig = city.config;

/** Run A uninterrupted; run B stopped after each count of `stops` loops (resume points `resumePoints`: epoch, next loop), then finished. Returns A's config. */
async function assertResumeEqualsUninterrupted(over: Partial<TrainConfigInput>, stops: number[], resumePoints: [number, number][]): Promise<TrainConfig> {
  const a = tinyConfig(over);
  await train(a, quiet);

  const b = tinyConfig(over);
  const snapshots: Map<string, HostTensor>[] = [];
  const stoppedAt: [number, number][] = [];
  for (const k of stops) {
    await train(b, { ...quiet, maxLoops: k });
    const ck = await loadCheckpoint<{ epoch: number; loop: number }>(join(b.run.outputFolder, 'last.pth'));
    snapshots.push(ck.stateDict);
    stoppedAt.push([ck.meta.epoch, ck.meta.loop]);
  }
  const result = await train(b, quiet);
  assert.deepEqual(stoppedAt, resumePoints, 'resume points (epoch, next loop)');

  const lastA = await loadCheckpoint<Record<string, unknown>>(join(a.run.outputFolder, 'last.pth'));
  const lastB = await loadCheckpoint<Record<string, unknown>>(join(b.run.outputFolder, 'last.pth'));
  assertSameTensors(lastA.stateDict, lastB.stateDict, 'last.pth state dict');
  assert.ok(lastA.optimizer && lastB.optimizer);
  assert.equal(lastB.optimizer.state.length, lastA.optimizer.state.length);
  lastA.optimizer.state.forEach((p, i) => {
    assert.equal(lastB.optimizer!.state[i].step, p.step, `optimizer parameter ${i}: step`);
    assertSameTensors(new Map(Object.entries(p.tensors)), new Map(Object.entries(lastB.optimizer!.state[i].tensors)), `optimizer parameter ${i}`);
  });
  assertSameTensors((await loadCheckpoint(join(a.run.outputFolder, 'best.pth'))).stateDict,
    (await loadCheckpoint(join(b.run.outputFolder, 'best.pth'))).stateDict, 'best.pth state dict');
  // Same metadata, including the epoch means and val recalls of the history and full mining's memory.
  assert.deepEqual({ ...lastB.meta, config: null }, { ...lastA.meta, config: null });
  assert.deepEqual(result.history, (lastA.meta as { history: unknown }).history);

  const lossesA = stepLosses(a.run.outputFolder);
  assert.equal(lossesA.length, 2 * 3 * 2, '2 epochs x 3 loops x 2 batches of 2 queries');
  assert.deepEqual(stepLosses(b.run.outputFolder), lossesA);
  // Each epoch's mean loss covers all its steps, including those run before a stop.
  for (const h of result.history) {
    const losses = lossesA.filter((x) => x && x[0] === h.epoch).map((x) => (x as number[])[3]);
    assert.ok(Math.abs(h.meanLoss - losses.reduce((s, x) => s + x, 0) / losses.length) < 1e-12, `epoch ${h.epoch} mean loss ${h.meanLoss}`);
  }
  const miningOf = (out: string) => readLog(out).flatMap((e) => (e.event === 'loop' ? [e.mining] : []));
  assert.deepEqual(miningOf(b.run.outputFolder), miningOf(a.run.outputFolder));

  // The test could fail: each stop saw different weights from the final ones.
  for (const s of snapshots) assert.ok(countDiffering(s, lastA.stateDict) > 0, 'training changed the weights after the stop');
  return a;
}

test('resume equals uninterrupted: partial mining, stopped mid-epoch and at an epoch boundary', async () => {
  // Stops after loops 0-1 (mid epoch 0), then after loop 2 (its checkpoint written, the epoch-0 validation
  // not yet run: the resumed run validates first), then after epoch 1's first loop.
  await assertResumeEqualsUninterrupted({ mining: 'partial' }, [2, 1, 1], [[0, 2], [0, 3], [1, 1]]);
});

test('bf16: a run resumes to the uninterrupted bf16 result; weights, optimizer state and checkpoints stay fp32', async () => {
  const a = await assertResumeEqualsUninterrupted({ mining: 'partial', precision: 'bf16' }, [2], [[0, 2]]);
  const precision = readLog(a.run.outputFolder).find((e) => e.event === 'precision');
  assert.ok(precision && precision.event === 'precision');
  assert.equal(precision.precision, 'bf16');
  const last = await loadCheckpoint(join(a.run.outputFolder, 'last.pth'));
  for (const [name, t] of last.stateDict) assert.ok(t.dtype === 'float32' || t.dtype === 'int64', `${name}: ${t.dtype}`);
  for (const p of last.optimizer!.state) for (const [name, t] of Object.entries(p.tensors)) assert.equal(t.dtype, 'float32', `optimizer ${name}`);
  // bf16 trains a different trajectory from fp32 (the test could fail: precision changes the steps).
  const fp32 = tinyConfig({ mining: 'partial', epochs: 1 });
  await train(fp32, { ...quiet, maxLoops: 1 });
  assert.notDeepEqual(stepLosses(fp32.run.outputFolder).slice(0, 2), stepLosses(a.run.outputFolder).slice(0, 2));
});

test("precision auto: the run logs which precision runs and why; VGL_BF16=0 (no bf16 units) makes it fp32", async () => {
  const saved = process.env.VGL_BF16;
  const lines: string[] = [];
  const config = tinyConfig({ precision: 'auto', epochs: 1 });
  process.env.VGL_BF16 = '0';
  try {
    await train(config, { ...quiet, log: (l) => lines.push(l), maxLoops: 1 });
  } finally {
    if (saved === undefined) delete process.env.VGL_BF16;
    else process.env.VGL_BF16 = saved;
  }
  const { time: _t, ...precision } = readLog(config.run.outputFolder).find((e) => e.event === 'precision')!;
  assert.deepEqual(precision, { event: 'precision', precision: 'fp32', searchPrecision: 'fp32', requested: 'auto', reason: 'auto: VGL_BF16=0 treats bf16 as unavailable' });
  assert.ok(lines.includes('precision fp32 (auto: VGL_BF16=0 treats bf16 as unavailable)'), lines.join('\n'));
  // Resumed on a machine where auto would say bf16, the run keeps what it started with.
  process.env.VGL_BF16 = '1';
  const resumed: string[] = [];
  try {
    await train(config, { ...quiet, log: (l) => resumed.push(l), maxLoops: 1 });
  } finally {
    if (saved === undefined) delete process.env.VGL_BF16;
    else process.env.VGL_BF16 = saved;
  }
  assert.ok(resumed.includes('precision fp32, as the run started (search fp32)'), resumed.join('\n'));
  assert.equal(readLog(config.run.outputFolder).filter((e) => e.event === 'precision').length, 1, 'one choice per run');
  // A resumed run may not switch precision: that would mix two trainings.
  await assert.rejects(train(withOptions(config, { precision: 'bf16' }), quiet), /--precision "auto" -> "bf16"/);
});

test('resume equals uninterrupted: full mining keeps its negative memory across the restart', async () => {
  const over: Partial<TrainConfigInput> = { mining: 'full', cacheRefreshRate: 6, queriesPerEpoch: 12, batchSize: 3 };
  const probe = tinyConfig(over);
  await train(probe, { ...quiet, maxLoops: 1 });
  const meta = (await loadCheckpoint<{ memory: Record<string, number[]> }>(join(probe.run.outputFolder, 'last.pth'))).meta;
  assert.equal(Object.keys(meta.memory).length, 6, 'one memory entry per query of the first loop');
  for (const negatives of Object.values(meta.memory)) assert.equal(negatives.length, 3);

  const a = tinyConfig(over);
  await train(a, quiet);
  const b = tinyConfig(over);
  await train(b, { ...quiet, maxLoops: 3 }); // mid epoch 1: its second loop mines with memory from before the stop
  await train(b, quiet);
  const lastA = await loadCheckpoint(join(a.run.outputFolder, 'last.pth'));
  const lastB = await loadCheckpoint(join(b.run.outputFolder, 'last.pth'));
  assertSameTensors(lastA.stateDict, lastB.stateDict, 'last.pth state dict');
  assert.deepEqual({ ...(lastB.meta as object), config: null }, { ...(lastA.meta as object), config: null });
  assert.deepEqual(stepLosses(b.run.outputFolder), stepLosses(a.run.outputFolder));
});

test("the reference's horizontal flip mirrors whole batches: identical to no flip until the first mirrored batch, different from it on", async () => {
  const over: Partial<TrainConfigInput> = { epochs: 1 };
  const plain = tinyConfig(over);
  const flip = tinyConfig({ ...over, horizontalFlip: true });
  await train(plain, quiet);
  await train(flip, quiet);
  const steps = (out: string) => readLog(out).filter((e) => e.event === 'step') as (LogEntry & { loss: number; flipped?: boolean })[];
  const a = steps(plain.run.outputFolder), b = steps(flip.run.outputFolder);
  assert.equal(a.length, b.length);
  const flips = b.map((e) => e.flipped);
  assert.ok(flips.includes(true) && flips.includes(false), `some batches mirrored, some not: ${flips.join(',')}`);
  assert.ok(a.every((e) => e.flipped === undefined), 'no flip record without --horizontal-flip');
  const first = flips.indexOf(true);
  for (let i = 0; i < first; i++) assert.equal(b[i].loss, a[i].loss, `step ${i} (not mirrored) as without the flip`);
  assert.notEqual(b[first].loss, a[first].loss, `step ${first} (mirrored) differs`);
});

test('camera invariance: each step adds weight x the feature term (logged), and a resumed run rebuilds the same teacher', async () => {
  const augment = { noise: 0.2, blur: 1 };
  const plain = tinyConfig({ epochs: 1, augment });
  const inv = tinyConfig({ epochs: 1, augment, invarianceWeight: 2, invarianceBatch: 3 });
  await train(plain, { ...quiet, maxLoops: 1 });
  await train(inv, { ...quiet, maxLoops: 1 });
  const steps = (out: string) => readLog(out).filter((e) => e.event === 'step') as (LogEntry & { loss: number; invariance?: number })[];
  const a = steps(plain.run.outputFolder), b = steps(inv.run.outputFolder);
  assert.ok(a.every((e) => e.invariance === undefined));
  assert.ok(b.every((e) => typeof e.invariance === 'number' && e.invariance > 0), 'the augmented view differs from the clean one');
  // Step 0: same weights, same tuples, so the loss is the triplet loss plus 2 x the invariance term.
  assert.ok(Math.abs(b[0].loss - (a[0].loss + 2 * b[0].invariance!)) < 1e-5, `${b[0].loss} vs ${a[0].loss} + 2 x ${b[0].invariance}`);
  await assertResumeEqualsUninterrupted({ augment, invarianceWeight: 1, invarianceBatch: 2 }, [1, 2], [[0, 1], [0, 3]]);
  assert.throws(() => tinyConfig({ invarianceWeight: 1 }), /invarianceWeight.*needs an augmentation/s);
  assert.throws(() => tinyConfig({ invarianceWeight: 1, augment, freezeBackbone: 'all' }), /freezeBackbone 'all'/);
});

test('a non-finite loss stops the run with a clear error and keeps the last good checkpoint', async () => {
  const config = tinyConfig({ epochs: 1 });
  let good: Map<string, HostTensor> | null = null;
  const hooks: TrainHooks = {
    ...quiet,
    beforeStep: (net, at) => {
      if (at.loop !== 1) return;
      // Before loop 1's first step the weights are those last.pth received after loop 0.
      if (at.batch === 0) good = new Map([...net.stateDict()].map(([k, t]) => [k, t.toHost()]));
      // Then a NaN weight in the head: every descriptor, hence the loss, becomes NaN.
      if (at.batch === 1) torch.noGrad(() => net.aggregation.parameters()[0].fill_(NaN));
    },
  };
  await assert.rejects(train(config, hooks), (err: unknown) => {
    assert.ok(err instanceof NonFiniteLossError);
    assert.match(err.message, /the triplet loss became NaN at epoch 0, cache loop 1, batch 1\./);
    assert.ok(err.message.includes(`${join(config.run.outputFolder, 'last.pth')} keeps the last good state`), err.message);
    assert.match(err.message, /Lower the learning rate \(now 0\.001\)/);
    assert.deepEqual(err.at, { epoch: 0, loop: 1, batch: 1 });
    assert.ok(Number.isNaN(err.loss));
    return true;
  });
  assert.ok(good, 'the hook saw loop 1');
  const last = await loadCheckpoint<{ epoch: number; loop: number }>(join(config.run.outputFolder, 'last.pth'));
  assertSameTensors(last.stateDict, good!, 'last.pth vs the weights after loop 0');
  for (const t of last.stateDict.values()) if (t.dtype === 'float32') assert.ok((t.data as Float32Array).every(Number.isFinite));
  assert.deepEqual([last.meta.epoch, last.meta.loop], [0, 1], 'resume point: epoch 0, loop 1');

  const log = readLog(config.run.outputFolder);
  const end = log.at(-1)!;
  assert.equal(end.event, 'nonfinite-loss');
  assert.deepEqual(end, { ...end, epoch: 0, loop: 1, batch: 1, loss: 'NaN', checkpoint: join(config.run.outputFolder, 'last.pth') });
  assert.deepEqual(log.filter((e) => e.event === 'loop').map((e) => e.event === 'loop' && e.loop), [0], 'loop 1 never completed');
  assert.deepEqual(log.filter((e) => e.event === 'step' && e.loop === 1).length, 1, 'one good step in loop 1 before the NaN');

  // Resuming (without the corruption) restarts loop 1 from the good state and finishes the epoch.
  const resumed = await train(config, quiet);
  assert.equal(resumed.history.length, 1);
  assert.ok(Number.isFinite(resumed.history[0].meanLoss));
});

test('weights broken by a step with a finite loss are never checkpointed', async () => {
  const config = tinyConfig({ epochs: 1 });
  // A NaN running mean in a trained BatchNorm: train-mode forward uses batch statistics, so the loss stays
  // finite, but the buffer (what evaluation and the checkpoint use) is broken.
  const target = 'backbone.layer3.0.bn1.running_mean';
  const hooks: TrainHooks = {
    ...quiet,
    beforeStep: (net, at) => {
      if (at.loop === 1 && at.batch === 1) torch.noGrad(() => net.stateDict().get(target)!.fill_(NaN));
    },
  };
  await assert.rejects(train(config, hooks), (err: unknown) => {
    assert.ok(err instanceof NonFiniteLossError);
    assert.ok(err.message.startsWith(`training stopped: ${target} holds NaN/inf after the last step of epoch 0, cache loop 1 (the loss was still finite).`), err.message);
    return true;
  });
  const log = readLog(config.run.outputFolder);
  assert.ok(log.filter((e) => e.event === 'step' && e.loop === 1).every((e) => e.event === 'step' && Number.isFinite(e.loss)));
  assert.deepEqual(log.at(-1), { ...log.at(-1), event: 'nonfinite-weights', epoch: 0, loop: 1, batch: 1, tensor: target });
  const last = await loadCheckpoint<{ loop: number }>(join(config.run.outputFolder, 'last.pth'));
  assert.equal(last.meta.loop, 1, 'last.pth is still the state after loop 0');
  assert.ok((last.stateDict.get(target)!.data as Float32Array).every(Number.isFinite));
});

test('an absurd learning rate ends in NonFiniteLossError, not in silently NaN weights', async () => {
  const config = tinyConfig({ epochs: 1, optimizer: 'sgd', lr: 1e30, momentum: 0 });
  await assert.rejects(train(config, quiet), NonFiniteLossError);
  const nonfinite = readLog(config.run.outputFolder).filter((e) => e.event === 'nonfinite-loss');
  assert.equal(nonfinite.length, 1);
});

test('checkpoint writes: no temp files after a run; one left by a killed writer is removed, last.pth intact', async () => {
  const config = tinyConfig({ epochs: 1 });
  await train(config, { ...quiet, maxLoops: 1 });
  const files = () => readdirSync(config.run.outputFolder).sort();
  assert.deepEqual(files(), ['config.json', 'last.pth', 'log.jsonl']);
  const before = await loadCheckpoint(join(config.run.outputFolder, 'last.pth'));
  // What a SIGKILL during saveCheckpoint leaves: the complete old last.pth and a partial temp file.
  const stale = `.last.pth.999999.0badcafe.tmp`;
  assert.match(stale, STALE_CHECKPOINT_TEMP);
  writeFileSync(join(config.run.outputFolder, stale), readFileSync(join(config.run.outputFolder, 'last.pth')).subarray(0, 1000));
  const lines: string[] = [];
  await train(config, { progress: false, log: (s) => lines.push(s), maxLoops: 0 });
  assert.ok(lines.some((l) => l.includes(`removed 1 unfinished checkpoint write(s) of an interrupted run: ${stale}`)), lines.join('\n'));
  assert.deepEqual(files(), ['config.json', 'last.pth', 'log.jsonl']);
  assertSameTensors((await loadCheckpoint(join(config.run.outputFolder, 'last.pth'))).stateDict, before.stateDict, 'last.pth');
  const result = await train(config, quiet);
  assert.deepEqual(files(), ['best.pth', 'config.json', 'last.pth', 'log.jsonl', 'results.json']);
  // the best model is tested on the test split, as the reference does; results.json says so
  const saved = JSON.parse(readFileSync(join(config.run.outputFolder, 'results.json'), 'utf8'));
  assert.deepEqual(saved.test, result.testRecalls);
  assert.deepEqual(Object.keys(result.testRecalls ?? {}).map(Number), config.eval.recallValues);
  assert.equal(readLog(config.run.outputFolder).filter((e) => e.event === 'test').length, 1);
});

test('a run killed (SIGKILL) mid-training leaves a loadable last.pth and resumes to the uninterrupted result', async () => {
  const a = tinyConfig({ epochs: 1 });
  await train(a, quiet);
  const b = tinyConfig({ epochs: 1 });
  // A separate process trains b; it is killed as soon as its log shows a step of cache loop 1 (the kill
  // lands wherever that process then is: training, caching or writing a checkpoint).
  const repo = fileURLToPath(new URL('../..', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
    `const { train } = await import(${JSON.stringify(join(repo, 'src/train/train.ts'))});
     await train(JSON.parse(process.argv[1]), { progress: false, log: () => {} });`, JSON.stringify(b)], { cwd: repo, stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  const logFile = join(b.run.outputFolder, 'log.jsonl');
  let killed = false;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline && child.exitCode === null;) {
    if (existsSync(logFile) && readFileSync(logFile, 'utf8').includes('"event":"step","epoch":0,"loop":1')) {
      child.kill('SIGKILL');
      killed = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(killed, 'the child was still training when loop 1 began');
  assert.equal(await exited, 'SIGKILL');
  const atKill = await loadCheckpoint<{ epoch: number; loop: number }>(join(b.run.outputFolder, 'last.pth'));
  assert.ok(atKill.meta.epoch === 0 && atKill.meta.loop >= 1, `last.pth after the kill: epoch ${atKill.meta.epoch}, loop ${atKill.meta.loop}`);

  await train(b, quiet);
  assert.deepEqual(readdirSync(b.run.outputFolder).sort(), ['best.pth', 'config.json', 'last.pth', 'log.jsonl', 'results.json'], 'no temp files remain');
  assertSameTensors((await loadCheckpoint(join(b.run.outputFolder, 'last.pth'))).stateDict,
    (await loadCheckpoint(join(a.run.outputFolder, 'last.pth'))).stateDict, 'last.pth after resume vs uninterrupted');
  // The log keeps the killed loop's steps too; the last value logged for each step is the uninterrupted one.
  const lastPerStep = (out: string) => [...new Map(stepLosses(out).map((s) => [JSON.stringify((s as number[]).slice(0, 3)), s])).values()];
  assert.deepEqual(lastPerStep(b.run.outputFolder), stepLosses(a.run.outputFolder));
});

test('log.jsonl: per cache loop timings, sizes and mining statistics; per validation its time', async () => {
  const config = tinyConfig({ epochs: 1 });
  const seen: LogEntry[] = [];
  await train(config, { ...quiet, onRecord: (e) => seen.push(e) });
  const log = readLog(config.run.outputFolder);
  assert.deepEqual(seen, log.map(({ time, ...e }) => e), 'onRecord gets what log.jsonl holds');
  const loops = log.flatMap((e) => (e.event === 'loop' ? [e] : []));
  assert.deepEqual(loops.map((l) => l.loop), [0, 1, 2]);
  for (const l of loops) {
    for (const k of ['cacheMs', 'mineMs', 'trainMs', 'checkpointMs'] as const) assert.ok(Number.isInteger(l[k]) && l[k] >= 0, `${k} = ${l[k]}`);
    assert.equal(l.images, 4 * (2 + 3), '4 tuples of query + positive + 3 negatives');
    assert.equal(l.steps, 2);
    assert.equal(l.mining?.triplets, 4);
    // Partial mining caches the shared set (20), the loop's 4 queries and their hard positives.
    assert.ok(l.cachedImages >= 24 && l.cachedImages <= 20 + 4 + 52, `cachedImages ${l.cachedImages}`);
    const steps = log.filter((e) => e.event === 'step' && e.loop === l.loop).map((e) => (e.event === 'step' ? e.loss : NaN));
    assert.equal(l.meanLoss, steps.reduce((a, x) => a + x, 0) / steps.length);
  }
  const v = log.filter((e) => e.event === 'validation');
  assert.equal(v.length, 1);
  assert.ok(v[0].event === 'validation' && v[0].validateMs >= 0 && v[0].images === 40 + 16, JSON.stringify(v[0]));
});

test('two training datasets mix: validation covers both val splits, full mining caches both databases', async () => {
  await generateCity({ out: city.root, name: 'tinyB', size: 'tiny', workers: 0, seed: 5, queries: { train: 8, val: 16, test: 8 } });
  const config = tinyConfig({ datasetName: `${CITY},tinyB`, epochs: 1, queriesPerEpoch: 8, cacheRefreshRate: 8, mining: 'full' });
  const seen: LogEntry[] = [];
  await train(config, { ...quiet, onRecord: (e) => seen.push(e) });
  const [loop] = seen.flatMap((e) => (e.event === 'loop' ? [e] : []));
  const [validation] = seen.flatMap((e) => (e.event === 'validation' ? [e] : []));
  const a = await openDataset(city.root, CITY, 'val'), b = await openDataset(city.root, 'tinyB', 'val');
  assert.equal(validation.images, a.databasePaths.length + a.queriesPaths.length + b.databasePaths.length + b.queriesPaths.length);
  // Full mining caches both training databases whole, plus the loop's 8 queries.
  const ta = await openDataset(city.root, CITY, 'train'), tb = await openDataset(city.root, 'tinyB', 'train');
  assert.equal(loop.cachedImages, ta.databasePaths.length + tb.databasePaths.length + 8);
  assert.equal(JSON.parse(readFileSync(join(config.run.outputFolder, 'config.json'), 'utf8')).datasetName, `${CITY},tinyB`);
  assert.throws(() => tinyConfig({ datasetName: `${CITY},,x` }), /one dataset name, or several separated by commas/);
});

test('a short training raises val recall@1 over the untrained model', async (t) => {
  // A city with twice the training area, more queries; MobileNetV2 (ImageNet) + GeM at 48x64, 3 epochs of
  // 96 queries. Measured with seeds 0-3: val R@1 50 → 60.4 / 58.3 / 58.3 / 58.3 (of 48 queries); seed 0 here.
  await generateCity({ out: city.root, name: 'tiny2', size: 'tiny', workers: 0, seed: 0, columns: { train: 2, val: 1, test: 1 }, queries: { train: 96, val: 48, test: 8 } });
  const config = tinyConfig({
    datasetName: 'tiny2', backbone: 'mobilenetv2', weights: MOBILENETV2_WEIGHTS, aggregation: 'gem', resnetWidths: undefined,
    queriesPerEpoch: 96, cacheRefreshRate: 96, negSamplesNum: 30, negsNumPerQuery: 4, batchSize: 4, epochs: 3, lr: 3e-4, seed: 0,
  });
  const val = await openDataset(city.root, 'tiny2', 'val');
  // The untrained model exactly as train() starts it.
  torch.manualSeed(config.run.seed);
  const untrained = buildModel(config.model);
  await untrained.loadPretrained(MOBILENETV2_WEIGHTS);
  untrained.freezeReference();
  await initialiseHeadFromData(untrained, await openDataset(city.root, 'tiny2', 'train'), initOptions(config));
  const before = await recallsOn(untrained, val, config, false);
  untrained.dispose();

  await train(config, quiet);
  const trained = buildModel(config.model);
  await loadWeights(trained, join(config.run.outputFolder, 'last.pth'));
  const after = await recallsOn(trained, val, config, false);
  trained.dispose();
  t.diagnostic(`val (${val.queriesPaths.length} queries, ${val.databasePaths.length} database): R@1 ${before[1].toFixed(1)} → ${after[1].toFixed(1)}, R@5 ${before[5].toFixed(1)} → ${after[5].toFixed(1)}`);
  assert.ok(after[1] > before[1], `val R@1 untrained ${before[1]} → trained ${after[1]}`);
});

test('--resume starts a new run from another run\'s weights; CRN starts from a NetVLAD run, its layers at lr_crn_layer and the rest at lr_crn_net', async () => {
  const netvlad = tinyConfig({ epochs: 1 });
  await train(netvlad, quiet);
  const best = (await loadCheckpoint(join(netvlad.run.outputFolder, 'best.pth'))).stateDict;

  // A plain resume: the first step sees exactly the checkpoint's weights (no NetVLAD re-initialisation).
  let first: Map<string, HostTensor> | null = null;
  const logs: string[] = [];
  await train(tinyConfig({ epochs: 1, resume: join(netvlad.run.outputFolder, 'best.pth') }), {
    ...quiet, maxLoops: 1, log: (s) => logs.push(s),
    beforeStep: (net, at) => { if (at.batch === 0 && first === null) first = torch.stateDictToHost(net); },
  });
  assertSameTensors(first!, best, 'weights at the first step');
  assert.ok(logs.some((l) => /starting from .*best\.pth: \d+ tensors loaded/.test(l)), logs.join('\n'));

  // CRN: refused without --resume, as in the reference; from the NetVLAD checkpoint the CRN layers start fresh.
  assert.throws(() => tinyConfig({ aggregation: 'crn' }), /resume.*CRN starts from a trained NetVLAD checkpoint/s);
  const snaps: Map<string, HostTensor>[] = [];
  const crnLogs: string[] = [];
  const crn = tinyConfig({ aggregation: 'crn', epochs: 1, resume: join(netvlad.run.outputFolder, 'best.pth'), lrCrnLayer: 5e-3, lrCrnNet: 5e-4 });
  await train(crn, { ...quiet, maxLoops: 1, log: (s) => crnLogs.push(s), beforeStep: (net, at) => { if (snaps.length < 2 && at.batch <= 1) snaps.push(torch.stateDictToHost(net)); } });
  assert.ok(crnLogs.some((l) => /8 CRN tensors start fresh/.test(l)), crnLogs.join('\n'));
  for (const [k, v] of best) assert.ok(bytesOf(v).equals(bytesOf(snaps[0].get(k)!)), `${k} from the NetVLAD run`);
  // Adam's first step moves each weight with a gradient by lr · g/(|g| + eps) ≈ ±lr: the largest move of a group is its lr.
  const largestMove = (keep: (k: string) => boolean) => Math.max(...[...snaps[0]].filter(([k]) => keep(k) && !k.includes('running_') && !k.includes('num_batches') && !k.includes('acc_w'))
    .flatMap(([k, a]) => Array.from(a.data as Float32Array, (x, i) => Math.abs((snaps[1].get(k)!.data as Float32Array)[i] - x))));
  const crnMove = largestMove((k) => k.includes('.crn.')), netMove = largestMove((k) => !k.includes('.crn.'));
  assert.ok(Math.abs(crnMove - 5e-3) < 5e-3 * 0.02, `CRN layers moved by at most ${crnMove}`);
  assert.ok(Math.abs(netMove - 5e-4) < 5e-4 * 0.02, `the rest moved by at most ${netMove}`);

  await assert.rejects(train(tinyConfig({ resume: join(city.root, 'nothing.pth') }), quiet), (e: unknown) => /--resume .*nothing\.pth: file not found/.test(commandLineMessage(e)));
});

test('reference options: queries per epoch in whole cache loops, the final test method, a loud warning for random weights', async () => {
  assert.throws(() => tinyConfig({ queriesPerEpoch: 10, cacheRefreshRate: 4 }), /queriesPerEpoch.*multiple of cacheRefreshRate \(4\)/s);
  const logs: string[] = [];
  const seen: LogEntry[] = [];
  const config = tinyConfig({ epochs: 1, testMethod: 'central_crop' });
  await train(config, { ...quiet, log: (s) => logs.push(s), onRecord: (e) => seen.push(e) });
  assert.ok(logs.some((l) => /WARNING: the resnet18conv4 backbone starts from RANDOM weights/.test(l)));
  const tested = seen.find((e) => e.event === 'test');
  assert.ok(tested && tested.event === 'test' && tested.method === 'central_crop', JSON.stringify(tested));
});

test("criterion 'none': invariance steps alone (no cache, no mining), the NetVLAD head left as initialised, resumable", async () => {
  const augment = { noise: 0.2, gamma: 0.5 };
  const logs: string[] = [];
  const config = tinyConfig({ epochs: 2, augment, criterion: 'none', invarianceWeight: 2, invarianceBatch: 3 });
  await train(config, { ...quiet, log: (s) => logs.push(s) });
  const log = readLog(config.run.outputFolder);
  const loops = log.flatMap((e) => (e.event === 'loop' ? [e] : []));
  assert.equal(loops.length, 2 * 3);
  for (const l of loops) {
    assert.equal(l.mining, null);
    assert.equal(l.cachedImages, 0);
    assert.equal(l.steps, 2, 'cacheRefreshRate / batchSize steps per loop');
    assert.equal(l.images, 2 * 2 * 3, 'each step: 3 images, clean and augmented');
  }
  for (const e of log) if (e.event === 'step') assert.equal(e.loss, 2 * (e as { invariance: number }).invariance);
  // The initial k-means only: no loss trains the head, and it is not re-fitted (measured: the ImageNet
  // clusters serve the distilled backbone better, docs/real-places.md).
  assert.equal(logs.filter((l) => /^initialising netvlad from/.test(l)).length, 1, logs.join('\n'));
  await assertResumeEqualsUninterrupted({ augment, criterion: 'none', invarianceWeight: 1, invarianceBatch: 2 }, [2, 1, 1], [[0, 2], [0, 3], [1, 1]]);
  assert.throws(() => tinyConfig({ criterion: 'none' }), /'none' trains the invariance term alone/);
});

test('--resume from a run with another head: the backbone loads, the head starts fresh (NetVLAD by k-means on that backbone)', async () => {
  const gem = tinyConfig({ epochs: 1, aggregation: 'gem' });
  await train(gem, quiet);
  const best = (await loadCheckpoint(join(gem.run.outputFolder, 'best.pth'))).stateDict;
  let first: Map<string, HostTensor> | null = null;
  const logs: string[] = [];
  await train(tinyConfig({ epochs: 1, resume: join(gem.run.outputFolder, 'best.pth') }), {
    ...quiet, maxLoops: 1, log: (s) => logs.push(s),
    beforeStep: (net) => { first ??= torch.stateDictToHost(net); },
  });
  for (const [k, v] of best) if (k.startsWith('backbone.')) assert.ok(bytesOf(v).equals(bytesOf(first!.get(k)!)), `${k} from the GeM run`);
  assert.ok(logs.some((l) => /backbone tensors loaded; its head is not a netvlad, so the head starts fresh/.test(l)), logs.join('\n'));
  assert.ok(logs.some((l) => /^initialising netvlad from/.test(l)));
  // A checkpoint of another backbone is refused, naming the file.
  await assert.rejects(train(tinyConfig({ resnetWidths: [8, 8, 24, 16], resume: join(gem.run.outputFolder, 'best.pth') }), quiet), /--resume .*best\.pth \(backbone\)/);
});

test('one process per run folder: a live lock refuses, a stale one (killed run) is replaced; resuming with other options is refused except epochs and the like', async () => {
  const config = tinyConfig({ epochs: 1 });
  await mkdir(config.run.outputFolder, { recursive: true });
  const lock = join(config.run.outputFolder, '.lock');
  // Held by a live process (this one).
  writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), started: 'now' }));
  await assert.rejects(train(config, quiet), new RegExp(`in use by another vgl train \\(pid ${process.pid} on ${hostname()}`));
  // Left by a process that is gone.
  const dead = spawnSync(process.execPath, ['-e', '0']).pid;
  writeFileSync(lock, JSON.stringify({ pid: dead, host: hostname(), started: 'before' }));
  const logs: string[] = [];
  await train(config, { ...quiet, log: (s) => logs.push(s) });
  assert.ok(logs.some((l) => l.includes(`removed the stale lock of a run that is gone (pid ${dead}`)), logs.join('\n'));
  assert.ok(!existsSync(lock), 'the lock is released when the run ends');

  // The finished run again with another lr (and more epochs): refused, naming the difference.
  await assert.rejects(train(withOptions(config, { lr: 0.5, epochs: 2 }), quiet), (e: Error) => {
    assert.match(e.message, /last\.pth: this run was started with other options/);
    assert.match(e.message, /--lr 0\.001 -> 0\.5/);
    assert.doesNotMatch(e.message, /--epochs 1 -> 2/, 'epochs may change');
    assert.match(e.message, /Only --epochs, --patience, .* may change on resume/);
    return true;
  });
  // More epochs alone: applied, recorded in config.json and log.jsonl.
  const result = await train(withOptions(config, { epochs: 2 }), quiet);
  assert.equal(result.history.length, 2);
  assert.equal(JSON.parse(readFileSync(join(config.run.outputFolder, 'config.json'), 'utf8')).epochs, 2);
  const change = readLog(config.run.outputFolder).find((e) => e.event === 'resume-changes');
  assert.deepEqual(change && change.event === 'resume-changes' && change.changes, ['--epochs 1 -> 2']);

  // A run saved before an option existed resumes: the option takes its default, as the run had it.
  const last = join(config.run.outputFolder, 'last.pth');
  const ck = await loadCheckpoint<{ config: Record<string, unknown> }>(last);
  delete ck.meta.config.invarianceOn;
  delete ck.meta.config.averageWeights;
  const net = buildModel(config.model);
  torch.loadStateDict(net, ck.stateDict);
  await saveCheckpoint(last, net, null, ck.meta);
  net.dispose();
  const again = await train(withOptions(config, { epochs: 2 }), quiet);
  assert.equal(again.history.length, 2, 'nothing left to do, nothing refused');
});

test('--average-weights: average.pth is the mean of the end-of-epoch weights, logged with its val recall, and the model the final test uses', async () => {
  const config = tinyConfig({ epochs: 2, averageWeights: true });
  const ends: Map<string, HostTensor>[] = [];
  const seen: LogEntry[] = [];
  await train(config, { ...quiet, afterValidation: async (net) => { ends.push(torch.stateDictToHost(net)); }, onRecord: (e) => seen.push(e) });
  assert.equal(ends.length, 2);
  const average = await loadCheckpoint<{ throughEpoch: number; epochs: number }>(join(config.run.outputFolder, 'average.pth'));
  assert.deepEqual([average.meta.throughEpoch, average.meta.epochs], [1, 2]);
  let compared = 0;
  for (const [name, t] of average.stateDict) {
    if (!t.dtype.startsWith('float')) continue;
    const a = ends[0].get(name)!.data as Float32Array, b = ends[1].get(name)!.data as Float32Array;
    (t.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - (a[i] + b[i]) / 2) <= 1e-6 * (1 + Math.abs(v)), `${name}[${i}]`));
    compared++;
  }
  assert.ok(compared > 10);
  assert.deepEqual(seen.filter((e) => e.event === 'average').map((e) => e.event === 'average' && e.epochs), [1, 2]);
  assert.ok(seen.some((e) => e.event === 'test'), 'the final test ran (on the average)');
});

test('invariance on descriptors trains the head too; on feature maps the head is left as initialised', async () => {
  const augment = { noise: 0.2, blur: 1 };
  const heads: Record<string, boolean> = {};
  for (const invarianceOn of ['features', 'descriptors'] as const) {
    const config = tinyConfig({ epochs: 1, augment, criterion: 'none', invarianceWeight: 1, invarianceBatch: 3, invarianceOn });
    let start: Map<string, HostTensor> | null = null;
    await train(config, { ...quiet, maxLoops: 1, beforeStep: (net) => { start ??= torch.stateDictToHost(net); } });
    const after = (await loadCheckpoint(join(config.run.outputFolder, 'last.pth'))).stateDict;
    heads[invarianceOn] = [...after].some(([k, v]) => k.startsWith('aggregation.') && !bytesOf(v).equals(bytesOf(start!.get(k)!)));
  }
  assert.deepEqual(heads, { features: false, descriptors: true });
  // A fresh run copies its teacher from the student, a resumed one rebuilds it (k-means again): the same teacher.
  await assertResumeEqualsUninterrupted({ augment, criterion: 'none', invarianceWeight: 1, invarianceBatch: 2, invarianceOn: 'descriptors' }, [2, 1, 1], [[0, 2], [0, 3], [1, 1]]);
  assert.throws(() => tinyConfig({ augment, criterion: 'none', invarianceWeight: 1, invarianceOn: 'descriptors', resume: 'x.pth' }), /'descriptors' compares with the starting network's head/);
});

test('--invariance-sizes: each step draws one of the sizes (logged), both appear, and a rerun draws the same', async () => {
  const augment = { noise: 0.2, blur: 1 };
  const drawn: string[][] = [];
  for (let i = 0; i < 2; i++) {
    const config = tinyConfig({ epochs: 1, augment, criterion: 'none', invarianceWeight: 1, invarianceBatch: 2, invarianceSizes: [[48, 64], [64, 96]] });
    await train(config, { ...quiet, maxLoops: 2 });
    drawn.push(readLog(config.run.outputFolder).filter((e) => e.event === 'step').map((e) => (e as { invarianceSize?: string }).invarianceSize ?? 'none'));
  }
  assert.ok(drawn[0].length >= 4, `${drawn[0].length} steps`);
  assert.deepEqual(new Set(drawn[0]), new Set(['48x64', '64x96']), drawn[0].join(' '));
  assert.deepEqual(drawn[1], drawn[0]);
  // Without sizes the steps are at --resize and the log says nothing of sizes.
  const plain = tinyConfig({ epochs: 1, augment, criterion: 'none', invarianceWeight: 1, invarianceBatch: 2 });
  await train(plain, { ...quiet, maxLoops: 1 });
  assert.ok(readLog(plain.run.outputFolder).filter((e) => e.event === 'step').every((e) => !('invarianceSize' in e)));
});

test('memory guard: --resize 5000x5000 is refused before training with the estimate and a size that fits', async () => {
  const saved = process.env.VGL_MEMORY_AVAILABLE_MB;
  process.env.VGL_MEMORY_AVAILABLE_MB = '2048';
  try {
    const config = tinyConfig({ resize: [5000, 5000], inferBatchSize: 2 });
    const err = await train(config, quiet).then(() => null, (e: Error) => e);
    assert.ok(err instanceof UsageError, String(err));
    assert.match(commandLineMessage(err), /--resize 5000x5000: a training step of 10 tuple images .* needs about [\d.]+ GiB of activation memory, and 2\.0 GiB are available/);
    const m = /largest size that fits with these batches is about (\d+)x(\d+)/.exec(err.message);
    assert.ok(m, err.message);
    assert.ok(!existsSync(join(config.run.outputFolder, 'last.pth')) && !existsSync(join(config.run.outputFolder, 'config.json')), 'nothing started');
    // The suggested size passes the same check, and is square like the request.
    const fits = tinyConfig({ resize: [Number(m[1]), Number(m[2])], inferBatchSize: 2 });
    torch.manualSeed(0);
    const net = buildModel(fits.model);
    const e = checkRunMemory(net, fits, () => {});
    assert.ok(e.bytes <= e.available, `${e.bytes} > ${e.available}`);
    assert.equal(m[1], m[2]);
    net.dispose();
  } finally {
    if (saved === undefined) delete process.env.VGL_MEMORY_AVAILABLE_MB;
    else process.env.VGL_MEMORY_AVAILABLE_MB = saved;
  }
});

test('--optim adamw decays the weights directly: with zero gradients one step scales them by 1 - lr x wd (Adam with L2 moves them by about lr)', () => {
  const step = (optimizer: 'adam' | 'adamw') => {
    const config = tinyConfig({ optimizer, lr: 0.1, weightDecay: 0.5, aggregation: 'gem' });
    torch.manualSeed(0);
    const net = buildModel(config.model);
    const opt = optimizerFor(net, config);
    const [name, p] = [...net.namedParameters()].find(([n]) => n.endsWith('conv1.weight'))!;
    const before = Float32Array.from(p.toHost().data as Float32Array);
    torch.tidy(() => {
      opt.zeroGrad();
      net.forward(torch.randn([1, 3, 48, 64])).sum().mul(0).backward(); // every gradient exactly 0
      opt.step();
    });
    const after = p.toHost().data as Float32Array;
    net.dispose();
    return { name, before, after };
  };
  const w = step('adamw');
  w.before.forEach((b, i) => assert.ok(Math.abs(w.after[i] - b * (1 - 0.1 * 0.5)) < 1e-7, `${w.name}[${i}]`));
  // Adam's L2 term is a gradient wd x p: the first step moves each weight by lr against its sign.
  const a = step('adam');
  a.before.forEach((b, i) => assert.ok(Math.abs(b) < 1e-3 || Math.abs(a.after[i] - (b - 0.1 * Math.sign(b))) < 1e-5, `${a.name}[${i}] ${b} → ${a.after[i]}`)); // |g| ≫ eps
  assert.equal(tinyConfig({ optimizer: 'adamw' }).optim.optimizer, 'adamw');
});
