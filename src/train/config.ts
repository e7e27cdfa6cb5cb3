// Training options: one validated schema shared by the CLI flags (kebab-case, generated from it) and
// config files (JSON or YAML; camelCase, kebab-case or the reference's snake_case keys). Defaults are
// the reference's (gmberton/deep-visual-geo-localization-benchmark, parser.py).
import { z } from 'zod';
import { TEST_METHODS } from '../eval/test-methods.ts';
import { ModelSpecShape } from '../models/assemble.ts';
import { HEAD_TRAINING } from '../models/aggregation/index.ts';
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

export const TrainConfigSchema = z.object({
  // data
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
  // model: backbone, head and their weights (one shape, shared with evaluation and the service)
  ...ModelSpecShape,
  freezeBackbone: z.enum(['reference', 'none', 'all']).default('reference')
    .describe("frozen backbone layers: the reference's, none (all train) or all (only the head trains)"),
  // optimisation
  optimizer: z.enum(['adam', 'sgd', 'adamw']).default('adam').describe('optimizer (adamw: Adam with decoupled weight decay)'),
  lr: positive.default(1e-5).describe('learning rate'),
  lrCrnLayer: positive.default(5e-3).describe('CRN: learning rate of the CRN layers'),
  lrCrnNet: positive.default(5e-4).describe('CRN: learning rate of the rest of the network'),
  momentum: z.number().min(0).max(1).default(0.9).describe('SGD momentum'),
  weightDecay: z.number().min(0).optional().describe('weight decay (default: Adam 0, SGD 1e-3, AdamW 1e-2 as torch.optim.AdamW)'),
  epochs: count.default(1000).describe('maximum epochs'),
  patience: count.default(3).describe('epochs without val R@5 improvement before stopping'),
  batchSize: count.default(4).describe('tuples per step'),
  averageWeights: z.boolean().default(false)
    .describe('also keep average.pth, the mean of the weights after each epoch (SWA); it is the model the final test uses'),
  // loss and mining
  criterion: z.enum(['triplet', 'sare-ind', 'sare-joint', 'solar', 'none']).default('triplet')
    .describe("loss; 'none': no tuples, no mining, only the invariance term trains"),
  margin: positive.default(0.1).describe('triplet margin'),
  sosWeight: z.number().min(0).default(5).describe("solar: weight λ of the second-order similarity term (SOLAR's default 5)"),
  invarianceWeight: z.number().min(0).default(0)
    .describe('camera-invariance distillation (ours): weight of ||s - t||^2 / ||t||^2, s = the network on an augmented training image, t = the frozen starting network on the clean one; 0 = off'),
  invarianceOn: z.enum(['features', 'descriptors']).default('features')
    .describe("what the invariance term compares: the backbone's feature maps, or the descriptors (the head learns too)"),
  invarianceBatch: count.default(16).describe('training images per step for the invariance term (drawn equally from each training dataset)'),
  invarianceSizes: z.array(z.tuple([count, count])).default([])
    .describe('image sizes HxW the invariance term draws from, one per step (e.g. 120x160,240x320), so the model keeps its gains at the sizes it will be tested at; none = resize'),
  lossReduction: z.enum(['per-triplet', 'per-query']).default('per-triplet')
    .describe("loss normalisation: the reference's sum / (batch x negatives) for every criterion, or the mean per query (the SARE paper's)"),
  mining: z.enum(['full', 'partial', 'random']).default('partial').describe('hard negative mining'),
  queriesPerEpoch: count.default(5000).describe('training queries per epoch (a multiple of the cache refresh rate)'),
  cacheRefreshRate: count.default(1000).describe('queries per cache loop'),
  negsNumPerQuery: count.default(10).describe('negatives per tuple'),
  negSamplesNum: count.default(1000).describe('database images sampled for mining'),
  // evaluation during training
  recallValues: z.array(count).default([1, 5, 10, 20]).describe('N of recall@N'),
  inferBatchSize: count.default(16).describe('images per forward pass when caching and evaluating'),
  resume: z.string().min(1).optional()
    .describe("start from this checkpoint's weights (e.g. another run's best.pth; CRN: a trained NetVLAD); the run's own last.pth still resumes it"),
  testMethod: z.enum(TEST_METHODS).default('hard_resize').describe('how the final test describes queries'),
  efficientRamTesting: z.boolean().default(false)
    .describe('validation and test describe and search the database in chunks (never all its descriptors at once)'),
  // run
  seed: z.number().int().min(0).default(0).describe('random seed'),
  outputFolder: z.string().min(1).describe('run folder (checkpoints, log.jsonl, config.json); an existing run resumes'),
  numWorkers: count.optional().describe('image decoding workers (default: the loader\'s)'),
  precision: z.enum(PRECISIONS).default('fp32')
    .describe('compute precision: bf16 runs convolutions and matrix products in bfloat16 (autocast; weights, optimizer state, losses and the head stay fp32), auto = bf16 where measured to pay for training: CPUs with AMX-BF16 (with AVX512-BF16 alone fp32: vgl\'s bf16 training step measured no faster there), VGL_BF16=0: as if it had none'),
}).strict().superRefine((c, ctx) => {
  if (c.criterion === 'none' && c.invarianceWeight === 0) {
    ctx.addIssue({ code: 'custom', path: ['criterion'], message: "'none' trains the invariance term alone: set invarianceWeight > 0" });
  }
  if (c.invarianceWeight > 0 && !Object.values(c.augment).some((v) => typeof v === 'number' && v > 0)) {
    ctx.addIssue({ code: 'custom', path: ['invarianceWeight'], message: 'needs an augmentation (e.g. noise, blur, gamma, grayscale): it teaches invariance to it' });
  }
  if (c.invarianceOn === 'descriptors' && c.resume !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['invarianceOn'], message: "'descriptors' compares with the starting network's head, which --resume replaces: use 'features'" });
  }
  if (c.invarianceWeight > 0 && c.freezeBackbone === 'all' && c.invarianceOn === 'features') {
    ctx.addIssue({ code: 'custom', path: ['invarianceWeight'], message: "acts on the backbone, which freezeBackbone 'all' freezes" });
  }
  if (c.resnetWidths && !c.backbone.startsWith('resnet')) {
    ctx.addIssue({ code: 'custom', path: ['resnetWidths'], message: `applies to ResNet backbones only, not ${c.backbone}` });
  }
  if (c.resnetFlavour !== undefined && !c.backbone.startsWith('resnet')) {
    ctx.addIssue({ code: 'custom', path: ['resnetFlavour'], message: `applies to ResNet backbones only, not ${c.backbone}` });
  }
  if (c.resnetFlavour === 'keras' && !c.backbone.startsWith('resnet50')) {
    ctx.addIssue({ code: 'custom', path: ['resnetFlavour'], message: `keras is Keras' ResNet50 (its weights): not ${c.backbone}` });
  }
  if (c.queriesPerEpoch % c.cacheRefreshRate !== 0) {
    ctx.addIssue({ code: 'custom', path: ['queriesPerEpoch'], message: `must be a multiple of cacheRefreshRate (${c.cacheRefreshRate}), as in the reference: an epoch is whole cache loops` });
  }
  const training = HEAD_TRAINING[c.aggregation];
  if (training?.startsFrom && c.resume === undefined) {
    const from = training.startsFrom.label;
    ctx.addIssue({ code: 'custom', path: ['resume'], message: `${training.label} starts from a trained ${from} checkpoint (the reference refuses ${training.label} without --resume): train ${from} first, then pass its best.pth` });
  }
});

export type TrainConfig = z.output<typeof TrainConfigSchema>;

/** The datasets a run trains on: `datasetName` split at commas ("synth-city,gardens_point" mixes both). */
export const datasetNames = (c: Pick<TrainConfig, 'datasetName'>): string[] => splitDatasetNames(c.datasetName);
export type TrainConfigInput = z.input<typeof TrainConfigSchema>;

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

/**
 * Training options written as a mapping (a config file, an experiment plan): keys in camelCase,
 * kebab-case or the reference's snake_case names; augmentations at the top level (the reference's
 * way) or under `augment`; sizes as "HxW" strings. Returns the keys TrainConfigSchema takes.
 */
export function trainOptionsFromMapping(data: Record<string, unknown>): Record<string, unknown> {
  const out = camelKeys(data);
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
