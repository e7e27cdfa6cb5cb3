import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, rm, lstat, readdir, readFile, realpath, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, basename } from 'node:path';
import sharp from 'sharp';
import { Command } from 'commander';
import { importDataset, parseCsv, parseSplitRanges } from '../../src/data/importer.ts';
import { ImportFlags, register } from '../../src/cli/commands/import.ts';
import { parseFlags, UsageError } from '../../src/cli/flags.ts';
import { openDataset, DatasetError } from '../../src/data/dataset.ts';
import { parseDatasetFilename } from '../../src/data/filename.ts';
import { latLonToUtm, utmZoneNumber, utmZoneLetter, utmToLatLon } from '../../src/data/geo.ts';
import { tempDir } from '../helpers/tmp.ts';

async function png(path: string, shade: number): Promise<void> {
  const buf = await sharp({ create: { width: 8, height: 6, channels: 3, background: { r: shade, g: 255 - shade, b: 90 } } }).png().toBuffer();
  await writeFile(path, buf);
}

/** Makes <tmp>/src/{db,q} with a few PNGs (one in a subfolder) and returns the tmp folder. */
async function sourceFolders(): Promise<string> {
  const tmp = await mkdtemp(join(tmpdir(), 'vgl-import-'));
  await mkdir(join(tmp, 'src', 'db', 'sub'), { recursive: true });
  await mkdir(join(tmp, 'src', 'q'), { recursive: true });
  await png(join(tmp, 'src', 'db', 'a.png'), 10);
  await png(join(tmp, 'src', 'db', 'b.png'), 60);
  await png(join(tmp, 'src', 'db', 'sub', 'c.png'), 110);
  await png(join(tmp, 'src', 'q', 'a.png'), 160); // same base name as a database image: paths must disambiguate
  await png(join(tmp, 'src', 'q', 'x.png'), 210);
  return tmp;
}

test('CSV parsing handles quotes, CRLF and other delimiters', () => {
  assert.deepEqual(parseCsv('file,east\r\n"a, b.png",1\n"q""x.png",2\n'), [['file', 'east'], ['a, b.png', '1'], ['q"x.png', '2']]);
  assert.deepEqual(parseCsv('file;lat\nz.png;1.5'), [['file', 'lat'], ['z.png', '1.5']]);
});

test('round trip: PNGs + UTM CSV -> import (symlinks) -> openDataset gives the same positions', async () => {
  const tmp = await sourceFolders();
  try {
    // paths relative to the CSV, relative to the image folder and with a parent folder as suffix
    await writeFile(join(tmp, 'src', 'positions.csv'), [
      'file,utm_east,utm_north',
      'db/a.png,500010.5,7000000.25',
      'b.png,500020,7000001',
      'sub/c.png,500030.125,6999999.5',
      'q/a.png,500011,7000000',
      'q/x.png,500029.99,7000000.01',
      'db/missing.png,1,2',
      'q/x.png,5,5',
    ].join('\n'));
    const result = await importDataset({
      databaseDir: join(tmp, 'src', 'db'), queriesDir: join(tmp, 'src', 'q'), csv: join(tmp, 'src', 'positions.csv'),
      out: join(tmp, 'out'), name: 'toy', splits: ['val', 'test'], utmZone: '33W', progress: false,
    });
    assert.equal(result.database, 3);
    assert.equal(result.queries, 2);
    assert.deepEqual(result.unmatchedRows.map((u) => [u.line, u.file]), [[7, 'db/missing.png'], [8, 'q/x.png']]);
    assert.match(result.unmatchedRows[0].reason, /no such image/);
    assert.match(result.unmatchedRows[1].reason, /second row .*first at line 6/);
    assert.deepEqual(result.imagesWithoutPosition, []);
    for (const split of ['val', 'test']) {
      const ds = await openDataset(join(tmp, 'out'), 'toy', split, { verifyImages: { progress: false } });
      const got = ds.databasePaths.map((p, i) => [parseDatasetFilename(p).note, ds.databasePositions[2 * i], ds.databasePositions[2 * i + 1]]);
      // canonical names sort by east, which here is the CSV order
      assert.deepEqual(got, [['a', 500010.5, 7000000.25], ['b', 500020, 7000001], ['sub__c', 500030.13, 6999999.5]]);
      const gotQ = ds.queriesPaths.map((p, i) => [parseDatasetFilename(p).note, ds.queriesPositions[2 * i], ds.queriesPositions[2 * i + 1]]);
      assert.deepEqual(gotQ, [['a', 500011, 7000000], ['x', 500029.99, 7000000.01]]);
      assert.equal(basename(ds.databasePaths[0]), '@0500010.50@7000000.25@33@W@@@@@@@@@@a@.png');
      assert.ok((await lstat(ds.databasePaths[0])).isSymbolicLink());
    }
    // importing again into the same place refuses unless --overwrite
    const again = { databaseDir: join(tmp, 'src', 'db'), queriesDir: join(tmp, 'src', 'q'), csv: join(tmp, 'src', 'positions.csv'), out: join(tmp, 'out'), name: 'toy', splits: ['test'], progress: false };
    await assert.rejects(importDataset(again), /already holds files.*--overwrite/);
    const r2 = await importDataset({ ...again, overwrite: true, mode: 'copy' });
    assert.equal(r2.database, 3);
    const ds = await openDataset(join(tmp, 'out'), 'toy', 'test');
    assert.ok((await lstat(ds.databasePaths[0])).isFile());
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

test('images without a position are reported; --strict refuses', async () => {
  const tmp = await sourceFolders();
  try {
    await writeFile(join(tmp, 'src', 'pos.csv'), 'image,east,north\ndb/a.png,1,2\ndb/b.png,3,4\nq/x.png,5,6\nq/a.png,oops,7\n');
    const opts = { databaseDir: join(tmp, 'src', 'db'), queriesDir: join(tmp, 'src', 'q'), csv: join(tmp, 'src', 'pos.csv'), out: join(tmp, 'out'), name: 'toy', progress: false };
    await assert.rejects(importDataset({ ...opts, strict: true }), (e: unknown) => {
      assert.ok(e instanceof DatasetError);
      assert.match(e.message, /--strict.*1 unmatched CSV rows, 2 images without a position/);
      assert.ok(e.problems.some((p) => /line 5 \(q\/a\.png\): east "oops" is not a number/.test(p)));
      assert.ok(e.problems.some((p) => p.endsWith(join('sub', 'c.png') + `: no position in ${join(tmp, 'src', 'pos.csv')}`)));
      return true;
    });
    assert.deepEqual(await readdir(tmp).then((d) => d.includes('out')), false, 'strict failure writes nothing');
    const r = await importDataset(opts);
    assert.equal(r.database, 2);
    assert.equal(r.queries, 1);
    assert.deepEqual(r.imagesWithoutPosition.map((p) => p.slice(tmp.length)), ['/src/db/sub/c.png', '/src/q/a.png']);
    assert.ok(r.warnings.some((w) => /2 images have no position/.test(w)));
    await assert.rejects(importDataset({ ...opts, databaseDir: join(tmp, 'src') }), /overlap; give two separate folders/);
    await assert.rejects(
      importDataset({ ...opts, csv: join(tmp, 'src', 'pos.csv'), columns: { east: 'utm_x' } }),
      /column "utm_x" \(--east-column\) not in the header/);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

/** Meridian arc length from the equator (Snyder 1987, eq. 3-21), WGS84: an independent check of proj4. */
function meridianArc(latDeg: number): number {
  const a = 6378137, f = 1 / 298.257223563, e2 = f * (2 - f), e4 = e2 * e2, e6 = e4 * e2;
  const p = (latDeg * Math.PI) / 180;
  return a * ((1 - e2 / 4 - (3 * e4) / 64 - (5 * e6) / 256) * p - ((3 * e2) / 8 + (3 * e4) / 32 + (45 * e6) / 1024) * Math.sin(2 * p)
    + ((15 * e4) / 256 + (45 * e6) / 1024) * Math.sin(4 * p) - ((35 * e6) / 3072) * Math.sin(6 * p));
}

test('lat/lon -> UTM matches hand-verified values (north and south)', () => {
  // The datasets_vg example name: @0549678.37@4180874.60@10@S@037.77386@-122.43590@ (San Francisco)
  const sf = latLonToUtm(37.77386, -122.4359);
  assert.equal(sf.zoneNumber, 10);
  assert.equal(sf.zoneLetter, 'S');
  assert.ok(Math.abs(sf.east - 549678.37) < 0.01 && Math.abs(sf.north - 4180874.6) < 0.01, `${sf.east} ${sf.north}`);
  // On zone 31's central meridian (3 deg E), 10 deg S: east = 500 km, north = 10,000 km - k0 * meridian arc.
  const s = latLonToUtm(-10, 3);
  assert.equal(s.zoneNumber, 31);
  assert.equal(s.zoneLetter, 'L');
  assert.ok(Math.abs(s.east - 500000) < 1e-6);
  assert.ok(Math.abs(s.north - (10000000 - 0.9996 * meridianArc(10))) < 0.001, `${s.north}`);
  assert.equal(utmZoneNumber(-33.8568, 151.2153), 56);
  assert.equal(utmZoneLetter(-33.8568), 'H');
  assert.equal(utmZoneNumber(60.39, 5.32), 32); // Bergen: the Norway exception
  assert.equal(utmZoneNumber(78.2, 15.6), 33); // Svalbard
  const back = utmToLatLon(s.east, s.north, 31, 'L');
  assert.ok(Math.abs(back.lat + 10) < 1e-9 && Math.abs(back.lon - 3) < 1e-9);
  assert.throws(() => latLonToUtm(85, 0), /latitude 85/);
});

test('import with a lat/lon CSV writes UTM positions and zone fields', async () => {
  const tmp = await sourceFolders();
  try {
    await writeFile(join(tmp, 'src', 'gps.csv'), [
      'path,latitude,longitude',
      'db/a.png,37.77386,-122.43590',
      'db/b.png,37.7739,-122.4358',
      'db/sub/c.png,37.7740,-122.4357',
      'q/a.png,37.77387,-122.43591',
      'q/x.png,-10,3', // a far-away southern point in another zone: warned about, converted in zone 10
    ].join('\n'));
    const r = await importDataset({
      databaseDir: join(tmp, 'src', 'db'), queriesDir: join(tmp, 'src', 'q'), csv: join(tmp, 'src', 'gps.csv'),
      out: join(tmp, 'out'), name: 'sf', progress: false,
    });
    assert.equal(r.positionSource, 'latlon');
    assert.equal(r.utmZone, '10');
    assert.ok(r.warnings.some((w) => /span UTM zones 10 \(4 images\), 31 \(1 images\)/.test(w)));
    const ds = await openDataset(join(tmp, 'out'), 'sf', 'test');
    const f = parseDatasetFilename(ds.databasePaths[0]);
    assert.deepEqual([f.east, f.north, f.zoneNumber, f.zoneLetter, f.lat, f.lon, f.note], [549678.37, 4180874.6, 10, 'S', 37.77386, -122.4359, 'a']);
    const fx = parseDatasetFilename(ds.queriesPaths.find((p) => p.includes('@x@'))!);
    assert.equal(fx.zoneNumber, 10);
    assert.equal(fx.zoneLetter, 'L');
    assert.equal(fx.lat, -10);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

// ---- route-based splits, several query folders ----

/** Frame f stands at east 500000 + 10 f (10 m apart), as along a route. */
const eastOf = (frame: number) => 500000 + 10 * frame;
const pad = (frame: number) => String(frame).padStart(2, '0');

/** Writes <root>/<folder>/fNN.png for each folder and frame, and <root>/positions.csv with a frame column. */
async function route(root: string, folders: Record<string, number[]>, csvExtra: string[] = []): Promise<string> {
  const lines = ['file,frame,utm_east,utm_north'];
  for (const [folder, frames] of Object.entries(folders)) {
    await mkdir(join(root, folder), { recursive: true });
    for (const f of frames) {
      await png(join(root, folder, `f${pad(f)}.png`), (f * 13) % 256);
      lines.push(`${folder}/f${pad(f)}.png,${f},${eastOf(f)},7000000`);
    }
  }
  await writeFile(join(root, 'positions.csv'), [...lines, ...csvExtra].join('\n') + '\n');
  return join(root, 'positions.csv');
}

const frames0to19 = Array.from({ length: 20 }, (_, i) => i);

test('split ranges: each image lands in the split its frame range says, positions parse back, skipped ones counted', async () => {
  const root = tempDir('vgl-import-ranges-');
  const csv = await route(join(root, 'src'), { db: frames0to19, q: frames0to19 });
  const ranges = parseSplitRanges('train:0-7,val:11-13,test:17-19');
  const r = await importDataset({
    databaseDir: join(root, 'src', 'db'), queriesDir: join(root, 'src', 'q'), csv, out: join(root, 'out'), name: 'route',
    splitRanges: ranges, progress: false,
  });
  // Independently: which split a frame belongs to, by reading the ranges by hand.
  const splitOf = (f: number) => (f <= 7 ? 'train' : f >= 11 && f <= 13 ? 'val' : f >= 17 ? 'test' : undefined);
  const skipped = frames0to19.filter((f) => splitOf(f) === undefined).length * 2; // frames 8-10 and 14-16, database and queries
  assert.equal(r.outsideRanges, skipped);
  assert.equal(r.outsideRanges, 12);
  assert.ok(r.warnings.some((w) => w.startsWith('12 images have a frame in no split range')));
  assert.deepEqual(r.splits, ['train', 'val', 'test']);
  assert.equal(r.database + r.queries, 40 - skipped);
  for (const split of ['train', 'val', 'test']) {
    const want = frames0to19.filter((f) => splitOf(f) === split);
    const ds = await openDataset(join(root, 'out'), 'route', split);
    for (const [paths, positions] of [[ds.databasePaths, ds.databasePositions], [ds.queriesPaths, ds.queriesPositions]] as const) {
      const got = paths.map((p, i) => ({ frame: Number(parseDatasetFilename(p).note!.slice(1)), east: positions[2 * i], north: positions[2 * i + 1] }));
      assert.deepEqual(got.map((g) => g.frame).sort((a, b) => a - b), want, split);
      for (const g of got) assert.deepEqual([g.east, g.north], [eastOf(g.frame), 7000000]);
    }
    assert.deepEqual(r.perSplit[split], { database: want.length, queries: want.length, rangeMin: want[0], rangeMax: want[want.length - 1] });
  }
  const report = JSON.parse(await readFile(r.reportPath, 'utf8'));
  assert.deepEqual(report.splitRanges, ranges);
  assert.equal(report.rangeColumn, 'frame');
  assert.equal(report.minSplitGap, 25);
  assert.deepEqual(report.perSplit.val, { database: 3, queries: 3, rangeMin: 11, rangeMax: 13 });
  assert.equal(report.files.length, 40 - skipped);
});

test('split ranges closer than --min-split-gap are refused naming the two files; overlapping ranges are refused', async () => {
  const root = tempDir('vgl-import-gap-');
  const csv = await route(join(root, 'src'), { db: frames0to19, q: frames0to19 });
  const opts = { databaseDir: join(root, 'src', 'db'), queriesDir: join(root, 'src', 'q'), csv, out: join(root, 'out'), name: 'route', progress: false };
  // Frames 7 and 8 are 10 m apart, well inside 25 m.
  await assert.rejects(importDataset({ ...opts, splitRanges: parseSplitRanges('train:0-7,test:8-19') }), (e: unknown) => {
    assert.ok(e instanceof DatasetError);
    assert.match(e.message, /within --min-split-gap 25 m/);
    // Closest first: frame 7 and 8 of the same folder or across folders, 10 m apart.
    assert.match(e.problems[0], /f07\.png \(train (database|queries), frame 7\) and .*f08\.png \(test (database|queries), frame 8\): 10\.00 m apart/);
    assert.ok(e.problems.some((p) => /f06\.png \(train .*f08\.png \(test .*: 20\.00 m apart/.test(p)));
    assert.ok(!e.problems.some((p) => /f05\.png/.test(p)), 'frames 5 and 8 are 30 m apart: no leak');
    return true;
  });
  assert.equal(existsSync(join(root, 'out')), false, 'a refused import writes nothing');
  // A smaller gap accepts the same layout: the check follows the flag, not a fixed rule.
  const ok = await importDataset({ ...opts, splitRanges: parseSplitRanges('train:0-7,test:8-19'), minSplitGap: 9.5 });
  assert.deepEqual(ok.perSplit, { train: { database: 8, queries: 8, rangeMin: 0, rangeMax: 7 }, test: { database: 12, queries: 12, rangeMin: 8, rangeMax: 19 } });

  assert.throws(() => parseSplitRanges('train:0-10,test:10-19'), /ranges train:0-10 and test:10-19 overlap \(10-10\)/);
  await assert.rejects(importDataset({ ...opts, splitRanges: [{ split: 'a', min: 0, max: 5 }, { split: 'b', min: 9, max: 12 }, { split: 'c', min: 3, max: 4 }] }),
    /ranges a:0-5 and c:3-4 overlap/);
  assert.throws(() => parseSplitRanges('train:9-3'), /train:9-3: from 9 is above to 3/);
  assert.throws(() => parseSplitRanges('train=0-3'), /"train=0-3" is not split:from-to/);
  await assert.rejects(importDataset({ ...opts, splits: ['test'], splitRanges: parseSplitRanges('train:0-7') }), /--split test and --split-ranges train:0-7 are mutually exclusive/);
  // A split whose range holds no image would not open as a dataset.
  await assert.rejects(importDataset({ ...opts, overwrite: true, splitRanges: parseSplitRanges('train:0-7,test:50-60') }), /split test \(test:50-60\): no database image/);
});

test('split ranges: a missing range column names the CSV and header; a non-number names the line', async () => {
  const root = tempDir('vgl-import-col-');
  const csv = await route(join(root, 'src'), { db: [0, 1], q: [0, 1] }, ['q/f01.png,one,500010,7000000']);
  const opts = { databaseDir: join(root, 'src', 'db'), queriesDir: join(root, 'src', 'q'), csv, out: join(root, 'out'), name: 'route', progress: false };
  await assert.rejects(importDataset({ ...opts, splitRanges: parseSplitRanges('test:0-1'), rangeColumn: 'km' }),
    new RegExp(`${csv.replace(/[.]/g, '\\.')}: no column "km" \\(--range-column.*header \\[file, frame, utm_east, utm_north\\]`));
  await assert.rejects(importDataset({ ...opts, splitRanges: parseSplitRanges('test:0-1') }), (e: unknown) => {
    assert.ok(e instanceof DatasetError);
    assert.deepEqual(e.problems, [`${csv} line 6 (q/f01.png): frame "one" is not a number`]);
    return true;
  });
});

test('several query folders: same-named images at one position import without collision; overlaps refused', async () => {
  const root = tempDir('vgl-import-multi-');
  const csv = await route(join(root, 'src'), { day_left: [0, 1, 2, 9], day_right: [0, 1, 2, 9], night_right: [0, 1, 2, 9] });
  const src = (f: string) => join(root, 'src', f);
  const r = await importDataset({
    databaseDir: src('day_left'), queriesDir: [src('day_right'), src('night_right')], csv, out: join(root, 'out'), name: 'gp',
    splitRanges: parseSplitRanges('train:0-2,test:9-9'), progress: false,
  });
  assert.deepEqual(r.perSplit.train, { database: 3, queries: 6, rangeMin: 0, rangeMax: 2 });
  const ds = await openDataset(join(root, 'out'), 'gp', 'train');
  const notes = ds.queriesPaths.map((p) => parseDatasetFilename(p).note).sort();
  assert.deepEqual(notes, ['day_right__f00', 'day_right__f01', 'day_right__f02', 'night_right__f00', 'night_right__f01', 'night_right__f02']);
  // Each query keeps its own position (the two folders agree here) and links to its own file.
  for (const [i, p] of ds.queriesPaths.entries()) {
    const f = parseDatasetFilename(p);
    const frame = Number(f.note!.slice(-2));
    assert.equal(ds.queriesPositions[2 * i], eastOf(frame));
    assert.equal(await realpath(p), await realpath(src(`${f.note!.split('__')[0]}/f${pad(frame)}.png`)));
  }
  // A single query folder keeps the plain notes (existing behaviour).
  const single = await importDataset({ databaseDir: src('day_left'), queriesDir: [src('night_right')], csv, out: join(root, 'out'), name: 'one', progress: false });
  assert.equal(single.queries, 4);
  assert.equal(parseDatasetFilename((await openDataset(join(root, 'out'), 'one', 'test')).queriesPaths[0]).note, 'f00');

  const base = { databaseDir: src('day_left'), csv, out: join(root, 'out'), name: 'bad', progress: false };
  await assert.rejects(importDataset({ ...base, queriesDir: [src('day_right'), src('day_right')] }), /--queries .*day_right and --queries .*day_right overlap/);
  await assert.rejects(importDataset({ ...base, queriesDir: [src('day_right'), src('day_left')] }), /--database .*day_left and --queries .*day_left overlap/);
  await mkdir(join(root, 'other', 'day_right'), { recursive: true });
  await png(join(root, 'other', 'day_right', 'f00.png'), 1);
  await assert.rejects(importDataset({ ...base, queriesDir: [src('day_right'), join(root, 'other', 'day_right')] }), /same folder name "day_right"/);
});

test('vgl import: --queries repeatable and comma-separated, --split-ranges end to end, --split with --split-ranges refused', async () => {
  const root = tempDir('vgl-import-cli-');
  const csv = await route(join(root, 'src'), { db: frames0to19, qa: frames0to19, qb: frames0to19 });
  const src = (f: string) => join(root, 'src', f);
  const base = { database: src('db'), csv, out: join(root, 'out'), name: 'cli' };
  assert.deepEqual(ImportFlags.parse({ ...base, queries: [src('qa'), `${src('qb')},${src('qa')}`] }).queries, [src('qa'), src('qb'), src('qa')]);
  assert.deepEqual(ImportFlags.parse({ ...base, queries: src('qa') }).queries, [src('qa')]);
  assert.throws(() => parseFlags(ImportFlags, { ...base, queries: src('qa'), split: 'test', splitRanges: 'train:0-7,test:11-19' }),
    (e: unknown) => e instanceof UsageError && /--split-ranges "train:0-7,test:11-19": --split and --split-ranges are mutually exclusive/.test(e.message));
  assert.throws(() => parseFlags(ImportFlags, { ...base, queries: src('qa'), splitRanges: 'train:0-7,test:5-19' }),
    (e: unknown) => e instanceof UsageError && /--split-ranges .*ranges train:0-7 and test:5-19 overlap/.test(e.message));
  assert.throws(() => parseFlags(ImportFlags, { ...base, queries: src('qa'), minSplitGap: '10' }),
    (e: unknown) => e instanceof UsageError && /--min-split-gap "10": only applies with --split-ranges/.test(e.message));

  const program = new Command().exitOverride();
  register(program);
  const lines: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => { lines.push(s); return true; }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['import', '--database', src('db'), '--queries', src('qa'), '--queries', src('qb'), '--csv', csv,
      '--out', join(root, 'out'), '--name', 'cli', '--split-ranges', 'train:0-7,test:11-19', '--min-split-gap', '30'], { from: 'user' });
  } finally {
    process.stdout.write = write;
  }
  assert.ok(lines.some((l) => l.startsWith('cli/train: 8 database, 16 queries (frame 0..7)')), lines.join(''));
  assert.ok(lines.some((l) => l.startsWith('cli/test: 9 database, 18 queries (frame 11..19)')), lines.join(''));
  assert.ok(lines.some((l) => /9 images in no range \(skipped\); no two splits closer than 30 m/.test(l)), lines.join(''));
  const report = JSON.parse(await readFile(join(root, 'out', 'cli', 'import-report.json'), 'utf8'));
  assert.equal(report.minSplitGap, 30);
  assert.deepEqual(report.sources.queries, [src('qa'), src('qb')]);
});

test('--overwrite never deletes what vgl did not make: sources inside the target refused, foreign files kept, a failed import leaves the old dataset', async () => {
  const tmp = await sourceFolders();
  try {
    const csvLines = ['file,utm_east,utm_north', 'db/a.png,500010,7000000', 'b.png,500020,7000000', 'sub/c.png,500030,7000000', 'q/a.png,500011,7000000', 'q/x.png,500029,7000000'];
    await writeFile(join(tmp, 'src', 'positions.csv'), csvLines.join('\n'));
    const base = { csv: join(tmp, 'src', 'positions.csv'), out: join(tmp, 'out'), name: 'toy', splits: ['test'], utmZone: '33W', progress: false };
    for (const mode of ['symlink', 'copy'] as const) {
      await rm(join(tmp, 'out'), { recursive: true, force: true });
      await importDataset({ ...base, databaseDir: join(tmp, 'src', 'db'), queriesDir: join(tmp, 'src', 'q'), mode });
      // Re-importing in place, from the split folders themselves (to fix positions): refused, every original kept.
      const dbSplit = join(tmp, 'out', 'toy', 'images', 'test', 'database');
      const before = (await readdir(dbSplit)).sort();
      await assert.rejects(importDataset({ ...base, databaseDir: dbSplit, queriesDir: join(tmp, 'src', 'q'), mode, overwrite: true }),
        /--database .*overlaps the target dataset folder .*toy \(after resolving links\)/);
      // Also through a link to the target.
      await symlink(join(tmp, 'out', 'toy'), join(tmp, 'alias'));
      await assert.rejects(importDataset({ ...base, databaseDir: join(tmp, 'alias', 'images', 'test', 'database'), queriesDir: join(tmp, 'src', 'q'), mode, overwrite: true }), /overlaps the target/);
      await rm(join(tmp, 'alias'));
      assert.deepEqual((await readdir(dbSplit)).sort(), before);
      assert.equal(before.length, 3);
      // A plain --overwrite of an earlier import replaces it (links or copies vgl made).
      await importDataset({ ...base, databaseDir: join(tmp, 'src', 'db'), queriesDir: join(tmp, 'src', 'q'), mode, overwrite: true });
      assert.equal((await readdir(dbSplit)).length, 3);
      assert.deepEqual((await readdir(join(tmp, 'out', 'toy'))).filter((f) => f.startsWith('.import-')), [], 'no staging folder left');
      // A file vgl did not make in the target: refused, the file kept.
      await writeFile(join(dbSplit, 'notes.txt'), 'mine');
      await assert.rejects(importDataset({ ...base, databaseDir: join(tmp, 'src', 'db'), queriesDir: join(tmp, 'src', 'q'), mode, overwrite: true }),
        /--overwrite refused: 1 entries were not made by vgl import \(e\.g\. .*notes\.txt\)/);
      assert.equal(await readFile(join(dbSplit, 'notes.txt'), 'utf8'), 'mine');
      await rm(join(dbSplit, 'notes.txt'));
    }
    // A copy that fails half-way (a source image that vanished: a dangling link) leaves the previous dataset untouched.
    const dbSplit = join(tmp, 'out', 'toy', 'images', 'test', 'database');
    const before = (await readdir(dbSplit)).sort();
    await rm(join(tmp, 'src', 'db', 'b.png'));
    await symlink(join(tmp, 'nowhere.png'), join(tmp, 'src', 'db', 'b.png'));
    await assert.rejects(importDataset({ ...base, databaseDir: join(tmp, 'src', 'db'), queriesDir: join(tmp, 'src', 'q'), mode: 'copy', overwrite: true }), /ENOENT|b\.png/);
    assert.deepEqual((await readdir(dbSplit)).sort(), before);
    assert.deepEqual((await readdir(join(tmp, 'out', 'toy'))).filter((f) => f.startsWith('.import-')), [], 'no staging folder left');
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});
