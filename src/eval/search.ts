// Exact nearest neighbours by L2 distance, with the engine's matrix products.
// Blocked over queries and over the database, with a running top-k merge, so the score matrix never
// exists whole: 10,000 database x 7,000 queries x 16,384 dims needs one [queryBlock, databaseBlock]
// block at a time besides the descriptors themselves.
//
// Ranking: smallest L2 = largest 2q·d − ‖d‖² (‖q‖² is constant per query); for unit vectors, largest
// q·d. Reported distances are true L2 (not squared): sqrt(max(0, ‖q‖² − score)) or sqrt(max(0, 2 − 2q·d)).
//
// Ties: each list is sorted by distance, then by database index. When equal computed scores straddle
// the k-th place, the engine's top-k does not say which of them it keeps, so such queries are
// re-ranked from their full score row and the lowest database indices win — the same answer as a
// stable sort of the whole row.
import * as torch from '../torch/index.ts';
import type { Tensor } from '../torch/index.ts';

/** 'l2': any vectors (‖q‖² + ‖d‖² − 2q·d); 'unit': vectors known to be L2-normalised (2 − 2q·d). */
export type SearchMetric = 'l2' | 'unit';

export interface SearchOptions {
  /** Neighbours per query; capped at the database size. */
  k: number;
  /** Default 'l2' (exact for any vectors; ranks unit vectors exactly as 'unit' does). */
  metric?: SearchMetric;
  /** Queries per block (default 1024). */
  queryBlock?: number;
  /** Database rows per block (default 8192). Memory per step ≈ 4 · queryBlock · databaseBlock bytes. */
  databaseBlock?: number;
  /** Called after each query block with the number of queries done. */
  onProgress?: (done: number, total: number) => void;
}

/** The k nearest database rows of each query: row-major [count, k] arrays. */
export interface Neighbours {
  /** Number of queries (rows). */
  count: number;
  /** Neighbours per query (min(requested k, databaseCount)). */
  k: number;
  /** Number of database rows searched. */
  databaseCount: number;
  /** indices[q * k + r]: database index at rank r of query q. */
  indices: Int32Array;
  /** distances[q * k + r]: its L2 distance in descriptor space. */
  distances: Float32Array;
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`search: ${name} must be a positive integer, got ${v}`);
}

/** Exact k nearest neighbours of each query row among the database rows (both [rows, D]). */
export function searchExact(database: Tensor, queries: Tensor, options: SearchOptions): Neighbours {
  const { k: requested, metric = 'l2', queryBlock = 1024, databaseBlock = 8192, onProgress } = options;
  checkPositiveInt('k', requested);
  checkPositiveInt('queryBlock', queryBlock);
  checkPositiveInt('databaseBlock', databaseBlock);
  if (metric !== 'l2' && metric !== 'unit') throw new Error(`search: metric must be "l2" or "unit", got "${String(metric)}"`);
  if (database.ndim !== 2 || queries.ndim !== 2) {
    throw new Error(`search: database [${database.shape}] and queries [${queries.shape}] must both be 2-D [rows, dim]`);
  }
  const [n, dim] = database.shape as [number, number];
  const [m, qdim] = queries.shape as [number, number];
  if (dim !== qdim) throw new Error(`search: database descriptors have ${dim} dims but queries have ${qdim}`);
  if (n === 0) throw new Error('search: the database is empty');
  const k = Math.min(requested, n);
  const keep = Math.min(k + 1, n); // one extra candidate reveals ties across the k-th place
  const out: Neighbours = { count: m, k, databaseCount: n, indices: new Int32Array(m * k), distances: new Float32Array(m * k) };
  if (m === 0) return out;

  torch.inferenceMode(() => torch.tidy(() => {
    const databaseSq = metric === 'l2' ? squaredNorms(database, databaseBlock) : null;
    const tied: number[] = [];
    for (let q0 = 0; q0 < m; q0 += queryBlock) {
      const b = Math.min(queryBlock, m - q0);
      torch.tidy(() => {
        const block = queries.narrow(0, q0, b);
        let values: Tensor | null = null;
        let indices: Tensor | null = null;
        for (let d0 = 0; d0 < n; d0 += databaseBlock) {
          const bn = Math.min(databaseBlock, n - d0);
          const [v, i] = torch.tidy(() => {
            const s = scores(block, database.narrow(0, d0, bn), databaseSq?.narrow(0, d0, bn) ?? null);
            const [bv, bi] = s.topk(Math.min(keep, bn), 1);
            const gi = bi.add(d0);
            if (values === null || indices === null) return [bv, gi];
            const cv = torch.cat([values, bv], 1);
            const ci = torch.cat([indices, gi], 1);
            const [mv, mi] = cv.topk(Math.min(keep, cv.size(1)), 1);
            return [mv, ci.gather(1, mi)];
          });
          values?.dispose();
          indices?.dispose();
          values = v;
          indices = i;
        }
        const sv = values!.toFloat32Array();
        const si = indices!.toNumbers();
        const querySq = metric === 'l2' ? squaredNorms(block, b).toFloat32Array() : null;
        for (let r = 0; r < b; r++) {
          const order = rankCandidates(sv, si, r * keep, keep);
          if (keep > k && sv[r * keep + order[k - 1]] === sv[r * keep + order[k]]) tied.push(q0 + r);
          for (let j = 0; j < k; j++) {
            const c = r * keep + order[j];
            out.indices[(q0 + r) * k + j] = si[c];
            out.distances[(q0 + r) * k + j] = toDistance(sv[c], querySq?.[r]);
          }
        }
      });
      onProgress?.(Math.min(q0 + b, m), m);
    }
    if (tied.length > 0) resolveTies(database, queries, databaseSq, tied, k, out);
  }));
  return out;
}

/** Row sums of squares [rows], computed a block of rows at a time (no full-size temporary). */
function squaredNorms(x: Tensor, block: number): Tensor {
  const rows = x.size(0);
  if (rows <= block) return x.pow(2).sum(1);
  const parts: Tensor[] = [];
  for (let r0 = 0; r0 < rows; r0 += block) parts.push(torch.tidy(() => x.narrow(0, r0, Math.min(block, rows - r0)).pow(2).sum(1)));
  const out = torch.cat(parts, 0);
  torch.dispose(parts);
  return out;
}

/** Ranking scores [b, bn]: larger is nearer. 2q·d − ‖d‖² for 'l2', q·d for 'unit'. */
function scores(queries: Tensor, database: Tensor, databaseSq: Tensor | null): Tensor {
  const s = queries.mm(database.t());
  return databaseSq === null ? s : s.mul_(2).add_(databaseSq, -1);
}

function toDistance(score: number, querySq: number | undefined): number {
  const squared = querySq === undefined ? 2 - 2 * score : querySq - score;
  return Math.sqrt(Math.max(0, squared));
}

/** Positions 0..count-1 of the candidates at `offset`, by score descending then database index ascending. */
function rankCandidates(values: Float32Array, indices: number[], offset: number, count: number): number[] {
  const order = Array.from({ length: count }, (_, j) => j);
  return order.sort((a, b) => values[offset + b] - values[offset + a] || indices[offset + a] - indices[offset + b]);
}

/** Re-ranks the queries whose k-th place is tied from their full score rows (lowest database index wins). */
function resolveTies(database: Tensor, queries: Tensor, databaseSq: Tensor | null, rows: number[], k: number, out: Neighbours): void {
  const n = database.size(0);
  const chunk = Math.max(1, Math.floor(16_777_216 / n)); // ≤ 64 MB of scores at a time
  for (let c0 = 0; c0 < rows.length; c0 += chunk) {
    const part = rows.slice(c0, c0 + chunk);
    torch.tidy(() => {
      const sel = queries.indexSelect(0, torch.tensor(Int32Array.from(part), [part.length], { dtype: 'int64' }));
      const full = scores(sel, database, databaseSq).toFloat32Array();
      const querySq = databaseSq === null ? null : squaredNorms(sel, part.length).toFloat32Array();
      part.forEach((q, r) => {
        const row = full.subarray(r * n, (r + 1) * n);
        const order = Array.from({ length: n }, (_, j) => j).sort((a, b) => row[b] - row[a] || a - b);
        for (let j = 0; j < k; j++) {
          out.indices[q * k + j] = order[j];
          out.distances[q * k + j] = toDistance(row[order[j]], querySq?.[r]);
        }
      });
    });
  }
}

/** Row q of a result: its database indices and distances (views, not copies). */
export function neighboursOf(result: Neighbours, q: number): { indices: Int32Array; distances: Float32Array } {
  const { k } = result;
  return { indices: result.indices.subarray(q * k, (q + 1) * k), distances: result.distances.subarray(q * k, (q + 1) * k) };
}

/**
 * Merges the neighbours of the same queries in two database parts: `b` searched rows that sit at
 * `bOffset` onwards of the whole database. Each row keeps the k nearest by distance, then database
 * index — so searching a database part by part and merging gives what one search of it gives.
 */
export function mergeNeighbours(a: Neighbours, b: Neighbours, bOffset: number, k: number): Neighbours {
  if (a.count !== b.count) throw new Error(`mergeNeighbours: ${a.count} and ${b.count} query rows`);
  const kk = Math.min(k, a.k + b.k);
  const out: Neighbours = { count: a.count, k: kk, databaseCount: a.databaseCount + b.databaseCount, indices: new Int32Array(a.count * kk), distances: new Float32Array(a.count * kk) };
  for (let q = 0; q < a.count; q++) {
    let i = 0, j = 0;
    for (let r = 0; r < kk; r++) {
      const ai = i < a.k ? a.indices[q * a.k + i] : -1, ad = i < a.k ? a.distances[q * a.k + i] : Infinity;
      const bi = j < b.k ? b.indices[q * b.k + j] + bOffset : -1, bd = j < b.k ? b.distances[q * b.k + j] : Infinity;
      const takeA = j >= b.k || (i < a.k && (ad < bd || (ad === bd && ai < bi)));
      out.indices[q * kk + r] = takeA ? ai : bi;
      out.distances[q * kk + r] = takeA ? ad : bd;
      if (takeA) i++; else j++;
    }
  }
  return out;
}
