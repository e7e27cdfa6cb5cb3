import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { openDataset, type GeoDataset } from '../../src/data/dataset.ts';
import { parseDatasetFilename } from '../../src/data/filename.ts';
import { ensureRealDatasets, REAL_DATA_DIR, REAL_DATASETS, NORDLAND_RANGES, FINAL_SPLIT } from '../../src/data/real.ts';
import { tempDir } from '../helpers/tmp.ts';

const root = tempDir('vgl-real-');
const SPLITS = ['train', 'val', 'test', FINAL_SPLIT];

/** Every (east, north) of a split, database and queries. */
function positionsOf(ds: GeoDataset): [number, number][] {
  const out: [number, number][] = [];
  for (const p of [ds.databasePositions, ds.queriesPositions]) for (let i = 0; i < p.length; i += 2) out.push([p[i], p[i + 1]]);
  return out;
}

/** Smallest distance between any point of a and any point of b (brute force, independent of the importer's k-d tree). */
function minDistance(a: [number, number][], b: [number, number][]): number {
  let best = Infinity;
  for (const [x, y] of a) for (const [u, v] of b) best = Math.min(best, Math.hypot(x - u, y - v));
  return best;
}

test('the embedded photographs are in the repository', () => {
  assert.ok(REAL_DATA_DIR.endsWith(join('assets', 'real')));
  for (const f of ['gardens_point/positions.csv', 'gardens_point/day_left/Image100.jpg', 'gardens_point/night_right/Image199.jpg',
    'nordland/positions.csv', 'nordland/summer/images-00010.jpg', 'nordland/winter/images-35760.jpg']) {
    assert.ok(existsSync(join(REAL_DATA_DIR, f)), f);
  }
});

test('ensureRealDatasets imports every defined set with route-based splits', async () => {
  const summaries = await ensureRealDatasets(root, { progress: false });
  assert.deepEqual(summaries.map((s) => [s.name, s.reused]), REAL_DATASETS.map((d) => [d.name, false]));
  assert.deepEqual(summaries.map((s) => s.name), ['gardens_point', 'gardens_point_day', 'gardens_point_night', 'nordland']);

  // Gardens Point: 1 database + 2 query traverses per frame; final 100-129 (sealed), train 134-163,
  // val 168-177, test 182-199.
  const gp: Record<string, GeoDataset> = {};
  for (const split of SPLITS) gp[split] = await openDataset(root, 'gardens_point', split);
  assert.deepEqual(SPLITS.map((s) => [gp[s].databasePaths.length, gp[s].queriesPaths.length]), [[30, 60], [10, 20], [18, 36], [30, 60]]);
  const frameOf = (p: string) => (parseDatasetFilename(p).east - 500000) / 10;
  assert.deepEqual(gp.final.databasePaths.map(frameOf), Array.from({ length: 30 }, (_, i) => 100 + i));
  assert.deepEqual(gp.train.databasePaths.map(frameOf), Array.from({ length: 30 }, (_, i) => 134 + i));
  assert.equal(gp.test.queriesPaths.filter((p) => parseDatasetFilename(p).note!.startsWith('night_right__')).length, 18);
  assert.equal(gp.final.queriesPaths.filter((p) => parseDatasetFilename(p).note!.startsWith('night_right__')).length, 30);
  assert.ok((await lstat(gp.test.databasePaths[0])).isSymbolicLink());
  assert.ok((await readlink(gp.test.databasePaths[0])).startsWith(REAL_DATA_DIR));
  // No place in two splits: every image of a split more than 25 m (the soft-positive radius) from every
  // image of every other split, database and queries; the four frames left out make the gap 50 m.
  for (let i = 0; i < SPLITS.length; i++) {
    for (let j = i + 1; j < SPLITS.length; j++) {
      const d = minDistance(positionsOf(gp[SPLITS[i]]), positionsOf(gp[SPLITS[j]]));
      assert.ok(d >= 50, `Gardens Point ${SPLITS[i]} and ${SPLITS[j]} ${d} m apart`);
    }
  }
  await assert.rejects(openDataset(root, 'gardens_point_night', 'train'), /folder missing/);

  const night = await openDataset(root, 'gardens_point_night', 'test');
  assert.deepEqual([night.databasePaths.length, night.queriesPaths.length], [18, 18]);
  const nightFinal = await openDataset(root, 'gardens_point_night', FINAL_SPLIT);
  assert.deepEqual([nightFinal.databasePaths.length, nightFinal.queriesPaths.length], [30, 30]);
  assert.ok(night.queriesPaths.every((p) => parseDatasetFilename(p).note!.startsWith('Image')), 'one query folder: plain notes');
  const day = await openDataset(root, 'gardens_point_day', 'val');
  assert.deepEqual([day.databasePaths.length, day.queriesPaths.length], [10, 10]);

  // Nordland: frames 10, 20, ..., 35760 in each season; count per range by hand.
  const frames = Array.from({ length: 3576 }, (_, i) => 10 * (i + 1));
  const nl: Record<string, GeoDataset> = {};
  for (const r of NORDLAND_RANGES) {
    const want = frames.filter((f) => f >= r.min && f <= r.max).length;
    nl[r.split] = await openDataset(root, 'nordland', r.split);
    assert.deepEqual([nl[r.split].databasePaths.length, nl[r.split].queriesPaths.length], [want, want], r.split);
  }
  assert.deepEqual(SPLITS.map((s) => nl[s].databasePaths.length), [1991, 291, 667, 600]);
  // Along one line (north fixed), the gap between two splits is the gap between their nearest easts:
  // nine frames (100 m) left out between neighbouring stretches.
  const easts = (ds: GeoDataset) => positionsOf(ds).map(([e]) => e);
  for (let i = 0; i < SPLITS.length; i++) {
    for (let j = i + 1; j < SPLITS.length; j++) {
      const a = easts(nl[SPLITS[i]]), b = easts(nl[SPLITS[j]]);
      const gap = Math.max(Math.min(...b) - Math.max(...a), Math.min(...a) - Math.max(...b));
      assert.ok(gap >= 100, `Nordland ${SPLITS[i]} and ${SPLITS[j]}: ${gap} m apart`);
    }
  }
  assert.ok(positionsOf(nl.train).every(([, n]) => n === 7000000));
});

test('ensureRealDatasets again is a no-op; a damaged dataset is imported again', async () => {
  const logs: string[] = [];
  const again = await ensureRealDatasets(root, { progress: false, log: (s) => logs.push(s) });
  assert.deepEqual(again.map((s) => s.reused), [true, true, true, true]);
  assert.equal(logs.length, 4);
  assert.ok(logs.every((l) => /already in/.test(l)));
  assert.deepEqual(again[0].splits, { train: { database: 30, queries: 60 }, val: { database: 10, queries: 20 }, test: { database: 18, queries: 36 }, final: { database: 30, queries: 60 } });

  // Remove one link: that dataset alone is imported again, with overwrite.
  const ds = await openDataset(root, 'gardens_point_day', 'test');
  await rm(ds.queriesPaths[0]);
  const repaired = await ensureRealDatasets(root, { progress: false });
  assert.deepEqual(repaired.map((s) => [s.name, s.reused]), [['gardens_point', true], ['gardens_point_day', false], ['gardens_point_night', true], ['nordland', true]]);
  const fixed = await openDataset(root, 'gardens_point_day', 'test');
  assert.equal(fixed.queriesPaths.length, 18);
});
