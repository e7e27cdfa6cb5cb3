import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeNearestCrop, mergeMajorityVoting, mergeCropNeighbours, queryResizeMode, searchesEachCrop, type RankedList } from '../../src/eval/test-methods.ts';
import type { Neighbours } from '../../src/eval/search.ts';

const list = (pairs: [number, number][]): RankedList => ({ indices: pairs.map((p) => p[0]), distances: pairs.map((p) => p[1]) });

test('nearest_crop: merged by distance, first (smallest) entry of each database index, equal distances in crop order', () => {
  const crops = [
    list([[7, 0.5], [3, 0.9], [1, 1.0]]),
    list([[3, 0.4], [7, 0.6], [2, 1.1]]),
    list([[9, 0.45], [7, 0.7], [3, 0.8]]),
    list([[1, 0.95], [2, 0.96], [3, 0.97]]),
    list([[4, 0.5], [5, 0.55], [6, 1.2]]),
  ];
  // Sorted: 3 .40, 9 .45, 7 .50 (crop 0), 4 .50 (crop 4), 5 .55, 7 .60 (dup), ...
  const m = mergeNearestCrop(crops, 3);
  assert.deepEqual(m.indices, [3, 9, 7]);
  assert.deepEqual(m.distances, [0.4, 0.45, 0.5]);
  assert.deepEqual(mergeNearestCrop(crops, 5).indices, [3, 9, 7, 4, 5]);
  // After 5: 3 .80 / 3 .90 / 3 .97 and 7 .60/.70 are duplicates; next new ones are 1 (.95) and 2 (.96).
  assert.deepEqual(mergeNearestCrop(crops, 7).indices, [3, 9, 7, 4, 5, 1, 2]);
});

// Squared distances: c0 [1: 1.00, 2: 1.21, 3: 1.44], c1 [2: 1.00, 1: 1.21, 4: 1.44], c2 [5: 0.81, 2: 1.21, 6: 1.44],
// c3 [2: 1.00, 7: 1.21, 8: 1.44], c4 [9: 0.64, 10: 1.21, 11: 1.44]; k = 3.
const votingCrops = [
  list([[1, 1.0], [2, 1.1], [3, 1.2]]),
  list([[2, 1.0], [1, 1.1], [4, 1.2]]),
  list([[5, 0.9], [2, 1.1], [6, 1.2]]),
  list([[2, 1.0], [7, 1.1], [8, 1.2]]),
  list([[9, 0.8], [10, 1.1], [11, 1.2]]),
];

test('maj_voting worked by hand: votes at top-1, top-5 and top-10 pull repeated indices closer', () => {
  // top-1 entries [1, 2, 5, 2, 9]: index 2 twice -> its two top-1 entries lose w·2/1.
  // top-5 and top-10 (only 3 columns exist): index 1 twice, index 2 four times ->
  //   every entry of 1 loses w·2/5 + w·2/10 = 0.6w, every entry of 2 loses w·4/5 + w·4/10 = 1.2w.
  // w = 0.5: 2's top-1 entries 1.0 - 1.0 - 0.6 = -0.6; 1's top-1 entry 1.0 - 0.3 = 0.7; 9 stays 0.64; 5 0.81.
  const m = mergeMajorityVoting(votingCrops, 3, 0.5);
  assert.deepEqual(m.indices, [2, 9, 1]);
  assert.deepEqual(m.distances, [1.0, 0.8, 1.0]); // true L2 of the kept entries (crop 1's top-1 for index 2)
  const expectedScores = [-0.6, 0.64, 0.7];
  m.scores.forEach((s, i) => assert.ok(Math.abs(s - expectedScores[i]) < 1e-12, `${s} vs ${expectedScores[i]}`));
  // Default w = 0.01: 2 -> 1.0 - 0.032 = 0.968, 1 -> 1.0 - 0.006 = 0.994: 2 now ranks before 1.
  assert.deepEqual(mergeMajorityVoting(votingCrops, 3).indices, [9, 5, 2]);
  // Without votes (nearest_crop) 1 and 2 tie at 1.0 and crop order puts 1 (crop 0) first.
  assert.deepEqual(mergeNearestCrop(votingCrops, 4).indices, [9, 5, 1, 2]);
  assert.deepEqual(mergeMajorityVoting(votingCrops, 4).indices, [9, 5, 2, 1]);
});

test('mergeCropNeighbours merges 5 rows per query; method helpers', () => {
  const k = 3;
  const rows = [...votingCrops, ...votingCrops.map((c) => list(Array.from(c.indices, (i, r) => [i + 100, Number(c.distances[r])])))];
  const crops: Neighbours = {
    count: 10, k, databaseCount: 200,
    indices: Int32Array.from(rows.flatMap((r) => Array.from(r.indices))),
    distances: Float32Array.from(rows.flatMap((r) => Array.from(r.distances))),
  };
  const near = mergeCropNeighbours(crops, 'nearest_crop');
  assert.equal(near.count, 2);
  assert.deepEqual(Array.from(near.indices), [9, 5, 1, 109, 105, 101]);
  const vote = mergeCropNeighbours(crops, 'maj_voting', 5, 0.5);
  assert.deepEqual(Array.from(vote.indices), [2, 9, 1, 102, 109, 101]);
  assert.throws(() => mergeCropNeighbours({ ...crops, count: 9 }, 'nearest_crop'), /9 crop rows is not a multiple of 5/);
  assert.equal(queryResizeMode('maj_voting'), 'five_crops');
  assert.equal(queryResizeMode('central_crop'), 'central_crop');
  assert.equal(searchesEachCrop('five_crops'), false);
  assert.equal(searchesEachCrop('nearest_crop'), true);
});

test('the test-method registry: how each method loads and merges queries; maj_voting declares its weight', async () => {
  const { TEST_METHOD_ENTRIES, TEST_METHOD_OPTIONS, testMethodNamed } = await import('../../src/eval/test-methods.ts');
  assert.deepEqual(TEST_METHOD_ENTRIES.map((m) => m.name), ['hard_resize', 'single_query', 'central_crop', 'five_crops', 'nearest_crop', 'maj_voting']);
  assert.deepEqual(TEST_METHOD_ENTRIES.filter((m) => m.merge !== undefined).map((m) => m.name), ['nearest_crop', 'maj_voting']);
  assert.equal(testMethodNamed('five_crops').meanOfCrops, true);
  assert.equal(testMethodNamed('single_query').oneAtATime, true);
  assert.deepEqual(Object.keys(TEST_METHOD_OPTIONS), ['majorityWeight']);
  assert.equal(TEST_METHOD_OPTIONS.majorityWeight.parse(undefined), 0.01);
  assert.throws(() => testMethodNamed('ten_crops'), /unknown test method "ten_crops"; choose one of hard_resize, single_query/);
});
