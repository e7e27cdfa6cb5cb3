// `vgl index build` and `vgl index add`: describe a dataset split's database with a model and write an
// index folder (index-store.ts); optionally an HNSW graph, whose agreement with exact search is
// measured on the split's queries when it is built. Adding images appends their descriptors (and
// graph nodes) without describing the others again.
import { existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import * as torch from '../torch/index.ts';
import { UsageError, OptionError } from '../errors.ts';
import { openDataset, listImages } from '../data/dataset.ts';
import { parseDatasetFilename, FilenameError, IMAGE_EXTENSIONS } from '../data/filename.ts';
import type { ImageSize } from '../data/image.ts';
import { isDataInitialised } from '../models/types.ts';
import type { AssembledModel } from '../models/assemble.ts';
import { extractDescriptors } from '../eval/extract.ts';
import { readNpy, writeNpy } from '../data/npy.ts';
import { searchExact } from '../eval/search.ts';
import { recallAtRadii } from '../eval/recall.ts';
import { dataOfRequest, requestedModel, type ModelRequest } from '../eval/run.ts';
import {
  INDEX_FILES, INDEX_FORMAT, INDEX_VERSION, openIndex, writeIndexFiles, indexPositions,
  type IndexImage, type IndexMeta, type IndexSearch, type ModelReference, type Quantization,
} from './index-store.ts';
import { HnswIndex, HNSW_DEFAULTS, allUnitRows, candidatesFor, chooseExpansionSearch, neighbourRecall, rerank, type RankedRows } from '../eval/approximate.ts';
import { modelOfReference } from './localizer.ts';
import { inputFormatOf } from './input.ts';

type Log = (line: string) => void;

export interface BuildIndexRequest extends ModelRequest {
  datasetsFolder?: string;
  datasetName?: string;
  split: string;
  resize?: ImageSize;
  out: string;
  /** HNSW storage, or undefined for exact search. */
  approximate?: Quantization;
  connectivity?: number;
  expansionAdd?: number;
  /** HNSW search width; when unset, the smallest width whose recall@1 reaches targetRecall on the split's queries. */
  expansionSearch?: number;
  /** Recall@1 against exact search the chosen search width must reach (default 0.99). */
  targetRecall?: number;
  inferBatchSize?: number;
  progress?: boolean;
  /** Replace an existing index folder. */
  overwrite?: boolean;
}

export interface BuildIndexSummary {
  dir: string;
  meta: IndexMeta;
  timings: { describeMs: number; graphMs?: number; totalMs: number };
}

/** Where the model came from, as the index records it (absolute paths: the index is used from anywhere). */
function referenceOf(model: AssembledModel, r: ModelRequest, size: ImageSize): ModelReference {
  const s = model.net.summary();
  return {
    source: model.source,
    run: r.run !== undefined ? resolve(r.run) : undefined,
    checkpoint: model.checkpoint !== undefined ? resolve(model.checkpoint) : undefined,
    spec: model.source === 'spec' ? { ...model.spec, weights: model.spec.weights !== undefined ? resolve(model.spec.weights) : undefined } : undefined,
    backbone: s.backbone, aggregation: s.aggregation, descriptorDim: s.descriptorDim,
    resize: [size.height, size.width], normalization: model.net.inputNormalization, precision: 'fp32',
  };
}

/** Builds an index folder from a split's database images. */
export async function buildIndex(r: BuildIndexRequest, log: Log = (s) => console.error(s)): Promise<BuildIndexSummary> {
  const t0 = performance.now();
  const out = resolve(r.out);
  if (existsSync(join(out, INDEX_FILES.meta)) && !r.overwrite) {
    throw new OptionError('out', 'already holds an index; add images with vgl index add, or overwrite it to rebuild it', r.out);
  }
  const model = await requestedModel(r, torch.defaultDevice(), log);
  const { net } = model;
  try {
    if (model.source === 'spec' && isDataInitialised(net.aggregation)) {
      throw new OptionError('aggregation', 'an untrained head initialised from data (k-means) could not be rebuilt to describe query photos; index a trained run or checkpoint', net.config.aggregation);
    }
    const { datasetsFolder, datasetName, size, batchSize } = dataOfRequest(model, r, log);
    if (datasetName.includes(',')) throw new OptionError('datasetName', 'one dataset per index (build one per dataset, or add the others with vgl index add)', datasetName);
    const dataset = await openDataset(datasetsFolder, datasetName, r.split);
    const measure = r.approximate !== undefined && dataset.queriesPaths.length > 0;
    log(`indexing ${dataset.name}/${dataset.split}: ${dataset.databasePaths.length} database images with ${net.summary().backbone} + ${net.summary().aggregation} ` +
      `(${net.dim}-d) at ${size.height}x${size.width}${measure ? `; ${dataset.queriesPaths.length} queries to measure the approximate search` : ''}`);

    const tDescribe = performance.now();
    const { database, queries } = await net.fastInference(async (forward) => {
      const dm = net.asDescriptorModel(forward);
      const o = { size, batchSize, progress: r.progress };
      const d = await extractDescriptors(dm, dataset.databasePaths, { ...o, label: 'database' });
      try {
        const q = measure ? await extractDescriptors(dm, dataset.queriesPaths, { ...o, label: 'queries' }) : null;
        return { database: d, queries: q };
      } catch (e) {
        d.dispose();
        throw e;
      }
    });
    const describeMs = performance.now() - tDescribe;
    const databaseHost = database.toFloat32Array();
    const queriesHost = queries?.toFloat32Array() ?? null;

    await mkdir(out, { recursive: true });
    const images: IndexImage[] = dataset.databasePaths.map((file, i) => ({ file, east: dataset.databasePositions[2 * i], north: dataset.databasePositions[2 * i + 1] }));
    let search: IndexSearch = { kind: 'exact' };
    let graphMs: number | undefined;
    try {
      if (r.approximate !== undefined) {
        if (r.approximate === 'i8' && !allUnitRows(databaseHost, net.dim)) {
          throw new OptionError('approximate', 'stores unit-length descriptors only (searched by cosine), and this model\'s are not L2-normalised; use f16 or f32', 'i8');
        }
        const options = {
          quantization: r.approximate, connectivity: r.connectivity ?? HNSW_DEFAULTS.connectivity,
          expansionAdd: r.expansionAdd ?? HNSW_DEFAULTS.expansionAdd, expansionSearch: r.expansionSearch ?? HNSW_DEFAULTS.expansionSearch,
        };
        const tGraph = performance.now();
        const hnsw = new HnswIndex(net.dim, options);
        hnsw.add(databaseHost, 0);
        const graphFile = join(out, INDEX_FILES.hnsw);
        hnsw.save(graphFile);
        graphMs = performance.now() - tGraph;
        log(`HNSW graph (${options.quantization}, M ${options.connectivity}, ef ${options.expansionAdd} while building) over ${hnsw.size} descriptors in ${(graphMs / 1000).toFixed(1)} s`);
        let recall: Extract<IndexSearch, { kind: 'hnsw' }>['recall'];
        if (queries !== null && queriesHost !== null) {
          const k = Math.min(10, images.length);
          const exact: RankedRows = searchExact(database, queries, { k });
          const c = Math.min(candidatesFor(k), images.length);
          // The same graph searched at width ef (a search-time setting: reloaded with it), once per width.
          const searched = new Map<number, RankedRows>();
          const approximateAt = (ef: number): RankedRows => {
            let rows = searched.get(ef);
            if (rows === undefined) {
              const graph = ef === options.expansionSearch ? hnsw : HnswIndex.load(graphFile, net.dim, { ...options, expansionSearch: ef }, { mapped: true });
              rows = rerank(databaseHost, net.dim, queriesHost, graph.candidates(queriesHost, c), c, k);
              searched.set(ef, rows);
            }
            return rows;
          };
          let tuning: { targetRecallAt1: number; reached: boolean; tried: { ef: number; recallAt1: number }[] } | undefined;
          if (r.expansionSearch === undefined) {
            const target = r.targetRecall ?? 0.99;
            const chosen = chooseExpansionSearch((ef) => neighbourRecall(exact, approximateAt(ef)).recallAt1, target);
            tuning = { targetRecallAt1: target, reached: chosen.reached, tried: chosen.tried };
            options.expansionSearch = chosen.ef;
            log(`search width: ${chosen.tried.map((t) => `ef ${t.ef} → recall@1 ${(100 * t.recallAt1).toFixed(1)}%`).join(', ')}; ` +
              (chosen.reached ? `ef ${chosen.ef} reaches ${(100 * target).toFixed(1)}%` : `WARNING: no width up to ${chosen.ef} reaches ${(100 * target).toFixed(1)}%; ` +
                'build a denser graph (--connectivity, --expansion-add) or search exactly'));
          }
          const approx = approximateAt(options.expansionSearch);
          const agreement = neighbourRecall(exact, approx);
          const ns = [1, 10].filter((n) => n <= k);
          const positions = indexPositions(images);
          const place = (rows: RankedRows) => recallAtRadii({ ...rows, databaseCount: images.length }, positions, dataset.queriesPositions, [25], ns)[25];
          recall = {
            queries: exact.count, ...agreement,
            placeRecall: { radiusMetres: 25, exact: place(exact), approximate: place(approx) },
            ...(tuning ? { tuning } : {}),
          };
        } else {
          recall = { queries: 0, recallAt1: NaN, recallAt10: NaN, note: `${dataset.name}/${dataset.split} has no queries: the approximate search was not measured` };
          log(recall.note!);
        }
        search = { kind: 'hnsw', ...options, recall };
      }
    } finally {
      database.dispose();
      queries?.dispose();
    }
    await writeNpy(join(out, INDEX_FILES.descriptors), databaseHost, [images.length, net.dim]);
    const meta: IndexMeta = {
      format: INDEX_FORMAT, version: INDEX_VERSION, created: new Date().toISOString(),
      model: referenceOf(model, r, size),
      dataset: { root: dataset.root, name: dataset.name, split: dataset.split },
      count: images.length, dim: net.dim, search, additions: [],
    };
    await writeIndexFiles(out, meta, images);
    return { dir: out, meta, timings: { describeMs, graphMs, totalMs: performance.now() - t0 } };
  } finally {
    net.dispose();
  }
}

export interface AddToIndexRequest {
  index: string;
  /** Image files or folders (searched recursively); names carry positions (@east@north@...@.jpg). */
  paths: string[];
  inferBatchSize?: number;
  progress?: boolean;
}

export interface AddToIndexSummary {
  dir: string;
  added: number;
  skipped: number;
  count: number;
}

/** Image files under `paths` with their positions from their names; errors list every bad name. */
async function imagesToAdd(paths: readonly string[]): Promise<IndexImage[]> {
  const files: string[] = [];
  for (const p of paths) {
    const abs = resolve(p);
    const s = await stat(abs).catch(() => null);
    if (s === null) throw new UsageError(`${p}: not found`);
    if (s.isDirectory()) {
      const found = await listImages(abs);
      if (found.length === 0) throw new UsageError(`${p}: no ${IMAGE_EXTENSIONS.join('/')} images found (searched recursively)`);
      files.push(...found);
    } else if (IMAGE_EXTENSIONS.includes(extname(abs).toLowerCase())) files.push(abs);
    else throw new UsageError(`${p}: not a ${IMAGE_EXTENSIONS.join('/')} image`);
  }
  const bad: string[] = [];
  const images = files.map((file) => {
    try {
      const f = parseDatasetFilename(file);
      return { file, east: f.east, north: f.north };
    } catch (e) {
      if (!(e instanceof FilenameError)) throw e;
      bad.push(e.message);
      return null;
    }
  });
  if (bad.length > 0) {
    throw new UsageError(`images to add need their position in the name (datasets_vg: @UTM_east@UTM_north@...@.jpg; vgl import writes such names):\n${bad.slice(0, 10).map((b) => `  - ${b}`).join('\n')}${bad.length > 10 ? `\n  ... and ${bad.length - 10} more` : ''}`);
  }
  return images as IndexImage[];
}

/** Appends images to an index: their descriptors by the index's own model, the graph extended in place. */
export async function addToIndex(r: AddToIndexRequest, log: Log = (s) => console.error(s)): Promise<AddToIndexSummary> {
  const index = await openIndex(r.index);
  const { meta, files } = index;
  const known = new Set(index.images.map((i) => i.file));
  const candidates = await imagesToAdd(r.paths);
  const fresh = candidates.filter((c) => !known.has(c.file));
  const skipped = candidates.length - fresh.length;
  if (skipped > 0) log(`${skipped} image(s) already in the index, skipped`);
  if (fresh.length === 0) return { dir: index.dir, added: 0, skipped, count: meta.count };

  const { net } = await modelOfReference(meta.model, files.meta, log);
  let added: Float32Array;
  try {
    const format = inputFormatOf(meta.model);
    log(`adding ${fresh.length} image(s) to ${index.dir} (${meta.count} so far) with ${meta.model.backbone} + ${meta.model.aggregation} at ${format.size.height}x${format.size.width}`);
    added = await net.fastInference(async (forward) => {
      const t = await extractDescriptors(net.asDescriptorModel(forward), fresh.map((f) => f.file), { size: format.size, batchSize: r.inferBatchSize ?? 16, progress: r.progress, label: 'added' });
      try {
        return t.toFloat32Array();
      } finally {
        t.dispose();
      }
    }, { precision: meta.model.precision });
  } finally {
    net.dispose();
  }
  const old = (await readNpy(files.descriptors)).data;
  const all = new Float32Array(old.length + added.length);
  all.set(old);
  all.set(added, old.length);
  if (meta.search.kind === 'hnsw') {
    const s = meta.search;
    if (s.quantization === 'i8' && !allUnitRows(added, meta.dim)) throw new Error(`${files.hnsw}: i8 graph, but the new descriptors are not unit length`);
    const hnsw = HnswIndex.load(files.hnsw!, meta.dim, s);
    hnsw.add(added, meta.count);
    hnsw.save(files.hnsw!);
  }
  const count = meta.count + fresh.length;
  // Descriptors first: a kill between the two writes leaves files whose counts disagree, which openIndex reports.
  await writeNpy(files.descriptors, all, [count, meta.dim]);
  const next: IndexMeta = { ...meta, count, additions: [...meta.additions, { at: new Date().toISOString(), images: fresh.length }] };
  await writeIndexFiles(index.dir, next, [...index.images, ...fresh]);
  return { dir: index.dir, added: fresh.length, skipped, count };
}

