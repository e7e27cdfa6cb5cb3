// A tiny plan end to end: stopped after two of its four runs and resumed, it gives the same table as
// an uninterrupted run; the table's numbers are those of the run files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import YAML from 'yaml';
import { generateCity } from '../../src/data/synth/generate.ts';
import { recallsFromRanks } from '../../src/eval/recall.ts';
import { meanStd } from '../../src/eval/stats.ts';
import { readPlan, expandPlan } from '../../src/experiments/plan.ts';
import { runExperiment, runState, RUN_RECORD, type RunRecord } from '../../src/experiments/runner.ts';
import { experimentTable, tableMarkdown, tableCsv } from '../../src/experiments/table.ts';

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
  assert.ok(cell.vsBaseline && cell.vsBaseline.low <= cell.vsBaseline.difference && cell.vsBaseline.difference <= cell.vsBaseline.high);
  assert.equal(table.cells.find((c) => c.variant === 'gem')!.vsBaseline, undefined);
  const md = tableMarkdown(table);
  assert.match(md, /### tiny@64x80 \(24 queries\)/);
  assert.match(md, /- netvlad: R@1 by radius 10 m [\d.]+, 25 m [\d.]+, 50 m [\d.]+/);
  assert.match(md, /\| netvlad \| 2 \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \| [+-][\d.]+ \[[+-][\d.]+, [+-][\d.]+\]( \*)? \|/);
  assert.equal(tableCsv(table).trim().split('\n').length, 1 + table.cells.length * 2);
});
