// What a dataset looks like before training on it: counts, positives per query, how far each query is
// from the database, a map and example queries with their positives. Numbers go to summary.json,
// pictures to SVG/PNG next to it.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openDataset, listSplits, type GeoDataset } from '../data/dataset.ts';
import { computePositives, nearestDatabase, type PositivesOptions, type QueryPositives } from '../data/positives.ts';
import { imageGrid, type GridRow, type GridCell } from '../data/grid.ts';
import { positionsMap, histogram, writeFigure, COLOURS } from '../util/figure.ts';

/** Summary of a list of numbers; quantiles interpolate linearly between order statistics (numpy's default). */
export interface NumberSummary {
  count: number;
  mean: number;
  min: number;
  p10: number;
  median: number;
  p90: number;
  max: number;
}

/** Bounding box of positions in metres. */
export interface Extent { minEast: number; maxEast: number; minNorth: number; maxNorth: number }

/** The numbers of one split. */
export interface SplitStats {
  split: string;
  database: number;
  queries: number;
  softRadius: number;
  hardRadius: number;
  /** Soft positives (within softRadius) per query. */
  softPositivesPerQuery: NumberSummary;
  /** Hard positives (within hardRadius) per query. */
  hardPositivesPerQuery: NumberSummary;
  /** Queries with no database image within softRadius (they can never count as recalled). */
  queriesWithoutSoftPositive: number;
  /** Queries with no database image within hardRadius (dropped from training). */
  queriesWithoutHardPositive: number;
  /** Distance in metres from each query to its nearest database image. */
  nearestDatabaseDistance: NumberSummary;
  databaseExtent: Extent;
  queriesExtent: Extent;
}

/** The numbers of a whole dataset (written as summary.json). */
export interface DatasetStats {
  name: string;
  root: string;
  splits: SplitStats[];
}

/** Quantile q in [0, 1] of ascending-sorted values, interpolating linearly between order statistics. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h), hi = Math.ceil(h);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** count, mean, min, p10, median, p90 and max of a list of numbers (NaN fields when empty). */
export function summarize(values: ArrayLike<number>): NumberSummary {
  const s = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return {
    count: s.length, mean: s.length ? sum / s.length : NaN, min: s.length ? s[0] : NaN, p10: quantile(s, 0.1),
    median: quantile(s, 0.5), p90: quantile(s, 0.9), max: s.length ? s[s.length - 1] : NaN,
  };
}

function extentOf(p: Float64Array): Extent {
  const e: Extent = { minEast: Infinity, maxEast: -Infinity, minNorth: Infinity, maxNorth: -Infinity };
  for (let i = 0; i < p.length; i += 2) {
    e.minEast = Math.min(e.minEast, p[i]); e.maxEast = Math.max(e.maxEast, p[i]);
    e.minNorth = Math.min(e.minNorth, p[i + 1]); e.maxNorth = Math.max(e.maxNorth, p[i + 1]);
  }
  return e;
}

/** A split's numbers plus the per-query arrays the figures are drawn from. */
export interface SplitAnalysis {
  stats: SplitStats;
  positives: QueryPositives;
  nearest: { indices: Int32Array; distances: Float64Array };
}

/** Computes the numbers of one opened split (positives with the given radii, nearest database distance). */
export function analyzeSplit(dataset: GeoDataset, options: PositivesOptions = {}): SplitAnalysis {
  const positives = computePositives(dataset, options);
  const nearest = nearestDatabase(dataset.databasePositions, dataset.queriesPositions);
  const soft = positives.soft.map((a) => a.length);
  const hard = positives.hard.map((a) => a.length);
  const stats: SplitStats = {
    split: dataset.split,
    database: dataset.databasePaths.length,
    queries: dataset.queriesPaths.length,
    softRadius: positives.softRadius,
    hardRadius: positives.hardRadius,
    softPositivesPerQuery: summarize(soft),
    hardPositivesPerQuery: summarize(hard),
    queriesWithoutSoftPositive: soft.filter((n) => n === 0).length,
    queriesWithoutHardPositive: hard.filter((n) => n === 0).length,
    nearestDatabaseDistance: summarize(nearest.distances),
    databaseExtent: extentOf(dataset.databasePositions),
    queriesExtent: extentOf(dataset.queriesPositions),
  };
  return { stats, positives, nearest };
}

/** Options of writeDatasetReport. */
export interface DatasetReportOptions extends PositivesOptions {
  /** Splits to include (default: every folder under images/). */
  splits?: string[];
  /** Queries shown in each example grid (default 4). */
  exampleQueries?: number;
  /** Positives shown per example query (default 5). */
  examplePositives?: number;
}

/** Paths written by writeDatasetReport. */
export interface DatasetReportFiles {
  summary: string;
  figures: string[];
  stats: DatasetStats;
}

/** Evenly spaced query indices, preferring queries that have at least one soft positive. */
function pickExamples(positives: QueryPositives, n: number): number[] {
  const withPos = positives.soft.map((a, q) => (a.length > 0 ? q : -1)).filter((q) => q >= 0);
  const pool = withPos.length >= n ? withPos : positives.soft.map((_, q) => q);
  if (pool.length <= n) return pool;
  return Array.from({ length: n }, (_, k) => pool[Math.floor(((k + 0.5) * pool.length) / n)]);
}

const fmt = (v: number, d = 1): string => (Number.isFinite(v) ? v.toFixed(d) : '–');

/** Writes summary.json and, per split, a map, positives and nearest-distance histograms and an example grid. */
export async function writeDatasetReport(root: string, name: string, outDir: string, options: DatasetReportOptions = {}): Promise<DatasetReportFiles> {
  const splits = options.splits ?? (await listSplits(root, name));
  await mkdir(outDir, { recursive: true });
  const figures: string[] = [];
  const all: SplitStats[] = [];
  for (const split of splits) {
    const ds = await openDataset(root, name, split);
    const { stats: s, positives, nearest } = analyzeSplit(ds, options);
    all.push(s);
    const tag = `${name} / ${split}`;

    const map = positionsMap(`${split}-map`, `${tag}: database and query positions`,
      `${s.database.toLocaleString('en-US')} database images, ${s.queries.toLocaleString('en-US')} queries (UTM, equal scale)`,
      [{ part: 'database', positions: ds.databasePositions }, { part: 'queries', positions: ds.queriesPositions }]);
    const mapFiles = await writeFigure(map, join(outDir, `${split}-map`));

    const pos = histogram(`${split}-positives`, `${tag}: database images near each query`,
      `mean ${fmt(s.hardPositivesPerQuery.mean)} within ${s.hardRadius} m, ${fmt(s.softPositivesPerQuery.mean)} within ${s.softRadius} m; `
        + `${s.queriesWithoutHardPositive} queries have none within ${s.hardRadius} m, ${s.queriesWithoutSoftPositive} none within ${s.softRadius} m`, {
        xLabel: 'positives per query (database images within the radius)', yLabel: 'queries', integerBins: true,
        series: [
          { name: `hard, ≤ ${s.hardRadius} m`, values: positives.hard.map((a) => a.length) },
          { name: `soft, ≤ ${s.softRadius} m`, values: positives.soft.map((a) => a.length) },
        ],
      });
    const posFiles = await writeFigure(pos, join(outDir, `${split}-positives`));

    const d = s.nearestDatabaseDistance;
    const top = Math.max(s.softRadius * 1.6, Math.min(d.max, d.p90 * 2));
    const near = histogram(`${split}-nearest-distance`, `${tag}: distance from each query to its nearest database image`,
      `median ${fmt(d.median, 2)} m, 90th percentile ${fmt(d.p90, 2)} m, max ${fmt(d.max, 2)} m`, {
        xLabel: 'distance to nearest database image (m)', yLabel: 'queries', range: [0, top], bins: 40,
        series: [{ name: 'queries', values: nearest.distances }],
        markers: [{ x: s.hardRadius, label: `${s.hardRadius} m (hard)` }, { x: s.softRadius, label: `${s.softRadius} m (soft)` }],
      });
    const nearFiles = await writeFigure(near, join(outDir, `${split}-nearest-distance`));

    const rows: GridRow[] = pickExamples(positives, options.exampleQueries ?? 4).map((q) => {
      const p = positives.soft[q];
      const qx = ds.queriesPositions[2 * q], qy = ds.queriesPositions[2 * q + 1];
      const cells: GridCell[] = [{ path: ds.queriesPaths[q], caption: `query #${q}`, border: COLOURS[1] }];
      for (const i of Array.from(p).slice(0, options.examplePositives ?? 5)) {
        const dist = Math.hypot(ds.databasePositions[2 * i] - qx, ds.databasePositions[2 * i + 1] - qy);
        cells.push({ path: ds.databasePaths[i], caption: `db #${i}\n${fmt(dist, 1)} m`, border: dist <= s.hardRadius ? COLOURS[2] : COLOURS[0] });
      }
      return { label: `query #${q}\n${p.length} within ${s.softRadius} m\n${positives.hard[q].length} within ${s.hardRadius} m\nE ${qx.toLocaleString('en-US', { maximumFractionDigits: 1 })}\nN ${qy.toLocaleString('en-US', { maximumFractionDigits: 1 })}`, cells };
    });
    const gridPath = join(outDir, `${split}-examples.png`);
    const grid = await imageGrid(rows, { title: `${tag}: example queries (orange) and their positives (green ≤ ${s.hardRadius} m, blue ≤ ${s.softRadius} m)`, labelWidth: 170 });
    await writeFile(gridPath, grid);

    figures.push(mapFiles.svg, mapFiles.png, posFiles.svg, posFiles.png, nearFiles.svg, nearFiles.png, gridPath);
  }
  const stats: DatasetStats = { name, root, splits: all };
  const summary = join(outDir, 'summary.json');
  // Infinity/NaN are not JSON: write them as null.
  await writeFile(summary, JSON.stringify(stats, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
  return { summary, figures, stats };
}
