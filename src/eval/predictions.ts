// Predictions as files a person can read: per query its file, position and top-N database images with
// descriptor distance, geographic error and whether each is a positive at the radius. Written as JSON
// (one query per line), CSV (one row per query and rank) and PNG grids (query + top-N, correct ones
// framed green, wrong ones red) for a spread of queries and for the queries whose top-1 is wrong.
import { mkdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import { csvText } from '../util/csv.ts';
import { imageGrid, type GridRow } from '../data/grid.ts';
import type { GeoDataset } from '../data/dataset.ts';
import { PositionIndex, radiusPositives } from '../data/positives.ts';
import type { Neighbours } from './search.ts';

/** One retrieved database image. */
export interface PredictionEntry {
  rank: number;
  database: number;
  /** Path relative to the split folder, e.g. "database/@0549678.37@...@.jpg". */
  file: string;
  east: number;
  north: number;
  /** L2 distance in descriptor space. */
  distance: number;
  /** Distance between the query's and this image's positions, metres. */
  errorMetres: number;
  /** Within the radius of the query (a soft positive). */
  correct: boolean;
}

export interface QueryPrediction {
  query: number;
  file: string;
  east: number;
  north: number;
  /** First rank (0-based) holding a positive among the kept predictions, -1 when none. */
  firstCorrectRank: number;
  /** Number of database images within the radius (0: the query cannot be localized at all). */
  positives: number;
  predictions: PredictionEntry[];
}

export type PredictionsDataset = Pick<GeoDataset, 'dir' | 'databasePaths' | 'queriesPaths' | 'databasePositions' | 'queriesPositions'>;

/** Per-query predictions (the first `topN` ranks, default all kept) judged at `radius` metres. */
export function buildPredictions(neighbours: Neighbours, dataset: PredictionsDataset, radius: number, topN = neighbours.k): QueryPrediction[] {
  if (neighbours.count !== dataset.queriesPaths.length) {
    throw new Error(`predictions: ${neighbours.count} query results for ${dataset.queriesPaths.length} queries`);
  }
  if (neighbours.databaseCount !== dataset.databasePaths.length) {
    throw new Error(`predictions: search covered ${neighbours.databaseCount} database images, the dataset has ${dataset.databasePaths.length}`);
  }
  const positives = radiusPositives(new PositionIndex(dataset.databasePositions), dataset.queriesPositions, radius);
  const { k } = neighbours;
  const shown = Math.min(topN, k);
  const db = dataset.databasePositions, qp = dataset.queriesPositions;
  return dataset.queriesPaths.map((path, q) => {
    const pos = new Set(positives[q]);
    const predictions: PredictionEntry[] = [];
    let firstCorrectRank = -1;
    for (let r = 0; r < k; r++) {
      const d = neighbours.indices[q * k + r];
      const correct = pos.has(d);
      if (correct && firstCorrectRank < 0) firstCorrectRank = r;
      if (r >= shown) continue;
      predictions.push({
        rank: r, database: d, file: relative(dataset.dir, dataset.databasePaths[d]),
        east: db[2 * d], north: db[2 * d + 1], distance: neighbours.distances[q * k + r],
        errorMetres: Math.hypot(db[2 * d] - qp[2 * q], db[2 * d + 1] - qp[2 * q + 1]), correct,
      });
    }
    return { query: q, file: relative(dataset.dir, path), east: qp[2 * q], north: qp[2 * q + 1], firstCorrectRank, positives: pos.size, predictions };
  });
}

export const CSV_COLUMNS = [
  'query_index', 'query_file', 'query_east', 'query_north', 'rank', 'database_index', 'database_file',
  'database_east', 'database_north', 'descriptor_distance', 'error_m', 'correct', 'first_correct_rank', 'positives',
] as const;

/** CSV text: one row per query and rank, columns CSV_COLUMNS. */
export function predictionsCsv(queries: readonly QueryPrediction[]): string {
  return csvText(CSV_COLUMNS, queries.flatMap((q) => q.predictions.map((p) => [
    q.query, q.file, q.east.toFixed(2), q.north.toFixed(2), p.rank, p.database, p.file, p.east.toFixed(2), p.north.toFixed(2),
    p.distance.toFixed(6), p.errorMetres.toFixed(2), p.correct, q.firstCorrectRank, q.positives])));
}

/** JSON text: a header object with the queries one per line (compact, yet readable and diffable). */
export function predictionsJson(queries: readonly QueryPrediction[], header: Record<string, unknown>): string {
  const head = JSON.stringify(header);
  const body = queries.map((q) => JSON.stringify(q)).join(',\n');
  return `${head.slice(0, -1)}${head.length > 2 ? ',' : ''}"queries":[\n${body}\n]}\n`;
}

export interface PredictionImagesOptions {
  /** Evenly spread queries to draw (default 20). */
  sample?: number;
  /** Queries with a wrong top-1 to draw, in query order (default 50). */
  wrong?: number;
  /** Retrieved images per row (default 5). */
  topN?: number;
  /** Query rows per PNG (default 10). */
  rowsPerPage?: number;
  /** Thumbnail box, pixels (default 160 x 120). */
  cellWidth?: number;
  cellHeight?: number;
}

export interface WritePredictionsOptions {
  /** Extra fields for the JSON header (method, recalls, model...). */
  header?: Record<string, unknown>;
  /** PNG grids; false to skip. */
  images?: PredictionImagesOptions | false;
}

/** What writePredictions wrote, as paths. */
export interface PredictionFiles {
  json: string;
  csv: string;
  grids: string[];
}

/** Writes predictions.json, predictions.csv and grids/{sample,wrong}-NN.png under `outDir`. */
export async function writePredictions(outDir: string, queries: readonly QueryPrediction[], dataset: Pick<GeoDataset, 'dir'>, radius: number, options: WritePredictionsOptions = {}): Promise<PredictionFiles> {
  await mkdir(outDir, { recursive: true });
  const json = join(outDir, 'predictions.json');
  const csv = join(outDir, 'predictions.csv');
  await writeFileAtomic(json, predictionsJson(queries, { radius, datasetDir: dataset.dir, ...options.header }));
  await writeFileAtomic(csv, predictionsCsv(queries));
  const grids: string[] = [];
  if (options.images !== false) {
    const o = options.images ?? {};
    const sample = spread(queries.length, o.sample ?? 20).map((i) => queries[i]);
    const wrong = queries.filter((q) => q.firstCorrectRank !== 0).slice(0, o.wrong ?? 50);
    const rowsPerPage = o.rowsPerPage ?? 10;
    const dir = join(outDir, 'grids');
    for (const [name, list] of [['sample', sample], ['wrong', wrong]] as const) {
      for (let p = 0; p * rowsPerPage < list.length; p++) {
        if (grids.length === 0) await mkdir(dir, { recursive: true });
        const file = join(dir, `${name}-${String(p + 1).padStart(2, '0')}.png`);
        await writeFileAtomic(file, await predictionGrid(list.slice(p * rowsPerPage, (p + 1) * rowsPerPage), dataset.dir, radius, o));
        grids.push(file);
      }
    }
  }
  return { json, csv, grids };
}

/** `count` indices spread evenly over 0..n-1 (all of them when count >= n). */
export function spread(n: number, count: number): number[] {
  if (count >= n) return Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: count }, (_, i) => Math.floor(((i + 0.5) * n) / count));
}

const COLOURS = { query: '#1f4e9e', correct: '#1a9e3a', wrong: '#d62020' };

/** One PNG: a row per query — the query framed blue, then its top-N framed green (positive) or red. */
export async function predictionGrid(queries: readonly QueryPrediction[], datasetDir: string, radius: number, options: PredictionImagesOptions = {}): Promise<Buffer> {
  const topN = Math.min(options.topN ?? 5, Math.max(1, ...queries.map((q) => q.predictions.length)));
  const rows: GridRow[] = queries.map((q) => ({
    cells: [
      { path: join(datasetDir, q.file), border: COLOURS.query,
        caption: `query ${q.query}\n${q.positives === 0 ? 'no positive in radius' : `first correct: ${q.firstCorrectRank < 0 ? 'none' : `#${q.firstCorrectRank + 1}`}`}` },
      ...q.predictions.slice(0, topN).map((p) => ({
        path: join(datasetDir, p.file), border: p.correct ? COLOURS.correct : COLOURS.wrong,
        caption: `#${p.rank + 1}  db ${p.database}\n${p.errorMetres.toFixed(1)} m  d=${p.distance.toFixed(3)}`,
      })),
    ],
  }));
  return imageGrid(rows, {
    title: `query (blue) and top-${topN}: green = within ${radius} m, red = farther`,
    cellWidth: options.cellWidth ?? 160, cellHeight: options.cellHeight ?? 120,
  });
}
