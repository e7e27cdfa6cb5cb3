// A tiny plan end to end: stopped after two of its four runs and resumed, it gives the same table as
// an uninterrupted run; the table's numbers are those of the run files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import YAML from 'yaml';
import { generateCity } from '../../src/data/synth/generate.ts';
import { recallsFromRanks } from '../../src/eval/recall.ts';
import { meanStd } from '../../src/eval/stats.ts';
import { readPlan, expandPlan, comparisonsOf, type PlannedRun } from '../../src/experiments/plan.ts';
import * as torch from '../../src/torch/index.ts';
import { modelFromSpec } from '../../src/models/assemble.ts';
import { openDataset } from '../../src/data/dataset.ts';
import { evaluate } from '../../src/eval/evaluate.ts';
import { runExperiment, runState, staleChanges, estimateRemaining } from '../../src/experiments/runner.ts';
import { RUN_RECORD, type RunRecord } from '../../src/experiments/record.ts';
import { experimentTable, tableMarkdown, tableCsv, cpuUseText } from '../../src/experiments/table.ts';

let root = '';
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'vgl-experiment-test-'));
  await generateCity({ out: join(root, 'datasets'), name: 'tiny', size: 'tiny', workers: 0, seed: 3, queries: { train: 24, val: 16, test: 24 } });
});
after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

function writePlan(): string {
  const file = join(root, 'plan.yaml');
  writeFileSync(file, YAML.stringify({
    name: 'tiny-study',
    defaults: {
      datasets_folder: join(root, 'datasets'), dataset_name: 'tiny', backbone: 'resnet18conv4', resnet_widths: [8, 8, 16, 16],
      netvlad_clusters: 4, resize: '48x64', queries_per_epoch: 8, cache_refresh_rate: 4, neg_samples_num: 20, negs_num_per_query: 3,
      train_batch_size: 2, epochs_num: 1, lr: 1e-3, recall_values: [1, 5], infer_batch_size: 32,
    },
    variants: [{ name: 'gem', aggregation: 'gem' }, { name: 'netvlad', aggregation: 'netvlad' }],
    seeds: [0, 1],
    tests: [{ dataset: 'tiny' }, { dataset: 'tiny', size: '64x80' }],
    evaluations: [{ name: 'radii', radii: [10, 50] }],
  }));
  return file;
}

const withoutTimes = (t: ReturnType<typeof experimentTable>) => t.cells.map(({ trainMinutes: _, ...c }) => c);

test('a plan stopped after two runs resumes to the same table as an uninterrupted one', { timeout: 600_000 }, async () => {
  const plan = writePlan();
  const quiet = { log: () => {} };
  const stopped = join(root, 'exp-stopped');
  const partial = await runExperiment(plan, stopped, { ...quiet, maxRuns: 2 });
  assert.deepEqual(partial.map((r) => r.id), ['gem/seed-0', 'gem/seed-1']);
  const runs = expandPlan(readPlan(plan), stopped);
  assert.deepEqual(runs.map(runState), ['done', 'done', 'pending', 'pending']);
  const lines: string[] = [];
  const resumed = await runExperiment(plan, stopped, { log: (s) => lines.push(s) });
  assert.ok(lines.some((l) => /gem\/seed-0: done, skipped/.test(l)), lines.join('\n'));
  assert.equal(resumed.length, 4);
  const straight = await runExperiment(plan, join(root, 'exp-straight'), quiet);
  assert.deepEqual(withoutTimes(experimentTable(resumed)), withoutTimes(experimentTable(straight)));

  // The records: config and commit and machine and timings; recalls are those of the saved ranks.
  const rec = JSON.parse(readFileSync(join(stopped, 'netvlad', 'seed-1', RUN_RECORD), 'utf8')) as RunRecord;
  assert.match(rec.commit, /^([0-9a-f]{40}|unknown)$/);
  assert.ok(rec.machine.threads >= 1 && rec.wallMs.train > 0 && rec.phasesMs.train > 0 && rec.phasesMs.cache > 0);
  assert.ok(existsSync(join(stopped, 'netvlad', 'seed-1', 'config.json')));
  assert.deepEqual(rec.tests.map((t) => t.key), ['tiny', 'tiny#radii', 'tiny@64x80', 'tiny@64x80#radii']);
  // The evaluation-only variant re-evaluates the same model: same recall at 25 m, and recall never falls as the radius grows.
  const [plain, radii] = rec.tests;
  assert.deepEqual(radii!.recalls, plain!.recalls);
  const by = radii!.recallsByRadius!;
  assert.deepEqual(Object.keys(by).map(Number).sort((a, b) => a - b), [10, 25, 50]);
  for (const n of [1, 5]) assert.ok(by[10]![n]! <= by[25]![n]! && by[25]![n]! <= by[50]![n]!, JSON.stringify(by));
  for (const t of rec.tests) assert.deepEqual(recallsFromRanks(Int32Array.from(t.ranks), [1, 5]), t.recalls);

  // The table's numbers are the run files': mean and std over the two seeds.
  const table = experimentTable(resumed);
  const cell = table.cells.find((c) => c.variant === 'netvlad' && c.test === 'tiny@64x80')!;
  const files = [0, 1].map((s) => (JSON.parse(readFileSync(join(stopped, 'netvlad', `seed-${s}`, RUN_RECORD), 'utf8')) as RunRecord).tests[2]!.recalls[1]!);
  assert.deepEqual(cell.recalls[1], { mean: meanStd(files).mean, std: meanStd(files).std });
  assert.deepEqual(cell.seeds, [0, 1]);
  assert.equal(cell.queries, 24);
  const [b] = cell.comparisons;
  assert.ok(cell.comparisons.length === 1 && b!.against === 'gem' && b!.low <= b!.difference && b!.difference <= b!.high);
  assert.deepEqual(table.cells.find((c) => c.variant === 'gem')!.comparisons, []);
  const md = tableMarkdown(table);
  assert.match(md, /### tiny@64x80 \(24 queries\)/);
  assert.match(md, /- netvlad: R@1 by radius 10 m [\d.]+, 25 m [\d.]+, 50 m [\d.]+/);
  assert.match(md, /\| netvlad \| 2 \| 64 \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \| [+-][\d.]+ \[[+-][\d.]+, [+-][\d.]+\]( \*)? vs gem \|/);
  // One CSV row per cell, N and comparison (evaluation-only variants also against the same models' plain evaluation).
  assert.equal(tableCsv(table).trim().split('\n').length, 1 + table.cells.reduce((rows, c) => rows + 2 * Math.max(1, c.comparisons.length), 0));
  assert.deepEqual(table.cells.find((c) => c.variant === 'gem' && c.test === 'tiny#radii')!.comparisons.map((c) => c.against), ['tiny (same models)']);
  assert.equal(readFileSync(join(stopped, 'table.md'), 'utf8'), `${md}\n`, 'the run writes its tables');
  assert.equal(readFileSync(join(stopped, 'table.csv'), 'utf8'), tableCsv(table));
  // The cost per variant: the records' phases per epoch and wall times, averaged over seeds.
  const records = [0, 1].map((s) => JSON.parse(readFileSync(join(stopped, 'netvlad', `seed-${s}`, RUN_RECORD), 'utf8')) as RunRecord);
  const cost = table.costs.find((c) => c.variant === 'netvlad')!;
  assert.equal(cost.epochs, 1);
  assert.ok(Math.abs(cost.perEpochSeconds!.cache - (records[0]!.phasesMs.cache + records[1]!.phasesMs.cache) / 2 / 1000) < 1e-9);
  assert.ok(Math.abs(cost.trainMinutes - (records[0]!.wallMs.train + records[1]!.wallMs.train) / 2 / 60_000) < 1e-9);
  assert.match(md, /\| netvlad \| 1\.0 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+%( \(shared\))? \|/);
  // CPU time and load are recorded per phase: the cost's CPU minutes are the records' mean, its load their highest.
  for (const r of records) assert.ok(r.cpuMs!.train > 0 && r.cpuMs!.evaluate > 0 && r.load!.train >= 0 && r.load!.evaluate >= 0, JSON.stringify(r.cpuMs));
  assert.ok(Math.abs(cost.cpuMinutes!.train - (records[0]!.cpuMs!.train + records[1]!.cpuMs!.train) / 2 / 60_000) < 1e-9);
  assert.equal(cost.load!.highest, Math.max(...records.flatMap((r) => [r.load!.train, r.load!.evaluate])));
  assert.equal(cost.load!.threads, records[0]!.machine.threads);
  // CPU use: the runs' CPU time over wall time x threads, as the records give them.
  const cpu = records.reduce((a, r) => a + r.cpuMs!.train + r.cpuMs!.evaluate, 0);
  const wall = records.reduce((a, r) => a + (r.wallMs.train + r.wallMs.evaluate) * r.machine.threads, 0);
  assert.ok(Math.abs(cost.cpuUse! - cpu / wall) < 1e-12);
});

test('a plan edited after its runs finished: the runs trained otherwise are stale and refused, by name and option', () => {
  const edited = YAML.parse(readFileSync(writePlan(), 'utf8'));
  edited.variants[1].lr = 1e-2; // netvlad now asks another learning rate
  edited.defaults.infer_batch_size = 16; // how the model is read, not what it learnt: not stale
  const file = join(root, 'plan-edited.yaml');
  writeFileSync(file, YAML.stringify(edited));
  const dir = join(root, 'exp-straight'); // made by the test above: four finished runs
  const runs = expandPlan(readPlan(file), dir);
  assert.deepEqual(runs.map(runState), ['done', 'done', 'stale', 'stale']);
  assert.deepEqual(staleChanges(runs[2]!), ['--lr 0.001 -> 0.01']);
  assert.deepEqual(staleChanges(runs[0]!), []);
  // The folder copied elsewhere holds the same training: where a run lives is not a change.
  const moved = join(root, 'exp-moved');
  cpSync(dir, moved, { recursive: true });
  const movedRuns = expandPlan(readPlan(file), moved);
  assert.deepEqual(movedRuns.map(runState), ['done', 'done', 'stale', 'stale']);
  assert.deepEqual(staleChanges(movedRuns[2]!), ['--lr 0.001 -> 0.01']);
  // More epochs than a finished run trained: stale too (a resume could extend an unfinished one).
  const longer = YAML.parse(readFileSync(file, 'utf8'));
  longer.defaults.epochs_num = 2;
  writeFileSync(join(root, 'plan-longer.yaml'), YAML.stringify(longer));
  assert.deepEqual(staleChanges(expandPlan(readPlan(join(root, 'plan-longer.yaml')), dir)[0]!), ['--epochs 1 -> 2']);
  // A variant that now reuses another model (or the untrained network) is stale too.
  const reusing = YAML.parse(readFileSync(file, 'utf8'));
  reusing.variants[0] = { name: 'gem', untrained: true, aggregation: 'gem' };
  writeFileSync(join(root, 'plan-untrained.yaml'), YAML.stringify(reusing));
  const [gem] = expandPlan(readPlan(join(root, 'plan-untrained.yaml')), dir);
  assert.deepEqual(staleChanges(gem!), ['evaluated its own training, the plan now asks the untrained network']);
  return assert.rejects(runExperiment(file, dir, { log: () => {} }),
    (e: Error) => /2 finished run\(s\) made otherwise than/.test(e.message) && /netvlad\/seed-0: --lr 0\.001 -> 0\.01\n  netvlad\/seed-1: --lr 0\.001 -> 0\.01\n/.test(e.message)
      && !/gem\/seed|infer/.test(e.message) && /--out/.test(e.message));
});

test('a plan reusing another plan\'s models: the source is trained in its own folder once, then only evaluated; PCA and search-time variants', { timeout: 600_000 }, async () => {
  const source = writePlan();
  const file = join(root, 'reuse.yaml');
  writeFileSync(file, YAML.stringify({
    name: 'tiny-reuse',
    defaults: { datasets_folder: join(root, 'datasets'), dataset_name: 'tiny', backbone: 'resnet18conv4', resnet_widths: [8, 8, 16, 16], aggregation: 'gem', resize: '48x64', recall_values: [1, 5], infer_batch_size: 32 },
    variants: [
      { name: 'trained-netvlad', from: 'plan.yaml#netvlad' },
      { name: 'trained-gem', from: 'plan.yaml#gem', against: ['trained-netvlad', 'start'] },
      { name: 'start', untrained: true },
    ],
    seeds: [1],
    tests: [{ dataset: 'tiny' }],
    evaluations: [{ name: 'pca8', pcaDim: 8, pcaWhiten: true }, { name: 'pca32', pcaDim: 32 }, { name: 'search', searchSizes: [50, 400] }, { name: 'bf16', precision: 'bf16' }],
  }));
  const dir = join(root, 'studies', 'tiny-reuse');
  const lines: string[] = [];
  const records = await runExperiment(file, dir, { log: (s) => lines.push(s) });
  assert.ok(lines.some((l) => /trained-netvlad\/seed-1: made by tiny-study\/netvlad\/seed-1 first/.test(l)), lines.join('\n'));
  // The source runs live in the source plan's folder (the sibling), with their own records and plan copy.
  const sourceFolder = join(root, 'studies', 'tiny-study', 'netvlad', 'seed-1');
  const sourceRecord = JSON.parse(readFileSync(join(sourceFolder, RUN_RECORD), 'utf8')) as RunRecord;
  assert.ok(existsSync(join(root, 'studies', 'tiny-study', 'plan.json')));
  assert.ok(!existsSync(join(dir, 'trained-netvlad', 'seed-1', 'last.pth')), 'nothing trained in the reusing plan\'s folder');
  const [netvlad] = records;
  assert.equal(netvlad!.trainedBy, 'tiny-study/netvlad/seed-1');
  assert.equal(netvlad!.model, sourceRecord.model);
  assert.deepEqual(netvlad!.wallMs.train, sourceRecord.wallMs.train);
  assert.equal(netvlad!.cpuMs!.train, sourceRecord.cpuMs!.train, 'a reused model\'s training CPU is its source\'s');
  assert.equal(netvlad!.load!.train, sourceRecord.load!.train);
  // Same model, same test set: the same ranks as the source's own evaluation.
  assert.deepEqual(netvlad!.tests[0]!.ranks, sourceRecord.tests.find((t) => t.key === 'tiny')!.ranks);
  assert.deepEqual(netvlad!.tests.map((t) => t.key), ['tiny', 'tiny#pca8', 'tiny#pca32', 'tiny#search', 'tiny#bf16']);
  const [plain, pca, pca32, search, bf16] = netvlad!.tests;
  // The bf16 variant says what ran and why (the check's finding in the reason); the others ran fp32.
  assert.equal(bf16!.precision?.precision, 'bf16');
  assert.match(bf16!.precision!.reason, /^asked for bf16.*its bf16 descriptors are \d+\.\d% off fp32 on 8 of its images/);
  assert.equal(bf16!.ranks.length, plain!.ranks.length);
  assert.ok(netvlad!.tests.slice(0, 4).every((t) => t.precision === undefined));
  assert.equal(pca32!.descriptor!.dim, 32);
  // GeM here has 16 dimensions: a PCA to 32 is no reduction, skipped for it
  assert.deepEqual(records.find((r) => r.variant === 'trained-gem')!.tests.map((t) => t.key), ['tiny', 'tiny#pca8', 'tiny#search', 'tiny#bf16']);
  assert.deepEqual(pca!.descriptor?.dim, 8);
  assert.equal(pca!.descriptor?.bytes, 32);
  assert.ok(pca!.descriptor!.pca!.whiten && pca!.descriptor!.pca!.explainedVariance > 0 && pca!.descriptor!.pca!.explainedVariance <= 1);
  assert.equal(plain!.descriptor!.dim, 4 * 16, 'NetVLAD: 4 clusters x 16 channels');
  assert.deepEqual(search!.ranks, plain!.ranks, 'timing the search does not change the evaluation');
  assert.deepEqual(search!.searchTimes!.map((s) => s.databaseSize), [50, 400]);
  assert.ok(search!.searchTimes!.every((s) => s.msPerQuery !== null && s.msPerQuery > 0));

  // A second call: everything done, the source is not touched again.
  const again: string[] = [];
  await runExperiment(file, dir, { log: (s) => again.push(s) });
  assert.ok(again.every((l) => /done, skipped/.test(l)), again.join('\n'));

  // The comparison a variant names: gem against netvlad.
  const table = experimentTable(records, comparisonsOf(readPlan(file)));
  const cell = table.cells.find((c) => c.variant === 'trained-gem' && c.test === 'tiny')!;
  assert.deepEqual(cell.comparisons.map((c) => c.against), ['trained-netvlad', 'start']);
  // An evaluation-only variant is also compared with the same models' plain evaluation: one seed, so the difference is that of R@1.
  const bf16Cell = table.cells.find((c) => c.variant === 'trained-netvlad' && c.test === 'tiny#bf16')!;
  const same = bf16Cell.comparisons.find((c) => c.against === 'tiny (same models)')!;
  assert.ok(Math.abs(same.difference - (bf16!.recalls[1]! - plain!.recalls[1]!)) < 1e-9, `${same.difference}`);
  assert.ok(same.low <= same.difference && same.difference <= same.high);
  assert.equal(table.costs[0]!.trainedBy, 'tiny-study/netvlad');
  assert.equal(netvlad!.epochs, sourceRecord.epochs);

  // The untrained variant: nothing trained, the network of its seed as built from the spec.
  const start = records.find((r) => r.variant === 'start')!;
  assert.equal(start.model, 'untrained');
  assert.equal(start.epochs, 0);
  assert.ok(!existsSync(join(dir, 'start', 'seed-1', 'last.pth')));
  const [run] = expandPlan(readPlan(file), dir, { planFile: file }).filter((r) => r.untrained);
  torch.manualSeed(1);
  const { net } = await modelFromSpec(run!.config.model);
  const ds = await openDataset(join(root, 'datasets'), 'tiny', 'test');
  const direct = await evaluate(net, ds, { size: { height: 48, width: 64 }, recallValues: [1, 5], batchSize: 32, progress: false, images: false });
  net.dispose();
  assert.deepEqual(start.tests[0]!.recalls, direct.recalls);
  assert.equal(table.cells.find((c) => c.variant === 'trained-gem' && c.test === 'tiny#pca8')!.descriptor?.dim, 8);
  assert.match(tableMarkdown(table), /- trained-netvlad \(64-d, 256 bytes per image\): exact search ms per query by database size 50: [\d.]+, 400: [\d.]+/);
});

test('the time left: each unfinished run at the pace of finished runs of its variant and kind, else of its kind', () => {
  const run = (variant: string, seed: number, kind: 'trained' | 'reused' | 'untrained') => ({
    id: `${variant}/seed-${seed}`, variant, seed, folder: join(root, 'nowhere', variant, `seed-${seed}`), options: {}, config: {},
    ...(kind === 'untrained' ? { untrained: true } : {}),
    ...(kind === 'reused' ? { source: { run: { folder: join(root, 'nowhere', 'source', `seed-${seed}`) } } } : {}),
  }) as unknown as PlannedRun;
  const record = (train: number, evaluate: number, load: number, trainedBy?: string) =>
    ({ wallMs: { train, evaluate }, load: { train: load, evaluate: load }, ...(trainedBy ? { trainedBy } : {}) }) as unknown as RunRecord;
  const runs = [run('a', 0, 'trained'), run('a', 1, 'trained'), run('b', 0, 'trained'), run('u', 0, 'untrained'), run('r', 0, 'reused'), run('r', 1, 'reused')];
  const done = new Map([[runs[0]!, record(60_000, 30_000, 1.5)], [runs[4]!, record(99_999, 20_000, 3.25, 'src/r/seed-0')]]);
  const left = estimateRemaining(runs, done);
  // a/1: a's 90 s; b/0: the trained kind's 90 s; r/1: r's evaluation 20 s + a training (its source is not done) 60 s; u/0: no untrained run finished.
  assert.ok(Math.abs(left.minutes - (90 + 90 + 80) / 60) < 1e-9, String(left.minutes));
  assert.equal(left.unknown, 1);
  assert.equal(left.highestLoad, 3.25);
});

test('CPU use marks variants whose runs shared the machine', () => {
  const cost = (cpuUse?: number) => ({ variant: 'v', epochs: 1, trainMinutes: 1, evaluateMinutes: 1, ...(cpuUse === undefined ? {} : { cpuUse }) });
  assert.equal(cpuUseText(cost(0.86)), '86%');
  assert.equal(cpuUseText(cost(0.21)), '21% (shared)');
  assert.equal(cpuUseText(cost()), '', 'records from before CPU time was measured');
});

test('a plan testing on the sealed final split records every evaluation of it, one line per run, in the experiment\'s ledger', { timeout: 600_000 }, async () => {
  // A final split for the tiny city: its test images under images/final (the real routes' layout).
  const final = join(root, 'final-datasets');
  cpSync(join(root, 'datasets', 'tiny'), join(final, 'tiny'), { recursive: true });
  cpSync(join(final, 'tiny', 'images', 'test'), join(final, 'tiny', 'images', 'final'), { recursive: true });
  const file = join(root, 'final-plan.yaml');
  writeFileSync(file, YAML.stringify({
    name: 'tiny-final',
    defaults: { datasets_folder: final, dataset_name: 'tiny', backbone: 'resnet18conv4', resnet_widths: [8, 8, 16, 16], aggregation: 'gem', resize: '48x64', recall_values: [1, 5], infer_batch_size: 32 },
    variants: [{ name: 'untrained', untrained: true }],
    seeds: [0, 1],
    tests: [{ dataset: 'tiny' }, { dataset: 'tiny', split: 'final' }],
  }));
  const dir = join(root, 'studies', 'tiny-final');
  const records = await runExperiment(file, dir, { log: () => undefined });
  assert.deepEqual(records.map((r) => r.tests.map((t) => t.key)), [['tiny', 'tiny/final'], ['tiny', 'tiny/final']]);
  const ledger = readFileSync(join(dir, 'final-evaluations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(ledger.map((l) => [l.model, l.seed]), [['untrained', 0], ['untrained', 1]]);
  // Only the final split's recall is in the ledger, as the run record has it.
  assert.deepEqual(ledger.map((l) => Object.keys(l.r1)), [['tiny/final'], ['tiny/final']]);
  assert.equal(ledger[1].r1['tiny/final'].trained, records[1]!.tests[1]!.recalls[1]);
  assert.equal(ledger[0].config.datasetName, 'tiny');
  // Done runs are skipped, not evaluated again: the ledger does not grow.
  await runExperiment(file, dir, { log: () => undefined });
  assert.equal(readFileSync(join(dir, 'final-evaluations.jsonl'), 'utf8').trim().split('\n').length, 2);
});
