// Test-time methods of the deep-visual-geo-localization benchmark (`--test_method`). Database images are
// always hard-resized; the method decides how queries are fed and how crop results are merged.
//   hard_resize  (default) queries stretched to H x W, batched.
//   single_query queries at their own aspect, shorter side min(H, W), one at a time.
//   central_crop queries scaled to cover H x W (aspect kept), central H x W crop.
//   five_crops   5 square crops (side min(H, W)) per query; the query descriptor is their mean
//                (not re-normalised, as in the benchmark; L2 search handles non-unit queries).
//   nearest_crop each crop searched; the 5 ranked lists merged by distance, unique database indices.
//   maj_voting   as nearest_crop, after database images found by several crops are pulled closer.
import type { ResizeMode } from '../data/image.ts';
import type { Neighbours } from './search.ts';

export const TEST_METHODS = ['hard_resize', 'single_query', 'central_crop', 'five_crops', 'nearest_crop', 'maj_voting'] as const;
export type TestMethod = (typeof TEST_METHODS)[number];

/** The benchmark's `--majority_weight`. */
export const DEFAULT_MAJORITY_WEIGHT = 0.01;

export function isTestMethod(s: string): s is TestMethod {
  return (TEST_METHODS as readonly string[]).includes(s);
}

/** How queries are loaded for a method. */
export function queryResizeMode(method: TestMethod): ResizeMode {
  switch (method) {
    case 'hard_resize': case 'single_query': case 'central_crop': return method;
    case 'five_crops': case 'nearest_crop': case 'maj_voting': return 'five_crops';
  }
}

/** True when each crop is searched on its own (5 query rows per query). */
export function searchesEachCrop(method: TestMethod): boolean {
  return method === 'nearest_crop' || method === 'maj_voting';
}

/** One ranked list: database indices with their L2 distances. */
export interface RankedList {
  indices: ArrayLike<number>;
  distances: ArrayLike<number>;
}

/** A merged list; for maj_voting, `scores` holds the vote-adjusted squared distances it was ranked by. */
export interface MergedList {
  indices: number[];
  distances: number[];
  scores: number[];
}

/**
 * Flattens crop lists (crop-major), ranks entries by `score` with a stable sort (equal scores keep
 * crop order, then rank order), keeps each database index's first entry, and returns the first k.
 */
function mergeByScore(crops: readonly RankedList[], score: number[][], k: number): MergedList {
  const entries: { index: number; distance: number; score: number }[] = [];
  crops.forEach((c, ci) => {
    for (let r = 0; r < c.indices.length; r++) entries.push({ index: c.indices[r], distance: c.distances[r], score: score[ci][r] });
  });
  entries.sort((a, b) => a.score - b.score); // Array.prototype.sort is stable
  const seen = new Set<number>();
  const out: MergedList = { indices: [], distances: [], scores: [] };
  for (const e of entries) {
    if (out.indices.length === k) break;
    if (seen.has(e.index)) continue;
    seen.add(e.index);
    out.indices.push(e.index);
    out.distances.push(e.distance);
    out.scores.push(e.score);
  }
  return out;
}

/** nearest_crop: the k nearest unique database indices over all crop lists, each at its smallest distance. */
export function mergeNearestCrop(crops: readonly RankedList[], k: number): MergedList {
  return mergeByScore(crops, crops.map((c) => Array.from(c.distances, (d) => d * d)), k);
}

/**
 * maj_voting, as the benchmark does it, on squared L2 distances. For n in 1, 5, 10 in turn, look at
 * the first min(n, k) entries of every crop list; a database index found c > 1 times there has the
 * squared distance of each of those entries reduced by weight · c / n (reductions add up, so an index
 * in several crops' top-1 gains three times). Then merge as nearest_crop does, by the adjusted
 * values. `distances` stay the crops' true L2 distances; the order follows the adjusted `scores`.
 */
export function mergeMajorityVoting(crops: readonly RankedList[], k: number, weight = DEFAULT_MAJORITY_WEIGHT): MergedList {
  const score = crops.map((c) => Array.from(c.distances, (d) => d * d));
  for (const n of [1, 5, 10]) {
    const counts = new Map<number, number>();
    crops.forEach((c) => {
      for (let r = 0; r < Math.min(n, c.indices.length); r++) counts.set(c.indices[r], (counts.get(c.indices[r]) ?? 0) + 1);
    });
    crops.forEach((c, ci) => {
      for (let r = 0; r < Math.min(n, c.indices.length); r++) {
        const count = counts.get(c.indices[r])!;
        if (count > 1) score[ci][r] -= (weight * count) / n;
      }
    });
  }
  return mergeByScore(crops, score, k);
}

/** Merges the per-crop search results (query q's crops in rows cropsPerQuery·q ...) into one list per query. */
export function mergeCropNeighbours(
  crops: Neighbours, method: 'nearest_crop' | 'maj_voting', cropsPerQuery = 5, weight = DEFAULT_MAJORITY_WEIGHT,
): Neighbours {
  if (crops.count % cropsPerQuery !== 0) throw new Error(`merge crops: ${crops.count} crop rows is not a multiple of ${cropsPerQuery}`);
  const count = crops.count / cropsPerQuery;
  const { k } = crops;
  const out: Neighbours = { count, k, databaseCount: crops.databaseCount, indices: new Int32Array(count * k), distances: new Float32Array(count * k) };
  for (let q = 0; q < count; q++) {
    const lists: RankedList[] = [];
    for (let c = 0; c < cropsPerQuery; c++) {
      const row = q * cropsPerQuery + c;
      lists.push({ indices: crops.indices.subarray(row * k, (row + 1) * k), distances: crops.distances.subarray(row * k, (row + 1) * k) });
    }
    const merged = method === 'nearest_crop' ? mergeNearestCrop(lists, k) : mergeMajorityVoting(lists, k, weight);
    out.indices.set(merged.indices, q * k);
    out.distances.set(merged.distances, q * k);
  }
  return out;
}
