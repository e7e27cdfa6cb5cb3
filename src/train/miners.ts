// The hard-negative miners (the reference's datasets_ws.py, compute_triplets), one registry entry
// each: its options, which database images a cache loop must describe for it (cache.ts), and how it
// picks one query's negatives from them (mining.ts). The best positive (the nearest hard positive) and
// the exclusion of positives are the same for every miner and stay in mining.ts.
//   full     the whole database is cached; per query, negSamplesNum database images are sampled, its
//            previous hardest negatives (memory) added, and the negsNumPerQuery nearest kept and remembered
//   partial  one shared random set of negSamplesNum database images per loop is cached (the reference
//            default); each query's negatives are the negsNumPerQuery nearest of that set
//   random   negsNumPerQuery uniformly random non-positives; nothing but the positives is cached
// Adding a miner is one entry here and one line in MINER_ENTRIES.
import { z } from 'zod';
import { Rng, deriveSeed } from '../data/random.ts';
import { mergeOptions, namesOf, type Component, type OptionShape } from '../util/components.ts';

/** Purposes of the random streams derived from a loop seed. */
export const STREAM = { loopQueries: 1, sharedNegatives: 2, queryNegatives: 3 } as const;

const negsNumPerQuery = z.number().int().positive().default(10).describe('negatives per tuple');
const negSamplesNum = z.number().int().positive().default(1000).describe('database images sampled for mining');

/** One query being mined: its candidates so far and what the miner may read. */
export interface MiningQuery {
  /** Training-query index. */
  index: number;
  /** The query's own random stream, deriveSeed(loop seed, STREAM.queryNegatives, index). */
  rng: Rng;
  databaseCount: number;
  /** The loop's shared candidates (from `cache`), ascending; null when the miner shares none. */
  sharedNegatives: Int32Array | null;
  /** Full mining's memory across loops; undefined for miners without `remembers`. */
  memory: NegativeMemory | undefined;
  /** Candidates added so far, in order; never a positive, never twice. */
  candidates: number[];
  /** Adds d unless it is a positive of the query or already a candidate. */
  add(d: number): void;
  /** True when add(d) would add it: d is neither a positive (soft or hard) nor a candidate yet. */
  isFree(d: number): boolean;
  /** The k candidates nearest in descriptor space (ties: lower index), nearest first. */
  nearest(k: number): { negatives: Int32Array; negativeDistances: Float32Array };
  /** Names the query in errors. */
  who: string;
}

/** Full mining's memory across loops: training-query index → its previous hardest negatives. */
export type NegativeMemory = Map<number, Int32Array>;

/** What a miner adds to a loop's cache besides the queries and their hard positives (always cached). */
export interface LoopCache {
  /** Database images to describe: 'all', or a list (any order, duplicates allowed). */
  database: 'all' | ArrayLike<number>;
  /** Candidates every query of the loop shares (partial), ascending; null for none. */
  sharedNegatives: Int32Array | null;
}

export interface MinerEntry<N extends string = string, O extends OptionShape = OptionShape> extends Component<N, O> {
  description: string;
  /** It keeps each query's hardest negatives across cache loops (checkpoints save them). */
  remembers?: boolean;
  cache(databaseCount: number, options: MiningOptions, seed: number): LoopCache;
  negatives(query: MiningQuery, options: MiningOptions): { negatives: Int32Array; negativeDistances: Float32Array | null };
}

const defineMiner = <N extends string, O extends OptionShape>(entry: MinerEntry<N, O>): MinerEntry<N, O> => entry;

/** A query that cannot be mined, or a cache that does not fit its plan. */
export class MiningError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MiningError';
  }
}

export const fullMiner = defineMiner({
  name: 'full',
  description: 'per query, the nearest of negSamplesNum sampled database images and its previous hardest negatives',
  options: { negsNumPerQuery, negSamplesNum },
  remembers: true,
  cache: () => ({ database: 'all', sharedNegatives: null }),
  negatives(query, o) {
    const K = o.negsNumPerQuery, N = query.databaseCount;
    for (const d of query.rng.sample(N, Math.min(o.negSamplesNum, N))) query.add(d);
    for (const d of query.memory!.get(query.index) ?? []) query.add(d);
    if (query.candidates.length < K) {
      // Rare (a sample made almost only of positives): top up with random non-positives.
      const rest: number[] = [];
      for (let d = 0; d < N; d++) if (query.isFree(d)) rest.push(d);
      query.rng.shuffle(rest);
      for (const d of rest.slice(0, K - query.candidates.length)) query.add(d);
    }
    const found = query.nearest(K);
    query.memory!.set(query.index, found.negatives.slice());
    return found;
  },
});

export const partialMiner = defineMiner({
  name: 'partial',
  description: 'the nearest of one random set of negSamplesNum database images shared by the loop (the reference default)',
  options: { negsNumPerQuery, negSamplesNum },
  cache(databaseCount, o, seed) {
    // With fewer database images than negSamplesNum, the shared set is the whole database.
    const rng = new Rng(deriveSeed(seed, STREAM.sharedNegatives));
    const shared = Int32Array.from(rng.sample(databaseCount, Math.min(o.negSamplesNum, databaseCount))).sort();
    return { database: shared, sharedNegatives: shared };
  },
  negatives(query, o) {
    const shared = query.sharedNegatives!;
    for (const d of shared) query.add(d);
    if (query.candidates.length < o.negsNumPerQuery) {
      throw new MiningError(`mineTriplets: ${query.who}: only ${query.candidates.length} of the loop's ${shared.length} shared database images are not soft positives; ${o.negsNumPerQuery} negatives are needed (raise negSamplesNum or lower negsNumPerQuery)`);
    }
    return query.nearest(o.negsNumPerQuery);
  },
});

export const randomMiner = defineMiner({
  name: 'random',
  description: 'uniformly random non-positives (no descriptors needed)',
  options: { negsNumPerQuery },
  cache: () => ({ database: [], sharedNegatives: null }),
  negatives(query, o) {
    // Rejection sampling terminates: mining checked that enough non-positives exist.
    while (query.candidates.length < o.negsNumPerQuery) query.add(query.rng.int(0, query.databaseCount));
    return { negatives: Int32Array.from(query.candidates), negativeDistances: null };
  },
});

/** The miners, one line each. */
export const MINER_ENTRIES = [fullMiner, partialMiner, randomMiner] as const;

export const MINING_METHODS = namesOf<(typeof MINER_ENTRIES)[number]['name']>(MINER_ENTRIES);
export type MiningMethod = (typeof MINING_METHODS)[number];

/** What to mine and how many: the training config's `mining` slice. */
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
  method: z.enum(MINING_METHODS).default(DEFAULT_MINING_OPTIONS.method).describe(`hard negative mining: ${MINER_ENTRIES.map((m) => m.name).join(', ')}`),
  ...mergeOptions(MINER_ENTRIES, 'miners'),
};

export function minerNamed(method: string): MinerEntry {
  const miner = MINER_ENTRIES.find((m) => m.name === method) as MinerEntry | undefined;
  if (miner === undefined) throw new Error(`mining option method must be one of ${MINING_METHODS.join(', ')}, got '${method}'`);
  return miner;
}

/** Fills defaults and checks every field; errors name the option and the value. */
export function resolveMiningOptions(options: Partial<MiningOptions> = {}): MiningOptions {
  const o = { ...DEFAULT_MINING_OPTIONS, ...options };
  const miner = minerNamed(String(o.method));
  for (const key of ['negSamplesNum', 'negsNumPerQuery'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new Error(`mining option ${key} must be an integer >= 1, got ${o[key]}`);
  }
  if ('negSamplesNum' in miner.options && o.negSamplesNum < o.negsNumPerQuery) {
    throw new Error(`mining option negSamplesNum (${o.negSamplesNum}) must be >= negsNumPerQuery (${o.negsNumPerQuery}): negatives are the nearest of the sampled images`);
  }
  return o;
}
