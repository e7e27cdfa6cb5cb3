// Test-time methods of the deep-visual-geo-localization benchmark (`--test_method`). Database images are
// always hard-resized; the method decides how queries are fed and how crop results are merged.
//   hard_resize  (default) queries stretched to H x W, batched.
//   single_query queries at their own aspect, shorter side min(H, W), one at a time.
//   central_crop queries scaled to cover H x W (aspect kept), central H x W crop.
//   five_crops   5 square crops (side min(H, W)) per query; the query descriptor is their mean
//                (not re-normalised, as in the benchmark; L2 search handles non-unit queries).
//   nearest_crop each crop searched; the 5 ranked lists merged by distance, unique database indices.
//   maj_voting   as nearest_crop, after database images found by several crops are pulled closer.
// Each method is a registry entry (its options, how queries are loaded, how crop lists merge); adding
// one is an entry and a line in TEST_METHOD_ENTRIES.
import { z } from 'zod';
import type { ResizeMode } from '../data/image.ts';
import type { Neighbours } from './search.ts';
import { mergeOptions, namesOf, type Component, type OptionShape } from '../util/components.ts';

/** The benchmark's `--majority_weight`. */
export const DEFAULT_MAJORITY_WEIGHT = 0.01;

export interface TestMethodEntry<N extends string = string, O extends OptionShape = OptionShape> extends Component<N, O> {
  description: string;
  /** How queries are loaded. */
  queries: ResizeMode;
  /** Queries one at a time (their shapes differ). */
  oneAtATime?: boolean;
  /** A query's descriptor is the mean of its crops' descriptors. */
  meanOfCrops?: boolean;
  /** Each crop is searched on its own (5 query rows per query) and the ranked lists merged into one. */
  merge?: (crops: readonly RankedList[], k: number, options: TestMethodOptions) => MergedList;
}

const defineTestMethod = <N extends string, O extends OptionShape>(entry: TestMethodEntry<N, O>): TestMethodEntry<N, O> => entry;

export const TEST_METHOD_ENTRIES = [
  defineTestMethod({ name: 'hard_resize', description: 'queries stretched to H x W, batched (default)', options: {}, queries: 'hard_resize' }),
  defineTestMethod({ name: 'single_query', description: 'queries at their own aspect, shorter side min(H, W), one at a time', options: {}, queries: 'single_query', oneAtATime: true }),
  defineTestMethod({ name: 'central_crop', description: 'queries scaled to cover H x W, central crop', options: {}, queries: 'central_crop' }),
  defineTestMethod({ name: 'five_crops', description: 'the mean descriptor of 5 square crops', options: {}, queries: 'five_crops', meanOfCrops: true }),
  defineTestMethod({ name: 'nearest_crop', description: '5 crops searched, lists merged by distance', options: {}, queries: 'five_crops', merge: (lists, k) => mergeNearestCrop(lists, k) }),
  defineTestMethod({
    name: 'maj_voting', description: 'as nearest_crop, images found by several crops pulled closer', queries: 'five_crops',
    options: { majorityWeight: z.number().finite().nonnegative().default(DEFAULT_MAJORITY_WEIGHT).describe('maj_voting: distance bonus per vote') },
    merge: (lists, k, o) => mergeMajorityVoting(lists, k, o.majorityWeight),
  }),
] as const;

export const TEST_METHODS = namesOf<(typeof TEST_METHOD_ENTRIES)[number]['name']>(TEST_METHOD_ENTRIES);
export type TestMethod = (typeof TEST_METHODS)[number];

/** Every test method's options as one shape (evaluation commands spread it into their flags). */
export const TEST_METHOD_OPTIONS = mergeOptions(TEST_METHOD_ENTRIES, 'test methods');
export type TestMethodOptions = { majorityWeight: number };

export function isTestMethod(s: string): s is TestMethod {
  return (TEST_METHODS as readonly string[]).includes(s);
}

export function testMethodNamed(method: string): TestMethodEntry {
  const entry = TEST_METHOD_ENTRIES.find((m) => m.name === method) as TestMethodEntry | undefined;
  if (entry === undefined) throw new Error(`unknown test method "${method}"; choose one of ${TEST_METHODS.join(', ')}`);
  return entry;
}

/** How queries are loaded for a method. */
export function queryResizeMode(method: TestMethod): ResizeMode {
  return testMethodNamed(method).queries;
}

/** True when each crop is searched on its own (5 query rows per query). */
export function searchesEachCrop(method: TestMethod): boolean {
  return testMethodNamed(method).merge !== undefined;
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

/** Merges the per-crop search results (query q's crops in rows cropsPerQuery·q ...) into one list per query, by the method's merge. */
export function mergeCropNeighbours(crops: Neighbours, method: TestMethod, cropsPerQuery = 5, majorityWeight = DEFAULT_MAJORITY_WEIGHT): Neighbours {
  const merge = testMethodNamed(method).merge;
  if (merge === undefined) throw new Error(`merge crops: ${method} searches one row per query`);
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
    const merged = merge(lists, k, { majorityWeight });
    out.indices.set(merged.indices, q * k);
    out.distances.set(merged.distances, q * k);
  }
  return out;
}
