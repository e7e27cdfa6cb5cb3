// Run records are validated when read: a record the runner wrote (the report's fixture study) reads
// back whole; a damaged one is refused, naming the file and the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { readRunRecord, readRecords, RUN_RECORD } from '../../src/experiments/record.ts';
import { tempDir } from '../helpers/tmp.ts';

const fixture = new URL('../fixtures/report/study/baselines/gem/seed-0/evaluation.json', import.meta.url).pathname;

test('a run record reads back as written; a missing field, a wrong type or rank count, and broken JSON are named with the file', () => {
  const raw = JSON.parse(readFileSync(fixture, 'utf8'));
  const r = readRunRecord(fixture);
  assert.equal(r.variant, raw.variant);
  assert.deepEqual(r.tests.map((t) => t.ranks.length), raw.tests.map((t: { queries: number }) => t.queries));
  assert.equal(r.tests[0].recalls[1], raw.tests[0].recalls['1']);

  const dir = tempDir('vgl-record-');
  const write = (name: string, data: unknown) => {
    mkdirSync(join(dir, name), { recursive: true });
    const f = join(dir, name, RUN_RECORD);
    writeFileSync(f, typeof data === 'string' ? data : JSON.stringify(data));
    return f;
  };
  const noCommit = write('a', { ...raw, commit: undefined });
  assert.throws(() => readRunRecord(noCommit), (e: Error) => e.message.startsWith(`${noCommit}: not a vgl run record (commit:`));
  const badSeed = write('b', { ...raw, seed: 'zero' });
  assert.throws(() => readRunRecord(badSeed), /seed: .*number/);
  const short = write('c', { ...raw, tests: [{ ...raw.tests[0], ranks: raw.tests[0].ranks.slice(1) }] });
  assert.throws(() => readRunRecord(short), /tests\.0: ranks must hold one entry per query/);
  const broken = write('d', '{"id": ');
  assert.throws(() => readRunRecord(broken), (e: Error) => e.message.startsWith(`${broken}: `));
  // Folders without a record are runs not done yet: skipped; a bad record among them is refused.
  assert.deepEqual(readRecords([{ folder: join(dir, 'none') }]), []);
  assert.throws(() => readRecords([{ folder: join(dir, 'none') }, { folder: join(dir, 'b') }]), /seed/);
});
