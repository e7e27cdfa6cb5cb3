// `vgl eval`: recall@N of a trained run (or an untrained / ImageNet-initialised network) on one split,
// with predictions and grids written for people; `vgl eval recall --from DIR` recomputes recall at
// other radii from those saved predictions, without touching the network again.
import type { Command } from 'commander';
import { z } from 'zod';
import { parseFlags, UsageError, flagName, imageSizeFlag, flagsFromShape, addSchemaOptions, optionalFlagFields } from '../flags.ts';
import { TEST_METHOD_ENTRIES, TEST_METHOD_OPTIONS, TEST_METHODS } from '../../eval/test-methods.ts';
import { EFFICIENT_RAM_CHUNK } from '../../eval/evaluate.ts';
import { DEFAULT_RECALL_VALUES, type Recalls } from '../../eval/recall.ts';
import type { EvalSummary, RecallFromSummary } from '../../eval/run.ts';
import { BACKBONE_NAMES } from '../../models/network.ts';
import { ATTENTION_BLOCKS, BASE_HEADS } from '../../models/aggregation/index.ts';
import { NETWORK_OPTIONS, NETWORK_OPTION_KEYS } from '../../models/assemble.ts';
import { PRECISIONS } from '../../torch/precision.ts';

// ---------------------------------------------------------------------------------------------
// Flags

/** "1,5,10" → [1, 5, 10]; `integer` for recall values, metres otherwise. */
function numberList(kind: 'integer' | 'metres') {
  return z.string().transform((s, ctx) => {
    const parts = s.split(',').map((x) => x.trim()).filter((x) => x !== '');
    const values = parts.map(Number);
    const bad = parts.filter((_, i) => !Number.isFinite(values[i]) || (kind === 'integer' ? !Number.isInteger(values[i]) || values[i] < 1 : values[i] < 0));
    if (parts.length === 0 || bad.length > 0) {
      ctx.addIssue({ code: 'custom', message: `expected a comma-separated list of ${kind === 'integer' ? 'positive integers, e.g. 1,5,10,20' : 'distances in metres >= 0, e.g. 10,25,50'}${bad.length ? ` (bad: ${bad.join(', ')})` : ''}` });
      return z.NEVER;
    }
    return [...new Set(values)];
  });
}

const size = imageSizeFlag().transform(([height, width]) => ({ height, width }));

const positiveInt = z.coerce.number().int().positive();
const metres = z.coerce.number().finite().nonnegative();

/** The flags that choose a model and the split it describes: vgl eval's, and vgl index build's. */
export const MODEL_AND_SPLIT_FLAGS = {
  run: z.string().min(1).optional(),
  checkpoint: z.string().min(1).optional(),
  backbone: z.string().min(1).optional(),
  aggregation: z.string().min(1).optional(),
  weights: z.string().min(1).optional(),
  // Each backbone's and head's options, declared beside it (src/models/): with --backbone.
  ...optionalFlagFields(NETWORK_OPTIONS),
  datasetsFolder: z.string().min(1).optional(),
  datasetName: z.string().min(1).optional(),
  split: z.string().regex(/^[A-Za-z0-9._-]+$/, 'a split folder name, e.g. test').default('test'),
  resize: size.optional(),
};

/** The backbones' and heads' option flags, commander options of vgl eval and vgl index build. */
export const NETWORK_OPTION_FLAGS = flagsFromShape(NETWORK_OPTIONS);

const NETWORK_FLAGS = ['backbone', 'aggregation', 'weights', ...NETWORK_OPTION_KEYS] as const;

/** --run names its model in its config.json: flags that build a network beside it are refused, by name. */
export function refuseNetworkFlagsWithRun(flags: { run?: string } & Partial<Record<(typeof NETWORK_FLAGS)[number], unknown>>): void {
  const given = NETWORK_FLAGS.filter((k) => flags[k] !== undefined);
  if (flags.run !== undefined && given.length > 0) {
    throw new UsageError(`--run ${flags.run}: the run's config.json names the model; drop ${given.map(flagName).join(', ')}`);
  }
}

export const EvalFlags = z.object({
  ...MODEL_AND_SPLIT_FLAGS,
  testMethod: z.enum(TEST_METHODS).default('hard_resize'),
  recallValues: numberList('integer').optional(),
  valPositiveDistThreshold: metres.optional(),
  radii: numberList('metres').optional(),
  outputFolder: z.string().min(1).optional(),
  inferBatchSize: positiveInt.optional(),
  seed: z.coerce.number().int().min(0).default(0),
  images: z.boolean().default(true),
  saveDescriptors: z.boolean().default(false),
  pcaDim: positiveInt.optional(),
  pcaWhiten: z.boolean().default(false),
  pcaSplit: z.string().regex(/^[A-Za-z0-9._-]+$/, 'a split folder name, e.g. train').optional(),
  pcaDatasetFolder: z.string().min(1).optional(),
  efficientRamTesting: z.boolean().default(false),
  // Each test method's options, declared beside it (src/eval/test-methods.ts).
  ...optionalFlagFields(TEST_METHOD_OPTIONS),
  progress: z.boolean().optional(),
  precision: z.enum(PRECISIONS).default('fp32'),
  json: z.boolean().default(false),
});
export type EvalFlags = z.output<typeof EvalFlags>;

export const RecallFromFlags = z.object({
  from: z.string({ error: 'required: the --output-folder of a previous vgl eval (holds recalls.json and predictions.json)' }).min(1),
  radii: numberList('metres').optional(),
  recallValues: numberList('integer').optional(),
  outputFolder: z.string().min(1).optional(),
  json: z.boolean().default(false),
});
export type RecallFromFlags = z.output<typeof RecallFromFlags>;

// ---------------------------------------------------------------------------------------------
// Output

/** A recall table: one row per radius (the soft-positive radius marked *), one column per N. */
export function formatRecallTable(byRadius: Record<number, Recalls>, ns: readonly number[], mainRadius?: number): string {
  const radii = Object.keys(byRadius).map(Number).sort((a, b) => a - b);
  const lines = [`${'radius (m)'.padEnd(12)}${ns.map((n) => `R@${n}`.padStart(8)).join('')}`];
  for (const r of radii) {
    const label = `${r}${r === mainRadius ? ' *' : ''}`;
    lines.push(`${label.padStart(10)}  ${ns.map((n) => byRadius[r][n].toFixed(2).padStart(8)).join('')}`);
  }
  if (mainRadius !== undefined && radii.includes(mainRadius)) lines.push(`(* soft-positive radius of the evaluation; recall in %)`);
  else lines.push('(recall in %)');
  return lines.join('\n');
}

type Log = (line: string) => void;

// ---------------------------------------------------------------------------------------------
// vgl eval

/** Runs `vgl eval` with parsed flags; returns what it printed as data. */
export async function runEval(flags: EvalFlags, log: Log = (s) => console.error(s)): Promise<EvalSummary> {
  refuseNetworkFlagsWithRun(flags);
  if (flags.run === undefined && flags.checkpoint === undefined && flags.backbone === undefined) {
    throw new UsageError('choose a model: --run DIR (a vgl train run folder), --checkpoint FILE (a vgl checkpoint), or --backbone NAME [--aggregation NAME --weights FILE] (untrained / ImageNet weights)');
  }
  const { evaluateRequest } = await import('../../eval/run.ts');
  return evaluateRequest(flags, log);
}

function printEval(s: EvalSummary): void {
  console.log(`${s.dataset.name}/${s.dataset.split}: ${s.dataset.queries} queries vs ${s.dataset.database} database images, ` +
    `${s.model.backbone} + ${s.model.aggregation} (${s.model.descriptorDim}-d), ${s.method}, ${s.precision.precision}`);
  console.log(formatRecallTable(s.recallsByRadius, s.recallValues, s.radius));
  const t = s.timings;
  console.log(`time: database ${(t.databaseMs / 1000).toFixed(1)} s, queries ${(t.queriesMs / 1000).toFixed(1)} s, search ${(t.searchMs / 1000).toFixed(2)} s, total ${(t.totalMs / 1000).toFixed(1)} s`);
  if (s.outputFolder) {
    const grids = s.files!.filter((f) => f.endsWith('.png')).length;
    console.log(`wrote recalls.json, predictions.json, predictions.csv, model.json${grids ? ` and ${grids} grid PNGs` : ''} in ${s.outputFolder}`);
  }
}

// ---------------------------------------------------------------------------------------------
// vgl eval recall --from DIR

export async function runRecallFrom(flags: RecallFromFlags, log: Log = (s) => console.error(s)): Promise<RecallFromSummary> {
  const { recallFromRequest } = await import('../../eval/run.ts');
  return recallFromRequest(flags, log);
}

function printRecallFrom(s: RecallFromSummary): void {
  console.log(`${s.dataset.name}/${s.dataset.split}: ${s.queries} queries vs ${s.databaseCount} database images, ${s.method}, ` +
    `from ${s.from} (${s.ranks} ranks per query; positions from the ${s.positions === 'dataset' ? 'dataset' : 'saved predictions'})`);
  console.log(formatRecallTable(s.recallsByRadius, s.recallValues, s.evaluatedRadius));
  console.log(`wrote ${s.files.json} and ${s.files.csv}`);
}

// ---------------------------------------------------------------------------------------------
// Registration

/** Flags of `vgl eval` that `vgl eval recall` reads; any other flag given with recall is an error. */
const RECALL_KEYS = new Set(['from', 'radii', 'recallValues', 'outputFolder', 'json']);

export function register(program: Command): void {
  // `recall` is an argument, not a subcommand: both forms share --radii, --recall-values,
  // --output-folder and --json, and commander would give a parent's options to the parent.
  const cmd = program.command('eval')
    .description('recall@N of a trained run or a network on one split (predictions, CSV and PNG grids with --output-folder); ' +
      '`vgl eval recall --from DIR --radii 5,10,25,50,100` recomputes recall at other radii from saved predictions, without the network')
    .argument('[recall]', '"recall": recall at --radii from the predictions a previous vgl eval saved in --from DIR')
    .option('--run <dir>', 'a vgl train run folder (config.json + best.pth)')
    .option('--checkpoint <file>', 'weights to load (default <run>/best.pth); alone, the model comes from the checkpoint\'s config')
    .option('--backbone <name>', `untrained/pretrained network: ${BACKBONE_NAMES.join(' | ')}`)
    .option('--aggregation <name>', `with --backbone: ${BASE_HEADS.join(' | ')}, or <block>+<name> with block ${ATTENTION_BLOCKS.join(' | ')} (attention = CBAM) (netvlad)`)
    .option('--weights <path>', 'with --backbone: ImageNet weights (.pth for ResNet/VGG/ViT, TF.js folder for MobileNetV2; make weights converts Keras\' ResNet-50)')
    .option('--datasets-folder <dir>', 'root of the datasets_vg layout (default: the run\'s)')
    .option('--dataset-name <name>', 'dataset folder under the root (default: the run\'s)')
    .option('--split <name>', 'split to evaluate (test)')
    .option('--resize <HxW>', 'network input size (default: the run\'s, else 480x640)')
    .option('--test-method <name>', `how queries are described: ${TEST_METHOD_ENTRIES.map((m) => `${m.name} (${m.description})`).join('; ')}`)
    .option('--recall-values <list>', 'N of recall@N (default: the run\'s / the saved evaluation\'s, else 1,5,10,20)')
    .option('--val-positive-dist-threshold <m>', 'soft-positive radius in metres (default: the run\'s, else 25)')
    .option('--radii <list>', 'eval: more radii in metres from the same predictions, e.g. 10,50; eval recall: the radii to report')
    .option('--output-folder <dir>', 'eval: recalls.json, predictions.json/.csv, model.json, grids/*.png; eval recall: recall-by-radius.json/.csv (default --from)')
    .option('--infer-batch-size <n>', 'images per forward pass (default: the run\'s, else 16)')
    .option('--seed <n>', 'seed of the k-means initialisation of an untrained NetVLAD (0)')
    .option('--no-images', 'skip the PNG grids')
    .option('--save-descriptors', 'also write database.npy and queries.npy')
    .option('--pca-dim <d>', 'PCA to d dimensions, fitted on database descriptors (of --pca-split), before search')
    .option('--pca-whiten', 'whiten the PCA coordinates')
    .option('--pca-split <name>', 'split whose database fits the PCA (default train, else the evaluated split)')
    .option('--pca-dataset-folder <dir>', 'fit the PCA on the images (.jpg, .png) under this folder instead (relative to --datasets-folder, at most 16384, as the reference)')
    .option('--efficient-ram-testing', `describe and search the database ${EFFICIENT_RAM_CHUNK} images at a time (the database descriptors are never held whole)`)
    .option('--progress', 'progress bars on stderr (default: when stderr is a terminal)')
    .option('--precision <p>', `${PRECISIONS.join(' | ')}: bf16 extracts with a bf16 backbone (fp32 head) and searches with a bf16 pre-filter re-ranked in fp32; auto = bf16 where the CPU has AMX / AVX512-BF16, an extraction timed in both is 1.1x faster in bf16 and the descriptors stay within 2% (fp32)`)
    .option('--from <dir>', 'eval recall: output folder of a previous vgl eval (recalls.json + predictions.json)')
    .option('--json', 'print the summary as JSON')
    .action(async (what: string | undefined, raw: Record<string, unknown>, cmd: Command) => {
      // Only flags the user gave (commander fills `images: true` for --no-images itself).
      const given = Object.fromEntries(Object.entries(raw).filter(([k]) => cmd.getOptionValueSource(k) === 'cli'));
      if (what === 'recall') {
        const extra = Object.keys(given).filter((k) => !RECALL_KEYS.has(k));
        if (extra.length > 0) throw new UsageError(`vgl eval recall reads saved predictions only: ${extra.map(flagName).join(', ')} do(es) not apply`);
        const flags = parseFlags(RecallFromFlags, given);
        const s = await runRecallFrom(flags);
        if (flags.json) console.log(JSON.stringify(s, null, 2));
        else printRecallFrom(s);
        return;
      }
      if (what !== undefined) throw new UsageError(`vgl eval: unknown action "${what}" (the only one is "recall")`);
      if (given.from !== undefined) throw new UsageError('--from: only for vgl eval recall (recall at other radii from saved predictions)');
      const flags = parseFlags(EvalFlags, given);
      const s = await runEval(flags);
      if (flags.json) console.log(JSON.stringify(s, null, 2));
      else printEval(s);
    });
  addSchemaOptions(cmd, NETWORK_OPTION_FLAGS, 'with --backbone: ');
  addSchemaOptions(cmd, flagsFromShape(TEST_METHOD_OPTIONS));
}
