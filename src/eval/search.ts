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
//
// precision 'bf16': a pre-filter on bfloat16 copies (the CPU's AMX-BF16 or AVX512-BF16 units: ~18x the
// fp32 matrix-product speed, measured on an Intel CPU with AMX) keeps `candidates` per query, re-ranked
// by exact fp32 scores. A bound on the pre-filter's error (bf16 rounding of the inputs, measured, and of
// the scores) certifies each query's top-k: no row left out could beat its k-th. Queries it cannot certify are searched again in
// fp32. The result is the fp32 search's, up to fp32 rounding of near-equal scores. Re-scoring gathers
// each query's candidate rows, which costs about what the fp32 products of a small database do: below
// PREFILTER_MIN_ROWS_PER_CANDIDATE database rows per candidate, 'bf16' searches in fp32 directly.
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
  /** 'fp32' (default): exact fp32 scores. 'bf16': a bf16 pre-filter re-ranked in fp32 (same top-k, see above). */
  precision?: 'fp32' | 'bf16';
  /** bf16: candidates per query kept for fp32 re-ranking (default max(4k, k + 32), at most the database). */
  candidates?: number;
  /**
   * The database rows' squared norms ([rows], `databaseSquaredNorms(database)`), for a database searched
   * many times: a search of one query otherwise spends a pass over the whole matrix computing them.
   */
  databaseSquaredNorms?: Tensor;
}

/** Database rows per pre-filter candidate below which the fp32 search is as fast (measured: 1,000 rows slower, 2,500 faster). */
export const PREFILTER_MIN_ROWS_PER_CANDIDATE = 25;
const defaultCandidates = (k: number) => Math.max(4 * k, k + 32);

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

/** The checked options and sizes of a search. */
interface Checked {
  k: number;
  n: number;
  m: number;
  metric: SearchMetric;
  queryBlock: number;
  databaseBlock: number;
}

function check(database: Tensor, queries: Tensor, options: SearchOptions): Checked {
  const { k: requested, metric = 'l2', queryBlock = 1024, databaseBlock = 8192, precision = 'fp32' } = options;
  checkPositiveInt('k', requested);
  checkPositiveInt('queryBlock', queryBlock);
  checkPositiveInt('databaseBlock', databaseBlock);
  if (metric !== 'l2' && metric !== 'unit') throw new Error(`search: metric must be "l2" or "unit", got "${String(metric)}"`);
  if (precision !== 'fp32' && precision !== 'bf16') throw new Error(`search: precision must be "fp32" or "bf16", got "${String(precision)}"`);
  if (database.ndim !== 2 || queries.ndim !== 2) {
    throw new Error(`search: database [${database.shape}] and queries [${queries.shape}] must both be 2-D [rows, dim]`);
  }
  const [n, dim] = database.shape as [number, number];
  const [m, qdim] = queries.shape as [number, number];
  if (dim !== qdim) throw new Error(`search: database descriptors have ${dim} dims but queries have ${qdim}`);
  if (n === 0) throw new Error('search: the database is empty');
  const sq = options.databaseSquaredNorms;
  if (sq !== undefined && (sq.ndim !== 1 || sq.size(0) !== n)) {
    throw new Error(`search: databaseSquaredNorms has shape [${sq.shape}], the database ${n} rows: compute it with databaseSquaredNorms(database)`);
  }
  return { k: Math.min(requested, n), n, m, metric, queryBlock, databaseBlock };
}

const emptyNeighbours = (m: number, k: number, n: number): Neighbours =>
  ({ count: m, k, databaseCount: n, indices: new Int32Array(m * k), distances: new Float32Array(m * k) });

/** Exact k nearest neighbours of each query row among the database rows (both [rows, D]). */
export function searchExact(database: Tensor, queries: Tensor, options: SearchOptions): Neighbours {
  const { k, n, m, metric, queryBlock, databaseBlock } = check(database, queries, options);
  if (options.precision === 'bf16' && n >= PREFILTER_MIN_ROWS_PER_CANDIDATE * (options.candidates ?? defaultCandidates(k))) {
    return searchPrefiltered(database, queries, options).neighbours;
  }
  const { onProgress } = options;
  const keep = Math.min(k + 1, n); // one extra candidate reveals ties across the k-th place
  const out = emptyNeighbours(m, k, n);
  if (m === 0) return out;

  torch.inferenceMode(() => torch.tidy(() => {
    const databaseSq = metric === 'l2' ? (options.databaseSquaredNorms ?? squaredNorms(database, databaseBlock)) : null;
    const tied: number[] = [];
    for (let q0 = 0; q0 < m; q0 += queryBlock) {
      const b = Math.min(queryBlock, m - q0);
      torch.tidy(() => {
        const block = queries.narrow(0, q0, b);
        const [values, indices] = runningTopk(n, databaseBlock, keep,
          (d0, bn) => scores(block, database.narrow(0, d0, bn), databaseSq?.narrow(0, d0, bn) ?? null));
        const sv = values.toFloat32Array();
        const si = indices.toNumbers();
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

/** How the bf16 pre-filter went: candidates kept per query, exact scores computed, queries certified or searched again in fp32. */
export interface PrefilterStats {
  candidates: number;
  /** Mean candidates per query re-scored in fp32 (those the error bound could not rule out). */
  rescored: number;
  certified: number;
  fallbacks: number;
}

/** bfloat16's unit roundoff (8 significant bits, round to nearest): |x − bf16(x)| ≤ 2⁻⁸|x|. */
const BF16_ROUNDOFF = 2 ** -8;
/** Room for the fp32 accumulation of D products (different kernels sum in different orders), relative to ‖q‖‖d‖. */
const ACCUMULATION_SLACK = 2 ** -12;

/**
 * searchExact with precision 'bf16', with its statistics. Per query block: bf16 scores against the
 * bf16 database (block by block, running top-`candidates`), then an error bound e(p) on each
 * pre-filter score p. With q̃, d̃ the bf16 copies, q·d − q̃·d̃ = (q − q̃)·d + q̃·(d − d̃), so
 * |q·d − q̃·d̃| ≤ ‖q − q̃‖·max‖d‖ + ‖q̃‖·max‖d − d̃‖ (input rounding, measured per query); the bf16
 * product is off its fp32 sum by at most 2⁻⁸ of it (output rounding); plus an accumulation slack.
 * Every row's exact score lies in [p − e(p), p + e(p)]. The k-th largest lower bound L is below the
 * k-th exact score, so only candidates with p + e(p) ≥ L can be in the top-k: they (a prefix of the
 * candidates by p) are re-scored in fp32 and ranked. The top-k is certified when a row not re-scored
 * is ruled out: the next candidate's p + e(p) is below L, or, when every candidate was re-scored, the
 * lowest kept p (no row left out scored more) plus its bound is below the k-th exact score.
 */
export function searchPrefiltered(database: Tensor, queries: Tensor, options: SearchOptions): { neighbours: Neighbours; stats: PrefilterStats } {
  const { k, n, m, metric, queryBlock, databaseBlock } = check(database, queries, options);
  const candidates = Math.min(n, options.candidates ?? defaultCandidates(k));
  checkPositiveInt('candidates', candidates);
  if (candidates < k) throw new Error(`search: candidates (${candidates}) must be at least k (${k})`);
  const out = emptyNeighbours(m, k, n);
  const stats: PrefilterStats = { candidates, rescored: 0, certified: 0, fallbacks: 0 };
  if (m === 0) return { neighbours: out, stats };
  const fallbacks: number[] = [];
  let rescored = 0;
  torch.inferenceMode(() => torch.tidy(() => {
    const low = database.to('bfloat16');
    const databaseSq = metric === 'l2' ? (options.databaseSquaredNorms ?? squaredNorms(database, databaseBlock)) : null;
    const { normMax, roundingMax } = roundingOf(database, low, databaseBlock);
    // 'l2' scores are 2s − ‖d‖²: a pre-filter score p means s̃ = (p + ‖d‖²) / 2 for a row of that norm.
    const [sqMin, sqMax] = databaseSq === null ? [0, 0] : [databaseSq.amin().item(), databaseSq.amax().item()];
    for (let q0 = 0; q0 < m; q0 += queryBlock) {
      const b = Math.min(queryBlock, m - q0);
      torch.tidy(() => {
        const block = queries.narrow(0, q0, b);
        const blockLow = block.to('bfloat16');
        const wide = blockLow.float();
        const lowNorm = wide.norm(2, 1).toFloat32Array();
        const rounding = block.sub(wide).norm(2, 1).toFloat32Array();
        const [kept, indices] = prefilter(blockLow, low, databaseSq, candidates, databaseBlock);
        const p = kept.toFloat32Array();
        // Per query: the error bound of each kept score, L, and how many candidates to re-score.
        const bounds = new Float32Array(b * candidates);
        const counts = new Int32Array(b);
        const floors = new Float64Array(b);
        for (let r = 0; r < b; r++) {
          const input = rounding[r] * normMax + lowNorm[r] * roundingMax + ACCUMULATION_SLACK * lowNorm[r] * normMax;
          const row = r * candidates;
          for (let j = 0; j < candidates; j++) {
            const v = p[row + j];
            bounds[row + j] = metric === 'unit' ? BF16_ROUNDOFF * Math.abs(v) + input
              : BF16_ROUNDOFF * Math.max(Math.abs(v + sqMin), Math.abs(v + sqMax)) + 2 * input;
          }
          // p − e(p) and p + e(p) both grow with p, and p is sorted: L is the k-th lower bound, the candidates to re-score a prefix.
          floors[r] = p[row + k - 1] - bounds[row + k - 1];
          let c = k;
          while (c < candidates && p[row + c] + bounds[row + c] >= floors[r]) c++;
          counts[r] = c;
        }
        const exact = candidateScores(block, database, databaseSq, indices, counts);
        const ci = indices.toNumbers();
        const querySq = metric === 'l2' ? squaredNorms(block, b).toFloat32Array() : null;
        for (let r = 0; r < b; r++) {
          const row = r * candidates;
          const c = counts[r];
          rescored += c;
          const order = rankCandidates(exact, ci, row, c);
          for (let j = 0; j < k; j++) {
            out.indices[(q0 + r) * k + j] = ci[row + order[j]];
            out.distances[(q0 + r) * k + j] = toDistance(exact[row + order[j]], querySq?.[r]);
          }
          if (c < candidates || candidates === n) continue; // the next candidate, and every row after it, ruled out
          const last = row + candidates - 1;
          if (!(exact[row + order[k - 1]] > p[last] + bounds[last])) fallbacks.push(q0 + r);
        }
      });
      options.onProgress?.(Math.min(q0 + b, m), m);
    }
    if (fallbacks.length > 0) {
      const again = searchExact(database, queries.indexSelect(0, torch.tensor(Int32Array.from(fallbacks), [fallbacks.length], { dtype: 'int64' })),
        { k, metric, queryBlock, databaseBlock });
      fallbacks.forEach((q, r) => {
        out.indices.set(again.indices.subarray(r * k, (r + 1) * k), q * k);
        out.distances.set(again.distances.subarray(r * k, (r + 1) * k), q * k);
      });
    }
  }));
  stats.rescored = rescored / m;
  stats.fallbacks = fallbacks.length;
  stats.certified = m - fallbacks.length;
  return { neighbours: out, stats };
}

/** The largest ‖d‖ and ‖d − bf16(d)‖ over the database rows, a block of rows at a time. */
function roundingOf(database: Tensor, low: Tensor, block: number): { normMax: number; roundingMax: number } {
  let normMax = 0, roundingMax = 0;
  for (let r0 = 0; r0 < database.size(0); r0 += block) {
    torch.tidy(() => {
      const rows = database.narrow(0, r0, Math.min(block, database.size(0) - r0));
      const wide = low.narrow(0, r0, rows.size(0)).float();
      normMax = Math.max(normMax, rows.norm(2, 1).amax().item());
      roundingMax = Math.max(roundingMax, rows.sub(wide).norm(2, 1).amax().item());
    });
  }
  return { normMax, roundingMax };
}

/** The top-`count` pre-filter scores [b, count] (descending) and their database indices, from bf16 products. */
function prefilter(queriesLow: Tensor, databaseLow: Tensor, databaseSq: Tensor | null, count: number, databaseBlock: number): [Tensor, Tensor] {
  return runningTopk(databaseLow.size(0), databaseBlock, count, (d0, bn) => {
    const s = queriesLow.mm(databaseLow.narrow(0, d0, bn).t()).float();
    return databaseSq === null ? s : s.mul_(2).add_(databaseSq.narrow(0, d0, bn), -1);
  });
}

/**
 * The running top-k merge: the `count` largest scores of each query row over `n` database rows
 * ([b, count], descending) and their database indices, from `blockScores(d0, bn)` ([b, bn], the scores
 * of rows d0..d0+bn-1) one block of `databaseBlock` rows at a time, so no [b, n] score matrix exists.
 */
function runningTopk(n: number, databaseBlock: number, count: number, blockScores: (d0: number, bn: number) => Tensor): [Tensor, Tensor] {
  let values: Tensor | null = null;
  let indices: Tensor | null = null;
  for (let d0 = 0; d0 < n; d0 += databaseBlock) {
    const bn = Math.min(databaseBlock, n - d0);
    const [v, i] = torch.tidy(() => {
      const [bv, bi] = blockScores(d0, bn).topk(Math.min(count, bn), 1);
      const gi = bi.add(d0);
      if (values === null || indices === null) return [bv, gi];
      const cv = torch.cat([values, bv], 1);
      const [mv, mi] = cv.topk(Math.min(count, cv.size(1)), 1);
      return [mv, torch.cat([indices, gi], 1).gather(1, mi)];
    });
    values?.dispose();
    indices?.dispose();
    values = v;
    indices = i;
  }
  return [values!, indices!];
}

/**
 * Exact fp32 ranking scores of the first counts[r] candidates of each query (indices [b, c]), row-major
 * [b, c] with the rest unset. Rows go in groups of ~8 MB of gathered candidates (each group as wide as
 * its widest row; small enough for the allocator to reuse: fresh large blocks cost page faults).
 */
function candidateScores(queries: Tensor, database: Tensor, databaseSq: Tensor | null, indices: Tensor, counts: Int32Array): Float32Array {
  const [b, c] = indices.shape as [number, number];
  const dim = database.size(1);
  const budget = 2_097_152; // floats
  const out = new Float32Array(b * c);
  for (let r0 = 0; r0 < b;) {
    let width = counts[r0];
    let rb = 1;
    while (r0 + rb < b && (rb + 1) * Math.max(width, counts[r0 + rb]) * dim <= budget) width = Math.max(width, counts[r0 + rb++]);
    const scores = torch.tidy(() => {
      const idx = indices.narrow(0, r0, rb).narrow(1, 0, width).reshape(rb * width);
      const s = database.indexSelect(0, idx).view(rb, width, dim).bmm(queries.narrow(0, r0, rb).unsqueeze(2)).squeeze(2);
      return (databaseSq === null ? s : s.mul(2).sub(databaseSq.indexSelect(0, idx).view(rb, width))).toFloat32Array();
    });
    for (let r = 0; r < rb; r++) out.set(scores.subarray(r * width, (r + 1) * width), (r0 + r) * c);
    r0 += rb;
  }
  return out;
}

/** Each database row's squared L2 norm, [rows]: computed once for a database searched many times (SearchOptions). */
export function databaseSquaredNorms(database: Tensor, block = 8192): Tensor {
  return torch.inferenceMode(() => squaredNorms(database, block));
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
