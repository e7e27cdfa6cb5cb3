import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, rm, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { writeDatasetReport, summarize } from '../../src/report/dataset-stats.ts';
import { formatDatasetFilename } from '../../src/data/filename.ts';
import { histogram, binCounts } from '../../src/util/figure.ts';
import { Rng } from '../../src/data/random.ts';

/** Deterministic uniform numbers in [0, 1). */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

type P = [number, number];

async function writeSplit(root: string, split: string, db: P[], qs: P[]): Promise<void> {
  for (const [part, list] of [['database', db], ['queries', qs]] as const) {
    const dir = join(root, 'tiny', 'images', split, part);
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < list.length; i++) {
      const [e, n] = list[i];
      const img = await sharp({ create: { width: 16, height: 12, channels: 3, background: { r: (i * 37) % 256, g: 120, b: part === 'queries' ? 220 : 40 } } }).png().toBuffer();
      await writeFile(join(dir, formatDatasetFilename({ east: e, north: n, note: `${part}${i}`, extension: '.png' })), img);
    }
  }
}

/** Brute force: every query against every database image. */
function brute(db: P[], qs: P[], r: number): { counts: number[]; nearest: number[] } {
  const counts = qs.map(([qe, qn]) => db.filter(([e, n]) => Math.hypot(e - qe, n - qn) <= r).length);
  const nearest = qs.map(([qe, qn]) => Math.min(...db.map(([e, n]) => Math.hypot(e - qe, n - qn))));
  return { counts, nearest };
}

test('summary numbers equal a brute-force computation and every file is written', async () => {
  const root = await mkdtemp(join(tmpdir(), 'vgl-stats-'));
  try {
    const rand = rng(42);
    // positions rounded to centimetres, as the file names store them
    const pt = (x0: number, y0: number, s: number): P => [Math.round((x0 + rand() * s) * 100) / 100, Math.round((y0 + rand() * s) * 100) / 100];
    const db: P[] = Array.from({ length: 40 }, () => pt(600000, 5000000, 120));
    const qs: P[] = Array.from({ length: 21 }, () => pt(600000, 5000000, 140));
    await writeSplit(root, 'test', db, qs);
    await writeSplit(root, 'val', db.slice(0, 10), qs.slice(0, 5));
    const out = join(root, 'report');
    const r = await writeDatasetReport(root, 'tiny', out, { exampleQueries: 3 });
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8'));
    assert.deepEqual(summary.splits.map((s: { split: string; database: number; queries: number }) => [s.split, s.database, s.queries]), [['test', 40, 21], ['val', 10, 5]]);
    const t = summary.splits[0];
    const soft = brute(db, qs, 25), hard = brute(db, qs, 10);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    const sorted = (a: number[]) => [...a].sort((x, y) => x - y);
    assert.equal(t.softPositivesPerQuery.mean, mean(soft.counts));
    assert.equal(t.hardPositivesPerQuery.mean, mean(hard.counts));
    assert.equal(t.softPositivesPerQuery.median, sorted(soft.counts)[10]); // 21 queries: the 11th value
    assert.equal(t.softPositivesPerQuery.max, Math.max(...soft.counts));
    assert.equal(t.queriesWithoutSoftPositive, soft.counts.filter((c) => c === 0).length);
    assert.equal(t.queriesWithoutHardPositive, hard.counts.filter((c) => c === 0).length);
    assert.ok(t.queriesWithoutHardPositive > 0 && t.queriesWithoutHardPositive < 21, 'the case must have queries with and without hard positives');
    const nd = sorted(soft.nearest);
    assert.ok(Math.abs(t.nearestDatabaseDistance.median - nd[10]) < 1e-9);
    assert.ok(Math.abs(t.nearestDatabaseDistance.max - nd[20]) < 1e-9);
    assert.ok(Math.abs(t.nearestDatabaseDistance.mean - mean(soft.nearest)) < 1e-9);
    // p90 of 21 values: position 0.9 * 20 = 18 exactly
    assert.ok(Math.abs(t.nearestDatabaseDistance.p90 - nd[18]) < 1e-9);
    assert.deepEqual([t.databaseExtent.minEast, t.databaseExtent.maxNorth], [Math.min(...db.map((p) => p[0])), Math.max(...db.map((p) => p[1]))]);
    for (const split of ['test', 'val']) {
      for (const f of ['map.svg', 'map.png', 'positives.svg', 'positives.png', 'nearest-distance.svg', 'nearest-distance.png', 'examples.png']) {
        const path = join(out, `${split}-${f}`);
        assert.ok((await stat(path)).size > 500, `${path} written`);
        if (f.endsWith('.png')) {
          const m = await sharp(path).metadata();
          assert.equal(m.format, 'png');
          assert.ok((m.width ?? 0) >= 600, `${path} is a full-size figure`);
        }
      }
    }
    assert.equal(r.figures.length, 14);
    // The plotted data is written beside each figure: one point per image, at its position.
    const map = JSON.parse(await readFile(join(out, 'test-map.json'), 'utf8')) as { part: string; east: number; north: number }[];
    assert.equal(map.length, 40 + 21, 'one dot per image');
    const byEast = (a: number[], b: number[]) => a[0] - b[0] || a[1] - b[1];
    assert.deepEqual(map.filter((p) => p.part === 'queries').map((p) => [p.east, p.north]).sort(byEast), [...qs].sort(byEast));
    assert.match(await readFile(join(out, 'test-map.svg'), 'utf8'), /^<svg /);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('plot helpers: bins and the bars of a histogram figure', () => {
  assert.deepEqual(binCounts([0, 0.5, 1, 2.5, 3, 99, -1], [0, 1, 2, 3]), { counts: [2, 1, 3], overflow: 1, underflow: 1 });
  assert.deepEqual(summarize([4, 1, 3, 2]), { count: 4, mean: 2.5, min: 1, p10: 1.3, median: 2.5, p90: 3.7, max: 4 });
  const f = histogram('h', 'T & co', 'sub', { xLabel: 'x', series: [{ name: 'a', values: [1, 1, 2] }, { name: 'b', values: [0] }], integerBins: true });
  // One bar per non-empty bin and series; integer bins are centred on their value, series side by side.
  const bars = f.data as { series: string; from: number; to: number; count: number; x0: number; x1: number }[];
  assert.deepEqual(bars.map((b) => [b.series, b.from + 0.5, b.count]), [['a', 1, 2], ['a', 2, 1], ['b', 0, 1]]);
  assert.ok(bars.every((b) => b.x0 >= b.from && b.x1 <= b.to && b.x1 > b.x0));
  const a1 = bars[0], b0 = bars[2];
  assert.ok(a1.x1 - a1.from <= 0.5 + 1e-9 && b0.x0 - b0.from >= 0.5 - 1e-9, 'series a in the left half of its bins, b in the right');
});
