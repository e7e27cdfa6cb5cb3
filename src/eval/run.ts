// The evaluation use case behind `vgl eval`: resolve the model (a run folder, a checkpoint, or a
// network named by its parts), the data (flags first, then the run's config), an untrained
// NetVLAD's k-means, PCA; evaluate; write model.json next to the results. And recall at other
// radii from a previous evaluation's saved predictions. The CLI only parses flags and prints.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../util/atomic.ts';
import { csvText } from '../util/csv.ts';
import { UsageError, OptionError } from '../errors.ts';
import * as torch from '../torch/index.ts';
import { savePth } from '../torch/serialization/index.ts';
import { openDataset, openDatasets, splitDatasetNames } from '../data/dataset.ts';
import { imageSize, type ImageSize } from '../data/image.ts';
import { isDataInitialised } from '../models/types.ts';
import { BACKBONE_NAMES } from '../models/network.ts';
import { AGGREGATION_NAMES, isAggregationName } from '../models/aggregation/index.ts';
import { checkMemory, inferenceMemory } from '../models/memory.ts';
import { initialiseHeadFromData, resolveModel, aggregationSpecOf, ModelSpecSchema, NETWORK_OPTION_KEYS, type AssembledModel, type NetworkOptionValues } from '../models/assemble.ts';
import { EFFICIENT_RAM_CHUNK } from './evaluate.ts';
import { evaluateNet } from './evaluate-net.ts';
import type { DescriptorModel } from './extract.ts';
import { fitPca, pcaFolderImages, withPca } from './pca.ts';
import { DEFAULT_RECALL_VALUES, type Recalls } from './recall.ts';
import type { TestMethod } from './test-methods.ts';
import { readSavedEvaluation, recallFromSaved } from './model-io.ts';
import { choosePrecision, type Bf16Check } from './precision-check.ts';

/** What to evaluate, and how. Absent data options come from the run's training config. */
export interface EvaluationRequest extends Partial<NetworkOptionValues> {
  /** A vgl train run folder (config.json + best.pth). */
  run?: string;
  /** Weights to load (default <run>/best.pth); alone, the model comes from the checkpoint's config. */
  checkpoint?: string;
  /** A network named by its parts (untrained, or ImageNet backbone weights). */
  backbone?: string;
  aggregation?: string;
  weights?: string;
  datasetsFolder?: string;
  datasetName?: string;
  split: string;
  resize?: ImageSize;
  testMethod: TestMethod;
  recallValues?: number[];
  valPositiveDistThreshold?: number;
  radii?: number[];
  outputFolder?: string;
  inferBatchSize?: number;
  /** Seeds an untrained NetVLAD's k-means and the PCA folder sample. */
  seed: number;
  images: boolean;
  saveDescriptors: boolean;
  pcaDim?: number;
  pcaWhiten: boolean;
  pcaSplit?: string;
  pcaDatasetFolder?: string;
  efficientRamTesting: boolean;
  /** maj_voting weight (0.01). */
  majorityWeight?: number;
  progress?: boolean;
  /** Compute precision of extraction and search (default fp32); auto: bf16 where the CPU has bf16 units. */
  precision?: torch.PrecisionOption;
}

export interface EvalSummary {
  model: { source: 'run' | 'checkpoint' | 'flags'; run?: string; checkpoint?: string; backbone: string; aggregation: string; descriptorDim: number; initialisedFrom?: string;
    pca?: { dim: number; whiten: boolean; fittedOn: string; explainedVariance: number } };
  dataset: { root: string; name: string; split: string; database: number; queries: number };
  /** What ran and why (extraction and search; the head and the recalls in fp32 either way). */
  precision: { precision: torch.Precision; reason: string; check?: Bf16Check };
  method: string;
  radius: number;
  recallValues: number[];
  recalls: Recalls;
  recallsByRadius: Record<number, Recalls>;
  timings: Record<string, number>;
  outputFolder?: string;
  files?: string[];
}

type Log = (line: string) => void;

/** The data options a run's training config supplies when the request leaves them out. */
const RunDataDefaults = z.object({
  datasetsFolder: z.string().optional(),
  datasetName: z.string().optional(),
  resize: z.tuple([z.number(), z.number()]).optional(),
  recallValues: z.array(z.number()).optional(),
  valPositiveDistThreshold: z.number().optional(),
  inferBatchSize: z.number().optional(),
});

/**
 * The data a request reads with a model: each option as given, else the run's config, else the default
 * (480x640, 16 images per batch); the datasets folder and name are required one way or the other. A
 * batch that cannot fit in memory at that size is refused here, before any image is read.
 */
export function dataOfRequest(model: AssembledModel, r: Pick<EvaluationRequest, 'datasetsFolder' | 'datasetName' | 'resize' | 'inferBatchSize'>, log: Log) {
  const defaults = RunDataDefaults.parse(model.config ?? {});
  const datasetsFolder = r.datasetsFolder ?? defaults.datasetsFolder;
  const datasetName = r.datasetName ?? defaults.datasetName;
  if (datasetsFolder === undefined) throw new OptionError('datasetsFolder', 'required (no run config to take it from)');
  if (datasetName === undefined) throw new OptionError('datasetName', 'required (no run config to take it from)');
  const size: ImageSize = r.resize ?? (defaults.resize ? imageSize(defaults.resize) : { height: 480, width: 640 });
  const batchSize = r.inferBatchSize ?? defaults.inferBatchSize ?? 16;
  checkMemory(inferenceMemory(model.net, size.height, size.width, batchSize), [size.height, size.width], log);
  return { defaults, datasetsFolder, datasetName, size, batchSize };
}

/** The model options of a request (what `vgl eval` and `vgl index build` share). */
export type ModelRequest = Pick<EvaluationRequest, 'run' | 'checkpoint' | 'backbone' | 'aggregation' | 'weights'> & Partial<NetworkOptionValues>;

/**
 * The model of a request: a run, a checkpoint with its own config, or a spec (optionally with a
 * checkpoint's weights). Logs which weights file it loaded and why that one.
 */
export async function requestedModel(r: ModelRequest, device: torch.Device, log: Log): Promise<AssembledModel> {
  const model = await modelOfRequest(r, device);
  log(`model: ${model.loaded}`);
  return model;
}

async function modelOfRequest(r: ModelRequest, device: torch.Device): Promise<AssembledModel> {
  if (r.run !== undefined) return resolveModel({ run: r.run, checkpoint: r.checkpoint }, device);
  if (r.checkpoint !== undefined && r.backbone === undefined) return resolveModel({ checkpoint: r.checkpoint }, device);
  if (r.backbone === undefined) {
    throw new UsageError('choose a model: --run DIR (a vgl train run folder), --checkpoint FILE (a vgl checkpoint), or --backbone NAME [--aggregation NAME --weights FILE] (untrained / ImageNet weights)');
  }
  if (!(BACKBONE_NAMES as readonly string[]).includes(r.backbone)) {
    throw new OptionError('backbone', `unknown backbone; choose one of ${BACKBONE_NAMES.join(', ')}`, `"${r.backbone}"`);
  }
  const aggregation = r.aggregation ?? 'netvlad';
  if (!isAggregationName(aggregation)) throw new OptionError('aggregation', `unknown aggregation; choose one of ${AGGREGATION_NAMES.join(', ')}`, `"${aggregation}"`);
  const parsed = ModelSpecSchema.safeParse({
    backbone: r.backbone, ...aggregationSpecOf(aggregation),
    ...Object.fromEntries(NETWORK_OPTION_KEYS.map((k) => [k, r[k]])), weights: r.weights,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new OptionError(String(issue.path[0]), issue.message);
  }
  return resolveModel({ spec: parsed.data, checkpoint: r.checkpoint }, device);
}

/** Evaluates the requested model on one split; returns the summary (and writes files with outputFolder). */
export async function evaluateRequest(r: EvaluationRequest, log: Log = (s) => console.error(s)): Promise<EvalSummary> {
  const device = torch.defaultDevice();
  const model = await requestedModel(r, device, log);
  const { net } = model;
  try {
    // The data: the request first, then the run's config.
    const { defaults, datasetsFolder, datasetName, size, batchSize } = dataOfRequest(model, r, log);
    const recallValues = r.recallValues ?? defaults.recallValues ?? [...DEFAULT_RECALL_VALUES];
    const radius = r.valPositiveDistThreshold ?? defaults.valPositiveDistThreshold ?? 25;
    // A run trained on several datasets ("a,b") is evaluated on their splits together, as training tests it.
    const dataset = await openDatasets(datasetsFolder, splitDatasetNames(datasetName), r.split);

    // An untrained NetVLAD-style head is initialised as the trainer does (k-means on local
    // descriptors of training database images; the evaluated split when there is no train split).
    let initialisedFrom: string | undefined;
    if (model.source === 'spec' && isDataInitialised(net.aggregation)) {
      const initSplit = existsSync(join(dataset.root, datasetName, 'images', 'train')) ? 'train' : r.split;
      const initDs = initSplit === r.split ? dataset : await openDataset(datasetsFolder, datasetName, initSplit);
      await initialiseHeadFromData(net, initDs, { size, batchSize, seed: r.seed, log, device });
      initialisedFrom = `${initSplit} database`;
    }

    const summaryOfNet = net.summary();
    log(`evaluating ${summaryOfNet.backbone} + ${summaryOfNet.aggregation} (${summaryOfNet.descriptorDim}-d${model.checkpoint ? `, ${model.checkpoint}` : model.source === 'spec' ? (r.weights ? ', ImageNet backbone' : ', untrained') : ''}) ` +
      `on ${dataset.name}/${dataset.split}: ${dataset.databasePaths.length} database, ${dataset.queriesPaths.length} queries, ${r.testMethod}, ${size.height}x${size.width}`);
    const precision = await choosePrecision(r.precision ?? 'fp32', net, dataset.databasePaths, size, { device });
    log(torch.describePrecision(precision) + (precision.precision === 'bf16' ? ': bf16 backbone, fp32 head' : '') +
      (precision.searchPrecision === 'bf16' ? '; search with a bf16 pre-filter re-ranked in fp32' : ''));

    // Evaluate with the fast inference path, after PCA when asked (fitted on that path's descriptors).
    let pcaInfo: EvalSummary['model']['pca'];
    const fitAndApplyPca = async (descriptorModel: DescriptorModel): Promise<DescriptorModel> => {
      let pcaPaths: string[];
      let fittedOn: string;
      if (r.pcaDatasetFolder !== undefined) {
        // As the reference: the images under the folder (relative to the datasets folder), at most 2^14 of them.
        const folder = resolve(datasetsFolder, r.pcaDatasetFolder);
        pcaPaths = await pcaFolderImages(folder, r.seed);
        fittedOn = `${folder} (${pcaPaths.length} images)`;
      } else {
        const pcaSplit = r.pcaSplit ?? (existsSync(join(dataset.root, datasetName, 'images', 'train')) ? 'train' : r.split);
        const pcaDs = pcaSplit === r.split ? dataset : await openDataset(datasetsFolder, datasetName, pcaSplit);
        pcaPaths = pcaDs.databasePaths;
        fittedOn = `${pcaSplit} database (${pcaPaths.length} images)`;
      }
      const pca = await fitPca(descriptorModel, pcaPaths, { dim: r.pcaDim!, whiten: r.pcaWhiten, size, batchSize, progress: r.progress, device });
      const kept = pca.explainedVarianceRatio().reduce((a, b) => a + b, 0);
      pcaInfo = { dim: r.pcaDim!, whiten: r.pcaWhiten, fittedOn, explainedVariance: kept };
      log(`PCA ${descriptorModel.dim} → ${r.pcaDim}${r.pcaWhiten ? ' (whitened)' : ''} fitted on ${pcaInfo.fittedOn}: ${(100 * kept).toFixed(1)}% of the variance kept`);
      if (r.outputFolder !== undefined) {
        await mkdir(r.outputFolder, { recursive: true });
        await savePth(join(r.outputFolder, 'pca.pth'), pca.stateDict());
      }
      return withPca(descriptorModel, pca);
    };
    const result = await evaluateNet(net, dataset, {
      method: r.testMethod, recallValues, radius, extraRadii: r.radii, size, batchSize, device,
      progress: r.progress, outDir: r.outputFolder, saveDescriptors: r.saveDescriptors,
      images: r.images ? undefined : false,
      databaseChunk: r.efficientRamTesting ? EFFICIENT_RAM_CHUNK : undefined, majorityWeight: r.majorityWeight,
      precision, transform: r.pcaDim !== undefined ? fitAndApplyPca : undefined,
    });

    const summary: EvalSummary = {
      model: {
        source: model.source === 'spec' ? 'flags' : model.source, run: r.run, checkpoint: model.checkpoint, backbone: summaryOfNet.backbone,
        aggregation: summaryOfNet.aggregation, descriptorDim: summaryOfNet.descriptorDim, initialisedFrom, pca: pcaInfo,
      },
      dataset: { root: dataset.root, name: dataset.name, split: dataset.split, database: result.databaseCount, queries: result.queriesCount },
      precision: { precision: precision.precision, reason: precision.reason, ...(precision.check ? { check: precision.check } : {}) },
      method: result.method, radius: result.radius, recallValues, recalls: result.recalls, recallsByRadius: result.recallsByRadius,
      timings: { ...result.timings },
    };
    if (r.outputFolder !== undefined && result.files) {
      const modelFile = join(r.outputFolder, 'model.json');
      await writeFileAtomic(modelFile, `${JSON.stringify({ ...summary.model, config: model.config ?? undefined, parameters: summaryOfNet.parameters }, null, 2)}\n`);
      summary.outputFolder = r.outputFolder;
      summary.files = [result.files.recalls, result.files.predictions.json, result.files.predictions.csv, modelFile,
        ...(result.files.descriptors ? [result.files.descriptors.database, result.files.descriptors.queries] : []), ...result.files.predictions.grids];
    }
    return summary;
  } finally {
    net.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Recall at other radii from saved predictions

export interface RecallFromRequest {
  /** Output folder of a previous evaluation (recalls.json + predictions.json). */
  from: string;
  radii?: number[];
  recallValues?: number[];
  /** Where recall-by-radius.{json,csv} go (default `from`). */
  outputFolder?: string;
}

export interface RecallFromSummary {
  from: string;
  dataset: { root: string; name: string; split: string };
  method: string;
  /** Radius the evaluation judged its predictions at. */
  evaluatedRadius: number;
  queries: number;
  databaseCount: number;
  /** Ranks per query available in the saved predictions. */
  ranks: number;
  positions: 'dataset' | 'predictions';
  recallValues: number[];
  radii: number[];
  recallsByRadius: Record<number, Recalls>;
  files: { json: string; csv: string };
  note?: string;
}

/** recall-by-radius CSV: one row per radius, one column per N. */
export function recallByRadiusCsv(byRadius: Record<number, Recalls>, ns: readonly number[]): string {
  const radii = Object.keys(byRadius).map(Number).sort((a, b) => a - b);
  return csvText(['radius_m', ...ns.map((n) => `recall_at_${n}`)], radii.map((r) => [r, ...ns.map((n) => byRadius[r][n].toFixed(4))]));
}

/** Recall at new radii (and N) from a previous evaluation's predictions: no network, no search. */
export async function recallFromRequest(r: RecallFromRequest, log: Log = (s) => console.error(s)): Promise<RecallFromSummary> {
  const saved = await readSavedEvaluation(r.from);
  const radii = r.radii ?? [saved.radius];
  const recallValues = r.recallValues ?? (saved.recallValues.length > 0 ? saved.recallValues : [...DEFAULT_RECALL_VALUES]);
  const ks = saved.predictions;
  const tooMany = recallValues.filter((n) => n > ks.k && ks.k < ks.databaseCount);
  if (tooMany.length > 0) {
    throw new OptionError('recallValues', `${r.from}/predictions.json holds ${ks.k} ranks per query; recall@${tooMany.join(', @')} needs more (evaluate again with larger recall values)`);
  }
  const { recalls, positions, note } = await recallFromSaved(saved, radii, recallValues);
  if (note) log(note);
  const out = r.outputFolder ?? r.from;
  await mkdir(out, { recursive: true });
  const files = { json: join(out, 'recall-by-radius.json'), csv: join(out, 'recall-by-radius.csv') };
  const summary: RecallFromSummary = {
    from: r.from, dataset: saved.dataset, method: saved.method, evaluatedRadius: saved.radius,
    queries: ks.count, databaseCount: ks.databaseCount, ranks: ks.k, positions, recallValues, radii: [...radii].sort((a, b) => a - b),
    recallsByRadius: recalls, files, note,
  };
  const { files: _f, ...data } = summary;
  await writeFileAtomic(files.json, `${JSON.stringify(data, null, 2)}\n`);
  await writeFileAtomic(files.csv, recallByRadiusCsv(recalls, recallValues));
  return summary;
}
