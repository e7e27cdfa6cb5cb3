// Training options: one validated schema shared by the CLI flags (kebab-case) and config files
// (JSON or YAML, camelCase or kebab-case keys). Defaults are the reference's (DESIGN.md §5).
import { z } from 'zod';

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
  horizontalFlip: z.number().min(0).max(1).optional(),
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
  // model
  backbone: z.enum(['resnet18conv4', 'resnet18conv5', 'resnet50conv4', 'resnet50conv5', 'vgg16', 'mobilenetv2']).default('resnet18conv4'),
  aggregation: z.string().min(1).default('netvlad'),
  netvladClusters: count.default(64),
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
  /** Learning rate of the CRN layers (CRN only). */
  lrCrn: positive.default(5e-3),
  momentum: z.number().min(0).max(1).default(0.9),
  weightDecay: z.number().min(0).optional(),
  epochs: count.default(1000),
  patience: count.default(3),
  batchSize: count.default(4),
  // mining
  criterion: z.enum(['triplet', 'sare-ind', 'sare-joint']).default('triplet'),
  margin: positive.default(0.1),
  mining: z.enum(['full', 'partial', 'random']).default('partial'),
  queriesPerEpoch: count.default(5000),
  cacheRefreshRate: count.default(1000),
  negsNumPerQuery: count.default(10),
  negSamplesNum: count.default(1000),
  // evaluation during training
  recallValues: z.array(count).default([1, 5, 10, 20]),
  inferBatchSize: count.default(16),
  // run
  seed: z.number().int().min(0).default(0),
  outputFolder: z.string().min(1),
  numWorkers: count.optional(),
}).strict().superRefine((c, ctx) => {
  if (c.trainPositivesDistThreshold > c.valPositiveDistThreshold) {
    ctx.addIssue({ code: 'custom', path: ['trainPositivesDistThreshold'],
      message: `must not exceed valPositiveDistThreshold (${c.valPositiveDistThreshold} m): hard positives are a subset of soft positives` });
  }
  if (c.resnetWidths && !c.backbone.startsWith('resnet')) {
    ctx.addIssue({ code: 'custom', path: ['resnetWidths'], message: `applies to ResNet backbones only, not ${c.backbone}` });
  }
  if (c.cacheRefreshRate > c.queriesPerEpoch) {
    ctx.addIssue({ code: 'custom', path: ['cacheRefreshRate'], message: `must not exceed queriesPerEpoch (${c.queriesPerEpoch})` });
  }
});

export type TrainConfig = z.output<typeof TrainConfigSchema>;

/** The datasets a run trains on: `datasetName` split at commas ("synth-city,gardens_point" mixes both). */
export const datasetNames = (c: Pick<TrainConfig, 'datasetName'>): string[] => c.datasetName.split(',').map((n) => n.trim());
export type TrainConfigInput = z.input<typeof TrainConfigSchema>;

/** kebab-case → camelCase (config-file keys, CLI flags). */
export const camelCase = (s: string): string => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

export function camelKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [camelCase(k), v]));
}
