// The registry's promise, checked on a copy of the source tree: a new head is one file (its options
// declared beside it) plus one registry line (and its import), and vgl train, vgl eval, vgl index build,
// an experiment plan with its table, and the report accept it, its option as a flag and a config key,
// without any other edit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { generateCity } from '../../src/data/synth/generate.ts';
import { loadCheckpoint } from '../../src/torch/checkpoint.ts';
import { tempDir } from '../helpers/tmp.ts';

const REPO = join(import.meta.dirname, '..', '..');

/** A GeM variant with its own, fixed exponent: the file a user writes. */
const HEAD_FILE = `// Fixed-exponent GeM: p is a constant of the head, its default 5.
import { z } from 'zod';
import { GeM } from './gem.ts';
import { POOLING_OPTIONS, poolingNorms } from './pooling.ts';
import { defineHead } from './entry.ts';

export const fixedGemHead = defineHead({
  name: 'fixedgem', label: 'fixed GeM', description: 'GeM with a fixed exponent',
  options: { ...POOLING_OPTIONS, fixedGemP: z.number().positive().default(5).describe('fixedgem: the exponent p, fixed') },
  create: (c, o) => new GeM(c, { p: o.fixedGemP, trainableP: false, ...poolingNorms(o.l2) }),
});
`;

test('a new head is one file and one registry line: train, eval, index build, plans, their table and the report take it and its option', async () => {
  const dir = tempDir('vgl-new-head-');
  const copy = join(dir, 'vgl');
  cpSync(join(REPO, 'src'), join(copy, 'src'), { recursive: true });
  for (const f of ['package.json', 'tsconfig.json']) cpSync(join(REPO, f), join(copy, f));
  for (const d of ['node_modules', 'native']) symlinkSync(join(REPO, d), join(copy, d));

  // The one new file and the one registry line (with its import): nothing else changes.
  writeFileSync(join(copy, 'src/models/aggregation/fixed-gem.ts'), HEAD_FILE);
  const registry = join(copy, 'src/models/aggregation/index.ts');
  const before = readFileSync(registry, 'utf8');
  const after = before
    .replace("import { gemHead } from './gem.ts';\n", "import { gemHead } from './gem.ts';\nimport { fixedGemHead } from './fixed-gem.ts';\n")
    .replace('export const HEAD_ENTRIES = [gemHead,', 'export const HEAD_ENTRIES = [gemHead, fixedGemHead,');
  assert.equal(after.split('\n').length - before.split('\n').length, 1, 'one line added (the import); the entry joins the list');
  writeFileSync(registry, after);

  const datasets = join(dir, 'datasets');
  await generateCity({ out: datasets, name: 'tiny', size: 'tiny', workers: 0, seed: 3, queries: { train: 8, val: 8, test: 8 } });
  const vgl = (...args: string[]) => execFileSync(process.execPath, ['--import', 'tsx', join(copy, 'src/cli/main.ts'), ...args],
    { cwd: copy, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VGL_DEVICE: 'cpu' } });
  const tiny = ['--backbone', 'resnet18conv4', '--resnet-widths', '8,8,16,16', '--resize', '32x32'];

  // Its option is a flag with its help and default, in every command that builds a network.
  for (const command of [['train'], ['eval'], ['index', 'build']]) {
    assert.match(vgl(...command, '--help'), /--fixed-gem-p <value>\s+(with\s+--backbone:\s+)?fixedgem:\s+the\s+exponent\s+p,\s+fixed\s+\[default:\s+5\]/, `vgl ${command.join(' ')} --help`);
  }

  // vgl train: the head, its option from the command line, into config.json and the checkpoint.
  const run = join(dir, 'run');
  vgl('train', '--datasets-folder', datasets, '--dataset-name', 'tiny', '--output-folder', run, ...tiny, '--aggregation', 'fixedgem', '--fixed-gem-p', '4',
    '--epochs', '1', '--queries-per-epoch', '4', '--cache-refresh-rate', '4', '--neg-samples-num', '8', '--negs-num-per-query', '2', '--batch-size', '2', '--lr', '1e-3',
    '--infer-batch-size', '8', '--recall-values', '1,5');
  const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
  assert.deepEqual([config.aggregation, config.fixedGemP], ['fixedgem', 4]);
  const best = await loadCheckpoint(join(run, 'best.pth'));
  assert.deepEqual(Array.from(best.stateDict.get('aggregation.p')!.data as Float32Array), [4], 'p stayed fixed at the flag value through training');

  // vgl eval: the trained run, and the head named by flags (with a block in front, the default p).
  const evaluated = JSON.parse(vgl('eval', '--run', run, '--json'));
  assert.deepEqual(Object.keys(evaluated.recalls).map(Number), [1, 5]);
  const untrained = JSON.parse(vgl('eval', ...tiny, '--aggregation', 'attention+fixedgem', '--datasets-folder', datasets, '--dataset-name', 'tiny', '--json'));
  assert.equal(untrained.model.aggregation, 'attention+fixedgem');

  // vgl index build from the run.
  const index = join(dir, 'index');
  vgl('index', 'build', '--run', run, '--out', index);
  assert.equal(JSON.parse(readFileSync(join(index, 'index.json'), 'utf8')).model.aggregation, 'fixedgem');

  // A plan with a variant of it (its option as a config key), run, and its table.
  const plan = join(dir, 'plan.yaml');
  writeFileSync(plan, [
    'name: fixedgem', 'scale: demo', 'defaults:', `  datasets_folder: ${datasets}`, '  dataset_name: tiny', '  backbone: resnet18conv4',
    '  resnet_widths: [8, 8, 16, 16]', '  resize: 32x32', '  epochs_num: 1', '  queries_per_epoch: 4', '  cache_refresh_rate: 4',
    '  neg_samples_num: 8', '  negs_num_per_query: 2', '  train_batch_size: 2', '  infer_batch_size: 8', '  recall_values: [1, 5]',
    'variants:', '  - name: gem', '    aggregation: gem', '  - name: fixedgem-6', '    aggregation: fixedgem', '    fixed_gem_p: 6',
    'seeds: [0]', 'tests:', '  - dataset: tiny',
  ].join('\n'));
  const experiment = join(dir, 'experiments');
  vgl('experiment', 'run', plan, '--out', experiment);
  const runConfig = JSON.parse(readFileSync(join(experiment, 'fixedgem-6', 'seed-0', 'config.json'), 'utf8'));
  assert.equal(runConfig.fixedGemP, 6);
  assert.match(vgl('experiment', 'table', experiment), /fixedgem-6/);
  // The report of that plan: its variant in the PDF's and the HTML's results table, beside GeM.
  const report = join(dir, 'report');
  vgl('report', experiment, '--out', report, '--no-dataset-figures');
  assert.equal(readFileSync(join(report, 'report.pdf')).subarray(0, 5).toString(), '%PDF-');
  const html = readFileSync(join(report, 'report.html'), 'utf8');
  const record = JSON.parse(readFileSync(join(experiment, 'fixedgem-6', 'seed-0', 'evaluation.json'), 'utf8'));
  const r1 = (record.tests[0].recalls['1'] as number).toFixed(1), r5 = (record.tests[0].recalls['5'] as number).toFixed(1);
  const cell = (x: string) => `<td style="text-align:(left|right)">${x}</td>`;
  assert.match(html, new RegExp(`<tr>${cell('tiny')}${cell('fixedgem-6')}${cell('1')}${cell('8')}${cell(`${r1} ± 0.0`)}${cell(`${r5} ± 0.0`)}`),
    'its row in the results table: test set, variant, seeds, queries, R@1 and R@5 of its evaluation.json');
});
