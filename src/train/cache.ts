// The feature-cache plan of one cache loop: which database images and training queries the training
// loop must extract (in inference mode) before mining (the reference's datasets_ws.py,
// compute_triplets): the loop's queries, their hard positives (the best positive is chosen by
// descriptor distance), and what the miner asks for (miners.ts: all of the database for full, one
// shared random set for partial, nothing more for random).
//
// Randomness: every draw comes from a stream derived from the loop's seed and a purpose (and, per
// query, the training-query index), so the plan and the mined triplets do not depend on processing
// order or chunking, and the same seed gives the same triplets.
import { Rng, deriveSeed } from '../data/random.ts';
import type { TrainingQueries } from '../data/positives.ts';
import { STREAM, minerNamed, resolveMiningOptions, type MiningOptions } from './miners.ts';

export { STREAM, MINING_METHODS, MINING_OPTIONS, DEFAULT_MINING_OPTIONS, resolveMiningOptions, type MiningMethod, type MiningOptions } from './miners.ts';

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
  const { database: asked, sharedNegatives } = minerNamed(o.method).cache(databaseCount, o, seed);
  const database = asked === 'all' ? Int32Array.from({ length: databaseCount }, (_, i) => i) : unionSorted(databaseCount, [asked, ...hardLists]);
  return { options: o, seed, databaseCount, queries: loopQueries, database, sharedNegatives };
}
