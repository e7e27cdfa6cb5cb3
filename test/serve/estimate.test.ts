// The pure parts of the service: the position estimate, re-ranking, recall of approximate neighbours;
// and the HNSW graph against brute force on a small set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { estimatePosition } from '../../src/serve/estimate.ts';
import { rerank, neighbourRecall, allUnitRows, HnswIndex, chooseExpansionSearch } from '../../src/eval/approximate.ts';
import { benchIndex, indexBenchTable, placeRecall } from '../../src/bench/index.ts';

test('estimatePosition: the agreeing matches vote, weighted by 1/(d² + ε); the confidence is their share', () => {
  const matches = [
    { id: 4, east: 100, north: 0, distance: 0.5 },
    { id: 9, east: 110, north: 0, distance: 1.0 },
    { id: 2, east: 500, north: 0, distance: 0.5 }, // far away: does not vote
    { id: 7, east: 100, north: 20, distance: 1.0 },
  ];
  const e = estimatePosition(matches, 25)!;
  // weights 4, 1, 4, 1 (ε = 1e-8 is negligible): east (4·100 + 110 + 100) / 6, north 20 / 6
  assert.ok(Math.abs(e.east - 610 / 6) < 1e-6);
  assert.ok(Math.abs(e.north - 20 / 6) < 1e-6);
  assert.ok(Math.abs(e.confidence - 6 / 10) < 1e-6);
  assert.deepEqual(e.agreeing.sort(), [4, 7, 9]);
  // radius 0: only the best match (and anything at its very position) votes
  const alone = estimatePosition(matches, 0)!;
  assert.deepEqual([alone.east, alone.north, alone.agreeing], [100, 0, [4]]);
  assert.ok(Math.abs(alone.confidence - 4 / 10) < 1e-6);
  assert.equal(estimatePosition([], 25), null);
  assert.throws(() => estimatePosition(matches, -1), /radius must be metres >= 0/);
});

test('rerank: exact L2 order of the candidates (ties to the lower row), missing candidates skipped', () => {
  const db = Float32Array.from([0, 0, 3, 4, 1, 0, 0, 1]); // rows (0,0) (3,4) (1,0) (0,1)
  const q = Float32Array.from([0, 0]);
  const r = rerank(db, 2, q, Int32Array.from([1, 3, -1, 2]), 4, 3);
  assert.deepEqual([...r.indices], [2, 3, 1]); // (1,0) and (0,1) tie at 1: row 2 first
  assert.deepEqual([...r.distances], [1, 1, 5]);
});

test('neighbourRecall: same first, and the share of the exact top-10 found', () => {
  const rows = (lists: number[][]) => ({ count: lists.length, k: 10, indices: Int32Array.from(lists.flat()), distances: new Float32Array(lists.length * 10) });
  const exact = rows([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]]);
  const approx = rows([[0, 1, 2, 3, 4, 5, 6, 7, 8, 99], [11, 10, 12, 13, 14, 15, 16, 17, 98, 99]]);
  const r = neighbourRecall(exact, approx);
  assert.equal(r.recallAt1, 0.5);
  assert.ok(Math.abs(r.recallAt10 - (0.9 + 0.8) / 2) < 1e-12);
});

test('HnswIndex: on a small set its re-ranked neighbours are brute force\'s; i8 needs unit rows', () => {
  const dim = 8, n = 300;
  let s = 1;
  const rand = () => ((s = (s * 16807) % 2147483647) / 2147483647) - 0.5;
  const db = Float32Array.from({ length: n * dim }, rand);
  assert.equal(allUnitRows(db, dim), false);
  for (let r = 0; r < n; r++) {
    const norm = Math.hypot(...db.subarray(r * dim, (r + 1) * dim));
    for (let t = 0; t < dim; t++) db[r * dim + t] /= norm;
  }
  assert.equal(allUnitRows(db, dim), true);
  const queries = db.slice(0, 20 * dim).map((v) => v + 0.05 * rand());
  const all = Int32Array.from({ length: 20 * n }, (_, i) => i % n);
  const brute = rerank(db, dim, queries, all, n, 5);
  for (const quantization of ['f32', 'f16', 'i8'] as const) {
    // One thread: the same graph on every run (a parallel build differs from run to run, and now and
    // then misses a neighbour here).
    const h = new HnswIndex(dim, { quantization, expansionSearch: 128, threads: 1 });
    h.add(db, 0);
    assert.equal(h.size, n);
    const approx = rerank(db, dim, queries, h.candidates(queries, 20), 20, 5);
    const r = neighbourRecall(brute, approx);
    assert.ok(r.recallAt1 >= 0.95, `${quantization}: recall@1 ${r.recallAt1}`);
  }
});

test('bench index (small): rows per size and method, exact memory = rows x dim x 4, both search widths on one graph', async () => {
  const b = await benchIndex({ sizes: [3000], dim: 32, queries: 100, singleQueries: 5, quantizations: ['f16'], expansionSearch: [16, 128], log: () => undefined });
  assert.deepEqual(b.rows.map((r) => r.method), ['exact fp32', 'hnsw f16, ef 16', 'hnsw f16, ef 128']);
  assert.equal(b.rows[0].bytes, 3000 * 32 * 4);
  const [narrow, wide] = b.rows.slice(1);
  assert.ok(narrow.buildMs > 0 && narrow.bytes > 0);
  assert.deepEqual([wide.buildMs, wide.bytes], [narrow.buildMs, narrow.bytes]); // the same graph, searched wider
  assert.ok(wide.recallAt10 > 0.9 && wide.recallAt10 <= 1, `recall@10 ${wide.recallAt10}`);
  assert.ok(wide.recallAt10 >= narrow.recallAt10 - 0.02, `ef 128 ${wide.recallAt10} vs ef 16 ${narrow.recallAt10}`);
  assert.match(indexBenchTable(b), /\| 3,000 \| hnsw f16, ef 128 \|/);
  // Place recall: views of a place with cosine ~0.85 to it, places nearly orthogonal in 32-d: exact search finds the place.
  assert.ok(b.rows[0].placeAt1 > 0.9 && b.rows[0].placeAt10 >= b.rows[0].placeAt1, JSON.stringify(b.rows[0]));
  assert.ok(wide.placeAt1 >= b.rows[0].placeAt1 - 0.02, `approximate ${wide.placeAt1} vs exact ${b.rows[0].placeAt1}`);
});

test('place recall counts a first match (any of the first 10) of the query\'s place', () => {
  // 3 queries, k 2: query 0 finds its place first, query 1 only second, query 2 never (and a -1 for a missing match).
  const found = { count: 3, k: 2, indices: Int32Array.of(4, 0, 1, 2, 3, -1), distances: new Float32Array(6) };
  const databasePlaces = Int32Array.of(7, 7, 8, 9, 5);
  const r = placeRecall(found, databasePlaces, Int32Array.of(5, 8, 7));
  assert.deepEqual(r, { placeAt1: 1 / 3, placeAt10: 2 / 3 });
});

test('the search width: the smallest doubling that reaches the target recall@1, else the widest, every width tried recorded', () => {
  const measured = new Map([[16, 0.5], [32, 0.8], [64, 0.995], [128, 1]]);
  const seen: number[] = [];
  const measure = (ef: number) => { seen.push(ef); return measured.get(ef) ?? 1; };
  assert.deepEqual(chooseExpansionSearch(measure, 0.99), { ef: 64, reached: true, tried: [{ ef: 16, recallAt1: 0.5 }, { ef: 32, recallAt1: 0.8 }, { ef: 64, recallAt1: 0.995 }] });
  assert.deepEqual(seen, [16, 32, 64], 'no width measured beyond the one chosen');
  // Out of reach: the ladder's last width (capped, not doubled past it), marked as not reached.
  const short = chooseExpansionSearch(() => 0.9, 0.99, { first: 16, last: 100 });
  assert.deepEqual(short.tried.map((t) => t.ef), [16, 32, 64, 100]);
  assert.deepEqual([short.ef, short.reached], [100, false]);
  assert.throws(() => chooseExpansionSearch(measure, 1.5), /target recall must be in \(0, 1\], got 1.5/);
});
