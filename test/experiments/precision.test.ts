// The fp32 / bf16 comparison of the demo's models: its table and summary from rows (the runs themselves
// are the demo's; see vgl demo precision).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sameLists, summarizePrecision, formatPrecisionTable, formatPrecisionSummary, type PrecisionRow } from '../../src/experiments/precision.ts';

const recalls = (r1: number, r5: number, r10: number) => ({ 1: r1, 5: r5, 10: r10 });

const rows: PrecisionRow[] = [
  {
    model: 'MobileNetV2 + GeM', dataset: 'nordland', label: 'Nordland summer→winter', real: true, queries: 1000,
    fp32: recalls(5.0, 15.0, 24.0), evalBf16: recalls(5.1, 15.0, 24.0), trainBf16: recalls(4.7, 15.2, 24.0),
    search: { topN: 20, same: 1, fallbacks: 0 },
  },
  {
    model: 'MobileNetV2 + GeM', dataset: 'gardens_point_night', size: '240x320', label: 'Gardens Point day→night at 240x320', real: true, queries: 50,
    fp32: recalls(50, 80, 90), evalBf16: recalls(50, 80, 90), trainBf16: recalls(52, 80, 90),
    search: { topN: 20, same: 0.98, fallbacks: 1 },
  },
];

test('precision comparison: largest changes for evaluation and training, search agreement weighted by queries', () => {
  const s = summarizePrecision(rows);
  assert.ok(Math.abs(s.evaluation.points - 0.1) < 1e-9);
  assert.match(s.evaluation.at, /^MobileNetV2 \+ GeM, nordland, R@1 \(1000 queries: one is 0\.10 points\)$/);
  assert.equal(s.training.points, 2);
  assert.match(s.training.at, /gardens_point_night@240x320, R@1 \(50 queries: one is 2\.00 points\)/);
  assert.ok(Math.abs(s.searchSame - (1000 + 0.98 * 50) / 1050) < 1e-12);
  const text = formatPrecisionSummary(s);
  assert.match(text, /evaluation in bf16: largest change 0\.10 points .*, within 0\.5/);
  assert.match(text, /training in bf16: largest change 2\.00 points .*, NOT within 0\.5/);
  const table = formatPrecisionTable(rows).split('\n');
  assert.equal(table.length, 4);
  assert.equal(table[2], '| MobileNetV2 + GeM | Nordland summer→winter (real) | 1000 | 5.0 · 5.1 (+0.1) · 4.7 (-0.3) | 15.0 · 15.0 (+0.0) · 15.2 (+0.2) | 24.0 · 24.0 (+0.0) · 24.0 (+0.0) | 100.0% of top-20 |');
});

test('sameLists: share of queries whose ranked lists are the same, up to swaps of neighbours at the same fp32 distance', () => {
  const list = (indices: number[], distances: number[]) => ({ count: 3, k: 2, databaseCount: 6, indices: Int32Array.from(indices), distances: Float32Array.from(distances) });
  const a = list([0, 1, 2, 3, 4, 5], [0.1, 0.2, 0.3, 0.4, 0.5, 0.5000001]);
  // query 1 misordered (0.4 before 0.3): another list; query 2 swaps two rows at the same fp32 distance: the same list
  assert.equal(sameLists(a, list([0, 1, 3, 2, 5, 4], [0.1, 0.2, 0.4, 0.3, 0.5000001, 0.5])), 2 / 3);
  // another row at the same distance is another list
  assert.equal(sameLists(a, list([0, 1, 2, 3, 4, 1], [0.1, 0.2, 0.3, 0.4, 0.5, 0.5000001])), 2 / 3);
  assert.equal(sameLists(a, a), 1);
  assert.throws(() => sameLists(a, { ...a, k: 1 }), /\[3 x 2\] and \[3 x 1\]/);
});
