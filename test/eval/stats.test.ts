// mean ± std and the paired bootstrap on hand-made cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { meanStd, pairedBootstrap } from '../../src/eval/stats.ts';

test('meanStd: sample standard deviation, by hand', () => {
  // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum 32, sample variance 32/7.
  const r = meanStd([2, 4, 4, 4, 5, 5, 7, 9]);
  assert.equal(r.mean, 5);
  assert.ok(Math.abs(r.std - Math.sqrt(32 / 7)) < 1e-12);
  assert.deepEqual(meanStd([3]), { mean: 3, std: 0, n: 1 });
  assert.throws(() => meanStd([]), /no values/);
});

test('paired bootstrap: identical variants → 0 inside the interval; a clearly better one → 0 outside', () => {
  // 100 queries, variant a right on 50 (alternating).
  const a = Array.from({ length: 100 }, (_, i) => i % 2);
  const same = pairedBootstrap(a, a, { seed: 1, scale: 100 });
  assert.equal(same.difference, 0);
  assert.ok(same.low === 0 && same.high === 0 && !same.significant);
  // b also right on 30 of a's 50 misses and wrong on none of a's hits: +30 points.
  const b = a.map((x, i) => (x === 1 || (i % 2 === 0 && i < 60) ? 1 : 0));
  const better = pairedBootstrap(a, b, { seed: 1, scale: 100 });
  assert.ok(Math.abs(better.difference - 30) < 1e-9, String(better.difference));
  // Per-query differences are 1 on 30 queries, 0 elsewhere: the resampled mean has sd sqrt(.3*.7/100) ≈ 4.6
  // points, so the 95% interval is about 30 ± 9 and excludes 0.
  assert.ok(better.low > 18 && better.low < 30 && better.high > 30 && better.high < 42, `${better.low} .. ${better.high}`);
  assert.ok(better.significant);
  // Equal totals, different queries (the first 10 flipped: a wins 5, b wins 5): not significant.
  const flipped = a.map((x, i) => (i < 10 ? 1 - x : x));
  const tie = pairedBootstrap(a, flipped, { seed: 1, scale: 100 });
  assert.equal(tie.difference, 0);
  assert.ok(tie.low < 0 && tie.high > 0 && !tie.significant, `${tie.low} .. ${tie.high}`);
  // Seeded: the same interval twice.
  assert.deepEqual(pairedBootstrap(a, b, { seed: 7, scale: 100 }), pairedBootstrap(a, b, { seed: 7, scale: 100 }));
  assert.throws(() => pairedBootstrap([1, 0], [1]), /same queries/);
});

test('paired bootstrap: scores equal but for float rounding (1 − 1/3 vs 2/3) are no difference', () => {
  const a = Array.from({ length: 12 }, () => 2 / 3);
  const b = Array.from({ length: 12 }, () => 1 - 1 / 3); // 0.6666666666666667
  assert.notEqual(a[0], b[0]);
  const r = pairedBootstrap(a, b, { scale: 100 });
  assert.deepEqual([r.difference, r.low, r.high, r.significant], [0, 0, 0, false]);
});
