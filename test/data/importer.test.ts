import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, rm, lstat, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, basename } from 'node:path';
import sharp from 'sharp';
import { importDataset, parseCsv } from '../../src/data/importer.ts';
import { openDataset, DatasetError } from '../../src/data/dataset.ts';
import { parseDatasetFilename } from '../../src/data/filename.ts';
import { latLonToUtm, utmZoneNumber, utmZoneLetter, utmToLatLon } from '../../src/data/geo.ts';

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
