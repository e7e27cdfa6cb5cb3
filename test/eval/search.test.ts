import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.ts';
import { databaseSquaredNorms, searchExact, searchPrefiltered, neighboursOf, mergeNeighbours, type Neighbours } from '../../src/eval/search.ts';
import { Rng } from '../../src/data/random.ts';

/** Deterministic uniform numbers in [0, 1). */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

function randomRows(n: number, dim: number, rand: () => number, unit: boolean): Float32Array {
  const a = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += (a[i * dim + j] = rand() * 2 - 1) ** 2;
    if (unit) for (let j = 0; j < dim; j++) a[i * dim + j] /= Math.sqrt(s);
  }
  return a;
}

/** Every L2 distance in float64, sorted by (distance, index): the answer a stable full sort gives. */
function bruteForce(db: Float32Array, qs: Float32Array, dim: number, k: number): { indices: number[][]; distances: number[][] } {
  const n = db.length / dim, m = qs.length / dim;
  const indices: number[][] = [], distances: number[][] = [];
  for (let q = 0; q < m; q++) {
    const d = Array.from({ length: n }, (_, i) => {
      let s = 0;
      for (let j = 0; j < dim; j++) s += (qs[q * dim + j] - db[i * dim + j]) ** 2;
      return Math.sqrt(s);
    });
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => d[a] - d[b] || a - b).slice(0, k);
    indices.push(order);
    distances.push(order.map((i) => d[i]));
  }
  return { indices, distances };
}

function run(db: Float32Array, qs: Float32Array, dim: number, options: Parameters<typeof searchExact>[2]) {
  return torch.tidy(() => searchExact(torch.tensor(db, [db.length / dim, dim]), torch.tensor(qs, [qs.length / dim, dim]), options));
}

test('blocked search equals brute force on random unit vectors (both metrics, blocks that split the data unevenly)', () => {
  const rand = rng(3);
  const dim = 24, db = randomRows(301, dim, rand, true), qs = randomRows(53, dim, rand, true);
  const expected = bruteForce(db, qs, dim, 10);
  for (const metric of ['unit', 'l2'] as const) {
    for (const [queryBlock, databaseBlock] of [[7, 64], [1024, 8192], [53, 5]]) {
      const got = run(db, qs, dim, { k: 10, metric, queryBlock, databaseBlock });
      assert.equal(got.k, 10);
      for (let q = 0; q < 53; q++) {
        const row = neighboursOf(got, q);
        const want = expected.distances[q];
        for (let r = 0; r < 10; r++) assert.ok(Math.abs(row.distances[r] - want[r]) < 1e-5, `q${q} r${r}: ${row.distances[r]} vs ${want[r]}`);
        // Indices agree wherever float32 rounding cannot reorder (neighbouring distances 1e-5 apart).
        for (let r = 0; r < 10; r++) {
          const gapBefore = r === 0 ? Infinity : want[r] - want[r - 1];
          const gapAfter = r === 9 ? Infinity : want[r + 1] - want[r];
          if (gapBefore > 1e-5 && gapAfter > 1e-5) assert.equal(row.indices[r], expected.indices[q][r], `${metric} q${q} r${r}`);
        }
      }
    }
  }
});

test('general L2 metric on vectors of any length equals brute force', () => {
  const rand = rng(11);
  const dim = 16, db = randomRows(120, dim, rand, false), qs = randomRows(30, dim, rand, false);
  for (let i = 0; i < db.length; i++) db[i] *= 1 + (i % 7); // varied norms: the 'unit' shortcut would rank these wrongly
  const expected = bruteForce(db, qs, dim, 5);
  const got = run(db, qs, dim, { k: 5, queryBlock: 8, databaseBlock: 50 });
  assert.deepEqual(Array.from({ length: 30 }, (_, q) => Array.from(neighboursOf(got, q).indices)), expected.indices);
  for (let q = 0; q < 30; q++) {
    for (let r = 0; r < 5; r++) assert.ok(Math.abs(got.distances[q * 5 + r] - expected.distances[q][r]) < 1e-4);
  }
  // The database's norms computed once and passed in: the same neighbours and distances, one query at a time too.
  const database = torch.tensor(db, [120, dim]);
  const norms = databaseSquaredNorms(database);
  for (let q = 0; q < 30; q += 7) {
    const one = torch.tidy(() => searchExact(database, torch.tensor(qs.subarray(q * dim, (q + 1) * dim), [1, dim]), { k: 5, databaseBlock: 50, databaseSquaredNorms: norms }));
    assert.deepEqual(Array.from(one.indices), expected.indices[q]);
    for (let r = 0; r < 5; r++) assert.ok(Math.abs(one.distances[r] - expected.distances[q][r]) < 1e-4);
  }
  assert.throws(() => torch.tidy(() => searchExact(database, torch.tensor(qs, [30, dim]), { k: 5, databaseSquaredNorms: norms.narrow(0, 0, 100) })),
    /databaseSquaredNorms has shape \[100\], the database 120 rows/);
  norms.dispose();
  database.dispose();
});

test('ties: lists sorted by distance then database index, also when ties straddle the k-th place and blocks', () => {
  // Small integers: every product and sum is exact in float32, so equal distances are exactly equal.
  const rand = rng(5);
  const dim = 3;
  const db = Float32Array.from({ length: 40 * dim }, () => Math.floor(rand() * 3));
  const qs = Float32Array.from({ length: 25 * dim }, () => Math.floor(rand() * 3));
  const expected = bruteForce(db, qs, dim, 6);
  // The case must really hold ties at the cut: the 6th and 7th nearest at the same distance.
  const full = bruteForce(db, qs, dim, 7);
  assert.ok(full.distances.filter((d) => d[5] === d[6]).length >= 5, 'needs queries tied across the k-th place');
  for (const [queryBlock, databaseBlock] of [[4, 3], [25, 40], [1, 7]]) {
    const got = run(db, qs, dim, { k: 6, queryBlock, databaseBlock });
    assert.deepEqual(Array.from({ length: 25 }, (_, q) => Array.from(neighboursOf(got, q).indices)), expected.indices, `blocks ${queryBlock}x${databaseBlock}`);
    assert.deepEqual(Array.from({ length: 25 }, (_, q) => Array.from(neighboursOf(got, q).distances)),
      expected.distances.map((r) => r.map((d) => Math.fround(d))));
  }
});

test('k is capped at the database size; empty queries; progress; errors name the fault', () => {
  const rand = rng(9);
  const db = randomRows(4, 8, rand, true), qs = randomRows(3, 8, rand, true);
  const calls: number[] = [];
  const got = run(db, qs, 8, { k: 20, queryBlock: 2, onProgress: (done) => calls.push(done) });
  assert.equal(got.k, 4);
  assert.deepEqual(calls, [2, 3]);
  for (let q = 0; q < 3; q++) assert.deepEqual(Array.from(neighboursOf(got, q).indices).sort(), [0, 1, 2, 3]);
  assert.equal(run(db, new Float32Array(0), 8, { k: 2 }).count, 0);
  // Nothing left behind, including the tie-resolution path (duplicate rows tie at every place).
  const dup = torch.tensor(Float32Array.from({ length: 6 * 8 }, (_, i) => (i % 8 === 0 ? 1 : 0)), [6, 8]);
  const live = torch.liveTensors();
  const tiedAll = searchExact(dup, dup, { k: 2, databaseBlock: 4 });
  assert.equal(torch.liveTensors(), live);
  assert.deepEqual(Array.from(tiedAll.indices), [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
  dup.dispose();
  assert.throws(() => torch.tidy(() => searchExact(torch.tensor(db, [4, 8]), torch.tensor(qs.subarray(0, 12), [3, 4]), { k: 1 })), /database descriptors have 8 dims but queries have 4/);
  assert.throws(() => run(db, qs, 8, { k: 0 }), /k must be a positive integer, got 0/);
});

test('a database searched part by part and merged (low-memory evaluation) equals brute force over the whole', () => {
  const dim = 12, n = 103, m = 17, k = 9;
  const rand = rng(31);
  const db = randomRows(n, dim, rand, false), qs = randomRows(m, dim, rand, false);
  const want = bruteForce(db, qs, dim, k);
  for (const part of [1, 7, 40, 103, 500]) {
    let merged: ReturnType<typeof searchExact> | null = null;
    for (let d0 = 0; d0 < n; d0 += part) {
      const rows = Math.min(part, n - d0);
      const found = run(db.subarray(d0 * dim, (d0 + rows) * dim), qs, dim, { k: Math.min(k, rows) });
      merged = merged === null ? found : mergeNeighbours(merged, found, d0, k);
    }
    assert.equal(merged!.k, k);
    assert.equal(merged!.databaseCount, n);
    for (let q = 0; q < m; q++) {
      const got = neighboursOf(merged!, q);
      assert.deepEqual(Array.from(got.indices), want.indices[q], `parts of ${part}: query ${q}`);
      got.distances.forEach((d, r) => assert.ok(Math.abs(d - want.distances[q][r]) < 1e-4));
    }
  }
  // Equal distances in two parts: the lower database index first.
  const a = { count: 1, k: 2, databaseCount: 2, indices: Int32Array.from([1, 0]), distances: Float32Array.from([0.5, 0.7]) };
  const b = { count: 1, k: 2, databaseCount: 2, indices: Int32Array.from([0, 1]), distances: Float32Array.from([0.5, 0.6]) };
  const ab = mergeNeighbours(a, b, 2, 3);
  assert.deepEqual(Array.from(ab.indices), [1, 2, 3]);
  assert.throws(() => mergeNeighbours(a, { ...b, count: 2 }, 2, 3), /1 and 2 query rows/);
});

// ---- bf16 pre-filter, fp32 re-ranking -------------------------------------------------------------

/**
 * Same indices everywhere, squared distances within fp32 rounding of scores near 1 computed by different
 * kernels (distances themselves come from ‖q‖² − score, whose cancellation the square root magnifies).
 */
function assertSameResult(got: Neighbours, want: Neighbours, what: string): void {
  assert.deepEqual([got.count, got.k], [want.count, want.k], what);
  assert.deepEqual(Array.from(got.indices), Array.from(want.indices), `${what}: indices`);
  got.distances.forEach((d, i) => assert.ok(Math.abs(d ** 2 - want.distances[i] ** 2) < 2e-6, `${what}: distance ${i}: ${d} vs ${want.distances[i]}`));
}

/**
 * Clusters of near-duplicates: each query sits near a centre with `near` database rows around it whose
 * scores differ by ~1e-4, far below bf16's resolution near 1 (2^-8 ≈ 0.004), among random far rows.
 */
function nearDuplicates(seed: number, dim: number, queries: number, near: number, far: number): { db: Float32Array; qs: Float32Array } {
  const rand = rng(seed);
  const centres = randomRows(queries, dim, rand, true);
  const rows: number[] = [];
  const qs: number[] = [];
  for (let c = 0; c < queries; c++) {
    const centre = centres.subarray(c * dim, (c + 1) * dim);
    const jitter = (scale: number) => {
      const v = Array.from(centre, (x) => x + scale * (rand() * 2 - 1));
      const norm = Math.hypot(...v);
      return v.map((x) => x / norm);
    };
    qs.push(...jitter(0.002));
    for (let j = 0; j < near; j++) rows.push(...jitter(0.004 + 0.0004 * j));
  }
  rows.push(...randomRows(far, dim, rand, true));
  return { db: Float32Array.from(rows), qs: Float32Array.from(qs) };
}

test('bf16 search: the pre-filter re-ranked in fp32 gives the fp32 top-N where bf16 scores alone misorder it', () => {
  const dim = 64, queries = 12, k = 10;
  const { db, qs } = nearDuplicates(41, dim, queries, 30, 400);
  torch.tidy(() => {
    const database = torch.tensor(db, [db.length / dim, dim]), q = torch.tensor(qs, [queries, dim]);
    const want = searchExact(database, q, { k });
    // The case must need the re-ranking: bf16 scores alone rank some query's top-k otherwise.
    const [, bf16Order] = q.to('bfloat16').mm(database.to('bfloat16').t()).float().topk(k, 1);
    const alone = bf16Order.toNumbers();
    assert.ok(alone.some((i, j) => i !== want.indices[j]), 'bf16 scores alone give another top-k');
    for (const metric of ['l2', 'unit'] as const) {
      const exact = searchExact(database, q, { k, metric });
      for (const [queryBlock, databaseBlock] of [[1024, 8192], [5, 97]]) {
        const { neighbours, stats } = searchPrefiltered(database, q, { k, metric, queryBlock, databaseBlock });
        assertSameResult(neighbours, exact, `${metric}, blocks ${queryBlock}x${databaseBlock}`);
        assert.deepEqual([stats.candidates, stats.certified, stats.fallbacks], [42, queries, 0], 'every top-k certified: the 30 near rows are all candidates');
        assert.ok(stats.rescored >= 30 && stats.rescored < 42, `the near rows re-scored in fp32, the far ones ruled out by the bound: ${stats.rescored}`);
      }
      // searchExact takes the pre-filter for databases of PREFILTER_MIN_ROWS_PER_CANDIDATE rows per candidate (fp32 is as fast below).
      assertSameResult(searchExact(database, q, { k, metric, precision: 'bf16', candidates: 10 }), exact, `${metric} via searchExact`);
    }
    const brute = bruteForce(db, qs, dim, k);
    assert.deepEqual(Array.from({ length: queries }, (_, i) => Array.from(neighboursOf(want, i).indices)), brute.indices);
  });
});

test('bf16 search: queries the error bound cannot certify are searched again in fp32; random sets certify', () => {
  const dim = 64, queries = 12, k = 10;
  const { db, qs } = nearDuplicates(43, dim, queries, 30, 400);
  torch.tidy(() => {
    const database = torch.tensor(db, [db.length / dim, dim]), q = torch.tensor(qs, [queries, dim]);
    const exact = searchExact(database, q, { k });
    // Only k candidates among 30 rows within bf16's rounding of each other: no top-k can be certified.
    const { neighbours, stats } = searchPrefiltered(database, q, { k, candidates: k });
    assert.equal(stats.fallbacks, queries);
    assertSameResult(neighbours, exact, 'after fp32 fallback');
    // Random unit vectors (scores spread far beyond the bound): certified, same as fp32.
    const rand = rng(47);
    const rdb = torch.tensor(randomRows(700, 48, rand, true), [700, 48]), rq = torch.tensor(randomRows(90, 48, rand, true), [90, 48]);
    const random = searchPrefiltered(rdb, rq, { k: 20, queryBlock: 32, databaseBlock: 256 });
    assert.ok(random.stats.certified > 80, `certified ${random.stats.certified} of 90`);
    assertSameResult(random.neighbours, searchExact(rdb, rq, { k: 20 }), 'random unit vectors');
    // A database no larger than the candidates: every row is re-ranked, nothing to certify.
    const small = searchPrefiltered(rdb.narrow(0, 0, 30), rq, { k: 5 });
    assert.deepEqual([small.stats.candidates, small.stats.certified, small.stats.fallbacks], [30, 90, 0]);
    assertSameResult(small.neighbours, searchExact(rdb.narrow(0, 0, 30), rq, { k: 5 }), 'small database');
    assert.throws(() => searchPrefiltered(rdb, rq, { k: 5, candidates: 3 }), /candidates \(3\) must be at least k \(5\)/);
    assert.throws(() => searchExact(rdb, rq, { k: 5, precision: 'fp16' as 'bf16' }), /precision must be "fp32" or "bf16"/);
  });
  const live = torch.liveTensors();
  torch.tidy(() => searchPrefiltered(torch.tensor(db, [db.length / dim, dim]), torch.tensor(qs, [queries, dim]), { k, candidates: k }));
  assert.equal(torch.liveTensors(), live, 'nothing left behind, fallback path included');
});
