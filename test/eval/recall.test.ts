import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recallAtN, recallAtRadii, firstCorrectRank, type RankedPredictions } from '../../src/eval/recall.ts';
import { radiusPositives } from '../../src/data/positives.ts';

// Database on a line: d0 (0,0), d1 (10,0), d2 (20,0), d3 (40,0), d4 (100,0).
const database = Float64Array.from([0, 0, 10, 0, 20, 0, 40, 0, 100, 0]);
// Queries: q0 (5,0), q1 (30,0), q2 (100,20), q3 (60,0).
const queries = Float64Array.from([5, 0, 30, 0, 100, 20, 60, 0]);
// Hand-picked predictions (k = 3) and their distances to the query, metres:
// q0: d3 35, d0 5, d4 95 | q1: d1 20, d3 10, d2 10 | q2: d4 20, d3 63.2, d0 101.98 | q3: d2 40, d3 20, d4 40
const predictions: RankedPredictions = { count: 4, k: 3, databaseCount: 5, indices: Int32Array.from([3, 0, 4, 1, 3, 2, 4, 3, 0, 2, 3, 4]) };

test('recall@N worked by hand at 25 m', () => {
  // First correct ranks at 25 m: q0 1 (d0), q1 0 (d1), q2 0 (d4), q3 1 (d3).
  const positives = radiusPositives(database, queries, 25);
  assert.deepEqual(Array.from(firstCorrectRank(predictions, positives)), [1, 0, 0, 1]);
  assert.deepEqual(recallAtN(predictions, positives, [1, 2, 3]), { 1: 50, 2: 100, 3: 100 });
});

test('another radius flips queries without new predictions (15 m and 40 m, inclusive)', () => {
  // 15 m: q0 rank 1 (d0 5 m); q1 rank 1 (d3 10 m; d1 is 20 m); q2 none (d4 is 20 m); q3 none.
  // 40 m: every top-1 is within 40 m (35, 20, 20, 40 — the last exactly on the radius).
  const r = recallAtRadii(predictions, database, queries, [15, 25, 40], [1, 2, 3]);
  assert.deepEqual(r, {
    15: { 1: 0, 2: 50, 3: 50 },
    25: { 1: 50, 2: 100, 3: 100 },
    40: { 1: 100, 2: 100, 3: 100 },
  });
});

test('N beyond the kept predictions is refused unless the whole database was ranked', () => {
  assert.throws(() => recallAtN(predictions, radiusPositives(database, queries, 25), [1, 5]), /recall@5 needs 5 predictions per query but only 3 were kept/);
  const whole: RankedPredictions = { count: 1, k: 2, databaseCount: 2, indices: Int32Array.from([1, 0]) };
  assert.deepEqual(recallAtN(whole, [Int32Array.from([0])], [1, 5, 10]), { 1: 0, 5: 100, 10: 100 });
  assert.throws(() => recallAtN(whole, [], [1]), /positives cover 0 queries but predictions cover 1/);
  assert.throws(() => recallAtN(whole, [Int32Array.from([0])], [0]), /N must be a positive integer, got 0/);
  assert.throws(() => recallAtRadii(whole, database, Float64Array.from([0, 0]), [25], [1]), /5 database positions for a search over 2/);
});
