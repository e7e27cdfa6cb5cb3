// The feature-cache plan of one cache loop: which database images and training queries the training
// loop must extract (in inference mode) before mining, for each mining method (the reference's
// datasets_ws.py, compute_triplets):
//   full     the whole database + the loop's queries (negatives are sampled per query at mining time)
//   partial  one shared random set of `negSamplesNum` database images + the queries' hard positives
//            + the queries (the reference default)
//   random   the queries' hard positives + the queries (negatives need no descriptors)
// Hard positives are always cached: the best positive is chosen by descriptor distance.
//
// Randomness: every draw comes from a stream derived from the loop's seed and a purpose (and, per
// query, the training-query index), so the plan and the mined triplets do not depend on processing
// order or chunking, and the same seed gives the same triplets.
import { z } from 'zod';
import { Rng, deriveSeed } from '../data/random.ts';
import type { TrainingQueries } from '../data/positives.ts';

export type MiningMethod = 'full' | 'partial' | 'random';
export const MINING_METHODS: readonly MiningMethod[] = ['full', 'partial', 'random'];

/** What to mine and how many: a narrow slice of the training config. */
export interface MiningOptions {
  /** Default 'partial' (the reference default). */
  method: MiningMethod;
  /** Database images sampled as negative candidates (per query for full, per loop for partial); default 1000. */
  negSamplesNum: number;
  /** Negatives per query in a training tuple; default 10. */
  negsNumPerQuery: number;
}

export const DEFAULT_MINING_OPTIONS: Readonly<MiningOptions> = { method: 'partial', negSamplesNum: 1000, negsNumPerQuery: 10 };

/** The mining options as a training config holds them (its `mining` slice; the method's flag is --mining). */
export const MINING_OPTIONS = {
  method: z.enum(MINING_METHODS as [MiningMethod, ...MiningMethod[]]).default(DEFAULT_MINING_OPTIONS.method).describe('hard negative mining'),
  negsNumPerQuery: z.number().int().positive().default(DEFAULT_MINING_OPTIONS.negsNumPerQuery).describe('negatives per tuple'),
  negSamplesNum: z.number().int().positive().default(DEFAULT_MINING_OPTIONS.negSamplesNum).describe('database images sampled for mining'),
};

/** Fills defaults and checks every field; errors name the option and the value. */
export function resolveMiningOptions(options: Partial<MiningOptions> = {}): MiningOptions {
  const o = { ...DEFAULT_MINING_OPTIONS, ...options };
  if (!MINING_METHODS.includes(o.method)) {
    throw new Error(`mining option method must be one of ${MINING_METHODS.join(', ')}, got '${String(o.method)}'`);
  }
  for (const key of ['negSamplesNum', 'negsNumPerQuery'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new Error(`mining option ${key} must be an integer >= 1, got ${o[key]}`);
  }
  if (o.method !== 'random' && o.negSamplesNum < o.negsNumPerQuery) {
    throw new Error(`mining option negSamplesNum (${o.negSamplesNum}) must be >= negsNumPerQuery (${o.negsNumPerQuery}): negatives are the nearest of the sampled images`);
  }
  return o;
}

/** Purposes of the random streams derived from a loop seed. */
export const STREAM = { loopQueries: 1, sharedNegatives: 2, queryNegatives: 3 } as const;

/**
 * The training queries of one cache loop: `cacheRefreshRate` distinct indices drawn uniformly from
 * [0, trainingCount) (all of them, shuffled, when there are fewer), in draw order.
 */
export function sampleLoopQueries(trainingCount: number, cacheRefreshRate: number, seed: number, groups?: Int32Array): Int32Array {
  if (!Number.isInteger(trainingCount) || trainingCount < 1) throw new Error(`sampleLoopQueries: need at least one training query, got ${trainingCount}`);
  if (!Number.isInteger(cacheRefreshRate) || cacheRefreshRate < 1) {
    throw new Error(`sampleLoopQueries: cacheRefreshRate must be an integer >= 1, got ${cacheRefreshRate}`);
  }
  const rng = new Rng(deriveSeed(seed, STREAM.loopQueries));
  const k = Math.min(cacheRefreshRate, trainingCount);
  if (groups === undefined || groups.length === 0) return Int32Array.from(rng.sample(trainingCount, k));
  if (groups.length !== trainingCount) throw new Error(`sampleLoopQueries: ${groups.length} group labels for ${trainingCount} queries`);
  // Balanced: each group (training dataset) gets an equal share of the loop.
  const members = new Map<number, number[]>();
  groups.forEach((g, i) => { const m = members.get(g); if (m) m.push(i); else members.set(g, [i]); });
  const picked = rng.sampleBalanced([...members.keys()].sort((a, b) => a - b).map((g) => members.get(g)!), k);
  rng.shuffle(picked);
  return Int32Array.from(picked);
}

/** What one cache loop extracts, and the loop's seed for mining. */
export interface CachePlan {
  options: MiningOptions;
  /** Seed of this loop (e.g. deriveSeed(runSeed, epoch, loop)); mining derives its draws from it. */
  seed: number;
  /** Number of database images in the split. */
  databaseCount: number;
  /** Training-query indices of the loop (into TrainingQueries), in loop order: row j of the cached query descriptors. */
  queries: Int32Array;
  /** Database indices to extract, ascending and distinct: row i of the cached database descriptors. */
  database: Int32Array;
  /** partial only: the loop's shared negative candidates (ascending database indices); null otherwise. */
  sharedNegatives: Int32Array | null;
}

/** Ascending distinct values of several lists of indices in [0, n). */
function unionSorted(n: number, lists: Iterable<ArrayLike<number>>): Int32Array {
  const mark = new Uint8Array(n);
  let count = 0;
  for (const list of lists) {
    for (let i = 0; i < list.length; i++) {
      if (mark[list[i]] === 0) {
        mark[list[i]] = 1;
        count++;
      }
    }
  }
  const out = new Int32Array(count);
  for (let i = 0, k = 0; i < n; i++) if (mark[i] === 1) out[k++] = i;
  return out;
}

/**
 * Plans a cache loop over the training queries `queries` (indices into `training`, distinct).
 * `databaseCount` is the split's number of database images. With fewer database images than
 * `negSamplesNum`, the partial shared set is the whole database.
 */
export function planCacheLoop(
  training: Pick<TrainingQueries, 'count' | 'hardPositives'>,
  databaseCount: number,
  queries: ArrayLike<number>,
  options: Partial<MiningOptions>,
  seed: number,
): CachePlan {
  const o = resolveMiningOptions(options);
  if (!Number.isInteger(databaseCount) || databaseCount < 1) throw new Error(`planCacheLoop: databaseCount must be an integer >= 1, got ${databaseCount}`);
  if (!Number.isFinite(seed)) throw new Error(`planCacheLoop: seed must be a finite number, got ${seed}`);
  if (queries.length === 0) throw new Error('planCacheLoop: the loop has no queries');
  const seen = new Set<number>();
  for (let j = 0; j < queries.length; j++) {
    const q = queries[j];
    if (!Number.isInteger(q) || q < 0 || q >= training.count) {
      throw new Error(`planCacheLoop: query ${q} (position ${j} of the loop) is not a training-query index in [0, ${training.count})`);
    }
    if (seen.has(q)) throw new Error(`planCacheLoop: query ${q} appears twice in the loop (positions must be distinct queries)`);
    seen.add(q);
    const hard = training.hardPositives[q];
    if (hard.length === 0) throw new Error(`planCacheLoop: training query ${q} has no hard positive (training queries must have one)`);
    for (const h of hard) {
      if (h < 0 || h >= databaseCount) throw new Error(`planCacheLoop: hard positive ${h} of query ${q} is outside the database [0, ${databaseCount})`);
    }
  }
  const loopQueries = Int32Array.from(queries);
  const hardLists = Array.from(loopQueries, (q) => training.hardPositives[q]);
  let database: Int32Array;
  let sharedNegatives: Int32Array | null = null;
  switch (o.method) {
    case 'full':
      database = Int32Array.from({ length: databaseCount }, (_, i) => i);
      break;
    case 'partial': {
      const rng = new Rng(deriveSeed(seed, STREAM.sharedNegatives));
      sharedNegatives = Int32Array.from(rng.sample(databaseCount, Math.min(o.negSamplesNum, databaseCount))).sort();
      database = unionSorted(databaseCount, [sharedNegatives, ...hardLists]);
      break;
    }
    case 'random':
      database = unionSorted(databaseCount, hardLists);
      break;
  }
  return { options: o, seed, databaseCount, queries: loopQueries, database, sharedNegatives };
}
