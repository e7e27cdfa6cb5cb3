// Which database images lie near each query: soft positives (evaluation, excluded from negatives) and
// hard positives (training), found with a 2-D k-d tree over the database positions (kdbush).
// Every list is sorted by distance to the query, ties broken by database index, and the radius is inclusive.
import KDBush from 'kdbush';
import type { GeoDataset } from './dataset.ts';

/** Reference default radius of soft positives (`val_positive_dist_threshold`), metres. */
export const DEFAULT_SOFT_POSITIVE_RADIUS = 25;
/** Reference default radius of hard positives (`train_positives_dist_threshold`), metres. */
export const DEFAULT_HARD_POSITIVE_RADIUS = 10;

/** Radius search over a fixed set of row-major N x 2 positions (metres). */
export class PositionIndex {
  readonly count: number;
  private readonly tree: KDBush;
  private readonly scratch: Uint32Array;

  /** Builds the tree over `positions` ([x0, y0, x1, y1, ...]). */
  constructor(readonly positions: Float64Array) {
    if (positions.length % 2 !== 0) throw new Error(`positions must hold x, y pairs; got ${positions.length} numbers`);
    this.count = positions.length / 2;
    this.tree = new KDBush(Math.max(1, this.count));
    for (let i = 0; i < this.count; i++) this.tree.add(positions[2 * i], positions[2 * i + 1]);
    if (this.count === 0) this.tree.add(Infinity, Infinity); // kdbush needs one item; this one is never within any radius
    this.tree.finish();
    this.scratch = new Uint32Array(Math.max(1, this.count));
  }

  /** Indices within `radius` (inclusive) of (x, y), sorted by distance then index. */
  within(x: number, y: number, radius: number): Int32Array {
    return this.withinWithDistances(x, y, radius).indices;
  }

  /** Indices within `radius` (inclusive) of (x, y) and their distances, sorted by distance then index. */
  withinWithDistances(x: number, y: number, radius: number): { indices: Int32Array; distances: Float64Array } {
    if (this.count === 0) return { indices: new Int32Array(0), distances: new Float64Array(0) };
    const n = this.tree.withinInto(x, y, radius, this.scratch);
    const p = this.positions;
    const ids = this.scratch.slice(0, n);
    const d2 = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const dx = p[2 * ids[k]] - x, dy = p[2 * ids[k] + 1] - y;
      d2[k] = dx * dx + dy * dy;
    }
    const order = Array.from({ length: n }, (_, k) => k).sort((a, b) => d2[a] - d2[b] || ids[a] - ids[b]);
    const indices = Int32Array.from(order, (k) => ids[k]);
    const distances = Float64Array.from(order, (k) => Math.sqrt(d2[k]));
    return { indices, distances };
  }

  /** Nearest indexed position to (x, y) and its distance; index -1 and distance Infinity when the index is empty. */
  nearest(x: number, y: number): { index: number; distance: number } {
    if (this.count === 0) return { index: -1, distance: Infinity };
    // Grow the radius geometrically: once anything is within r, the nearest is among those found.
    let r = 16;
    for (;;) {
      const n = this.tree.withinInto(x, y, r, this.scratch);
      if (n > 0) {
        let best = -1, bestD2 = Infinity;
        for (let k = 0; k < n; k++) {
          const i = this.scratch[k];
          const dx = this.positions[2 * i] - x, dy = this.positions[2 * i + 1] - y;
          const d2 = dx * dx + dy * dy;
          if (d2 < bestD2 || (d2 === bestD2 && i < best)) { bestD2 = d2; best = i; }
        }
        return { index: best, distance: Math.sqrt(bestD2) };
      }
      r *= 4;
      if (!Number.isFinite(r)) throw new Error(`nearest(${x}, ${y}): no finite position found`);
    }
  }
}

function checkRadius(radius: number, what: string): void {
  if (!Number.isFinite(radius) || radius < 0) throw new Error(`${what} must be a finite number of metres >= 0, got ${radius}`);
}

/** For each query (row-major M x 2), the database indices within `radius` metres, sorted by distance then index. */
export function radiusPositives(database: Float64Array | PositionIndex, queries: Float64Array, radius: number): Int32Array[] {
  checkRadius(radius, 'positive radius');
  const index = database instanceof PositionIndex ? database : new PositionIndex(database);
  const out = new Array<Int32Array>(queries.length / 2);
  for (let q = 0; q < out.length; q++) out[q] = index.within(queries[2 * q], queries[2 * q + 1], radius);
  return out;
}

/** Radii for soft and hard positives, metres. */
export interface PositivesOptions {
  /** Soft positive radius, default 25 (`valPositiveDistThreshold`). */
  valPositiveDistThreshold?: number;
  /** Hard positive radius, default 10 (`trainPositivesDistThreshold`). */
  trainPositivesDistThreshold?: number;
}

/** Soft and hard positives of every query of a split, each list sorted by distance then database index. */
export interface QueryPositives {
  softRadius: number;
  hardRadius: number;
  /** soft[q]: database indices within softRadius of query q. */
  soft: Int32Array[];
  /** hard[q]: database indices within hardRadius of query q. */
  hard: Int32Array[];
}

/** Computes soft (default 25 m) and hard (default 10 m) positives for every query of `dataset`. */
export function computePositives(dataset: Pick<GeoDataset, 'databasePositions' | 'queriesPositions'>, options: PositivesOptions = {}): QueryPositives {
  const softRadius = options.valPositiveDistThreshold ?? DEFAULT_SOFT_POSITIVE_RADIUS;
  const hardRadius = options.trainPositivesDistThreshold ?? DEFAULT_HARD_POSITIVE_RADIUS;
  checkRadius(softRadius, 'valPositiveDistThreshold');
  checkRadius(hardRadius, 'trainPositivesDistThreshold');
  const index = new PositionIndex(dataset.databasePositions);
  return {
    softRadius, hardRadius,
    soft: radiusPositives(index, dataset.queriesPositions, softRadius),
    hard: radiusPositives(index, dataset.queriesPositions, hardRadius),
  };
}

/** For each query, the nearest database index and its distance in metres (-1 / Infinity with an empty database). */
export function nearestDatabase(database: Float64Array | PositionIndex, queries: Float64Array): { indices: Int32Array; distances: Float64Array } {
  const index = database instanceof PositionIndex ? database : new PositionIndex(database);
  const m = queries.length / 2;
  const indices = new Int32Array(m);
  const distances = new Float64Array(m);
  for (let q = 0; q < m; q++) {
    const r = index.nearest(queries[2 * q], queries[2 * q + 1]);
    indices[q] = r.index;
    distances[q] = r.distance;
  }
  return { indices, distances };
}

/** The queries a training loop may use: those with at least one hard positive, every per-query array aligned. */
export interface TrainingQueries {
  /** Number of kept queries. */
  count: number;
  /** originalIndices[k]: index of kept query k in the split's query list. */
  originalIndices: Int32Array;
  paths: string[];
  /** Row-major count x 2 positions. */
  positions: Float64Array;
  softPositives: Int32Array[];
  hardPositives: Int32Array[];
  /** Number of queries dropped for having no hard positive. */
  dropped: number;
  /** Original indices of the dropped queries. */
  droppedIndices: Int32Array;
  softRadius: number;
  hardRadius: number;
}

/** Drops queries without a hard positive and keeps paths, positions, soft/hard positives and original indices aligned. */
export function trainingQueries(dataset: Pick<GeoDataset, 'queriesPaths' | 'queriesPositions'>, positives: QueryPositives): TrainingQueries {
  const m = dataset.queriesPaths.length;
  if (positives.soft.length !== m || positives.hard.length !== m) {
    throw new Error(`positives cover ${positives.soft.length}/${positives.hard.length} queries but the split has ${m}`);
  }
  const kept: number[] = [];
  const dropped: number[] = [];
  for (let q = 0; q < m; q++) (positives.hard[q].length > 0 ? kept : dropped).push(q);
  const positions = new Float64Array(kept.length * 2);
  kept.forEach((q, k) => {
    positions[2 * k] = dataset.queriesPositions[2 * q];
    positions[2 * k + 1] = dataset.queriesPositions[2 * q + 1];
  });
  return {
    count: kept.length,
    originalIndices: Int32Array.from(kept),
    paths: kept.map((q) => dataset.queriesPaths[q]),
    positions,
    softPositives: kept.map((q) => positives.soft[q]),
    hardPositives: kept.map((q) => positives.hard[q]),
    dropped: dropped.length,
    droppedIndices: Int32Array.from(dropped),
    softRadius: positives.softRadius,
    hardRadius: positives.hardRadius,
  };
}
