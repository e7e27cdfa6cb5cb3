// The answers to the brief's questions quote this study's numbers, follow them, and say when the
// plan they rest on is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadStudy } from '../../src/report/load.ts';
import { answerContrastive, answerMining, answerScalability } from '../../src/report/answers.ts';
import { plainText } from '../../src/report/doc.ts';
import type { RunRecord } from '../../src/experiments/record.ts';
import { experimentTable } from '../../src/experiments/table.ts';
import { comparisonsOf } from '../../src/experiments/plan.ts';

const study = () => loadStudy('test/fixtures/report/study');

test('without a mining plan the mining answer says so; without untrained variants so does the first', () => {
  const s = study();
  assert.match(plainText(answerMining(s)), /The mining plan is not in this folder/);
  assert.match(plainText(answerContrastive(s)), /no untrained comparison/);
});

test('the scalability answer falls back to the baselines and follows the sign of NetVLAD − GeM', () => {
  const s = study();
  const text = plainText(answerScalability(s));
  // fixture: netvlad 85.0 ± 3.5 against gem 52.5 ± 3.5 on synth-city
  assert.match(text, /Measured here \(baselines, synth-city\): GeM 1280-d \(5,120 bytes\) R@1 52\.5 ± 3\.5; NetVLAD 1280-d/);
  assert.match(text, /is a gain beyond noise/);
  assert.match(text, /NetVLAD buys its recall with its size/);
  // The same records with the two heads' results swapped: the conclusion turns.
  const base = s.plans.find((p) => p.name === 'baselines')!;
  const swapped = base.records.map((r): RunRecord => {
    const other = base.records.find((o) => o.seed === r.seed && o.variant !== r.variant)!;
    return { ...r, tests: other.tests };
  });
  base.table = experimentTable(swapped, comparisonsOf(base.plan));
  const after = plainText(answerScalability(s));
  assert.match(after, /is a loss beyond noise/);
  assert.match(after, /buys no recall beyond noise/);
});
