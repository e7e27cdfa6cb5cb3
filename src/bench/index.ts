// `vgl bench index`: exact search (src/eval/search.ts, fp32 matrix products) against an approximate
// HNSW graph (usearch, as `vgl index build --approximate` builds it, candidates re-ranked in fp32)
// at city scale: 10k, 100k and 1M synthetic descriptors. Per size and method: build time, memory,
// query time (a batch of queries, and one query at a time as the service meets them), recall@1/10
// of the approximate neighbours against the exact ones, and what localization cares about: how often
// the first match (or one of the first 10) is an image of the query's place, exact and approximate.
//
// The descriptors imitate a place-recognition database: places (cluster centres) seen by ~10 images
// each (unit vectors near their centre), queries being new views of a random database image's place.
// Uniform random vectors would be unlike real descriptors and the worst case for a graph.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir, availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import * as torch from '../torch/index.ts';
import type { Tensor } from '../torch/index.ts';
import { databaseSquaredNorms, searchExact } from '../eval/search.ts';
import { HnswIndex, HNSW_DEFAULTS, candidatesFor, neighbourRecall, rerank, type RankedRows } from '../eval/approximate.ts';
import type { Quantization } from '../eval/approximate.ts';

export interface IndexBenchOptions {
  /** Database sizes (default 10,000, 100,000, 1,000,000). */
  sizes?: number[];
  /** Descriptor dimension (default 256: a PCA-reduced or GeM descriptor). */
  dim?: number;
  /** Queries timed in a batch and measured for recall (default 1,000). */
  queries?: number;
  /** Queries timed one at a time (default 50). */
  singleQueries?: number;
  k?: number;
  /** HNSW storages to build (default i8: as accurate as f16 after re-ranking, and faster to build). */
  quantizations?: Quantization[];
  connectivity?: number;
  expansionAdd?: number;
  /** Search widths measured on each graph (default 64, 256 and 1024 — what 1M descriptors need: the same graph reloaded with each). */
  expansionSearch?: number[];
  /** Database images per place (default 10). */
  imagesPerPlace?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface IndexBenchRow {
  size: number;
  method: string;
  /** Time to make the searchable structure: the exact search has none beyond the matrix. */
  buildMs: number;
  /** Bytes of the structure (the fp32 matrix; the graph as saved), and the process's resident growth while building it. */
  bytes: number;
  rssGrowthBytes: number;
  /** Per query, in a batch of `queries`; and the median of single queries. */
  batchMsPerQuery: number;
  singleMs: number;
  /** Against exact search on the same queries (0..1). */
  recallAt1: number;
  recallAt10: number;
  /** Share of queries whose first match (any of the first 10) is an image of the query's own place (0..1). */
  placeAt1: number;
  placeAt10: number;
}

export interface IndexBench {
  dim: number;
  queries: number;
  k: number;
  threads: number;
  /** The machine's 1-minute load average when the run started and ended (shared machines: timings depend on it). */
  loadAverage: [number, number];
  hnsw: { connectivity: number; expansionAdd: number; expansionSearch: number[]; candidates: number };
  rows: IndexBenchRow[];
}

/** Descriptors, and the place of each database row and query. */
interface SyntheticDescriptors { database: Tensor; queries: Tensor; databasePlaces: Int32Array; queryPlaces: Int32Array }

/** Unit rows: `places` centres, each database row near one of them, queries near random database rows' places. */
function syntheticDescriptors(size: number, dim: number, queries: number, imagesPerPlace: number): SyntheticDescriptors {
  const places = Math.max(1, Math.round(size / imagesPerPlace));
  const databasePlaces = new Int32Array(size);
  const made = torch.tidy(() => {
    const centres = unit(torch.randn([places, dim]));
    const chunk = 65536;
    const parts: Tensor[] = [];
    for (let r0 = 0; r0 < size; r0 += chunk) {
      const n = Math.min(chunk, size - r0);
      parts.push(torch.tidy(() => {
        const of = torch.randint(0, places, [n]);
        databasePlaces.set(of.toNumbers(), r0);
        // view noise of norm ~0.6 around the place's centre (cosine ~0.85 to it)
        return unit(centres.indexSelect(0, of).add(torch.randn([n, dim]).mul(0.6 / Math.sqrt(dim))));
      }));
    }
    const database = torch.cat(parts, 0);
    const seen = torch.randint(0, size, [queries]);
    // a new view: another draw of the same amount of noise around the image's place
    const q = unit(database.indexSelect(0, seen).add(torch.randn([queries, dim]).mul(0.6 / Math.sqrt(dim))));
    return { database: torch.keep(database), queries: torch.keep(q), seen: seen.toNumbers() };
  });
  return { database: made.database, queries: made.queries, databasePlaces, queryPlaces: Int32Array.from(made.seen, (row) => databasePlaces[row]!) };
}

/** Share of queries whose first match, and any of the first 10, lies in the query's place. */
export function placeRecall(found: RankedRows, databasePlaces: Int32Array, queryPlaces: Int32Array): { placeAt1: number; placeAt10: number } {
  let at1 = 0;
  let at10 = 0;
  for (let q = 0; q < found.count; q++) {
    const row = found.indices.subarray(q * found.k, q * found.k + Math.min(10, found.k));
    if (row[0]! >= 0 && databasePlaces[row[0]!] === queryPlaces[q]) at1++;
    if (row.some((i) => i >= 0 && databasePlaces[i] === queryPlaces[q])) at10++;
  }
  return { placeAt1: at1 / found.count, placeAt10: at10 / found.count };
}

const unit = (x: Tensor): Tensor => x.div(x.norm(2, 1, true).clampMin(1e-12));

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timed<T>(fn: () => T): [T, number] {
  const t = performance.now();
  const r = fn();
  return [r, performance.now() - t];
}

export async function benchIndex(o: IndexBenchOptions = {}): Promise<IndexBench> {
  const sizes = o.sizes ?? [10_000, 100_000, 1_000_000];
  const dim = o.dim ?? 256;
  const q = o.queries ?? 1000;
  const singles = o.singleQueries ?? 50;
  const k = o.k ?? 10;
  const quantizations = o.quantizations ?? ['i8'];
  const hnsw = {
    connectivity: o.connectivity ?? HNSW_DEFAULTS.connectivity, expansionAdd: o.expansionAdd ?? HNSW_DEFAULTS.expansionAdd,
    expansionSearch: o.expansionSearch ?? [64, 256, 1024], candidates: candidatesFor(k),
  };
  const log = o.log ?? ((s: string) => console.error(s));
  const rows: IndexBenchRow[] = [];
  const loadAtStart = loadavg()[0];
  const work = mkdtempSync(join(tmpdir(), 'vgl-bench-index-'));
  try {
    for (const size of sizes) {
      torch.manualSeed(o.seed ?? 0);
      log(`${size.toLocaleString('en')} descriptors x ${dim}-d: generating`);
      const rss0 = process.memoryUsage().rss;
      const { database, queries, databasePlaces, queryPlaces } = syntheticDescriptors(size, dim, q, o.imagesPerPlace ?? 10);
      try {
        const databaseHost = database.toFloat32Array();
        const queriesHost = queries.toFloat32Array();
        // Exact: the matrix is the index (a first small search warms the engine's kernels up).
        searchExact(database, queries.narrow(0, 0, Math.min(q, 8)), { k });
        const [exact, exactMs] = timed(() => searchExact(database, queries, { k }));
        const single = (search: (row: Float32Array) => unknown) => {
          const times: number[] = [];
          for (let i = 0; i < Math.min(singles, q); i++) times.push(timed(() => search(queriesHost.subarray(i * dim, (i + 1) * dim)))[1]);
          return median(times);
        };
        // One query as the service meets it: the database's norms computed once, when the index is opened.
        const norms = databaseSquaredNorms(database);
        const exactSingle = single((row) => torch.tidy(() => searchExact(database, torch.tensor(row, [1, dim]), { k, databaseSquaredNorms: norms })));
        norms.dispose();
        rows.push({
          size, method: 'exact fp32', buildMs: 0, bytes: size * dim * 4, rssGrowthBytes: process.memoryUsage().rss - rss0,
          batchMsPerQuery: exactMs / q, singleMs: exactSingle, recallAt1: 1, recallAt10: 1, ...placeRecall(exact, databasePlaces, queryPlaces),
        });
        log(`  exact: ${(exactMs / q).toFixed(3)} ms/query in a batch of ${q}, ${exactSingle.toFixed(2)} ms alone; right place @1 ${(100 * rows.at(-1)!.placeAt1).toFixed(1)}%`);
        for (const quantization of quantizations) {
          const before = process.memoryUsage().rss;
          const options = { quantization, connectivity: hnsw.connectivity, expansionAdd: hnsw.expansionAdd, expansionSearch: hnsw.expansionSearch[0] };
          const graph = new HnswIndex(dim, options);
          let lastReport = performance.now();
          const [, buildMs] = timed(() => graph.add(databaseHost, 0, (done, total) => {
            if (performance.now() - lastReport > 30_000) {
              lastReport = performance.now();
              log(`  hnsw ${quantization}: ${done.toLocaleString('en')} / ${total.toLocaleString('en')} inserted`);
            }
          }));
          const grown = process.memoryUsage().rss - before;
          const file = join(work, `${size}-${quantization}.usearch`);
          graph.save(file);
          const bytes = statSync(file).size;
          // The search width is a search-time setting: the same graph, reloaded with each.
          for (const ef of hnsw.expansionSearch) {
            const g = ef === options.expansionSearch ? graph : HnswIndex.load(file, dim, { ...options, expansionSearch: ef }, { mapped: true });
            const c = Math.min(hnsw.candidates, size);
            const search = (qs: Float32Array): RankedRows => rerank(databaseHost, dim, qs, g.candidates(qs, c, 1), c, Math.min(k, size));
            const [approx, approxMs] = timed(() => search(queriesHost));
            const agreement = { ...neighbourRecall(exact, approx), ...placeRecall(approx, databasePlaces, queryPlaces) };
            const approxSingle = single((row) => search(row));
            const method = `hnsw ${quantization}${hnsw.expansionSearch.length > 1 ? `, ef ${ef}` : ''}`;
            rows.push({ size, method, buildMs, bytes, rssGrowthBytes: grown, batchMsPerQuery: approxMs / q, singleMs: approxSingle, ...agreement });
            log(`  ${method}: built in ${(buildMs / 1000).toFixed(1)} s, ${(bytes / 1048576).toFixed(0)} MiB; ${(approxMs / q).toFixed(3)} ms/query, ` +
              `${approxSingle.toFixed(2)} ms alone; recall@1 ${(100 * agreement.recallAt1).toFixed(1)}%, @10 ${(100 * agreement.recallAt10).toFixed(1)}%; `
              + `right place @1 ${(100 * agreement.placeAt1).toFixed(1)}%`);
          }
          rmSync(file);
        }
      } finally {
        database.dispose();
        queries.dispose();
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { dim, queries: q, k, threads: availableParallelism(), loadAverage: [loadAtStart, loadavg()[0]], hnsw, rows };
}

/** The rows as a markdown table. */
export function indexBenchTable(b: IndexBench): string {
  const lines = [
    '| database | method | build | memory | query, batch of ' + b.queries + ' | query, alone | recall@1 | recall@10 | right place @1 | right place @10 |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of b.rows) {
    const mib = r.bytes / 1048576;
    lines.push(`| ${r.size.toLocaleString('en')} | ${r.method} | ${r.buildMs === 0 ? '–' : `${(r.buildMs / 1000).toFixed(1)} s`} | ` +
      `${mib >= 100 ? mib.toFixed(0) : mib.toFixed(1)} MiB | ${r.batchMsPerQuery.toFixed(3)} ms | ${r.singleMs.toFixed(2)} ms | ` +
      `${(100 * r.recallAt1).toFixed(1)}% | ${(100 * r.recallAt10).toFixed(1)}% | ${(100 * r.placeAt1).toFixed(1)}% | ${(100 * r.placeAt10).toFixed(1)}% |`);
  }
  return lines.join('\n');
}
