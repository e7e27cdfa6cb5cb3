// `vgl bench search`: exact nearest-neighbour search (src/eval/search.ts) against faiss IndexFlatL2 and
// against PyTorch (fp32 eager, and bf16 autocast) on the same random unit descriptors, in one run. All
// sides read nothing but the same .npy files, all time the search only (median of `iters` after a
// warm-up), in alternating rounds (each side's best median kept, as the other benchmarks), and their
// results are compared with faiss's. vgl searches in the precision asked: fp32, or bf16 (pre-filter,
// fp32 re-ranking, certified top-k).
import { fileURLToPath } from 'node:url';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../torch/index.ts';
import { searchExact, searchPrefiltered, type Neighbours, type PrefilterStats } from '../eval/search.ts';
import type { Precision } from '../torch/index.ts';
import { writeNpy, readNpy, readNpyInt32 } from '../data/npy.ts';
import { medianMs, runReference, ratio, bestOf } from './timing.ts';

export interface SearchBenchOptions {
  /** Database descriptors (default 5,000; Pitts30k: 10,000). */
  database?: number;
  /** Query descriptors (default 2,000; Pitts30k test: 6,816). */
  queries?: number;
  /** Descriptor dimension (default 4,096; R18conv4 NetVLAD: 16,384). */
  dim?: number;
  /** Neighbours per query (default 20). */
  k?: number;
  /** Timed runs per side and round, median reported (default 3). */
  iters?: number;
  /** Alternating faiss/vgl rounds; each side's best median is kept (default 2). */
  rounds?: number;
  seed?: number;
  queryBlock?: number;
  databaseBlock?: number;
  /** Sets database, queries and dim to the Pitts30k test sizes (10,000 x 6,816 x 16,384). */
  full?: boolean;
  /** Where to write the .npy files (default: a temp folder, removed afterwards). */
  workDir?: string;
  /** What vgl searches in (default fp32). */
  precision?: Precision;
}

export interface SearchBench {
  sizes: { database: number; queries: number; dim: number; k: number };
  threads: number;
  vgl: { search_ms: number; queries_per_s: number; precision: Precision; prefilter?: PrefilterStats };
  faiss: { search_ms: number; queries_per_s: number; version: string };
  /** PyTorch's exact search, fp32 eager and under bf16 autocast (no re-ranking). */
  pytorch: { fp32_ms: number; bf16_ms: number; version: string };
  /** vgl time / faiss time (below 1: vgl is faster). */
  ratio: number;
  /** vgl time / PyTorch fp32 and bf16 times. */
  ratioPytorch: { fp32: number; bf16: number };
  /** How far vgl's result lists agree with faiss's (float rounding may swap near-equal neighbours). */
  agreement: { top1: number; topkSets: number; maxDistanceDiff: number };
  /** How far PyTorch's bf16 lists agree with faiss's: what bf16 ranks without re-ranking. */
  pytorchBf16Agreement: { top1: number; topkSets: number };
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench search: --${name} must be a positive integer, got ${v}`);
}

/** Random unit rows [n, dim] (normal, then L2-normalised), kept out of any scope. */
function randomUnit(n: number, dim: number): torch.Tensor {
  return torch.keep(torch.tidy(() => {
    const x = torch.randn([n, dim]);
    return x.div(x.norm(2, 1, true));
  }));
}

export async function benchSearch(options: SearchBenchOptions = {}): Promise<SearchBench> {
  const full = options.full ?? false;
  const n = options.database ?? (full ? 10_000 : 5_000);
  const m = options.queries ?? (full ? 6_816 : 2_000);
  const dim = options.dim ?? (full ? 16_384 : 4_096);
  const k = options.k ?? 20;
  const iters = options.iters ?? 3;
  const precision = options.precision ?? 'fp32';
  for (const [name, v] of [['database', n], ['queries', m], ['dim', dim], ['k', k], ['iters', iters]] as const) checkPositiveInt(name, v);
  const threads = torch.getNumThreads();

  torch.manualSeed(options.seed ?? 0);
  const database = randomUnit(n, dim);
  const queries = randomUnit(m, dim);
  const dir = options.workDir ?? (await mkdtemp(join(tmpdir(), 'vgl-bench-search-')));
  try {
    const files = {
      database: join(dir, 'database.npy'), queries: join(dir, 'queries.npy'),
      indices: join(dir, 'faiss-indices.npy'), distances: join(dir, 'faiss-distances.npy'), torchBf16: join(dir, 'torch-bf16-indices.npy'),
    };
    await writeNpy(files.database, database.toFloat32Array(), [n, dim]);
    await writeNpy(files.queries, queries.toFloat32Array(), [m, dim]);

    const script = fileURLToPath(new URL('./reference/search.py', import.meta.url));
    const torchScript = fileURLToPath(new URL('./reference/search_torch.py', import.meta.url));
    const references: { search_ms: number; faiss: string }[] = [];
    const pytorch: { fp32_ms: number; bf16_ms: number; torch: string }[] = [];
    const oursMs: { search_ms: number }[] = [];
    let ours: Neighbours | null = null;
    let prefilter: PrefilterStats | undefined;
    const blocks = { k, queryBlock: options.queryBlock, databaseBlock: options.databaseBlock };
    const run = () => {
      if (precision === 'bf16') ({ neighbours: ours, stats: prefilter } = searchPrefiltered(database, queries, blocks));
      else ours = searchExact(database, queries, blocks);
    };
    for (let round = 0; round < (options.rounds ?? 2); round++) {
      try {
        references.push(runReference(script, [files.database, files.queries, String(k), String(threads), String(iters), files.indices, files.distances]));
      } catch (e) {
        throw new Error(`${(e as Error).message}\nThe search benchmark needs faiss and numpy for that Python: apt-get install python3-faiss python3-numpy`);
      }
      pytorch.push(runReference(torchScript, [files.database, files.queries, String(k), String(threads), String(iters), files.torchBf16]));
      oursMs.push({ search_ms: medianMs(run, iters, 1) });
    }
    const reference = bestOf(references);
    const torchRef = bestOf(pytorch);
    const ms = bestOf(oursMs).search_ms;
    const faissIndices = (await readNpyInt32(files.indices)).data;
    const agreement = compare(ours!, faissIndices, (await readNpy(files.distances)).data);
    const torchBf16 = (await readNpyInt32(files.torchBf16)).data;
    const { top1, topkSets } = compare({ count: m, k: ours!.k, databaseCount: n, indices: torchBf16, distances: new Float32Array(torchBf16.length) }, faissIndices, new Float32Array(faissIndices.length));
    return {
      sizes: { database: n, queries: m, dim, k },
      threads,
      vgl: { search_ms: ms, queries_per_s: (m / ms) * 1000, precision, ...(prefilter ? { prefilter } : {}) },
      faiss: { search_ms: reference.search_ms, queries_per_s: (m / reference.search_ms) * 1000, version: reference.faiss },
      pytorch: { fp32_ms: torchRef.fp32_ms, bf16_ms: torchRef.bf16_ms, version: torchRef.torch },
      ratio: ratio(ms, reference.search_ms),
      ratioPytorch: { fp32: ratio(ms, torchRef.fp32_ms), bf16: ratio(ms, torchRef.bf16_ms) },
      agreement,
      pytorchBf16Agreement: { top1, topkSets },
    };
  } finally {
    database.dispose();
    queries.dispose();
    if (options.workDir === undefined) await rm(dir, { recursive: true, force: true });
  }
}

/** Share of queries with the same top-1, with the same top-k set, and the largest distance difference. */
function compare(ours: Neighbours, faissIndices: Int32Array, faissDistances: Float32Array): SearchBench['agreement'] {
  const { count, k } = ours;
  let top1 = 0, sets = 0, maxDiff = 0;
  for (let q = 0; q < count; q++) {
    if (ours.indices[q * k] === faissIndices[q * k]) top1++;
    const mine = new Set(ours.indices.subarray(q * k, (q + 1) * k));
    let same = true;
    for (let r = 0; r < k; r++) {
      if (!mine.has(faissIndices[q * k + r])) same = false;
      maxDiff = Math.max(maxDiff, Math.abs(ours.distances[q * k + r] - faissDistances[q * k + r]));
    }
    if (same) sets++;
  }
  return { top1: top1 / count, topkSets: sets / count, maxDistanceDiff: maxDiff };
}
