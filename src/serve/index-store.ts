// An index folder: what `vgl localize` and `vgl serve` search. It holds the database descriptors
// (descriptors.npy, [count, dim] float32, numpy-readable), the images (images.json: absolute path and
// UTM position of each row) and index.json: the model that made the descriptors and how it read its
// images (size, normalisation), the dataset, and the search (exact, or an HNSW graph in hnsw.usearch).
// This module reads and writes the files and validates them; building one needs the model (build.ts).
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../util/atomic.ts';
import { readNpyHeader } from '../data/npy.ts';
import { QUANTIZATIONS, type Quantization } from '../eval/approximate.ts';

export type { Quantization };

export const INDEX_FILES = { meta: 'index.json', descriptors: 'descriptors.npy', images: 'images.json', hnsw: 'hnsw.usearch' } as const;
export const INDEX_FORMAT = 'vgl-index';
export const INDEX_VERSION = 1;

/** Agreement of approximate search with exact search on a set of queries. */
const ApproximateRecallSchema = z.object({
  queries: z.number().int().nonnegative(),
  /** Share of queries whose exact nearest neighbour is the approximate first (0..1). */
  recallAt1: z.number(),
  /** Mean share of the exact top-10 found in the approximate top-10 (0..1). */
  recallAt10: z.number(),
  /** Place recall@1/10 (percent, at radiusMetres) with exact and with approximate search. */
  placeRecall: z.object({ radiusMetres: z.number(), exact: z.record(z.string(), z.number()), approximate: z.record(z.string(), z.number()) }).optional(),
  /** A search width chosen at build time: the recall@1 it had to reach, and each width tried with its recall@1. */
  tuning: z.object({ targetRecallAt1: z.number(), reached: z.boolean(), tried: z.array(z.object({ ef: z.number(), recallAt1: z.number() })) }).optional(),
  note: z.string().optional(),
});

const SearchSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('exact') }),
  z.object({
    kind: z.literal('hnsw'),
    quantization: z.enum(QUANTIZATIONS),
    connectivity: z.number().int().positive(),
    expansionAdd: z.number().int().positive(),
    expansionSearch: z.number().int().positive(),
    recall: ApproximateRecallSchema.optional(),
  }),
]);
export type IndexSearch = z.infer<typeof SearchSchema>;

/** The model that made the descriptors, enough to make them again for a query photo. */
const ModelReferenceSchema = z.object({
  source: z.enum(['run', 'checkpoint', 'spec']),
  run: z.string().optional(),
  checkpoint: z.string().optional(),
  /** A network named by its parts (ImageNet or untrained weights): its model spec. */
  spec: z.record(z.string(), z.unknown()).optional(),
  backbone: z.string(),
  aggregation: z.string(),
  descriptorDim: z.number().int().positive(),
  /** Network input [height, width], images hard-resized. */
  resize: z.tuple([z.number().int().positive(), z.number().int().positive()]),
  normalization: z.string(),
  precision: z.enum(['fp32', 'bf16']),
});
export type ModelReference = z.infer<typeof ModelReferenceSchema>;

export const IndexMetaSchema = z.object({
  format: z.literal(INDEX_FORMAT),
  version: z.literal(INDEX_VERSION),
  created: z.string(),
  model: ModelReferenceSchema,
  dataset: z.object({ root: z.string(), name: z.string(), split: z.string() }).optional(),
  count: z.number().int().nonnegative(),
  dim: z.number().int().positive(),
  search: SearchSchema,
  /** Images appended after the build (vgl index add). */
  additions: z.array(z.object({ at: z.string(), images: z.number().int().positive() })).default([]),
});
export type IndexMeta = z.infer<typeof IndexMetaSchema>;

/** One database image of an index. */
export interface IndexImage {
  file: string;
  east: number;
  north: number;
}

/** An index folder opened and checked (descriptors are loaded separately: loadIndexDescriptors). */
export interface OpenedIndex {
  dir: string;
  meta: IndexMeta;
  images: IndexImage[];
  files: { meta: string; descriptors: string; images: string; hnsw?: string };
}

/** A folder that is not a usable index; the message names the file and the fault. */
export class IndexError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IndexError';
  }
}

const ImagesSchema = z.array(z.tuple([z.string().min(1), z.number().finite(), z.number().finite()]));

/** Opens an index folder, checking every file against the others (counts, shapes, dtypes). */
export async function openIndex(dir: string): Promise<OpenedIndex> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new IndexError(`--index ${dir}: folder not found (make one with vgl index build)`);
  const files = { meta: join(dir, INDEX_FILES.meta), descriptors: join(dir, INDEX_FILES.descriptors), images: join(dir, INDEX_FILES.images) };
  for (const f of Object.values(files)) {
    if (!existsSync(f)) throw new IndexError(`${f}: missing (an index folder written by vgl index build holds ${Object.values(INDEX_FILES).slice(0, 3).join(', ')})`);
  }
  const meta = parseJsonFile(await readFile(files.meta, 'utf8'), files.meta, IndexMetaSchema);
  const imageRows = parseJsonFile(await readFile(files.images, 'utf8'), files.images, ImagesSchema);
  if (imageRows.length !== meta.count) throw new IndexError(`${files.images}: ${imageRows.length} images, but ${files.meta} says ${meta.count}`);
  let header: Awaited<ReturnType<typeof readNpyHeader>>;
  try {
    header = await readNpyHeader(files.descriptors);
  } catch (e) {
    throw new IndexError(`${files.descriptors}: ${(e as Error).message}`);
  }
  const [rows, dim] = header.shape;
  if (header.shape.length !== 2 || header.descr !== '<f4' || rows !== meta.count || dim !== meta.dim) {
    throw new IndexError(`${files.descriptors}: expected float32 (<f4) [${meta.count}, ${meta.dim}] as ${files.meta} says, found ${header.descr} [${header.shape}]`);
  }
  if (header.dataBytes !== rows * dim * 4) throw new IndexError(`${files.descriptors}: ${header.dataBytes} data bytes for [${rows}, ${dim}] float32 (${rows * dim * 4}): truncated?`);
  if (meta.model.descriptorDim !== meta.dim) throw new IndexError(`${files.meta}: model.descriptorDim ${meta.model.descriptorDim} differs from dim ${meta.dim}`);
  let hnsw: string | undefined;
  if (meta.search.kind === 'hnsw') {
    hnsw = join(dir, INDEX_FILES.hnsw);
    if (!existsSync(hnsw)) throw new IndexError(`${hnsw}: missing (${files.meta} declares an approximate HNSW search; rebuild with vgl index build --approximate)`);
  }
  return { dir, meta, images: imageRows.map(([file, east, north]) => ({ file, east, north })), files: { ...files, hnsw } };
}

function parseJsonFile<S extends z.ZodType>(text: string, file: string, schema: S): z.infer<S> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new IndexError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const r = schema.safeParse(data);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ');
    throw new IndexError(`${file}: not a vgl index file (${issues})`);
  }
  return r.data;
}

/** Writes images.json (one compact row per image) and index.json; descriptors are written by the caller. */
export async function writeIndexFiles(dir: string, meta: IndexMeta, images: readonly IndexImage[]): Promise<void> {
  if (images.length !== meta.count) throw new Error(`index: ${images.length} images for count ${meta.count}`);
  const rows = images.map((im) => JSON.stringify([im.file, im.east, im.north]));
  await writeFileAtomic(join(dir, INDEX_FILES.images), `[\n${rows.join(',\n')}\n]\n`);
  await writeFileAtomic(join(dir, INDEX_FILES.meta), `${JSON.stringify(meta, null, 2)}\n`);
}

/** Row-major [east0, north0, ...] positions of the index's images. */
export function indexPositions(images: readonly IndexImage[]): Float64Array {
  const out = new Float64Array(images.length * 2);
  images.forEach((im, i) => {
    out[2 * i] = im.east;
    out[2 * i + 1] = im.north;
  });
  return out;
}
