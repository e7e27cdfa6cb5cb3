import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPredictions, predictionsCsv, predictionsJson, spread, CSV_COLUMNS } from '../../src/eval/predictions.ts';
import type { Neighbours } from '../../src/eval/search.ts';

const dataset = {
  dir: '/data/x/images/test',
  databasePaths: ['/data/x/images/test/database/a.jpg', '/data/x/images/test/database/b,"c".jpg', '/data/x/images/test/database/d.jpg'],
  queriesPaths: ['/data/x/images/test/queries/q0.jpg', '/data/x/images/test/queries/q1.jpg'],
  databasePositions: Float64Array.from([0, 0, 30, 40, 100, 0]),
  queriesPositions: Float64Array.from([3, 4, 100, 20]),
};
// q0: ranks d2 (97.1 m), d1 (45 m), d0 (5 m); q1: d1 (72.8 m), d2 (20 m), d0 (102 m).
const neighbours: Neighbours = {
  count: 2, k: 3, databaseCount: 3,
  indices: Int32Array.from([2, 1, 0, 1, 2, 0]),
  distances: Float32Array.from([0.5, 0.75, 1, 0.25, 0.5, 1.25]),
};

test('per-query predictions: relative files, geographic errors, correctness at the radius, first correct rank beyond top-N', () => {
  const p = buildPredictions(neighbours, dataset, 25, 2);
  assert.equal(p[0].file, 'queries/q0.jpg');
  assert.equal(p[0].predictions.length, 2);
  assert.equal(p[0].firstCorrectRank, 2, 'd0 at rank 2 is found although only 2 ranks are shown');
  assert.equal(p[0].positives, 1);
  assert.deepEqual(p[0].predictions.map((e) => Math.round(e.errorMetres * 10) / 10), [97.1, 45]);
  assert.deepEqual(p[1].predictions.map((e) => e.correct), [false, true]);
  assert.equal(p[1].predictions[1].errorMetres, 20);
  assert.equal(p[1].firstCorrectRank, 1);
  assert.equal(buildPredictions(neighbours, dataset, 50)[0].firstCorrectRank, 1, 'd1 at 45 m counts at 50 m');
  assert.throws(() => buildPredictions({ ...neighbours, count: 1 }, dataset, 25), /1 query results for 2 queries/);
});

test('CSV: header, one row per query and rank, quoted fields; JSON: header plus one query per line', () => {
  const p = buildPredictions(neighbours, dataset, 25);
  const lines = predictionsCsv(p).trimEnd().split('\n');
  assert.equal(lines[0], CSV_COLUMNS.join(','));
  assert.equal(lines.length, 1 + 6);
  assert.equal(lines[2], 'queries/q0.jpg'.replace(/^/, '0,') + ',3.00,4.00,1,1,"database/b,""c"".jpg",30.00,40.00,0.750000,45.00,false,2,1');
  const json = predictionsJson(p, { radius: 25 });
  assert.equal(json.split('\n').length, 2 + 2 + 1);
  const parsed = JSON.parse(json);
  assert.equal(parsed.radius, 25);
  assert.deepEqual(parsed.queries, JSON.parse(JSON.stringify(p)));
  assert.deepEqual(JSON.parse(predictionsJson([], {})), { queries: [] });
});

test('spread picks evenly spaced queries', () => {
  assert.deepEqual(spread(10, 3), [1, 5, 8]);
  assert.deepEqual(spread(3, 5), [0, 1, 2]);
  assert.deepEqual(spread(0, 5), []);
});
