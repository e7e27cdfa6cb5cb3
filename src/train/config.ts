// Training options: one validated schema shared by the CLI flags (kebab-case, generated from it) and
// config files (JSON or YAML; camelCase, kebab-case or the reference's snake_case keys). Defaults are
// the reference's (gmberton/deep-visual-geo-localization-benchmark, parser.py).
import { z } from 'zod';
import { TEST_METHODS, TEST_METHOD_OPTIONS } from '../eval/test-methods.ts';
import { CRITERIA, LOSS_OPTIONS } from './losses.ts';
import { MINING_OPTIONS } from './cache.ts';
import { ModelSpecShape, withResolvedFlavour } from '../models/assemble.ts';
import { HEAD_TRAINING } from '../models/aggregation/index.ts';
import { foreignBackboneOptions, BACKBONE_FREEZE } from '../models/network.ts';
import { splitDatasetNames } from '../data/dataset.ts';
import { parseSize } from '../data/image.ts';
import { PRECISIONS } from '../torch/precision.ts';

const positive = z.number().positive();
const count = z.number().int().positive();

// Each option's .describe() is its help: `vgl train --help` is generated from this schema (with the
// defaults and choices below), so defaults live here and nowhere else.
export const AugmentSchema = z.object({
  brightness: z.number().min(0).optional().describe('augmentation: colour jitter brightness'),
  contrast: z.number().min(0).optional().describe('augmentation: colour jitter contrast'),
  saturation: z.number().min(0).optional().describe('augmentation: colour jitter saturation'),
  hue: z.number().min(0).max(0.5).optional().describe('augmentation: colour jitter hue (<= 0.5)'),
  randPerspective: z.number().min(0).max(1).optional().describe('augmentation: random perspective distortion (0-1)'),
  randomResizedCrop: z.number().min(0).lt(1).optional().describe('augmentation: random resized crop, scale in [1-v, 1]'),
  randomRotation: z.number().min(0).max(360).optional().describe('augmentation: random rotation in degrees'),
  queryHorizontalFlip: z.number().min(0).max(1).optional().describe('augmentation: mirror the query alone with this probability (not in the reference)'),
  grayscale: z.number().min(0).max(1).optional().describe('augmentation: probability of a grey query (night, winter)'),
  gamma: z.number().min(0).max(10).optional().describe('augmentation: gamma exponent in [1/(1+v), 1+v]'),
  blur: z.number().min(0).max(20).optional().describe('augmentation: Gaussian blur, sigma in [0, v] pixels'),
  noise: z.number().min(0).max(1).optional().describe('augmentation: sensor noise, std in [0, v] of the [0,1] range'),
}).strict();

// The slices of a training config, each read by one phase. Components declare their own options
// (the backbones and heads in src/models/, the losses in losses.ts, mining in cache.ts); the rest are
// the trainer's own.
export const DATA_SLICE = {
  datasetsFolder: z.string().min(1).describe('root of the datasets_vg layout'),
  datasetName: z.string().min(1).refine((s) => s.split(',').every((n) => /^[A-Za-z0-9._-]+$/.test(n.trim())),
    'one dataset name, or several separated by commas (letters, digits, ".", "_" and "-")')
    .describe('dataset folder under the root; several separated by commas train on their mixed training sets'),
  mixing: z.enum(['balanced', 'proportional']).default('balanced')
    .describe('several datasets: each cache loop draws queries equally from each, or in proportion to their sizes'),
  resize: z.tuple([count, count]).default([480, 640]).describe('image size HxW for training and testing'),
  trainPositivesDistThreshold: positive.default(10).describe('hard positives radius in metres'),
  valPositiveDistThreshold: positive.default(25).describe('soft positives radius in metres'),
  augment: AugmentSchema.default({}),
  horizontalFlip: z.boolean().default(false)
    .describe("the reference's flip: each batch of tuples (queries, positives, negatives) mirrored together with probability 0.5"),
};

export const OPTIM_SLICE = {
  optimizer: z.enum(['adam', 'sgd', 'adamw']).default('adam').describe('optimizer (adamw: Adam with decoupled weight decay)'),
  lr: positive.default(1e-5).describe('learning rate'),
  lrCrnLayer: positive.default(5e-3).describe('CRN: learning rate of the CRN layers'),
  lrCrnNet: positive.default(5e-4).describe('CRN: learning rate of the rest of the network'),
  momentum: z.number().min(0).max(1).default(0.9).describe('SGD momentum'),
  weightDecay: z.number().min(0).optional().describe('weight decay (default: Adam 0, SGD 1e-3, AdamW 1e-2 as torch.optim.AdamW)'),
  freezeBackbone: z.enum(BACKBONE_FREEZE).default('reference')
    .describe("frozen backbone layers: the reference's, none (all train) or all (only the head trains)"),
  epochs: count.default(1000).describe('maximum epochs'),
  patience: count.default(3).describe('epochs without val R@5 improvement before stopping'),
  batchSize: count.default(4).describe('tuples per step'),
  averageWeights: z.boolean().default(false)
    .describe('also keep average.pth, the mean of the weights after each epoch (SWA); it is the model the final test uses'),
};

export const LOSS_SLICE = {
  criterion: z.enum([...CRITERIA, 'none']).default('triplet')
    .describe("loss; 'none': no tuples, no mining, only the invariance term trains"),
  ...LOSS_OPTIONS,
  lossReduction: z.enum(['per-triplet', 'per-query']).default('per-triplet')
    .describe("loss normalisation: the reference's sum / (batch x negatives) for every criterion, or the mean per query (the SARE paper's)"),
  invarianceWeight: z.number().min(0).default(0)
    .describe('camera-invariance distillation (ours): weight of ||s - t||^2 / ||t||^2, s = the network on an augmented training image, t = the frozen starting network on the clean one; 0 = off'),
  invarianceOn: z.enum(['features', 'descriptors']).default('features')
    .describe("what the invariance term compares: the backbone's feature maps, or the descriptors (the head learns too)"),
  invarianceBatch: count.default(16).describe('training images per step for the invariance term (drawn equally from each training dataset)'),
  invarianceSizes: z.array(z.tuple([count, count])).default([])
    .describe('image sizes HxW the invariance term draws from, one per step (e.g. 120x160,240x320), so the model keeps its gains at the sizes it will be tested at; none = resize'),
};

export const MINING_SLICE = {
  ...MINING_OPTIONS,
  queriesPerEpoch: count.default(5000).describe('training queries per epoch (a multiple of the cache refresh rate)'),
  cacheRefreshRate: count.default(1000).describe('queries per cache loop'),
};

export const EVAL_SLICE = {
  recallValues: z.array(count).default([1, 5, 10, 20]).describe('N of recall@N'),
  inferBatchSize: count.default(16).describe('images per forward pass when caching and evaluating'),
  testMethod: z.enum(TEST_METHODS).default('hard_resize').describe('how the final test describes queries'),
  ...TEST_METHOD_OPTIONS,
  efficientRamTesting: z.boolean().default(false)
    .describe('validation and test describe and search the database in chunks (never all its descriptors at once)'),
};

export const RUN_SLICE = {
  seed: z.number().int().min(0).default(0).describe('random seed'),
  outputFolder: z.string().min(1).describe('run folder (checkpoints, log.jsonl, config.json); an existing run resumes'),
  resume: z.string().min(1).optional()
    .describe("start from this checkpoint's weights (e.g. another run's best.pth; CRN: a trained NetVLAD); the run's own last.pth still resumes it"),
  numWorkers: count.optional().describe('image decoding workers (default: the loader\'s)'),
  worldSize: count.default(1)
    .describe('processes the run trains in, recorded by vgl train (--nproc-per-node x --nnodes, or torchrun\'s WORLD_SIZE); a value given is replaced by that'),
  precision: z.enum(PRECISIONS).default('fp32')
    .describe('compute precision: bf16 runs convolutions and matrix products in bfloat16 (autocast; weights, optimizer state, losses and the head stay fp32), auto = bf16 where the CPU has AMX-BF16 or AVX512-BF16 and a training pass of this network, timed at the start in both, is 1.1x faster in bf16 and its descriptors stay within 2% of fp32; VGL_BF16=0: as if it had no bf16 units'),
};

/** A training config's slices, in the order of the data's flow; each phase receives its slice. */
export const TRAIN_SLICES = {
  data: DATA_SLICE, model: ModelSpecShape, optim: OPTIM_SLICE, loss: LOSS_SLICE, mining: MINING_SLICE, eval: EVAL_SLICE, run: RUN_SLICE,
} as const;
export type SliceName = keyof typeof TRAIN_SLICES;

/** Options whose flat name (flag, config-file key of a flat config) is not their name in the slice. */
const FLAT_ALIASES: Readonly<Record<string, string>> = { 'mining.method': 'mining' };

/** Every option by its flat name: the slice and key it lives at. Flat names are unique (checked). */
export const FLAT_OPTIONS: ReadonlyMap<string, { slice: SliceName; key: string; field: z.ZodType }> = (() => {
  const out = new Map<string, { slice: SliceName; key: string; field: z.ZodType }>();
  for (const [slice, shape] of Object.entries(TRAIN_SLICES) as [SliceName, Record<string, z.ZodType>][]) {
    for (const [key, field] of Object.entries(shape)) {
      const flat = FLAT_ALIASES[`${slice}.${key}`] ?? key;
      if (out.has(flat)) throw new Error(`training option ${flat} is declared in ${out.get(flat)!.slice} and in ${slice}`);
      out.set(flat, { slice, key, field });
    }
  }
  return out;
})();

/** The flat name of an option path (['optim', 'lr'] → lr, ['mining', 'method'] → mining); other paths joined by dots. */
export function flatNameOf(path: readonly PropertyKey[]): string {
  const [slice, key, ...rest] = path.map(String);
  if (key !== undefined && slice in TRAIN_SLICES) {
    const flat = FLAT_ALIASES[`${slice}.${key}`] ?? key;
    return [flat, ...rest].join('.');
  }
  return path.map(String).join('.');
}

/**
 * A config in either form → the nested one: options at the top level by their flat names (today's
 * config files, plans, checkpoints and config.json written before the slices) go to their slice;
 * a slice given as a mapping is taken as it is (a flat option beside it joins it). Unknown keys stay
 * where they are, for the schema to name.
 */
export function nestConfig(input: unknown): unknown {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return input;
  const given = input as Record<string, unknown>;
  const isSlice = (k: string) => k in TRAIN_SLICES && given[k] !== null && typeof given[k] === 'object' && !Array.isArray(given[k]);
  // `{ ...nestedConfig, mining: 'full' }` replaces the whole mining slice by the method: refused, not guessed.
  if (typeof given.mining === 'string' && Object.keys(given).some(isSlice)) {
    throw new Error("a config with slices (data, model, ...) takes the mining method as mining.method, not mining: the flat 'mining' replaced the mining slice (change options with withOptions)");
  }
  const out: Record<string, unknown> = {};
  const sliceOf = (name: SliceName) => (out[name] ??= {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(given)) {
    if (k in TRAIN_SLICES && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      Object.assign(sliceOf(k as SliceName), v);
      continue;
    }
    const at = FLAT_OPTIONS.get(k);
    if (at) sliceOf(at.slice)[at.key] = v;
    else out[k] = v;
  }
  for (const name of Object.keys(TRAIN_SLICES) as SliceName[]) sliceOf(name);
  return out;
}

/** A nested config's options by flat name (the other direction of nestConfig: messages, diffs, flags). */
export function flattenConfig(config: TrainConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [flat, { slice, key }] of FLAT_OPTIONS) out[flat] = (config[slice] as Record<string, unknown>)[key];
  return out;
}

const slice = <S extends Record<string, z.ZodType>>(shape: S) => z.object(shape).strict();

const NestedTrainConfig = z.object({
  data: slice(DATA_SLICE), model: slice(ModelSpecShape), optim: slice(OPTIM_SLICE), loss: slice(LOSS_SLICE),
  mining: slice(MINING_SLICE), eval: slice(EVAL_SLICE), run: slice(RUN_SLICE),
}).strict().superRefine(({ data, model, optim, loss, mining, run }, ctx) => {
  const issue = (path: string[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  if (loss.criterion === 'none' && loss.invarianceWeight === 0) {
    issue(['loss', 'criterion'], "'none' trains the invariance term alone: set invarianceWeight > 0");
  }
  if (loss.invarianceWeight > 0 && !Object.values(data.augment).some((v) => typeof v === 'number' && v > 0)) {
    issue(['loss', 'invarianceWeight'], 'needs an augmentation (e.g. noise, blur, gamma, grayscale): it teaches invariance to it');
  }
  if (loss.invarianceOn === 'descriptors' && run.resume !== undefined) {
    issue(['loss', 'invarianceOn'], "'descriptors' compares with the starting network's head, which --resume replaces: use 'features'");
  }
  if (loss.invarianceWeight > 0 && optim.freezeBackbone === 'all' && loss.invarianceOn === 'features') {
    issue(['loss', 'invarianceWeight'], "acts on the backbone, which freezeBackbone 'all' freezes");
  }
  for (const { key, message } of foreignBackboneOptions(model.backbone, model)) issue(['model', key], message);
  if (model.resnetFlavour === 'keras' && !model.backbone.startsWith('resnet50')) {
    issue(['model', 'resnetFlavour'], `keras is Keras' ResNet50 (its weights): not ${model.backbone}`);
  }
  if (mining.queriesPerEpoch % mining.cacheRefreshRate !== 0) {
    issue(['mining', 'queriesPerEpoch'], `must be a multiple of cacheRefreshRate (${mining.cacheRefreshRate}), as in the reference: an epoch is whole cache loops`);
  }
  const training = HEAD_TRAINING[model.aggregation];
  if (training?.startsFrom && run.resume === undefined) {
    const from = training.startsFrom.label;
    issue(['run', 'resume'], `${training.label} starts from a trained ${from} checkpoint (the reference refuses ${training.label} without --resume): train ${from} first, then pass its best.pth`);
  }
});

/**
 * A training config: nested in slices (data, model, optim, loss, mining, eval, run), read from either
 * form (nestConfig): flat options as the reference, today's flags and older files spell them.
 */
export const TrainConfigSchema = z.preprocess(nestConfig, NestedTrainConfig);

export type TrainConfig = z.output<typeof NestedTrainConfig>;
export type DataConfig = TrainConfig['data'];
export type OptimConfig = TrainConfig['optim'];
export type LossConfig = TrainConfig['loss'];
export type MiningConfig = TrainConfig['mining'];
export type EvalConfig = TrainConfig['eval'];
export type RunConfig = TrainConfig['run'];

/** Every option at the top level by its flat name: what flags and flat config files spell. */
export const FLAT_SHAPE = {
  ...DATA_SLICE, ...ModelSpecShape, ...OPTIM_SLICE, ...LOSS_SLICE,
  mining: MINING_OPTIONS.method, negsNumPerQuery: MINING_OPTIONS.negsNumPerQuery, negSamplesNum: MINING_OPTIONS.negSamplesNum,
  queriesPerEpoch: MINING_SLICE.queriesPerEpoch, cacheRefreshRate: MINING_SLICE.cacheRefreshRate,
  ...EVAL_SLICE, ...RUN_SLICE,
};
/** A config written flat (tests, plans, the reference's names after camelCase). */
export type TrainConfigInput = z.input<z.ZodObject<typeof FLAT_SHAPE>>;

/** The config with some options changed (by their flat names), validated again. */
export function withOptions(config: TrainConfig, over: Partial<TrainConfigInput>): TrainConfig {
  return TrainConfigSchema.parse({ ...flattenConfig(config), ...over });
}

/** The config with its ResNet flavour written out (what a run records, so it rebuilds without the weights file). */
export const withResolvedModel = (c: TrainConfig): TrainConfig => ({ ...c, model: withResolvedFlavour(c.model) });

/** The datasets a run trains on: `datasetName` split at commas ("synth-city,gardens_point" mixes both). */
export const datasetNames = (c: { data: Pick<DataConfig, 'datasetName'> }): string[] => splitDatasetNames(c.data.datasetName);

/** kebab-case or snake_case → camelCase (config-file keys, CLI flags). */
export const camelCase = (s: string): string => s.replace(/[-_]([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** The reference's option names that vgl spells differently (after camelCase). */
export const REFERENCE_NAMES: Readonly<Record<string, string>> = { trainBatchSize: 'batchSize', epochsNum: 'epochs', optim: 'optimizer' };

/** Config-file keys in any spelling (camelCase, kebab-case, the reference's snake_case names) → the schema's. */
export function camelKeys(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    const c = camelCase(k);
    const key = REFERENCE_NAMES[c] ?? c;
    if (key in out) throw new Error(`option ${key} is given twice (as ${k} and another spelling)`);
    out[key] = v;
  }
  return out;
}

const AUGMENT_KEYS = new Set(Object.keys(AugmentSchema.shape));

/** A mapping's slices (`optim: {lr: 1e-3}`) as flat options (`lr: 1e-3`); flat options pass through. */
function flattenSlices(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const put = (k: string, v: unknown, where: string) => {
    if (k in out) throw new Error(`option ${k} is given twice (${where})`);
    out[k] = v;
  };
  for (const [k, v] of Object.entries(o)) {
    if (k in TRAIN_SLICES && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [key, value] of Object.entries(camelKeys(v as Record<string, unknown>))) {
        put(key === 'augment' ? key : flatNameOf([k, key]), value, `under ${k} and elsewhere`);
      }
    } else {
      put(k, v, 'twice');
    }
  }
  return out;
}

/**
 * Training options written as a mapping (a config file, an experiment plan): keys in camelCase,
 * kebab-case or the reference's snake_case names; augmentations at the top level (the reference's
 * way) or under `augment`; sizes as "HxW" strings. Returns the keys TrainConfigSchema takes.
 */
export function trainOptionsFromMapping(data: Record<string, unknown>): Record<string, unknown> {
  const out = camelKeys(flattenSlices(camelKeys(data)));
  const augment = out.augment && typeof out.augment === 'object' ? camelKeys(out.augment as Record<string, unknown>) : {};
  // The reference's augmentation options sit at the top level (brightness: 0.2); ours under augment.
  for (const key of Object.keys(out)) {
    if (!AUGMENT_KEYS.has(key)) continue;
    if (key in augment) throw new Error(`option ${key} is given twice (at the top level and under augment)`);
    augment[key] = out[key];
    delete out[key];
  }
  if (Object.keys(augment).length > 0 || out.augment !== undefined) out.augment = augment;
  const size = (v: unknown) => (typeof v === 'string' ? parseSize(v) ?? v : v);
  if (out.resize !== undefined) out.resize = size(out.resize);
  if (typeof out.invarianceSizes === 'string') out.invarianceSizes = out.invarianceSizes.split(',').map(size);
  else if (Array.isArray(out.invarianceSizes)) out.invarianceSizes = out.invarianceSizes.map(size);
  return out;
}
