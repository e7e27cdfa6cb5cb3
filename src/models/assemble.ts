// One place that assembles a network: a model spec (backbone + head options, the part of a training
// config that decides the network) → GeoLocalizationNet, with ImageNet weights, a trained checkpoint
// or a run folder's, a NetVLAD-style head initialised from data (k-means on local features), on a
// device. Training, evaluation, the demo and the service build their networks here.
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import * as torch from '../torch/index.ts';
import type { Tensor } from '../torch/index.ts';
import { loadCheckpoint, type Checkpoint } from '../torch/checkpoint.ts';
import type { GeoDataset } from '../data/dataset.ts';
import { loadImage, type ImageSize } from '../data/image.ts';
import { loadBatches } from '../data/loader.ts';
import { Rng, deriveSeed } from '../data/random.ts';
import { buildNetwork, BACKBONE_NAMES, BACKBONE_OPTIONS, type GeoLocalizationNet } from './network.ts';
import { BASE_HEADS, HEAD_OPTIONS, formatAggregationName, parseAggregationName, type AggregationName, type AttentionBlockName } from './aggregation/index.ts';
import { isDataInitialised } from './types.ts';
import type { ResNetFlavour } from './resnet.ts';
import { declaredFlavourOfFile } from './weights/keras-resnet50.ts';
import { OptionFileError } from '../errors.ts';

export const ATTENTION_KINDS = ['none', 'cbam', 'nonlocal', 'soa'] as const;
type AttentionKind = (typeof ATTENTION_KINDS)[number];
const ATTENTION_BLOCK_OF: Record<Exclude<AttentionKind, 'none'>, AttentionBlockName> = { cbam: 'attention', nonlocal: 'nonlocal', soa: 'soa' };

/**
 * Every backbone's and every head's options, each declared once beside its component: what a spec,
 * a training config and every command that builds a network (vgl train, eval, index build) spell.
 */
export const NETWORK_OPTIONS = { ...BACKBONE_OPTIONS, ...HEAD_OPTIONS };
export type NetworkOptionValues = z.output<z.ZodObject<typeof NETWORK_OPTIONS>>;
export const NETWORK_OPTION_KEYS = Object.keys(NETWORK_OPTIONS) as Extract<keyof typeof NETWORK_OPTIONS, string>[];

/** The options that decide the network; a training config holds them (TrainConfigSchema spreads this shape). */
export const ModelSpecShape = {
  backbone: z.enum(BACKBONE_NAMES).default('resnet18conv4').describe('backbone, cut at conv4 or conv5'),
  aggregation: z.enum(BASE_HEADS).default('netvlad').describe("aggregation head (avg: the student report's average pooling, = spoc)"),
  // true / false: the switch it used to be (CBAM or nothing), also as flag strings
  attention: z.union([z.boolean(), z.enum([...ATTENTION_KINDS, 'true', 'false'])]).default('none')
    .transform((a): AttentionKind => (a === true || a === 'true' ? 'cbam' : a === false || a === 'false' ? 'none' : a))
    .describe('attention block before the head: none, cbam (true), nonlocal (Wang et al. 2018) or soa (SOLAR\'s second-order attention)'),
  ...NETWORK_OPTIONS,
  weights: z.string().optional().describe('ImageNet weights: .pth (ResNet, VGG) or TF.js folder (MobileNetV2)'),
};
export const ModelSpecSchema = z.object(ModelSpecShape);
export type ModelSpec = z.output<typeof ModelSpecSchema>;

/**
 * The ResNet flavour a spec builds: its own, else the one its weights file declares (a converted Keras
 * file says keras), else torchvision. Undefined for other backbones.
 */
export function resnetFlavourOf(spec: Pick<ModelSpec, 'backbone' | 'resnetFlavour' | 'weights'>): ResNetFlavour | undefined {
  if (!spec.backbone.startsWith('resnet')) return undefined;
  if (spec.resnetFlavour !== undefined) return spec.resnetFlavour;
  return (spec.weights !== undefined ? declaredFlavourOfFile(spec.weights) : undefined) ?? 'torchvision';
}

/** The spec with its ResNet flavour written out (what a run records, so it rebuilds without the weights file). */
export function withResolvedFlavour<S extends Pick<ModelSpec, 'backbone' | 'resnetFlavour' | 'weights'>>(spec: S): S {
  const flavour = resnetFlavourOf(spec);
  return flavour === undefined || flavour === spec.resnetFlavour ? spec : { ...spec, resnetFlavour: flavour };
}

/** The head's registry name: `<block>+<head>` with an attention block (CBAM keeps its old name, attention+). */
export function aggregationNameOf(spec: Pick<ModelSpec, 'aggregation' | 'attention'>): AggregationName {
  return formatAggregationName({ block: spec.attention === 'none' ? undefined : ATTENTION_BLOCK_OF[spec.attention], head: spec.aggregation });
}

/** The inverse of aggregationNameOf: a registry name → the spec's head and attention kind. */
export function aggregationSpecOf(name: AggregationName): Pick<ModelSpec, 'aggregation' | 'attention'> {
  const { block, head } = parseAggregationName(name);
  const attention = block === undefined ? 'none' : ATTENTION_KINDS.find((k) => k !== 'none' && ATTENTION_BLOCK_OF[k] === block)!;
  return { aggregation: head, attention };
}

/** The network a spec describes, with fresh (seeded by the caller) weights. */
export function buildModel(spec: ModelSpec): GeoLocalizationNet {
  return buildNetwork({ ...spec, aggregation: aggregationNameOf(spec), resnetFlavour: resnetFlavourOf(spec) });
}

export interface InitialiseOptions {
  /** Network input size. */
  size: ImageSize;
  /** Images per forward pass. */
  batchSize: number;
  /** Seeds the choice of images and positions, and k-means. */
  seed: number;
  log?: (s: string) => void;
  device?: torch.Device;
}

/** 500 random database images; of several datasets, as many from each as it can give (a large one must not set every cluster). */
function initImages(ds: GeoDataset, rng: Rng, count = 500): string[] {
  const parts = ds.parts ?? [{ database: [0, ds.databasePaths.length] as const }];
  const groups = parts.map(({ database: [start, end] }) => Array.from({ length: end - start }, (_, i) => start + i));
  return rng.sampleBalanced(groups, count).map((i) => ds.databasePaths[i]);
}

/** NetVLAD-style heads: k-means over local features of random database images of `ds` (others: nothing to do). */
export async function initialiseHeadFromData(net: GeoLocalizationNet, ds: GeoDataset, o: InitialiseOptions): Promise<void> {
  if (!isDataInitialised(net.aggregation)) return;
  const device = o.device ?? torch.defaultDevice();
  const rng = new Rng(deriveSeed(o.seed, 0x1417));
  const images = initImages(ds, rng);
  const perImage = 100;
  const chunks: Tensor[] = [];
  net.eval();
  for await (const batch of loadBatches(images, (p) => loadImage(p, { size: o.size, normalization: net.inputNormalization }), { batchSize: o.batchSize })) {
    chunks.push(torch.keep(torch.tidy(() => torch.inferenceMode(() => {
      const x = torch.fromHost(batch.images);
      const maps = net.features(device === 'cpu' ? x : x.to(device)); // [B, C, h, w]
      const [b, c, h, w] = maps.shape;
      const locals = maps.permute(0, 2, 3, 1).reshape(b * h * w, c);
      const pick: number[] = [];
      for (let i = 0; i < b; i++) {
        const k = Math.min(perImage, h * w);
        for (const j of rng.sample(h * w, k)) pick.push(i * h * w + j);
      }
      return locals.indexSelect(0, torch.tensor(Int32Array.from(pick), undefined, { dtype: 'int64' })).clone();
    }))));
  }
  const descriptors = torch.cat(chunks, 0);
  torch.dispose(chunks);
  o.log?.(`initialising ${net.config.aggregation} from ${descriptors.size(0)} local descriptors of ${images.length} database images`);
  net.aggregation.initFromDescriptors(descriptors, deriveSeed(o.seed, 0x1418));
  descriptors.dispose();
}

/** Loads every weight of a checkpoint into `net` (strict: a missing, extra or misshapen key is an error naming the file). */
export async function loadTrainedWeights<M = unknown>(net: GeoLocalizationNet, path: string, loaded?: Checkpoint<M>): Promise<{ meta: M }> {
  if (!loaded && !existsSync(path)) throw new Error(`${path}: checkpoint not found`);
  const ck = loaded ?? (await loadCheckpoint<M>(path));
  try {
    torch.loadStateDict(net, ck.stateDict, { strict: true, source: path });
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(msg.includes(path) ? msg : `${path}: ${msg}`);
  }
  return { meta: ck.meta };
}

/** The files a vgl train run folder holds. */
export const RUN_FILES = { config: 'config.json', best: 'best.pth', last: 'last.pth', average: 'average.pth' } as const;

/**
 * The checkpoint that holds the model a run reports: with --average-weights the average of the
 * end-of-epoch weights (what its final test and the demo evaluate), else the best epoch by val R@5.
 */
export function reportedCheckpointOf(dir: string, averageWeights: boolean): { path: string; reason: string } {
  return averageWeights
    ? { path: join(dir, RUN_FILES.average), reason: 'the weight average, the model the run reports (it trained with --average-weights)' }
    : { path: join(dir, RUN_FILES.best), reason: 'the best epoch by val R@5, the model the run reports' };
}

/** The files of a training run a trained model is read from. */
export interface RunFiles {
  dir: string;
  /** `<dir>/config.json` (the resolved training config). */
  config: string;
  /** The weights: the run's reported model (reportedCheckpointOf) unless another checkpoint was named. */
  checkpoint: string;
  /** Why this checkpoint, for the log line that names it. */
  reason: string;
}

/** A run folder's config.json; errors name the missing folder or file. */
export function runConfigPath(dir: string): string {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new OptionFileError('run', 'run folder not found', dir);
  const configPath = join(dir, RUN_FILES.config);
  if (!existsSync(configPath)) throw new OptionFileError('run', 'config.json missing (a run folder written by vgl train holds config.json, best.pth and last.pth)', dir);
  return configPath;
}

/**
 * The checkpoint of a run folder whose config (runConfigPath) is `config`: `checkpoint` when
 * named, else the model the run reports (average.pth when it averaged weights, else best.pth). Errors
 * name the missing folder or file.
 */
export function runFiles(dir: string, checkpoint: string | undefined, config: Record<string, unknown>): RunFiles {
  const configPath = join(dir, RUN_FILES.config);
  if (checkpoint !== undefined) {
    if (!existsSync(checkpoint)) throw new OptionFileError('checkpoint', 'file not found', checkpoint);
    return { dir, config: configPath, checkpoint, reason: 'named by --checkpoint' };
  }
  const reported = reportedCheckpointOf(dir, config.averageWeights === true);
  if (!existsSync(reported.path)) {
    const last = join(dir, RUN_FILES.last);
    const hint = existsSync(last) ? `; ${last} exists (the run has not finished an epoch yet?): name it as the checkpoint` : '';
    throw new OptionFileError('run', `${basename(reported.path)} missing (${reported.reason})${hint}`, dir);
  }
  return { dir, config: configPath, checkpoint: reported.path, reason: reported.reason };
}

/** Reads a run's config.json as a plain object (validated by the caller, or by modelSpecOf). */
export async function readRunConfig(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new Error(`${path}: expected a JSON object of training options`);
  return data as Record<string, unknown>;
}

/** The training config stored in a vgl checkpoint's metadata (best.pth and last.pth both hold one), or null. */
export function checkpointConfig(meta: unknown): Record<string, unknown> | null {
  if (meta && typeof meta === 'object' && 'config' in meta) {
    const c = (meta as { config: unknown }).config;
    if (c && typeof c === 'object' && !Array.isArray(c)) return c as Record<string, unknown>;
  }
  return null;
}

/** The model spec inside a training config (other options ignored); `where` names the file in errors. */
export function modelSpecOf(given: Record<string, unknown>, where: string): ModelSpec {
  // A config nested in slices holds the spec as its `model`; a flat one (config.json, checkpoints) at the top.
  const model = given.model;
  const config = model !== null && typeof model === 'object' && !Array.isArray(model) ? model as Record<string, unknown> : given;
  // A run's config is resolved (every option written): a missing backbone or head means another file.
  const absent = ['backbone', 'aggregation'].filter((k) => !(k in config));
  if (absent.length > 0) throw new Error(`${where}: not a vgl training config (${absent.join(', ')} missing)`);
  const keys = Object.keys(ModelSpecShape);
  const parsed = ModelSpecSchema.safeParse(Object.fromEntries(Object.entries(config).filter(([k]) => keys.includes(k))));
  if (!parsed.success) {
    throw new Error(`${where}: not a vgl model config (${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')})`);
  }
  return parsed.data;
}

/** A network ready to use and where it came from. */
export interface AssembledModel {
  net: GeoLocalizationNet;
  spec: ModelSpec;
  /** The training config it came with (run or checkpoint), or null for a spec with ImageNet weights. */
  config: Record<string, unknown> | null;
  source: 'run' | 'checkpoint' | 'spec';
  checkpoint?: string;
  /** The weights file loaded and why that one, or what the spec's weights are: for the log line every command prints. */
  loaded: string;
}

/** The trained network of a run folder (the model it reports, unless `checkpoint` names another file), on `device`. */
export async function modelFromRun(dir: string, checkpoint?: string, device: torch.Device = torch.defaultDevice()): Promise<AssembledModel> {
  const config = await readRunConfig(runConfigPath(dir));
  const files = runFiles(dir, checkpoint, config);
  const spec = modelSpecOf(config, files.config);
  const net = buildModel(spec);
  try {
    await loadTrainedWeights(net, files.checkpoint);
  } catch (e) {
    net.dispose();
    throw e;
  }
  if (device !== 'cpu') net.to(device);
  return { net, spec, config, source: 'run', checkpoint: files.checkpoint, loaded: `${files.checkpoint} (${files.reason})` };
}

/** The network of a vgl checkpoint, described by the training config in its metadata. */
export async function modelFromCheckpoint(path: string, device: torch.Device = torch.defaultDevice()): Promise<AssembledModel> {
  if (!existsSync(path)) throw new OptionFileError('checkpoint', 'file not found', path);
  const ck = await loadCheckpoint(path);
  const config = checkpointConfig(ck.meta);
  if (config === null) throw new OptionFileError('checkpoint', 'holds no vgl training config; name the model by its backbone and aggregation, or give its run folder', path);
  const spec = modelSpecOf(config, path);
  const net = buildModel(spec);
  try {
    await loadTrainedWeights(net, path, ck);
  } catch (e) {
    net.dispose();
    throw e;
  }
  if (device !== 'cpu') net.to(device);
  return { net, spec, config, source: 'checkpoint', checkpoint: path, loaded: `${path} (named by --checkpoint)` };
}

/**
 * The network of a spec with its ImageNet weights (spec.weights) or fresh ones, on `device`. A
 * NetVLAD-style head still needs initialiseHeadFromData.
 */
export async function modelFromSpec(spec: ModelSpec, device: torch.Device = torch.defaultDevice()): Promise<AssembledModel> {
  if (spec.weights !== undefined && !existsSync(spec.weights)) throw new OptionFileError('weights', 'not found', spec.weights);
  const net = buildModel(spec);
  try {
    if (spec.weights !== undefined) await net.loadPretrained(spec.weights);
  } catch (e) {
    net.dispose();
    throw e;
  }
  if (device !== 'cpu') net.to(device);
  return { net, spec, config: null, source: 'spec', loaded: spec.weights !== undefined ? `${spec.weights} (ImageNet weights of the backbone)` : 'no weights file (an untrained network)' };
}

/** Where a network comes from: a run folder (its reported model, or another checkpoint), a vgl checkpoint with its own config, or a spec (ImageNet weights, or a checkpoint's). */
export type ModelSource =
  | { run: string; checkpoint?: string }
  | { checkpoint: string }
  | { spec: ModelSpec; checkpoint?: string };

/** The one model resolution: the network a source names, on `device`, and what was loaded. */
export async function resolveModel(source: ModelSource, device: torch.Device = torch.defaultDevice()): Promise<AssembledModel> {
  if ('run' in source) return modelFromRun(source.run, source.checkpoint, device);
  if (!('spec' in source)) return modelFromCheckpoint(source.checkpoint, device);
  const model = await modelFromSpec(source.spec, device);
  if (source.checkpoint === undefined) return model;
  try {
    await loadTrainedWeights(model.net, source.checkpoint);
  } catch (e) {
    model.net.dispose();
    throw e;
  }
  return { ...model, source: 'checkpoint', checkpoint: source.checkpoint, loaded: `${source.checkpoint} (named by --checkpoint, into the network the spec describes)` };
}
