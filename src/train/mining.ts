// Mining: given the cached descriptors of a cache loop (see cache.ts), choose for every query of the
// loop its best positive (the hard positive nearest in descriptor space) and its negatives, which the
// loop's miner picks among the database images that are not positives (miners.ts).
// "Positives" = soft and hard ones: the hard radius (train threshold) may exceed the soft one.
// Distances are squared L2 between descriptors, computed by the engine in chunks (a matrix product:
// ‖q‖² + ‖x‖² − 2 q·x), so a whole 10,000-image database is one pass. Ties go to the lower index.
//
// Descriptors are engine tensors (the cache is extracted by the engine; copying a 10,000 x 16,384
// cache into JavaScript would double its memory): database [plan.database.length, D] with row i the
// image plan.database[i], queries [plan.queries.length, D] with row j the training query plan.queries[j].
import * as torch from '../torch/index.ts';
import type { Tensor } from '../torch/index.ts';
import { Rng, deriveSeed } from '../data/random.ts';
import type { TrainingQueries } from '../data/positives.ts';
import type { CachePlan } from './cache.ts';
import { STREAM, MiningError, minerNamed, type MiningQuery, type NegativeMemory } from './miners.ts';

export { MiningError, type NegativeMemory } from './miners.ts';

/** The cached descriptors of one loop, rows aligned with the plan. */
export interface CachedDescriptors {
  /** [plan.database.length, D]: row i describes database image plan.database[i]. */
  database: Tensor;
  /** [plan.queries.length, D]: row j describes training query plan.queries[j]. */
  queries: Tensor;
}

/** One training tuple: a query, its best positive and its negatives. */
export interface Triplet {
  /** Training-query index (into TrainingQueries). */
  query: number;
  /** Database index of the best positive. */
  positive: number;
  /** Database indices of the negatives: nearest first (full, partial), in draw order (random). */
  negatives: Int32Array;
  /** Squared descriptor distance query–positive. */
  positiveDistance: number;
  /** Squared descriptor distances query–negatives (aligned with `negatives`); null for random mining. */
  negativeDistances: Float32Array | null;
}

/** The per-query positives mining needs (TrainingQueries fits); originalIndices only improves messages. */
export type MiningPositives = Pick<TrainingQueries, 'softPositives' | 'hardPositives'> & Partial<Pick<TrainingQueries, 'originalIndices'>>;

/** Most distance values held at once per chunk (floats). */
const CHUNK_ELEMENTS = 1 << 22;

/**
 * Calls fn(j, row) for every query row j with row[i] the squared L2 distance from query j to
 * database row i, computing `chunkRows` query rows at a time (default: about 4M distances per chunk).
 * `row` is only valid during the call.
 */
export function forEachDistanceRow(queries: Tensor, database: Tensor, fn: (j: number, row: Float32Array) => void, chunkRows?: number): void {
  const m = queries.size(0);
  const n = database.size(0);
  if (m === 0) return;
  if (n === 0) {
    for (let j = 0; j < m; j++) fn(j, new Float32Array(0));
    return;
  }
  const chunk = chunkRows ?? Math.max(1, Math.floor(CHUNK_ELEMENTS / n));
  torch.inferenceMode(() => torch.tidy(() => {
    const db = database.float();
    const dbT = db.t();
    const dbNorms = db.pow(2).sum(1); // [n]
    for (let start = 0; start < m; start += chunk) {
      const c = Math.min(chunk, m - start);
      const values = torch.tidy(() => {
        const q = queries.narrow(0, start, c).float();
        return q.mm(dbT).mul(-2).add(q.pow(2).sum(1, true)).add(dbNorms).clampMin(0).toFloat32Array();
      });
      for (let r = 0; r < c; r++) fn(start + r, values.subarray(r * n, (r + 1) * n));
    }
  }));
}

/**
 * Mines one triplet per query of the plan, in plan order. Full mining reads and updates `memory`
 * (required for 'full': keep one Map for the whole run). Throws a MiningError naming the query when it
 * cannot be served (too few non-positive database images, descriptors missing from the cache).
 */
export function mineTriplets(plan: CachePlan, descriptors: CachedDescriptors, positives: MiningPositives, memory?: NegativeMemory): Triplet[] {
  const { options, databaseCount: N } = plan;
  const K = options.negsNumPerQuery;
  checkDescriptors(plan, descriptors);
  const miner = minerNamed(options.method);
  if (miner.remembers === true && memory === undefined) {
    throw new MiningError(`mineTriplets: ${miner.name} mining needs a NegativeMemory (one Map kept across cache loops)`);
  }
  const rowOf = new Int32Array(N).fill(-1);
  plan.database.forEach((d, i) => (rowOf[d] = i));

  const softMark = new Int32Array(N); // softMark[d] === j + 1: d is a positive (soft or hard) of query j
  const candMark = new Int32Array(N); // candMark[d] === j + 1: d is already a candidate of query j
  const triplets = new Array<Triplet>(plan.queries.length);

  forEachDistanceRow(descriptors.queries, descriptors.database, (j, dist) => {
    const q = plan.queries[j];
    const who = `training query ${q}${positives.originalIndices ? ` (query ${positives.originalIndices[q]} of the split)` : ''}`;
    const distanceOf = (d: number): number => {
      const r = rowOf[d];
      if (r < 0) throw new MiningError(`mineTriplets: database image ${d} needed for ${who} is not in the cache (was the cache extracted from this plan?)`);
      return dist[r];
    };

    // Best positive: nearest hard positive.
    const hard = positives.hardPositives[q];
    if (hard === undefined || hard.length === 0) throw new MiningError(`mineTriplets: ${who} has no hard positive`);
    let positive = -1, positiveDistance = Infinity;
    for (const h of hard) {
      const d = distanceOf(h);
      if (d < positiveDistance || (d === positiveDistance && h < positive)) {
        positive = h;
        positiveDistance = d;
      }
    }

    // Never a negative: a soft positive, nor a hard one (the hard radius may exceed the soft one, as
    // in a train-threshold sweep to 50 m; the reference would then mine a positive as a negative).
    const stamp = j + 1;
    let softCount = 0; // distinct positives, soft or hard
    for (const list of [positives.softPositives[q], hard]) {
      for (const s of list) {
        if (softMark[s] !== stamp) {
          softMark[s] = stamp;
          softCount++;
        }
      }
    }
    const available = N - softCount;
    if (available < K) {
      throw new MiningError(`mineTriplets: ${who} has ${softCount} positives among ${N} database images, so only ${available} can be negatives; ${K} are needed (lower negsNumPerQuery)`);
    }

    const candidates: number[] = [];
    const isFree = (d: number) => softMark[d] !== stamp && candMark[d] !== stamp;
    const query: MiningQuery = {
      index: q, who, databaseCount: N, sharedNegatives: plan.sharedNegatives, memory: miner.remembers === true ? memory : undefined,
      rng: new Rng(deriveSeed(plan.seed, STREAM.queryNegatives, q)),
      candidates,
      isFree,
      add(d) {
        if (isFree(d)) {
          candMark[d] = stamp;
          candidates.push(d);
        }
      },
      nearest: (k) => nearest(candidates, k, distanceOf),
    };
    const { negatives, negativeDistances } = miner.negatives(query, options);
    triplets[j] = { query: q, positive, negatives, positiveDistance, negativeDistances };
  });
  return triplets;
}

/** The k candidates with the smallest distance (ties: lower index), nearest first. */
function nearest(candidates: number[], k: number, distanceOf: (d: number) => number): { negatives: Int32Array; negativeDistances: Float32Array } {
  const scored = candidates.map((d) => ({ d, dist: distanceOf(d) }));
  scored.sort((a, b) => a.dist - b.dist || a.d - b.d);
  const top = scored.slice(0, k);
  return { negatives: Int32Array.from(top, (s) => s.d), negativeDistances: Float32Array.from(top, (s) => s.dist) };
}

function checkDescriptors(plan: CachePlan, c: CachedDescriptors): void {
  const db = c.database.shape, qs = c.queries.shape;
  if (db.length !== 2 || db[0] !== plan.database.length) {
    throw new MiningError(`mineTriplets: cached database descriptors must be [${plan.database.length}, D] (one row per planned database image), got [${db.join(', ')}]`);
  }
  if (qs.length !== 2 || qs[0] !== plan.queries.length) {
    throw new MiningError(`mineTriplets: cached query descriptors must be [${plan.queries.length}, D] (one row per planned query), got [${qs.join(', ')}]`);
  }
  if (db[1] !== qs[1]) throw new MiningError(`mineTriplets: database descriptors have ${db[1]} dimensions but query descriptors ${qs[1]}`);
}

/** How hard the mined tuples are, for the training log (squared descriptor distances). */
export interface MiningSummary {
  triplets: number;
  meanPositiveDistance: number;
  /** Mean over tuples of the nearest negative's distance; null for random mining. */
  meanHardestNegativeDistance: number | null;
  /** Share of (query, negative) pairs with the negative nearer than the positive; null for random mining. */
  violatingShare: number | null;
}

export function summarizeTriplets(triplets: readonly Triplet[]): MiningSummary {
  let pos = 0, hardest = 0, violating = 0, pairs = 0;
  let withDistances = true;
  for (const t of triplets) {
    pos += t.positiveDistance;
    if (t.negativeDistances === null) {
      withDistances = false;
      continue;
    }
    hardest += Math.min(...t.negativeDistances);
    for (const d of t.negativeDistances) if (d < t.positiveDistance) violating++;
    pairs += t.negativeDistances.length;
  }
  const n = triplets.length;
  return {
    triplets: n,
    meanPositiveDistance: n > 0 ? pos / n : NaN,
    meanHardestNegativeDistance: withDistances && n > 0 ? hardest / n : null,
    violatingShare: withDistances && pairs > 0 ? violating / pairs : null,
  };
}

/** The memory as plain JSON (training-query index → database indices), for checkpoints: resuming full mining needs it. */
export function memoryToJSON(memory: NegativeMemory): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [q, negatives] of [...memory].sort((a, b) => a[0] - b[0])) out[String(q)] = Array.from(negatives);
  return out;
}

/** Reads memoryToJSON's output back, checking every entry; `where` names the source in errors (e.g. the checkpoint file). */
export function memoryFromJSON(json: unknown, where = 'negative memory'): NegativeMemory {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${where}: expected an object of training-query index → negatives`);
  const memory: NegativeMemory = new Map();
  for (const [key, value] of Object.entries(json)) {
    const q = Number(key);
    if (!Number.isInteger(q) || q < 0 || String(q) !== key) throw new Error(`${where}: key '${key}' is not a training-query index`);
    if (!Array.isArray(value) || !value.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new Error(`${where}: negatives of query ${key} must be a list of database indices`);
    }
    memory.set(q, Int32Array.from(value as number[]));
  }
  return memory;
}
