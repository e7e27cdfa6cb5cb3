// Reading an experiments folder: every plan folder or one, the finished records, and the curves of
// the runs that trained them (a reused model's in its source plan's folder).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadStudy, readValidationCurve } from '../../src/report/load.ts';

const FIXTURE = 'test/fixtures/report/study';

test('loads every plan folder, its records and the validation curves of the runs that trained them', () => {
  const s = loadStudy(FIXTURE);
  assert.deepEqual(s.plans.map((p) => p.name), ['ablation-3-train-threshold', 'ablation-4-val-radius', 'baselines']);
  const a3 = s.plans[0]!;
  assert.equal(a3.records.length, 6);
  assert.equal(a3.planned, 6);
  // train-10m was trained by baselines/netvlad: its curve is that run's log
  const reused = a3.curves.filter((c) => c.variant === 'train-10m');
  assert.equal(reused.length, 2);
  assert.match(reused[0]!.log, /baselines\/netvlad\/seed-0\/log\.jsonl$/);
  assert.deepEqual(reused[0]!.points.map((p) => p.recalls[5]), [60, 65, 70]);
  assert.ok(a3.table);
  assert.equal(a3.table.baseline, 'train-10m');
});

test('a single plan folder is a study of one plan; a missing folder is named', () => {
  const s = loadStudy(`${FIXTURE}/baselines`);
  assert.equal(s.plans.length, 1);
  assert.equal(s.plans[0]!.records.length, 4);
  assert.throws(() => loadStudy(`${FIXTURE}/nope`), /fixtures\/report\/study\/nope: not a folder/);
  assert.throws(() => loadStudy('test/fixtures'), /no plan folders/);
});

test('validation curves skip other events and a missing log', () => {
  assert.deepEqual(readValidationCurve(`${FIXTURE}/nope/log.jsonl`), []);
  const c = readValidationCurve(`${FIXTURE}/baselines/gem/seed-1/log.jsonl`);
  assert.deepEqual(c.map((p) => p.epoch), [0, 1, 2]);
  assert.deepEqual(c.map((p) => p.recalls[1]), [41, 46, 51]);
});
