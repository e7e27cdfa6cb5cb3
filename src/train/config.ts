// Training options: one validated schema shared by the CLI flags (kebab-case) and config files
// (JSON or YAML, camelCase or kebab-case keys). Defaults are the reference's (DESIGN.md §5).
import { z } from 'zod';
import { TEST_METHODS } from '../eval/test-methods.ts';

const positive = z.number().positive();
const count = z.number().int().positive();

export const AugmentSchema = z.object({
  brightness: z.number().min(0).optional(),
  contrast: z.number().min(0).optional(),
  saturation: z.number().min(0).optional(),
  hue: z.number().min(0).max(0.5).optional(),
  randPerspective: z.number().min(0).max(1).optional(),
  randomResizedCrop: z.number().min(0).lt(1).optional(),
  randomRotation: z.number().min(0).max(360).optional(),
  queryHorizontalFlip: z.number().min(0).max(1).optional(),
  grayscale: z.number().min(0).max(1).optional(),
  gamma: z.number().min(0).max(10).optional(),
  blur: z.number().min(0).max(20).optional(),
  noise: z.number().min(0).max(1).optional(),
}).strict();

export const TrainConfigSchema = z.object({
  // data
  datasetsFolder: z.string().min(1),
  /** One dataset, or several separated by commas whose training sets are mixed (see datasetNames). */
  datasetName: z.string().min(1).refine((s) => s.split(',').every((n) => /^[A-Za-z0-9._-]+$/.test(n.trim())),
    'one dataset name, or several separated by commas (letters, digits, ".", "_" and "-")'),
  /** Several training datasets: each cache loop draws queries equally from each ('balanced') or in proportion to their sizes. */
  mixing: z.enum(['balanced', 'proportional']).default('balanced'),
  /** Image size H x W for training and testing. */
  resize: z.tuple([count, count]).default([480, 640]),
  trainPositivesDistThreshold: positive.default(10),
  valPositiveDistThreshold: positive.default(25),
  augment: AugmentSchema.default({}),
  /** The reference's --horizontal_flip: each batch of tuples mirrored as a whole with probability 0.5. */
  horizontalFlip: z.boolean().default(false),
  // model
  backbone: z.enum(['resnet18conv4', 'resnet18conv5', 'resnet50conv4', 'resnet50conv5', 'vgg16', 'mobilenetv2']).default('resnet18conv4'),
  aggregation: z.string().min(1).default('netvlad'),
  netvladClusters: count.default(64),
  /** GeM, MAC, SPoC/avg, R-MAC: L2 of the local features before pooling (the reference's default), of the pooled descriptor, or none. */
  l2: z.enum(['before_pool', 'after_pool', 'none']).default('before_pool'),
  /** GeM exponent: initial value, and whether it learns. */
  gemP: positive.default(3),
  gemPTrainable: z.boolean().default(true),
  attention: z.boolean().default(false),
  fcOutputDim: count.optional(),
  /** Narrower ResNet stage widths (4 values; tests and tiny experiments); default torchvision's 64,128,256,512. */
  resnetWidths: z.array(count).length(4).optional(),
  /** Frozen backbone layers: the reference's, none (all train) or all (only the head trains). */
  freezeBackbone: z.enum(['reference', 'none', 'all']).default('reference'),
  /** ImageNet weights: a .pth (ResNet/VGG) or a TF.js folder (MobileNetV2). */
  weights: z.string().optional(),
  // optimisation
  optimizer: z.enum(['adam', 'sgd']).default('adam'),
  lr: positive.default(1e-5),
  /** CRN only: learning rate of the CRN layers, and of every other parameter (the reference's lr_crn_layer, lr_crn_net). */
  lrCrnLayer: positive.default(5e-3),
  lrCrnNet: positive.default(5e-4),
  momentum: z.number().min(0).max(1).default(0.9),
  weightDecay: z.number().min(0).optional(),
  epochs: count.default(1000),
  patience: count.default(3),
  batchSize: count.default(4),
  // mining
  /** 'none': no tuples, no mining; only the invariance term trains (invarianceWeight > 0). */
  criterion: z.enum(['triplet', 'sare-ind', 'sare-joint', 'none']).default('triplet'),
  margin: positive.default(0.1),
  /**
   * Camera-invariance distillation (ours, not in the reference): weight of a term that asks the
   * backbone to map each image augmented with `augment` to the feature map the starting network
   * (frozen: `weights`, or the seeded initialisation) gives the clean image. 0 = off.
   */
  invarianceWeight: z.number().min(0).default(0),
  /** Training images (database and queries, drawn equally from each training dataset) per step for that term. */
  invarianceBatch: count.default(16),
  /** Loss normalisation: the reference's sum / (batch x negatives) for every criterion, or the mean per query (the SARE paper's). */
  lossReduction: z.enum(['per-triplet', 'per-query']).default('per-triplet'),
  mining: z.enum(['full', 'partial', 'random']).default('partial'),
  queriesPerEpoch: count.default(5000),
  cacheRefreshRate: count.default(1000),
  negsNumPerQuery: count.default(10),
  negSamplesNum: count.default(1000),
  // evaluation during training
  recallValues: z.array(count).default([1, 5, 10, 20]),
  inferBatchSize: count.default(16),
  /**
   * Start from these weights (a vgl checkpoint, e.g. another run's best.pth) instead of `weights`; the
   * run's own last.pth, when present, still takes precedence (automatic resume). CRN needs a trained
   * NetVLAD here, as in the reference.
   */
  resume: z.string().min(1).optional(),
  /** How the final test describes queries (hard_resize, single_query, central_crop, five_crops, nearest_crop, maj_voting). */
  testMethod: z.enum(TEST_METHODS).default('hard_resize'),
  /** Validation and test describe and search the database in chunks, never holding its descriptors whole (the reference's flag). */
  efficientRamTesting: z.boolean().default(false),
  // run
  seed: z.number().int().min(0).default(0),
  outputFolder: z.string().min(1),
  numWorkers: count.optional(),
}).strict().superRefine((c, ctx) => {
  if (c.criterion === 'none' && c.invarianceWeight === 0) {
    ctx.addIssue({ code: 'custom', path: ['criterion'], message: "'none' trains the invariance term alone: set invarianceWeight > 0" });
  }
  if (c.invarianceWeight > 0 && !Object.values(c.augment).some((v) => typeof v === 'number' && v > 0)) {
    ctx.addIssue({ code: 'custom', path: ['invarianceWeight'], message: 'needs an augmentation (e.g. noise, blur, gamma, grayscale): it teaches invariance to it' });
  }
  if (c.invarianceWeight > 0 && c.freezeBackbone === 'all') {
    ctx.addIssue({ code: 'custom', path: ['invarianceWeight'], message: "acts on the backbone, which freezeBackbone 'all' freezes" });
  }
  if (c.resnetWidths && !c.backbone.startsWith('resnet')) {
    ctx.addIssue({ code: 'custom', path: ['resnetWidths'], message: `applies to ResNet backbones only, not ${c.backbone}` });
  }
  if (c.queriesPerEpoch % c.cacheRefreshRate !== 0) {
    ctx.addIssue({ code: 'custom', path: ['queriesPerEpoch'], message: `must be a multiple of cacheRefreshRate (${c.cacheRefreshRate}), as in the reference: an epoch is whole cache loops` });
  }
  if (c.aggregation === 'crn' && c.resume === undefined) {
    ctx.addIssue({ code: 'custom', path: ['resume'], message: 'CRN starts from a trained NetVLAD checkpoint (the reference refuses CRN without --resume): train NetVLAD first, then pass its best.pth' });
  }
});

export type TrainConfig = z.output<typeof TrainConfigSchema>;

/** The datasets a run trains on: `datasetName` split at commas ("synth-city,gardens_point" mixes both). */
export const datasetNames = (c: Pick<TrainConfig, 'datasetName'>): string[] => c.datasetName.split(',').map((n) => n.trim());
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
