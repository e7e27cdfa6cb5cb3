import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { Command } from 'commander';
import { ensureCity, generateCity } from '../../src/data/synth/generate.ts';
import { planDataset } from '../../src/data/synth/plan.ts';
import { SIZES, resolveParams, SynthOptionsSchema } from '../../src/data/synth/options.ts';
import { renderView } from '../../src/data/synth/render.ts';
import { DATABASE_CONDITIONS } from '../../src/data/synth/views.ts';
import { cityRng } from '../../src/data/synth/prng.ts';
import { openDataset } from '../../src/data/dataset.ts';
import { parseDatasetFilename } from '../../src/data/filename.ts';
import { register } from '../../src/cli/commands/synth.ts';
import { UsageError } from '../../src/cli/flags.ts';

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  }
  return out.sort();
}

/** sha256 of every file under dir, keyed by relative path. */
async function hashes(dir: string): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for (const f of await listFiles(dir)) m.set(relative(dir, f), createHash('sha256').update(await readFile(f)).digest('hex'));
  return m;
}

const root = await mkdtemp(join(tmpdir(), 'vgl-synth-'));
test.after(() => rm(root, { recursive: true, force: true }));

test('same seed gives byte-identical files (in-thread and on 2 workers); another seed differs', async () => {
  const a = await generateCity({ out: root, name: 'a', size: 'tiny', seed: 1, workers: 0 });
  const b = await generateCity({ out: root, name: 'b', size: 'tiny', seed: 1, workers: 2 });
  const c = await generateCity({ out: root, name: 'c', size: 'tiny', seed: 2, workers: 0 });
  const ha = await hashes(a.dir), hb = await hashes(b.dir), hc = await hashes(c.dir);
  assert.equal(ha.size, a.images + 2); // images + synth.json + synth-preview.png
  assert.ok(a.images > 100, `tiny size should still hold a few hundred images, got ${a.images}`);
  assert.deepEqual([...hb.entries()], [...ha.entries()]);
  // Another seed: another city (other names/positions) and other pixels.
  const sharedNames = [...hc.keys()].filter((k) => ha.has(k) && k !== 'synth.json');
  assert.ok(sharedNames.length < hc.size / 10, `${sharedNames.length} of ${hc.size} names shared between seeds 1 and 2`);
  const sameBytes = [...hc.values()].filter((h) => new Set(ha.values()).has(h)).length;
  assert.equal(sameBytes, 0);
});

test('layout: datasets_vg folders, parsable names, positions in their district, queries near the database', async () => {
  const s = await generateCity({ out: root, name: 'layout', size: 'tiny', seed: 5, workers: 0 });
  const meta = JSON.parse(await readFile(join(s.dir, 'synth.json'), 'utf8'));
  assert.equal(meta.seed, 5);
  assert.equal(meta.style, 'city');
  assert.equal(meta.height, SIZES.tiny.height);
  const all: Record<string, { east: number; north: number }[]> = {};
  for (const split of ['train', 'val', 'test'] as const) {
    const ds = await openDataset(root, 'layout', split); // parses every name, checks the folders
    assert.equal(ds.databasePaths.length, s.counts[split]?.database);
    assert.equal(ds.queriesPaths.length, SIZES.tiny.queries[split]);
    const d = meta.districts.find((x: { split: string }) => x.split === split);
    const files = [...ds.databasePaths, ...ds.queriesPaths].map((p) => parseDatasetFilename(p));
    for (const f of files) {
      assert.ok(f.east >= d.east0 - 0.01 && f.east <= d.east1 + 0.01 && f.north >= d.north0 - 0.01 && f.north <= d.north1 + 0.01,
        `${split}: ${f.east},${f.north} outside its district`);
      assert.equal(f.zoneNumber, 17);
      assert.equal(f.zoneLetter, 'T');
      assert.ok(f.heading !== undefined && f.heading >= 0 && f.heading < 360);
      assert.ok(f.lat! > 40 && f.lat! < 41 && f.lon! > -81 && f.lon! < -79, `lat/lon ${f.lat},${f.lon} not near Pittsburgh`);
    }
    // Every database place is shot at the configured number of headings.
    const perPlace = new Map<string, number>();
    for (const f of files.slice(0, ds.databasePaths.length)) perPlace.set(f.panoId!, (perPlace.get(f.panoId!) ?? 0) + 1);
    assert.ok([...perPlace.values()].every((n) => n === SIZES.tiny.headings));
    // Brute force: each query has a database image within 25 m (it was drawn within 10 m of a place).
    const db = files.slice(0, ds.databasePaths.length);
    for (const q of files.slice(ds.databasePaths.length)) {
      const nearest = Math.min(...db.map((p) => Math.hypot(p.east - q.east, p.north - q.north)));
      assert.ok(nearest <= SIZES.tiny.queryOffset + 0.02, `query at ${q.east},${q.north}: nearest database ${nearest.toFixed(1)} m`);
    }
    all[split] = files;
    const meta1 = await sharp(ds.queriesPaths[0]!).metadata();
    assert.equal(meta1.format, 'jpeg');
    assert.deepEqual([meta1.width, meta1.height], [SIZES.tiny.width, SIZES.tiny.height]);
  }
  // Districts are disjoint: no image of one split within 25 m of an image of another.
  const splits = Object.keys(all);
  for (let i = 0; i < splits.length; i++) {
    for (let j = i + 1; j < splits.length; j++) {
      let min = Infinity;
      for (const p of all[splits[i]!]!) for (const q of all[splits[j]!]!) min = Math.min(min, Math.hypot(p.east - q.east, p.north - q.north));
      assert.ok(min > 25, `${splits[i]} and ${splits[j]} come ${min.toFixed(1)} m close`);
    }
  }
});

test('renderer: sky above, lit road below, for a camera looking down a street', () => {
  const params = resolveParams(SynthOptionsSchema.parse({ out: root, name: 'x', size: 'tiny', seed: 3 }));
  const plan = planDataset(params);
  const view = plan.images.find((im) => im.view.kind === 'database' && im.view.camera.heading === 0)!.view;
  const W = 64, H = 48;
  const rgb = renderView(plan.city, view.camera, DATABASE_CONDITIONS, [], W, H);
  const px = (x: number, y: number) => [...rgb.subarray((y * W + x) * 3, (y * W + x) * 3 + 3)];
  // Top centre: far down the street, so sky: the zenith/horizon gradient of the database light.
  const sky = px(W / 2, 0);
  assert.ok(sky[2]! > sky[0]! + 30, `top centre ${sky} is not sky blue`);
  // Bottom centre: the road 2.5 m below the camera, ~8 m ahead. Its colour is road * (ambient +
  // sun * sin(elevation)) with ±7% texture noise and a little haze.
  const lit = DATABASE_CONDITIONS.ambient + DATABASE_CONDITIONS.sun * Math.sin((DATABASE_CONDITIONS.sunElevation * Math.PI) / 180);
  const road = px(W / 2 - 3, H - 1); // beside the centre line
  for (const [c, v] of road.entries()) {
    const want = [78, 78, 82][c]! * lit;
    assert.ok(Math.abs(v - want) < want * 0.1, `road channel ${c}: ${v}, expected about ${want.toFixed(0)}`);
  }
});

test('prng: reproducible, uniform-ish, and streams from different seeds differ', () => {
  const a = cityRng(42), b = cityRng(42), c = cityRng(43);
  const xs = Array.from({ length: 10000 }, () => a.next());
  assert.deepEqual(Array.from({ length: 10000 }, () => b.next()), xs);
  assert.notDeepEqual(Array.from({ length: 10 }, () => c.next()), xs.slice(0, 10));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.01 && xs.every((x) => x >= 0 && x < 1));
});

test('refuses to overwrite a folder without --overwrite, and one it did not make even with it', async () => {
  await assert.rejects(generateCity({ out: root, name: 'layout', size: 'tiny', seed: 5, workers: 0 }), /already exists; pass --overwrite/);
  await mkdir(join(root, 'foreign'), { recursive: true });
  await assert.rejects(generateCity({ out: root, name: 'foreign', size: 'tiny', overwrite: true, workers: 0 }), /no synth\.json/);
  await assert.rejects(generateCity({ out: root, name: 'bad name!', size: 'tiny' }), /name: use only letters/);
});

test('vgl synth: a bad flag value is reported by flag name, nothing is written', async () => {
  const program = new Command().exitOverride();
  register(program);
  await assert.rejects(
    program.parseAsync(['synth', '--out', root, '--name', 'flags', '--height', '12x', '--queries', '1,2'], { from: 'user' }),
    (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /--height "12x"/);
      assert.match(e.message, /--queries "1,2": expected three/);
      return true;
    },
  );
  await assert.rejects(readdir(join(root, 'flags')));
});

test('ensureCity reuses a finished run with the same parameters and regenerates on a change', async () => {
  const first = await ensureCity({ out: root, name: 'ensure', size: 'tiny', seed: 9, workers: 0 });
  assert.equal(first.reused, false);
  const before = await hashes(first.dir);
  const again = await ensureCity({ out: root, name: 'ensure', size: 'tiny', seed: 9, workers: 0 });
  assert.equal(again.reused, true);
  assert.equal(again.images, first.images);
  // A run with a missing image is not reused.
  const victim = (await listFiles(join(first.dir, 'images', 'val', 'queries')))[0]!;
  await rm(victim);
  assert.equal((await ensureCity({ out: root, name: 'ensure', size: 'tiny', seed: 9, workers: 0 })).reused, false);
  assert.deepEqual([...(await hashes(first.dir)).entries()], [...before.entries()]);
  // An interrupted run (record still marked incomplete) is not reused.
  const record = join(first.dir, 'synth.json');
  const text = await readFile(record, 'utf8');
  assert.match(text, /"complete": true/);
  await writeFile(record, text.replace('"complete": true', '"complete": false'));
  assert.equal((await ensureCity({ out: root, name: 'ensure', size: 'tiny', seed: 9, workers: 0 })).reused, false);
  assert.deepEqual([...(await hashes(first.dir)).entries()], [...before.entries()]);
  const other = await ensureCity({ out: root, name: 'ensure', size: 'tiny', seed: 10, workers: 0 });
  assert.equal(other.reused, false);
  assert.equal(JSON.parse(await readFile(record, 'utf8')).seed, 10);
});

test('--splits test writes only the test split (a cross-dataset test set), same images as a full run', async () => {
  const only = await generateCity({ out: root, name: 'onlytest', size: 'tiny', seed: 5, style: 'stlucia', splits: ['test'], workers: 0 });
  const full = await generateCity({ out: root, name: 'fulltest', size: 'tiny', seed: 5, style: 'stlucia', workers: 0 });
  assert.deepEqual(Object.keys(only.counts), ['test']);
  assert.deepEqual(await readdir(join(only.dir, 'images')), ['test']);
  const a = await hashes(join(only.dir, 'images', 'test')), b = await hashes(join(full.dir, 'images', 'test'));
  assert.deepEqual([...a.entries()], [...b.entries()]);
  const f = parseDatasetFilename([...a.keys()][0]!);
  assert.equal(f.zoneNumber, 56); // Brisbane frame of the stlucia style
  assert.ok(f.lat! < -27 && f.lat! > -28, `lat ${f.lat}`);
});
