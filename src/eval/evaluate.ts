// Evaluation of a network on one split: extract database and query descriptors, search exactly,
// recall@N at the positive radius (and any other radii, from the same predictions), and — given an
// output folder — recalls.json, predictions (JSON, CSV, PNG grids) and optionally the descriptors.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import type { Tensor } from '../torch/index.ts';
import * as torch from '../torch/index.ts';
import type { GeoDataset } from '../data/dataset.ts';
import type { ImageSize, Interpolation } from '../data/image.ts';
import { DEFAULT_SOFT_POSITIVE_RADIUS } from '../data/positives.ts';
import { extractDescriptors, saveDescriptors, type DescriptorModel, type ExtractOptions } from './extract.ts';
import { progressBar } from '../util/progress.ts';
import { mergeNeighbours, searchExact, type Neighbours } from './search.ts';
import { DEFAULT_RECALL_VALUES, recallAtRadii, firstCorrectRanksAt, type Recalls } from './recall.ts';
import { DEFAULT_MAJORITY_WEIGHT, TEST_METHODS, isTestMethod, mergeCropNeighbours, testMethodNamed, type TestMethod } from './test-methods.ts';
import { buildPredictions, writePredictions, type PredictionFiles, type PredictionImagesOptions } from './predictions.ts';

export interface EvaluateOptions {
  /** How descriptors are computed (default extractDescriptors; data-parallel training describes each split in shards). */
  extract?: typeof extractDescriptors;
  /** Test-time method (default hard_resize). */
  method?: TestMethod;
  /** N of recall@N (default 1, 5, 10, 20); the search keeps max(N) predictions per query. */
  recallValues?: readonly number[];
  /** Soft-positive radius, metres (default 25). */
  radius?: number;
  /** More radii to report recall at, from the same predictions (e.g. [10, 50, 100]). */
  extraRadii?: readonly number[];
  /** Network input size (default 480 x 640). */
  size?: ImageSize;
  interpolation?: Interpolation;
  /** Images per forward pass (default 16; queries of single_query go one at a time). */
  batchSize?: number;
  /** Images decoding at once. */
  concurrency?: number;
  /** maj_voting weight (default 0.01). */
  majorityWeight?: number;
  /** Search blocks (see searchExact). */
  queryBlock?: number;
  databaseBlock?: number;
  /** 'bf16': search with a bf16 pre-filter and fp32 re-ranking (the fp32 top-N, faster; see searchExact). Default 'fp32'. */
  searchPrecision?: 'fp32' | 'bf16';
  device?: torch.Device;
  /** Progress bars on stderr (default: when stderr is a TTY). */
  progress?: boolean;
  /** Folder for recalls.json, predictions.{json,csv}, grids/ (and descriptors when asked). */
  outDir?: string;
  /** Also write database.npy and queries.npy to outDir (default false). */
  saveDescriptors?: boolean;
  /** Ranks per query in the prediction files (default: all kept, max(recallValues)). */
  predictionsTopN?: number;
  /** PNG grids of predictions; false to skip (default: 20 spread queries and up to 50 wrong ones). */
  images?: PredictionImagesOptions | false;
  /**
   * Low-memory evaluation (the reference's --efficient_ram_testing): the database is described and
   * searched this many images at a time, its descriptors never held whole. Not with saveDescriptors,
   * returnDescriptors or PCA (which need them all).
   */
  databaseChunk?: number;
  /** Return the descriptor tensors (the caller then disposes them); default false (they are freed). */
  returnDescriptors?: boolean;
  signal?: AbortSignal;
}

export interface EvaluateTimings {
  databaseMs: number;
  queriesMs: number;
  searchMs: number;
  recallMs: number;
  writeMs: number;
  totalMs: number;
}

export interface EvaluateResult {
  method: TestMethod;
  radius: number;
  /** recall@N in percent at `radius`. */
  recalls: Recalls;
  /** recall@N in percent at `radius` and each extra radius. */
  recallsByRadius: Record<number, Recalls>;
  /** Ranked database indices and descriptor distances per query: enough to recompute recall at any radius. */
  predictions: Neighbours;
  /** Each query's first correct rank at `radius` (0-based; -1: none in its predictions), for paired statistics. */
  firstCorrectRanks: Int32Array;
  timings: EvaluateTimings;
  databaseCount: number;
  queriesCount: number;
  /** Files written (with outDir). */
  files?: { recalls: string; predictions: PredictionFiles; descriptors?: { database: string; queries: string } };
  /** With returnDescriptors: database [N, D] and queries [M, D] ([5M, D] for nearest_crop / maj_voting). */
  descriptors?: { database: Tensor; queries: Tensor };
}

/** The checked options every evaluation path uses. */
interface Validated { method: TestMethod; recallValues: number[]; radius: number; radii: number[] }

function validate(options: EvaluateOptions): Validated {
  const method = options.method ?? 'hard_resize';
  if (!isTestMethod(method)) throw new Error(`evaluate: unknown test method "${String(method)}"; choose one of ${TEST_METHODS.join(', ')}`);
  const recallValues = [...(options.recallValues ?? DEFAULT_RECALL_VALUES)];
  if (recallValues.length === 0 || recallValues.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`evaluate: recall values must be positive integers, got [${recallValues.join(', ')}]`);
  }
  const radius = options.radius ?? DEFAULT_SOFT_POSITIVE_RADIUS;
  const radii = [radius, ...(options.extraRadii ?? []).filter((r) => r !== radius)];
  for (const r of radii) if (!Number.isFinite(r) || r < 0) throw new Error(`evaluate: radius must be a finite number of metres >= 0, got ${r}`);
  if (options.majorityWeight !== undefined && !Number.isFinite(options.majorityWeight)) throw new Error(`evaluate: majorityWeight must be a number, got ${options.majorityWeight}`);
  return { method, recallValues, radius, radii };
}

/** Database images per chunk of low-memory evaluation (--efficient-ram-testing): 1,000 NetVLAD-16k descriptors are 64 MB. */
export const EFFICIENT_RAM_CHUNK = 1000;

/** How the test method has queries described. */
function queryExtraction(method: TestMethod, common: ExtractOptions, batchSize: number | undefined): ExtractOptions {
  const m = testMethodNamed(method);
  return { ...common, mode: m.queries, label: 'queries', meanOfCrops: m.meanOfCrops === true, batchSize: m.oneAtATime === true ? 1 : batchSize };
}

/** Evaluates `model` on `dataset` (database vs queries of one split). */
export async function evaluate(model: DescriptorModel, dataset: GeoDataset, options: EvaluateOptions = {}): Promise<EvaluateResult> {
  const v = validate(options);
  const { method, recallValues } = v;
  const t0 = performance.now();
  const common = {
    size: options.size, interpolation: options.interpolation, concurrency: options.concurrency,
    device: options.device, progress: options.progress, signal: options.signal,
  };
  if (options.databaseChunk !== undefined) return evaluateInChunks(model, dataset, options, options.databaseChunk, v, common, t0);
  const database = await (options.extract ?? extractDescriptors)(model, dataset.databasePaths, { ...common, mode: 'hard_resize', batchSize: options.batchSize, label: 'database' });
  const t1 = performance.now();
  let queries: Tensor | null = null;
  let handedOver = false;
  try {
    queries = await (options.extract ?? extractDescriptors)(model, dataset.queriesPaths, queryExtraction(method, common, options.batchSize));
    const t2 = performance.now();

    const k = Math.min(Math.max(...recallValues), dataset.databasePaths.length);
    const bar = progressBar('search', queries.size(0), { show: options.progress, unit: 'query' });
    let predictions: Neighbours;
    try {
      predictions = searchExact(database, queries, {
        k, queryBlock: options.queryBlock, databaseBlock: options.databaseBlock, precision: options.searchPrecision,
        onProgress: (() => { let last = 0; return (done: number) => { bar.tick(done - last); last = done; }; })(),
      });
    } finally {
      bar.stop();
    }
    const result = await finish(predictions, dataset, options, v, { databaseMs: t1 - t0, queriesMs: t2 - t1, searchMs: performance.now() - t2 }, t0, { database, queries });
    if (options.returnDescriptors) {
      result.descriptors = { database, queries };
      handedOver = true;
    }
    return result;
  } finally {
    if (!handedOver) {
      database.dispose();
      (queries as Tensor | null)?.dispose();
    }
  }
}

/** evaluate() with the database described and searched `chunk` images at a time (merged top-k lists). */
async function evaluateInChunks(model: DescriptorModel, dataset: GeoDataset, options: EvaluateOptions, chunk: number, v: Validated,
  common: ExtractOptions, t0: number): Promise<EvaluateResult> {
  const { method, recallValues } = v;
  if (!Number.isInteger(chunk) || chunk < 1) throw new Error(`evaluate: databaseChunk must be a positive integer, got ${chunk}`);
  if (options.saveDescriptors || options.returnDescriptors) throw new Error('evaluate: low-memory evaluation (databaseChunk) never holds the database descriptors, so it cannot save or return them');
  const queries = await (options.extract ?? extractDescriptors)(model, dataset.queriesPaths, queryExtraction(method, common, options.batchSize));
  const t1 = performance.now();
  const n = dataset.databasePaths.length;
  const k = Math.min(Math.max(...recallValues), n);
  let predictions: Neighbours | null = null;
  let searchMs = 0;
  try {
    for (let d0 = 0; d0 < n; d0 += chunk) {
      const paths = dataset.databasePaths.slice(d0, d0 + chunk);
      const part = await (options.extract ?? extractDescriptors)(model, paths, { ...common, mode: 'hard_resize', batchSize: options.batchSize, label: `database ${d0 + paths.length}/${n}` });
      const ts = performance.now();
      try {
        const found = searchExact(part, queries, { k: Math.min(k, paths.length), queryBlock: options.queryBlock, databaseBlock: options.databaseBlock, precision: options.searchPrecision });
        predictions = predictions === null ? found : mergeNeighbours(predictions, found, d0, k);
      } finally {
        part.dispose();
      }
      searchMs += performance.now() - ts;
    }
  } finally {
    queries.dispose();
  }
  if (predictions === null) throw new Error('search: the database is empty');
  return finish(predictions, dataset, options, v, { databaseMs: performance.now() - t1 - searchMs, queriesMs: t1 - t0, searchMs }, t0, null);
}

/** The common end of both paths: crop merging, recall at every radius, the result and its files. */
async function finish(found: Neighbours, dataset: GeoDataset, options: EvaluateOptions, v: Validated, times: { databaseMs: number; queriesMs: number; searchMs: number },
  t0: number, descriptors: { database: Tensor; queries: Tensor } | null): Promise<EvaluateResult> {
  const { method, recallValues, radius, radii } = v;
  const t1 = performance.now();
  const predictions = testMethodNamed(method).merge !== undefined
    ? mergeCropNeighbours(found, method, 5, options.majorityWeight ?? DEFAULT_MAJORITY_WEIGHT) : found;
  const recallsByRadius = recallAtRadii(predictions, dataset.databasePositions, dataset.queriesPositions, radii, recallValues);
  const firstCorrectRanks = firstCorrectRanksAt(predictions, dataset.databasePositions, dataset.queriesPositions, radius);
  const t2 = performance.now();
  const result: EvaluateResult = {
    method, radius, recalls: recallsByRadius[radius], recallsByRadius, predictions, firstCorrectRanks,
    timings: { ...times, recallMs: t2 - t1, writeMs: 0, totalMs: 0 },
    databaseCount: dataset.databasePaths.length, queriesCount: dataset.queriesPaths.length,
  };
  if (options.outDir !== undefined) result.files = await writeResults(options.outDir, result, dataset, options, descriptors);
  const t3 = performance.now();
  result.timings.writeMs = t3 - t2;
  result.timings.totalMs = t3 - t0;
  if (options.outDir !== undefined) await writeFileAtomic(result.files!.recalls, recallsJson(result, dataset, options));
  return result;
}

function recallsJson(result: EvaluateResult, dataset: GeoDataset, options: EvaluateOptions): string {
  const { predictions: _p, descriptors: _d, files: _f, ...summary } = result;
  return JSON.stringify({
    dataset: { root: dataset.root, name: dataset.name, split: dataset.split },
    ...summary,
    majorityWeight: result.method === 'maj_voting' ? options.majorityWeight ?? DEFAULT_MAJORITY_WEIGHT : undefined,
    size: options.size ?? { height: 480, width: 640 },
  }, null, 2) + '\n';
}

async function writeResults(outDir: string, result: EvaluateResult, dataset: GeoDataset, options: EvaluateOptions,
  descriptors: { database: Tensor; queries: Tensor } | null): Promise<NonNullable<EvaluateResult['files']>> {
  await mkdir(outDir, { recursive: true });
  const perQuery = buildPredictions(result.predictions, dataset, result.radius, options.predictionsTopN);
  const predictions = await writePredictions(outDir, perQuery, dataset, result.radius, {
    header: { method: result.method, k: result.predictions.k, recalls: result.recalls },
    images: options.images,
  });
  const files: NonNullable<EvaluateResult['files']> = { recalls: join(outDir, 'recalls.json'), predictions };
  if (options.saveDescriptors && descriptors !== null) {
    files.descriptors = { database: join(outDir, 'database.npy'), queries: join(outDir, 'queries.npy') };
    await saveDescriptors(files.descriptors.database, descriptors.database);
    await saveDescriptors(files.descriptors.queries, descriptors.queries);
  }
  return files;
}
