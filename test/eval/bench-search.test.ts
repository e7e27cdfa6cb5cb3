import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { benchSearch } from '../../src/bench/search.ts';
import { REFERENCE_PYTHON } from '../../src/bench/timing.ts';

const hasFaiss = spawnSync(REFERENCE_PYTHON, ['-c', 'import faiss, numpy'], { encoding: 'utf8' }).status === 0;

test('search benchmark: both sides return the same neighbours on the same .npy descriptors', { skip: hasFaiss ? false : 'python3-faiss not installed' }, async () => {
  const r = await benchSearch({ database: 300, queries: 40, dim: 32, k: 5, iters: 1 });
  assert.deepEqual(r.sizes, { database: 300, queries: 40, dim: 32, k: 5 });
  assert.equal(r.agreement.top1, 1);
  assert.equal(r.agreement.topkSets, 1);
  assert.ok(r.agreement.maxDistanceDiff < 1e-5, String(r.agreement.maxDistanceDiff));
  assert.ok(r.vgl.search_ms > 0 && r.faiss.search_ms > 0);
  assert.equal(r.ratio, Math.round((r.vgl.search_ms / r.faiss.search_ms) * 1000) / 1000);
  await assert.rejects(benchSearch({ dim: 0 }), /--dim must be a positive integer, got 0/);
});
