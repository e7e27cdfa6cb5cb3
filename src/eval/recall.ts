// recall@N: the share of queries with at least one soft positive (a database image within the radius of
// the query's true position) among their top-N predictions. Computed from kept predictions and
// positions only, so another radius or N needs no re-extraction and no new search.
import { PositionIndex, radiusPositives, DEFAULT_SOFT_POSITIVE_RADIUS } from '../data/positives.ts';

/** The reference's recall values. */
export const DEFAULT_RECALL_VALUES: readonly number[] = [1, 5, 10, 20];

/** Ranked database indices per query (what search returns; distances are not needed here). */
export interface RankedPredictions {
  count: number;
  k: number;
  databaseCount: number;
  /** indices[q * k + r]: database index at rank r of query q. */
  indices: Int32Array;
}

/** recall@N in percent (0–100), keyed by N. */
export type Recalls = Record<number, number>;

function checkValues(ns: readonly number[], predictions: RankedPredictions): void {
  if (ns.length === 0) throw new Error('recall: give at least one N');
  for (const n of ns) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`recall: N must be a positive integer, got ${n}`);
    // With fewer predictions than N, recall@N is unknown — unless the whole database was returned.
    if (n > predictions.k && predictions.k < predictions.databaseCount) {
      throw new Error(`recall@${n} needs ${n} predictions per query but only ${predictions.k} were kept; search again with k >= ${n}`);
    }
  }
}

/** For each query, the first rank (0-based) holding a positive, or -1 when none of its k predictions is one. */
export function firstCorrectRank(predictions: RankedPredictions, positives: readonly ArrayLike<number>[]): Int32Array {
  const { count, k, indices } = predictions;
  if (positives.length !== count) throw new Error(`recall: positives cover ${positives.length} queries but predictions cover ${count}`);
  const out = new Int32Array(count).fill(-1);
  for (let q = 0; q < count; q++) {
    const pos = new Set(Array.from(positives[q]));
    if (pos.size === 0) continue;
    for (let r = 0; r < k; r++) {
      if (pos.has(indices[q * k + r])) {
        out[q] = r;
        break;
      }
    }
  }
  return out;
}

/** Each query's first correct rank (0-based; -1: none in its predictions), a positive being a database image within `radius` metres. */
export function firstCorrectRanksAt(predictions: RankedPredictions, databasePositions: Float64Array, queriesPositions: Float64Array, radius: number): Int32Array {
  return firstCorrectRank(predictions, radiusPositives(new PositionIndex(databasePositions), queriesPositions, radius));
}

/** recall@N (percent) from first-correct ranks. */
export function recallsFromRanks(ranks: Int32Array, ns: readonly number[]): Recalls {
  const out: Recalls = {};
  for (const n of ns) {
    let hits = 0;
    for (const r of ranks) if (r >= 0 && r < n) hits++;
    out[n] = ranks.length === 0 ? 0 : (100 * hits) / ranks.length;
  }
  return out;
}

/** recall@N (percent) for each N, given each query's positive database indices. */
export function recallAtN(predictions: RankedPredictions, positives: readonly ArrayLike<number>[], ns: readonly number[] = DEFAULT_RECALL_VALUES): Recalls {
  checkValues(ns, predictions);
  return recallsFromRanks(firstCorrectRank(predictions, positives), ns);
}

/** recall@N (percent) at each radius (metres), keyed by radius then N; positions are row-major [east, north] pairs. */
export function recallAtRadii(
  predictions: RankedPredictions, databasePositions: Float64Array, queriesPositions: Float64Array,
  radii: readonly number[] = [DEFAULT_SOFT_POSITIVE_RADIUS], ns: readonly number[] = DEFAULT_RECALL_VALUES,
): Record<number, Recalls> {
  checkValues(ns, predictions);
  if (databasePositions.length !== 2 * predictions.databaseCount) {
    throw new Error(`recall: ${databasePositions.length / 2} database positions for a search over ${predictions.databaseCount} database descriptors`);
  }
  const index = new PositionIndex(databasePositions);
  const out: Record<number, Recalls> = {};
  for (const radius of radii) out[radius] = recallAtN(predictions, radiusPositives(index, queriesPositions, radius), ns);
  return out;
}
