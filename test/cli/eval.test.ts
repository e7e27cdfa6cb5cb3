import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile, rename } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { saveCheckpoint } from '../../src/torch/checkpoint.ts';
import { TrainConfigSchema } from '../../src/train/config.ts';
import { buildModel } from '../../src/models/assemble.ts';
import { UsageError } from '../../src/cli/flags.ts';
import { register, runEval, runRecallFrom, EvalFlags, RecallFromFlags } from '../../src/cli/commands/eval.ts';
import { readSavedEvaluation, recallFromSavedPositions } from '../../src/eval/model-io.ts';
import { tinyDataset, untrainedRunFolder, type TinyImage } from '../eval/helpers.ts';
import { commandLineMessage } from '../../src/errors.ts';

// Database every 10 m along a street (east), distinct colours; queries between them at known offsets.
const database: TinyImage[] = Array.from({ length: 8 }, (_, i) => ({
  east: 500_000 + 10 * i, north: 4_000_000, rgb: [(37 * i) % 256, (91 * i + 40) % 256, (53 * i + 120) % 256] as [number, number, number],
}));
const queries: TinyImage[] = [3, 17, 31, 48, 66].map((d, j) => ({
  east: 500_000 + d, north: 4_000_000 + 4, rgb: [(37 * j + 20) % 256, (91 * j) % 256, (53 * j + 60) % 256] as [number, number, number],
}));

/** Brute force: recall@N (percent) at `radius` of ranked database indices, from the positions written above. */
function bruteRecall(ranked: number[][], radius: number, ns: number[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const n of ns) {
    let hits = 0;
    ranked.forEach((list, q) => {
      if (list.slice(0, n).some((d) => Math.hypot(database[d].east - queries[q].east, database[d].north - queries[q].north) <= radius)) hits++;
    });
    out[n] = (100 * hits) / ranked.length;
  }
  return out;
}

const quiet = () => undefined;
const evalFlags = (o: Record<string, unknown>) => EvalFlags.parse(o);

let root: string;
let runDir: string;

test('setup: tiny dataset and a run folder (config.json + best.pth) of a narrow ResNet-18 conv4 + GeM', async () => {
  root = await tinyDataset(database, queries);
  runDir = await mkdtemp(join(tmpdir(), 'vgl-eval-run-'));
  await untrainedRunFolder(root, runDir, 7);
});

test('vgl eval --run: files written, recall equal to brute force at the radius and extra radii', async () => {
  const out = join(runDir, 'eval');
  const s = await runEval(evalFlags({ run: runDir, outputFolder: out, radii: '10,50', progress: false }), quiet);
  assert.equal(s.model.source, 'run');
  assert.equal(s.model.checkpoint, join(runDir, 'best.pth'));
  assert.deepEqual(s.recallValues, [1, 2, 5]); // from the run's config
  assert.equal(s.radius, 25);
  assert.deepEqual(Object.keys(s.recallsByRadius).map(Number).sort((a, b) => a - b), [10, 25, 50]);
  for (const f of ['recalls.json', 'predictions.json', 'predictions.csv', 'model.json']) assert.ok(existsSync(join(out, f)), f);
  const grids = await readdir(join(out, 'grids'));
  assert.ok(grids.some((g) => g.endsWith('.png')));
  const saved = JSON.parse(await readFile(join(out, 'predictions.json'), 'utf8')) as { queries: { predictions: { database: number }[] }[] };
  const ranked = saved.queries.map((q) => q.predictions.map((p) => p.database));
  assert.equal(ranked.length, queries.length);
  assert.equal(ranked[0].length, 5);
  for (const r of [10, 25, 50]) assert.deepEqual(s.recallsByRadius[r], bruteRecall(ranked, r, [1, 2, 5]), `radius ${r}`);
});

test('vgl eval --pca-dim: PCA fitted on the database, saved, recall still equal to brute force on its predictions', async () => {
  const out = join(runDir, 'eval-pca');
  const s = await runEval(evalFlags({ run: runDir, outputFolder: out, pcaDim: '4', images: false, progress: false }), quiet);
  assert.equal(s.model.pca?.dim, 4);
  assert.match(s.model.pca?.fittedOn ?? '', /test database/); // the tiny dataset has no train split
  assert.ok(existsSync(join(out, 'pca.pth')));
  const saved = JSON.parse(await readFile(join(out, 'predictions.json'), 'utf8')) as { queries: { predictions: { database: number }[] }[] };
  const ranked = saved.queries.map((q) => q.predictions.map((p) => p.database));
  assert.deepEqual(s.recalls, bruteRecall(ranked, 25, [1, 2, 5]));
  await assert.rejects(runEval(evalFlags({ run: runDir, pcaDim: '100000', images: false }), quiet), (e: unknown) => /--pca-dim 100000: must be below the descriptor dimension/.test(commandLineMessage(e)));
});

test('vgl eval --pca-dataset-folder (the reference\'s PCA images) and --efficient-ram-testing (database in chunks) give the same recalls', async () => {
  const bySplit = await runEval(evalFlags({ run: runDir, pcaDim: '4', images: false, progress: false }), quiet);
  // The folder holding the same database images as the split: the same PCA, the same recalls.
  const byFolder = await runEval(evalFlags({ run: runDir, pcaDim: '4', pcaDatasetFolder: 'tiny/images/test/database', images: false, progress: false }), quiet);
  assert.match(byFolder.model.pca?.fittedOn ?? '', /tiny\/images\/test\/database \(8 images\)/);
  assert.deepEqual(byFolder.recalls, bySplit.recalls);
  await assert.rejects(runEval(evalFlags({ run: runDir, pcaDim: '4', pcaDatasetFolder: 'nowhere', images: false }), quiet), (e: unknown) => /--pca-dataset-folder .*nowhere: not found/.test(commandLineMessage(e)));

  const out = join(runDir, 'eval-ram');
  const plain = await runEval(evalFlags({ run: runDir, images: false, progress: false }), quiet);
  const lowRam = await runEval(evalFlags({ run: runDir, efficientRamTesting: true, outputFolder: out, images: false, progress: false }), quiet);
  assert.deepEqual(lowRam.recallsByRadius, plain.recallsByRadius);
  const saved = JSON.parse(await readFile(join(out, 'predictions.json'), 'utf8')) as { queries: { predictions: { database: number }[] }[] };
  assert.deepEqual(lowRam.recalls, bruteRecall(saved.queries.map((q) => q.predictions.map((p) => p.database)), 25, [1, 2, 5]));
});

test('vgl eval --precision: bf16 and auto say what ran and why; VGL_BF16=0 makes auto fp32; recall as fp32 on this separable set', async () => {
  const lines: string[] = [];
  const fp32 = await runEval(evalFlags({ run: runDir, images: false, progress: false }), quiet);
  assert.deepEqual(fp32.precision, { precision: 'fp32', reason: 'asked for fp32' });
  const bf16 = await runEval(evalFlags({ run: runDir, images: false, progress: false, precision: 'bf16' }), (l) => lines.push(l));
  assert.equal(bf16.precision.precision, 'bf16');
  assert.ok(lines.some((l) => l.startsWith('precision bf16 (asked for bf16')), lines.join('\n'));
  assert.deepEqual(bf16.recalls, fp32.recalls);
  const saved = process.env.VGL_BF16;
  process.env.VGL_BF16 = '0';
  try {
    const auto = await runEval(evalFlags({ run: runDir, images: false, progress: false, precision: 'auto' }), quiet);
    assert.deepEqual(auto.precision, { precision: 'fp32', reason: 'auto: VGL_BF16=0 treats bf16 as unavailable' });
  } finally {
    if (saved === undefined) delete process.env.VGL_BF16;
    else process.env.VGL_BF16 = saved;
  }
  assert.throws(() => evalFlags({ run: runDir, precision: 'half' }), /Invalid option/);
});

test('vgl eval recall --from: recall at new radii from saved predictions equals brute force and a direct evaluation', async () => {
  const from = join(runDir, 'eval');
  const radii = [5, 10, 25, 50, 100];
  const s = await runRecallFrom(RecallFromFlags.parse({ from, radii: '5,10,25,50,100' }), quiet);
  assert.equal(s.positions, 'dataset');
  assert.deepEqual(s.recallValues, [1, 2, 5]);
  const saved = JSON.parse(await readFile(join(from, 'predictions.json'), 'utf8')) as { queries: { predictions: { database: number }[] }[] };
  const ranked = saved.queries.map((q) => q.predictions.map((p) => p.database));
  for (const r of radii) assert.deepEqual(s.recallsByRadius[r], bruteRecall(ranked, r, [1, 2, 5]), `radius ${r}`);
  // Files: JSON with the same numbers, CSV one row per radius.
  const json = JSON.parse(await readFile(join(from, 'recall-by-radius.json'), 'utf8')) as { recallsByRadius: Record<string, Record<string, number>> };
  assert.equal(json.recallsByRadius['100']['5'], s.recallsByRadius[100][5]);
  const csv = (await readFile(join(from, 'recall-by-radius.csv'), 'utf8')).trim().split('\n');
  assert.equal(csv[0], 'radius_m,recall_at_1,recall_at_2,recall_at_5');
  assert.deepEqual(csv.slice(1).map((l) => Number(l.split(',')[0])), radii);
  // A direct evaluation at 50 m (same weights) gives the same recall as the saved predictions at 50 m.
  const direct = await runEval(evalFlags({ run: runDir, valPositiveDistThreshold: '50', progress: false }), quiet);
  assert.deepEqual(direct.recalls, s.recallsByRadius[50]);
  // Positions stored in predictions.json give the same answer (used when the dataset has moved).
  const fromFile = recallFromSavedPositions(await readSavedEvaluation(from), radii, [1, 2, 5]);
  assert.deepEqual(fromFile, s.recallsByRadius);
});

test('vgl eval --checkpoint FILE alone: the model and data come from the checkpoint\'s config, same recall as --run', async () => {
  const viaRun = await runEval(evalFlags({ run: runDir, radii: '10', progress: false }), quiet);
  const viaCheckpoint = await runEval(evalFlags({ checkpoint: join(runDir, 'best.pth'), radii: '10', progress: false }), quiet);
  assert.equal(viaCheckpoint.model.source, 'checkpoint');
  assert.equal(viaCheckpoint.dataset.name, 'tiny');
  assert.deepEqual(viaCheckpoint.recallsByRadius, viaRun.recallsByRadius);
  // A checkpoint without a training config needs the model named.
  const bare = join(runDir, 'weights-only.pth');
  const net = buildModel(TrainConfigSchema.parse({ datasetsFolder: root, datasetName: 'tiny', outputFolder: runDir, aggregation: 'gem', resnetWidths: [8, 8, 16, 16] }).model);
  await saveCheckpoint(bare, net, null, { note: 'no config' });
  net.dispose();
  await assert.rejects(runEval(evalFlags({ checkpoint: bare }), quiet), /holds no vgl training config; name the model by its backbone and aggregation/);
  // A network that does not match the checkpoint: every bad key is named, with the file.
  await assert.rejects(runEval(evalFlags({ checkpoint: bare, backbone: 'resnet18conv4', aggregation: 'gem', datasetsFolder: root, datasetName: 'tiny' }), quiet),
    /weights-only\.pth/);
});

test('vgl eval --run: a run that averaged weights is evaluated with its average.pth, one that did not with best.pth; the log names the file and why', async () => {
  const averaged = await mkdtemp(join(tmpdir(), 'vgl-eval-avg-'));
  await untrainedRunFolder(root, averaged, 7, { averageSeed: 8 });
  const logs: string[] = [];
  const distancesOf = async (o: Record<string, unknown>) => {
    const out = await mkdtemp(join(tmpdir(), 'vgl-eval-avg-out-'));
    const s = await runEval(evalFlags({ ...o, outputFolder: out, images: false, progress: false }), (l) => logs.push(l));
    const saved = JSON.parse(await readFile(join(out, 'predictions.json'), 'utf8')) as { queries: { predictions: { distance: number }[] }[] };
    return { s, distances: saved.queries.map((q) => q.predictions.map((p) => p.distance)) };
  };
  const viaRun = await distancesOf({ run: averaged });
  assert.equal(viaRun.s.model.checkpoint, join(averaged, 'average.pth'));
  assert.ok(logs.includes(`model: ${join(averaged, 'average.pth')} (the weight average, the model the run reports (it trained with --average-weights))`), logs.join('\n'));
  // The same distances as naming average.pth, not best.pth (another network: other distances).
  const average = await distancesOf({ run: averaged, checkpoint: join(averaged, 'average.pth') });
  const best = await distancesOf({ run: averaged, checkpoint: join(averaged, 'best.pth') });
  assert.deepEqual(viaRun.distances, average.distances);
  assert.notDeepEqual(viaRun.distances, best.distances);
  assert.ok(logs.includes(`model: ${join(averaged, 'best.pth')} (named by --checkpoint)`));
  // Without averaging, best.pth, and the log says so.
  logs.length = 0;
  await runEval(evalFlags({ run: runDir, images: false, progress: false }), (l) => logs.push(l));
  assert.ok(logs.includes(`model: ${join(runDir, 'best.pth')} (the best epoch by val R@5, the model the run reports)`), logs.join('\n'));
  // An averaging run without its average is refused, naming the file and why it was wanted.
  await rm(join(averaged, 'average.pth'));
  await assert.rejects(runEval(evalFlags({ run: averaged }), quiet), /average\.pth missing \(the weight average/);
  await rm(averaged, { recursive: true, force: true });
});

test('vgl eval recall --from falls back to the positions in predictions.json when the dataset is gone', async () => {
  const from = join(runDir, 'eval');
  const before = await runRecallFrom(RecallFromFlags.parse({ from, radii: '10,30', outputFolder: join(runDir, 'r1') }), quiet);
  const moved = `${root}-moved`;
  await rename(root, moved);
  try {
    const notes: string[] = [];
    const after = await runRecallFrom(RecallFromFlags.parse({ from, radii: '10,30', outputFolder: join(runDir, 'r2') }), (l) => notes.push(l));
    assert.equal(after.positions, 'predictions');
    assert.match(notes.join('\n'), /not found: positions taken from predictions\.json/);
    assert.deepEqual(after.recallsByRadius, before.recallsByRadius);
  } finally {
    await rename(moved, root);
  }
});

test('vgl eval recall --from refuses N beyond the saved ranks and names a missing folder', async () => {
  const from = join(runDir, 'eval');
  await assert.rejects(runRecallFrom(RecallFromFlags.parse({ from, recallValues: '1,6', outputFolder: join(runDir, 'r3') }), quiet), /holds 5 ranks per query; recall@6/);
  await assert.rejects(runRecallFrom(RecallFromFlags.parse({ from: join(runDir, 'nope') }), quiet), /nope.recalls\.json not found/);
});

test('vgl eval: clear errors for a missing run folder, config.json, best.pth and conflicting flags', async () => {
  await assert.rejects(runEval(evalFlags({ run: join(runDir, 'missing') }), quiet), (e: unknown) => /--run .*missing: run folder not found/.test(commandLineMessage(e)));
  const bare = await mkdtemp(join(tmpdir(), 'vgl-eval-bare-'));
  await assert.rejects(runEval(evalFlags({ run: bare }), quiet), /config\.json missing/);
  await writeFile(join(bare, 'config.json'), '{}');
  await writeFile(join(bare, 'last.pth'), 'x');
  await assert.rejects(runEval(evalFlags({ run: bare }), quiet), /best\.pth missing \(the best epoch by val R@5.*\); .*last\.pth exists.*name it as the checkpoint/);
  await writeFile(join(bare, 'best.pth'), 'x');
  await assert.rejects(runEval(evalFlags({ run: bare }), quiet), /config\.json: not a vgl training config/);
  await assert.rejects(runEval(evalFlags({ run: runDir, backbone: 'vgg16' }), quiet), (e) => e instanceof UsageError && /drop --backbone/.test(e.message));
  await assert.rejects(runEval(evalFlags({ datasetsFolder: root }), quiet), /choose a model/);
  await assert.rejects(runEval(evalFlags({ run: runDir, checkpoint: join(bare, 'none.pth') }), quiet), (e: unknown) => /--checkpoint .*none\.pth: file not found/.test(commandLineMessage(e)));
  // Usage errors (exit 2) are UsageErrors wherever they are found; a missing file is a runtime error (exit 1).
  await assert.rejects(runEval(evalFlags({ backbone: 'resnet7', datasetsFolder: root, datasetName: 'tiny' }), quiet), (e) => e instanceof UsageError && /--backbone "resnet7": unknown backbone/.test(commandLineMessage(e)));
  await assert.rejects(runEval(evalFlags({ backbone: 'resnet18conv4', aggregation: 'gem', resnetWidths: [8, 8, 16, 16] }), quiet), (e) => e instanceof UsageError && /--datasets-folder: required/.test(commandLineMessage(e)));
  await assert.rejects(runEval(evalFlags({ run: join(runDir, 'missing') }), quiet), (e) => !(e instanceof UsageError));
  // A size whose inference batch cannot fit is refused before any image is read, with a size that fits.
  process.env.VGL_MEMORY_AVAILABLE_MB = '512';
  try {
    await assert.rejects(runEval(evalFlags({ run: runDir, resize: '5000x5000', outputFolder: join(bare, 'huge') }), quiet),
      (e) => e instanceof UsageError && /--resize 5000x5000: an inference batch of 4 images \(inferBatchSize\) needs about [\d.]+ GiB .* 0\.50 GiB are available\. The largest size that fits .* about \d+x\d+/.test(commandLineMessage(e)));
    assert.ok(!existsSync(join(bare, 'huge')), 'nothing written');
  } finally {
    delete process.env.VGL_MEMORY_AVAILABLE_MB;
  }
  assert.throws(() => EvalFlags.parse({ recallValues: '1,x' }), /positive integers/);
  assert.throws(() => EvalFlags.parse({ resize: '32by32' }), /HxW/);
  await rm(bare, { recursive: true, force: true });
});

test('vgl eval --backbone: untrained NetVLAD is k-means initialised as the trainer does, then evaluated', async () => {
  const lines: string[] = [];
  const s = await runEval(evalFlags({
    backbone: 'resnet18conv4', aggregation: 'netvlad', netvladClusters: '2', resnetWidths: [8, 8, 16, 16],
    datasetsFolder: root, datasetName: 'tiny', resize: '64x64', recallValues: '1,3', testMethod: 'central_crop', progress: false,
  }), (l) => lines.push(l));
  assert.equal(s.model.source, 'flags');
  assert.equal(s.model.initialisedFrom, 'test database'); // the tiny dataset has no train split
  assert.equal(s.model.descriptorDim, 2 * 16);
  assert.match(lines.join('\n'), /initialising netvlad from \d+ local descriptors of 8 database images/);
  assert.equal(s.method, 'central_crop');
  for (const v of Object.values(s.recalls)) assert.ok(v >= 0 && v <= 100);
});

test('vgl eval --backbone vit --transformer-dims --trunc-te --aggregation soa+cls: the spec takes the transformer and attention options', async () => {
  const s = await runEval(evalFlags({
    backbone: 'vit', aggregation: 'soa+cls', transformerDims: '3,32,4', truncTe: '2',
    datasetsFolder: root, datasetName: 'tiny', resize: '64x64', recallValues: '1', progress: false,
  }), quiet);
  assert.equal(s.model.descriptorDim, 32, 'the class token of a 32-wide ViT');
  assert.equal(s.model.aggregation, 'soa+cls');
  await assert.rejects(runEval(evalFlags({ backbone: 'vit', aggregation: 'cls', transformerDims: '3,32,4', truncTe: '4', datasetsFolder: root, datasetName: 'tiny', progress: false }), quiet),
    (e: unknown) => /--trunc-te 4: must keep between 1 and the 3 encoder blocks of ViT/.test(commandLineMessage(e)));
});

test('commander wiring: `vgl eval recall --from DIR --radii ... --json` parses its own flags', async () => {
  const program = new Command('vgl').exitOverride();
  register(program);
  const printed: string[] = [];
  const log = console.log;
  console.log = (s: string) => printed.push(s);
  try {
    await program.parseAsync(['eval', 'recall', '--from', join(runDir, 'eval'), '--radii', '7,70', '--recall-values', '1', '--output-folder', join(runDir, 'r4'), '--json'], { from: 'user' });
  } finally {
    console.log = log;
  }
  const s = JSON.parse(printed.join('\n')) as { radii: number[]; recallValues: number[] };
  assert.deepEqual(s.radii, [7, 70]);
  assert.deepEqual(s.recallValues, [1]);
  assert.ok(existsSync(join(runDir, 'r4', 'recall-by-radius.csv')));
  await assert.rejects(program.parseAsync(['eval', 'recall', '--from', join(runDir, 'eval'), '--run', runDir], { from: 'user' }), /--run do\(es\) not apply/);
  await assert.rejects(program.parseAsync(['eval', 'recal', '--run', runDir], { from: 'user' }), /unknown action "recal"/);
});

test('commander wiring: `vgl eval --run DIR --no-images --output-folder OUT --json`', async () => {
  const program = new Command('vgl').exitOverride();
  register(program);
  const printed: string[] = [];
  const log = console.log;
  console.log = (s: string) => printed.push(s);
  const out = join(runDir, 'eval-no-images');
  try {
    await program.parseAsync(['eval', '--run', runDir, '--no-images', '--output-folder', out, '--recall-values', '1,3', '--json'], { from: 'user' });
  } finally {
    console.log = log;
  }
  const s = JSON.parse(printed.join('\n')) as { recallValues: number[]; dataset: { split: string }; method: string };
  assert.deepEqual(s.recallValues, [1, 3]);
  assert.equal(s.dataset.split, 'test');
  assert.equal(s.method, 'hard_resize');
  assert.ok(existsSync(join(out, 'predictions.csv')));
  assert.ok(!existsSync(join(out, 'grids')));
});

test('teardown', async () => {
  await rm(root, { recursive: true, force: true });
  await rm(runDir, { recursive: true, force: true });
});
