// `vgl demo`: the main job on the embedded default (synthetic cities + real photographs), see
// src/experiments/demo.ts; `vgl demo curves`: recall@1 on the real test sets per epoch for each
// training-data choice, see src/experiments/real-curves.ts; `vgl demo precision`: the demo's models in
// fp32 and bf16 side by side, see src/experiments/precision.ts.
import type { Command } from 'commander';
import { z } from 'zod';
import { parseFlags } from '../flags.ts';
import { PRECISIONS } from '../../torch/precision.ts';
import { DEMO_SPLITS } from '../../data/splits.ts';

const TRAIN_ON = ['real', 'synthetic', 'mixed'] as const;

/** The training budget every demo command takes. */
const BUDGET_FLAGS = {
  epochs: z.coerce.number().int().min(1).max(100),
  queriesPerEpoch: z.coerce.number().int().min(4),
  seed: z.coerce.number().int().min(0),
};
const HEADS = z.string().transform((s) => s.split(',')).pipe(z.array(z.enum(['gem', 'netvlad'])).min(1));

const DemoFlags = z.object({
  datasetsFolder: z.string().min(1),
  outputFolder: z.string().min(1).optional(),
  heads: HEADS,
  // Checked by the demo against its table of backbones (importing it here would load the engine for every command).
  backbone: z.string().min(1),
  trainOn: z.enum(TRAIN_ON),
  ...BUDGET_FLAGS,
  // The backbone's own when not given (MobileNetV2 4 epochs in fp32, ResNet-50 1 epoch in auto).
  epochs: BUDGET_FLAGS.epochs.optional(),
  seeds: z.string().transform((s) => s.split(',').map((x) => (x.trim() === '' ? NaN : Number(x)))).pipe(z.array(z.number().int().min(0)).min(1)).optional(),
  split: z.enum(DEMO_SPLITS),
  precision: z.enum(PRECISIONS).optional(),
});

const PrecisionFlags = z.object({
  datasetsFolder: z.string().min(1),
  outputFolder: z.string().min(1),
  fp32From: z.string().min(1).optional(),
  heads: HEADS,
  trainOn: z.enum(TRAIN_ON),
  ...BUDGET_FLAGS,
});

const CurvesFlags = z.object({
  datasetsFolder: z.string().min(1),
  outputFolder: z.string().min(1),
  head: z.enum(['gem', 'netvlad']),
  choices: z.string().transform((s) => s.split(',')).pipe(z.array(z.enum(TRAIN_ON)).min(1)),
  ...BUDGET_FLAGS,
});

const DEFAULT_EPOCHS = '4';
const DEFAULT_QUERIES = '200';

export function register(program: Command): void {
  const demo = program.command('demo').enablePositionalOptions()
    .description('render the synthetic cities, link the real photographs, train MobileNetV2 (or ResNet-50) + GeM and + NetVLAD, and print untrained vs trained recall on every test set')
    .option('--datasets-folder <dir>', 'where the datasets go', 'data/datasets')
    .option('--output-folder <dir>', 'runs, predictions and results (default runs/demo[-<backbone>][-<split>][-<precision>]: the backbone when not mobilenetv2, the split when not test, the precision when given and not fp32)')
    .option('--heads <list>', 'aggregation heads to train', 'gem,netvlad')
    .option('--backbone <name>', 'ImageNet backbone: mobilenetv2 (MobileNetV2-0.35 at 120x160) | resnet50conv4 (ResNet-50 to conv4 at 240x320, weights from make weights; its recipe chosen on the val splits, measured on final by experiments/real-places.yaml)', 'mobilenetv2')
    .option('--train-on <data>', `training data: ${TRAIN_ON.join(' | ')} (real = Gardens Point + Nordland train splits)`, 'real')
    .option('--epochs <n>', 'training epochs per model (default: mobilenetv2 4, its NetVLAD, which also trains at 240x320, half of them; resnet50conv4 1)')
    .option('--queries-per-epoch <n>', 'training queries per epoch', DEFAULT_QUERIES)
    .option('--seed <n>', 'random seed', '0')
    .option('--seeds <list>', 'train and test once per seed (e.g. 0,1,2) and report mean ± std and paired bootstrap intervals over them')
    .option('--split <name>', `split of the test sets: ${DEMO_SPLITS.join(' | ')} (val: the real sets' val splits, which choose a recipe; final: their sealed split, for a frozen recipe, every evaluation of it recorded)`, 'test')
    .option('--precision <p>', `training and evaluation: ${PRECISIONS.join(' | ')} (bf16: bfloat16 backbone, fp32 weights, head and losses; auto: bf16 where the CPU has AMX-BF16 or AVX512-BF16 and each model's timed pass is 1.1x faster in bf16; default: mobilenetv2 fp32, resnet50conv4 auto)`)
    .action(async (raw) => {
      const flags = parseFlags(DemoFlags, raw);
      // Each precision and split keeps its own runs: the demo retrains a run folder whose options changed.
      const outputFolder = flags.outputFolder ?? `runs/demo${flags.backbone === 'mobilenetv2' ? '' : `-${flags.backbone}`}${flags.split === 'test' ? '' : `-${flags.split}`}${flags.precision === undefined || flags.precision === 'fp32' ? '' : `-${flags.precision}`}`;
      const log = (s: string) => console.error(s);
      const progress = Boolean(process.stderr.isTTY);
      if (flags.seeds !== undefined) {
        const { runDemoOverSeeds, formatSeedsTable, formatSeedsVerdicts } = await import('../../experiments/seeds.ts');
        const { rows, verdicts } = await runDemoOverSeeds({ ...flags, seeds: flags.seeds, outputFolder, progress, log });
        console.log(`\nrecall@N on the ${flags.split} splits (percent, 25 m) over seeds ${flags.seeds.join(', ')}, untrained → trained:\n\n${formatSeedsTable(rows, flags.split)}\n`);
        console.log(`${formatSeedsVerdicts(verdicts)}\n`);
        console.log(`results: ${outputFolder}/${flags.split}.{json,md}, each seed's run under ${outputFolder}/seed-*/`);
        return;
      }
      const { runDemo, formatTable, judgeRealGains, formatVerdicts, demoBackbone } = await import('../../experiments/demo.ts');
      const rows = await runDemo({ ...flags, outputFolder, progress, log });
      console.log(`\nrecall@N on the ${flags.split} splits (percent, 25 m), untrained → trained:\n\n${formatTable(rows)}\n`);
      const { planVerdicts, formatSeedsTable, formatSeedsVerdicts, REAL_PLACES_EXPERIMENT } = await import('../../experiments/seeds.ts');
      const backbone = demoBackbone(flags.backbone);
      console.log(`the recipe was chosen on ${backbone.recipeChosenOn}\n`);
      const measured = planVerdicts(REAL_PLACES_EXPERIMENT, flags.backbone);
      if (measured) {
        console.log(`the same recipe over three seeds on the ${measured.split} split (${REAL_PLACES_EXPERIMENT}), untrained → trained:\n\n${formatSeedsTable(measured.rows, measured.split)}\n`);
        console.log(`verdict (the three-seed plan):\n${formatSeedsVerdicts(measured.verdicts)}\n`);
        console.log(`this run alone (one seed, ${flags.split} split):\n${formatVerdicts(judgeRealGains(rows, backbone.target))}\n`);
      } else {
        console.log(`verdict (one seed, this run's ${flags.split} split; not the measurement: ${backbone.measuredBy} makes the three-seed one on the final split):\n${formatVerdicts(judgeRealGains(rows, backbone.target))}\n`);
      }
      console.log(`results: ${outputFolder}/results.{json,md}, predictions and grids under ${outputFolder}/*/`);
    });
  demo.command('precision')
    .description("the demo's models in fp32 and in bf16: recall@1/5/10 on every test set trained and evaluated in fp32, evaluated in bf16, trained and evaluated in bf16, and the bf16 search's agreement with fp32")
    .option('--datasets-folder <dir>', 'where the datasets go', 'data/datasets')
    .option('--output-folder <dir>', 'runs (fp32/, bf16/) and precision.{json,md}', 'runs/precision')
    .option('--fp32-from <dir>', "reuse the fp32 runs of a demo output folder (e.g. runs/demo) instead of training them under <output-folder>/fp32")
    .option('--heads <list>', 'aggregation heads to train', 'gem,netvlad')
    .option('--train-on <data>', `training data: ${TRAIN_ON.join(' | ')}`, 'real')
    .option('--epochs <n>', 'training epochs per model (NetVLAD half of them)', DEFAULT_EPOCHS)
    .option('--queries-per-epoch <n>', 'training queries per epoch', DEFAULT_QUERIES)
    .option('--seed <n>', 'random seed', '0')
    .action(async (raw) => {
      const flags = parseFlags(PrecisionFlags, raw);
      const { runPrecisionComparison, formatPrecisionTable, formatPrecisionSummary, summarizePrecision } = await import('../../experiments/precision.ts');
      const rows = await runPrecisionComparison({ ...flags, progress: Boolean(process.stderr.isTTY), log: (s) => console.error(s) });
      console.log(`\nrecall@N (percent, 25 m): trained and evaluated in fp32 · evaluated in bf16 · trained and evaluated in bf16:\n\n${formatPrecisionTable(rows)}\n`);
      console.log(`${formatPrecisionSummary(summarizePrecision(rows))}\n`);
      console.log(`results: ${flags.outputFolder}/precision.{json,md}`);
    });
  demo.command('datasets')
    .description("only the demo's datasets: render the synthetic cities and link the real photographs (what the study's plans train and test on)")
    .option('--datasets-folder <dir>', 'where the datasets go', 'data/datasets')
    .action(async (raw: { datasetsFolder: string }) => {
      const { ensureDemoDatasets } = await import('../../experiments/demo.ts');
      await ensureDemoDatasets({ datasetsFolder: raw.datasetsFolder, seed: 0, progress: Boolean(process.stderr.isTTY), log: (s) => console.error(s) });
    });
  demo.command('curves')
    .description('recall@1 on the real test sets against training epoch, one line per training data (synthetic, real, mixed): curves.json/.csv and a PNG/SVG per test set')
    .option('--datasets-folder <dir>', 'where the datasets go', 'data/datasets')
    .option('--output-folder <dir>', 'runs and figures', 'runs/curves')
    .option('--head <name>', 'aggregation head: gem | netvlad', 'gem')
    .option('--choices <list>', `training data choices: ${TRAIN_ON.join(',')}`, 'synthetic,real,mixed')
    .option('--epochs <n>', 'training epochs per choice', DEFAULT_EPOCHS)
    .option('--queries-per-epoch <n>', 'training queries per epoch', DEFAULT_QUERIES)
    .option('--seed <n>', 'random seed', '0')
    .action(async (raw) => {
      const flags = parseFlags(CurvesFlags, raw);
      const { runCurves } = await import('../../experiments/real-curves.ts');
      await runCurves({ ...flags, progress: Boolean(process.stderr.isTTY), log: (s) => console.error(s) });
      console.log(`curves: ${flags.outputFolder}/curves.{json,csv}, figures ${flags.outputFolder}/curves-*.{png,svg}`);
    });
}
