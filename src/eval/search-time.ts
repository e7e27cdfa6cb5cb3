// Exact-search cost at database sizes a test set does not have: the scalability half of the
// recall–scalability trade-off. The test database's descriptors are repeated up to each size, every
// copy jittered and re-normalised (so that copies neither tie nor change the descriptor statistics
// much), and the test queries are searched against it, timed.
import * as torch from '../torch/index.ts';
import type { Tensor } from '../torch/index.ts';
import { searchExact } from './search.ts';

export interface SearchTimeOptions {
  /** Neighbours per query (the evaluation's largest N). */
  k: number;
  /** Queries timed (default: at most 200 of them). */
  maxQueries?: number;
  /** Std of the jitter added to each copy, relative to a unit descriptor's entries (default 0.05). */
  jitter?: number;
  /** Timed repetitions; the fastest is kept (default 3). */
  repeats?: number;
  seed?: number;
  /** Bytes the synthetic database may take (default: a quarter of the available memory). */
  memoryBytes?: number;
}

export interface SearchTime {
  databaseSize: number;
  /** Milliseconds per query (fastest repetition over the timed queries), or null when the database did not fit in memory. */
  msPerQuery: number | null;
}

/** Exact search time per query against a database of each size built from `database` [n, d] (unit rows). */
export function searchTimes(database: Tensor, queries: Tensor, sizes: readonly number[], o: SearchTimeOptions): SearchTime[] {
  const [n, dim] = database.shape as [number, number];
  const budget = o.memoryBytes ?? torch.availableMemory() / 4;
  const jitter = (o.jitter ?? 0.05) / Math.sqrt(dim);
  const q = queries.shape[0]! > (o.maxQueries ?? 200) ? queries.slice(0, 0, o.maxQueries ?? 200) : queries;
  torch.manualSeed(o.seed ?? 0);
  return sizes.map((size) => {
    if (size * dim * 4 > budget) return { databaseSize: size, msPerQuery: null };
    return torch.tidy(() => {
      const index = torch.tensor(BigInt64Array.from({ length: size }, (_, i) => BigInt(i % n)));
      const copies = database.indexSelect(0, index).add(torch.randn([size, dim]).mul(jitter));
      const db = torch.F.normalize(copies);
      searchExact(db, q, { k: o.k }); // warm-up: first-touch of the memory, thread pool
      let best = Infinity;
      for (let r = 0; r < (o.repeats ?? 3); r++) {
        const t0 = performance.now();
        searchExact(db, q, { k: o.k });
        best = Math.min(best, performance.now() - t0);
      }
      return { databaseSize: size, msPerQuery: best / q.shape[0]! };
    });
  });
}
