import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDatasetFilename, formatDatasetFilename, FilenameError } from '../../src/data/filename.ts';

test('parses the design example with every field typed', () => {
  const f = parseDatasetFilename('/x/y/@0549678.37@4180874.60@10@S@037.77386@-122.43590@pano_7@00@90.5@-2@0@1.6@2014-07@pitch1_yaw1@.jpg');
  assert.equal(f.east, 549678.37);
  assert.equal(f.north, 4180874.6);
  assert.equal(f.zoneNumber, 10);
  assert.equal(f.zoneLetter, 'S');
  assert.equal(f.lat, 37.77386);
  assert.equal(f.lon, -122.4359);
  assert.equal(f.panoId, 'pano_7');
  assert.equal(f.tileNum, '00');
  assert.equal(f.heading, 90.5);
  assert.equal(f.pitch, -2);
  assert.equal(f.roll, 0);
  assert.equal(f.height, 1.6);
  assert.equal(f.timestamp, '2014-07');
  assert.equal(f.note, 'pitch1_yaw1');
  assert.equal(f.extension, '.jpg');
});

test('only east and north are required; empty fields are undefined', () => {
  const f = parseDatasetFilename('@12.5@-3@@@@@@@@@@@@@.PNG');
  assert.deepEqual(
    { e: f.east, n: f.north, z: f.zoneNumber, l: f.zoneLetter, lat: f.lat, note: f.note, ext: f.extension },
    { e: 12.5, n: -3, z: undefined, l: undefined, lat: undefined, note: undefined, ext: '.png' });
  // the short form with only two fields is accepted too
  assert.equal(parseDatasetFilename('@1@2@.jpeg').north, 2);
});

test('formats the canonical name (7.2 digits for UTM, 3.5 for lat/lon)', () => {
  const name = formatDatasetFilename({ east: 549678.3733520099, north: 4180874.6024389784, zoneNumber: 10, zoneLetter: 'S', lat: 37.77386, lon: -122.4359 });
  assert.equal(name, '@0549678.37@4180874.60@10@S@037.77386@-122.43590@@@@@@@@@.jpg');
  assert.equal(formatDatasetFilename({ east: 5, north: 7, note: 'a', extension: '.png' }), '@0000005.00@0000007.00@@@@@@@@@@@@a@.png');
  assert.equal(formatDatasetFilename({ east: -12.5, north: 0, lat: -33.5 }), '@-0000012.50@0000000.00@@@-033.50000@@@@@@@@@@.jpg');
});

test('format then parse round-trips', () => {
  const src = { east: 334368.63, north: 6250948.35, zoneNumber: 56, zoneLetter: 'H', lat: -33.8568, lon: 151.2153, panoId: 'p1', heading: 270, note: 'cam_2' };
  const f = parseDatasetFilename(formatDatasetFilename(src));
  for (const [k, v] of Object.entries(src)) assert.equal((f as unknown as Record<string, unknown>)[k], v, k);
});

test('malformed names give an error naming the file and the fault', () => {
  const cases: [string, RegExp][] = [
    ['/d/img_001.jpg', /\/d\/img_001\.jpg: name does not start with "@"/],
    ['/d/@1@2@.gif', /\/d\/@1@2@\.gif: .*\.jpg, \.jpeg, \.png/],
    ['/d/@1@.jpg', /UTM_east and UTM_north are required/],
    ['/d/@abc@2@.jpg', /UTM_east "abc" is not a number/],
    ['/d/@1e999@2@.jpg', /UTM_east "1e999" is not a finite number/], // Infinity would break every distance
    ['/d/@1@2@3@X@-1e400@.jpg', /lat "-1e400" is not a finite number/],
    ['/d/@1@@.jpg', /UTM_north is empty/],
    ['/d/@1@2@61@X@.jpg', /zone_number "61"/],
    ['/d/@1@2@3@4@5@6@7@8@9@10@11@12@13@14@15@.jpg', /15 fields/],
  ];
  for (const [file, re] of cases) {
    assert.throws(() => parseDatasetFilename(file), (e: unknown) => e instanceof FilenameError && re.test(e.message), file);
  }
  assert.throws(() => formatDatasetFilename({ east: 1, north: 2, note: 'a@b' }), /note "a@b"/);
});
