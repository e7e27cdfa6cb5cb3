import { test } from 'node:test';
import assert from 'node:assert/strict';
import { radiusPositives, computePositives, trainingQueries, nearestDatabase, PositionIndex } from '../../src/data/positives.ts';
import { Rng } from '../../src/data/random.ts';

/** Deterministic uniform numbers in [0, 1). */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

function randomPositions(n: number, size: number, rand: () => number): Float64Array {
  return Float64Array.from({ length: 2 * n }, () => 1000 + rand() * size);
}

function bruteForce(db: Float64Array, qs: Float64Array, r: number): number[][] {
  const out: number[][] = [];
  for (let q = 0; q < qs.length / 2; q++) {
    const hits: [number, number][] = [];
    for (let i = 0; i < db.length / 2; i++) {
      const d = Math.hypot(db[2 * i] - qs[2 * q], db[2 * i + 1] - qs[2 * q + 1]);
      if (d <= r) hits.push([d, i]);
    }
    hits.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    out.push(hits.map((h) => h[1]));
  }
  return out;
}

test('radius search equals brute force (sorted by distance) on random sets', () => {
  const rand = rng(7);
  for (const [n, m, size, r] of [[500, 300, 300, 25], [800, 200, 150, 10], [50, 50, 1000, 60]] as const) {
    const db = randomPositions(n, size, rand);
    const qs = randomPositions(m, size, rand);
    const got = radiusPositives(db, qs, r).map((a) => Array.from(a));
    assert.deepEqual(got, bruteForce(db, qs, r));
    assert.ok(got.some((a) => a.length > 1), 'the test case must contain multi-positive queries');
  }
});

test('ties are broken by database index and the radius is inclusive', () => {
  const db = Float64Array.from([10, 0, 0, 10, -10, 0, 0, -10.0001, 0, 0]);
  const got = radiusPositives(db, Float64Array.from([0, 0]), 10);
  assert.deepEqual(Array.from(got[0]), [4, 0, 1, 2]);
});

test('computePositives uses 25 m / 10 m by default and honours run-time radii', () => {
  const db = Float64Array.from([0, 0, 8, 0, 20, 0, 30, 0]);
  const qs = Float64Array.from([0, 0, 100, 100]);
  const p = computePositives({ databasePositions: db, queriesPositions: qs });
  assert.deepEqual(p.soft.map((a) => Array.from(a)), [[0, 1, 2], []]);
  assert.deepEqual(p.hard.map((a) => Array.from(a)), [[0, 1], []]);
  const p2 = computePositives({ databasePositions: db, queriesPositions: qs }, { valPositiveDistThreshold: 31, trainPositivesDistThreshold: 5 });
  assert.deepEqual(p2.soft.map((a) => Array.from(a)), [[0, 1, 2, 3], []]);
  assert.deepEqual(p2.hard.map((a) => Array.from(a)), [[0], []]);
  assert.throws(() => computePositives({ databasePositions: db, queriesPositions: qs }, { trainPositivesDistThreshold: -1 }), /trainPositivesDistThreshold/);
});

test('training view drops queries without hard positives and keeps every array aligned', () => {
  const rand = rng(11);
  const db = randomPositions(400, 400, rand);
  const qs = randomPositions(300, 400, rand);
  const paths = Array.from({ length: 300 }, (_, i) => `/q/${i}.jpg`);
  const p = computePositives({ databasePositions: db, queriesPositions: qs });
  const t = trainingQueries({ queriesPaths: paths, queriesPositions: qs }, p);
  const soft = bruteForce(db, qs, 25);
  const hard = bruteForce(db, qs, 10);
  const expectedKept = hard.map((h, i) => (h.length > 0 ? i : -1)).filter((i) => i >= 0);
  assert.ok(t.dropped > 0 && t.count > 0, 'the random case must both keep and drop queries');
  assert.equal(t.count + t.dropped, 300);
  assert.deepEqual(Array.from(t.originalIndices), expectedKept);
  assert.deepEqual(Array.from(t.droppedIndices), hard.map((h, i) => (h.length === 0 ? i : -1)).filter((i) => i >= 0));
  for (let k = 0; k < t.count; k++) {
    const q = expectedKept[k];
    assert.equal(t.paths[k], `/q/${q}.jpg`);
    assert.deepEqual([t.positions[2 * k], t.positions[2 * k + 1]], [qs[2 * q], qs[2 * q + 1]]);
    assert.deepEqual(Array.from(t.hardPositives[k]), hard[q]);
    assert.deepEqual(Array.from(t.softPositives[k]), soft[q]);
    // every hard positive of a kept query must really lie within 10 m of that query's own position
    for (const i of t.hardPositives[k]) assert.ok(Math.hypot(db[2 * i] - t.positions[2 * k], db[2 * i + 1] - t.positions[2 * k + 1]) <= 10);
  }
});

test('nearestDatabase equals brute force, including far-away queries', () => {
  const rand = rng(3);
  const db = randomPositions(300, 500, rand);
  const qs = Float64Array.from([...randomPositions(100, 500, rand), 1e6, -1e6, 1000, 1000]);
  const got = nearestDatabase(db, qs);
  for (let q = 0; q < qs.length / 2; q++) {
    let best = -1, bestD = Infinity;
    for (let i = 0; i < 300; i++) {
      const d = Math.hypot(db[2 * i] - qs[2 * q], db[2 * i + 1] - qs[2 * q + 1]);
      if (d < bestD) { bestD = d; best = i; }
    }
    assert.equal(got.indices[q], best);
    assert.ok(Math.abs(got.distances[q] - bestD) < 1e-9);
  }
  assert.deepEqual(new PositionIndex(new Float64Array(0)).nearest(0, 0), { index: -1, distance: Infinity });
});

test('10,000 database x 7,000 queries (time printed, not asserted)', (t) => {
  const rand = rng(5);
  // Pitts30k-like density: 10k images over ~2.5 km x 2.5 km
  const db = randomPositions(10000, 2500, rand);
  const qs = randomPositions(7000, 2500, rand);
  const start = performance.now();
  const p = computePositives({ databasePositions: db, queriesPositions: qs });
  const tq = trainingQueries({ queriesPaths: Array.from({ length: 7000 }, (_, i) => String(i)), queriesPositions: qs }, p);
  const ms = performance.now() - start;
  const mean = p.soft.reduce((s, a) => s + a.length, 0) / 7000;
  t.diagnostic(`positives 10k db x 7k queries: ${ms.toFixed(1)} ms (mean ${mean.toFixed(2)} soft positives, ${tq.dropped} queries without hard positive)`);
  assert.equal(p.soft.length, 7000);
});
