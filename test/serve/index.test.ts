import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, cp } from 'node:fs/promises';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.ts';
import { modelFromRun } from '../../src/models/assemble.ts';
import { loadImage } from '../../src/data/image.ts';
import { readNpy } from '../../src/data/npy.ts';
import { buildIndex, addToIndex } from '../../src/serve/build.ts';
import { openIndex, IndexError } from '../../src/serve/index-store.ts';
import { Localizer } from '../../src/serve/localizer.ts';
import { tempDir } from '../helpers/tmp.ts';
import { DATABASE, tinyRun, imageFolder, databasePath, type TinyRun } from './helpers.ts';
import { untrainedRunFolder } from '../eval/helpers.ts';
import { commandLineMessage } from '../../src/errors.ts';

const quiet = () => undefined;
let tiny: TinyRun;
let exactDir: string;

test('setup: tiny dataset and run', async () => {
  tiny = await tinyRun();
});

test('index build → open: images, positions and descriptors round trip; descriptors are the model\'s own', async () => {
  exactDir = join(tempDir('vgl-index-'), 'exact');
  const s = await buildIndex({ run: tiny.runDir, split: 'test', out: exactDir, progress: false }, quiet);
  assert.equal(s.meta.count, DATABASE.length);
  const index = await openIndex(exactDir);
  assert.equal(index.meta.search.kind, 'exact');
  assert.deepEqual(index.meta.model.resize, [32, 32]); // from the run's config
  assert.equal(index.meta.model.source, 'run');
  // Rows follow the dataset's sorted file names, which for this street are in east order.
  assert.deepEqual(index.images.map((i) => [i.east, i.north]), DATABASE.map((d) => [d.east, d.north]));
  assert.deepEqual(index.images.map((i) => i.file), DATABASE.map((d) => databasePath(tiny.root, d)));

  // Independently: the run's network, plain forward (no BN folding), one image at a time.
  const { data, shape } = await readNpy(index.files.descriptors);
  assert.deepEqual(shape, [DATABASE.length, index.meta.dim]);
  const { net } = await modelFromRun(tiny.runDir);
  net.eval();
  try {
    for (const [i, img] of index.images.entries()) {
      const x = await loadImage(img.file, { size: { height: 32, width: 32 }, normalization: net.inputNormalization });
      const d = torch.tidy(() => torch.inferenceMode(() => net.forward(torch.fromHost(x)).toFloat32Array()));
      const row = data.subarray(i * index.meta.dim, (i + 1) * index.meta.dim);
      for (let j = 0; j < d.length; j++) assert.ok(Math.abs(d[j] - row[j]) < 1e-4, `row ${i} dim ${j}: ${d[j]} vs ${row[j]}`);
    }
  } finally {
    net.dispose();
  }
});

test('localize: each database image is its own best match, and the estimate is its known position', async () => {
  const loc = await Localizer.open(exactDir);
  try {
    const results = await loc.localize(DATABASE.map((d) => databasePath(tiny.root, d)), 5);
    results.forEach((r, i) => {
      assert.equal(r.matches.length, 5);
      assert.equal(r.matches[0].id, i);
      assert.ok(r.matches[0].distance < 1e-3, `distance to itself ${r.matches[0].distance}`);
      assert.ok(r.estimate !== null);
      assert.ok(Math.abs(r.estimate.east - DATABASE[i].east) < 0.05, `east ${r.estimate.east} vs ${DATABASE[i].east}`);
      assert.ok(Math.abs(r.estimate.north - DATABASE[i].north) < 0.05, `north ${r.estimate.north} vs ${DATABASE[i].north}`);
      // Confidence: the similarity share of the matches within 25 m of the best one (written out here).
      const w = r.matches.map((m) => 1 / (m.distance ** 2 + 1e-8));
      const agree = r.matches.map((m) => Math.hypot(m.east - DATABASE[i].east, m.north - DATABASE[i].north) <= 25);
      const share = w.filter((_, j) => agree[j]).reduce((a, b) => a + b, 0) / w.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(r.estimate.confidence - share) < 1e-9, `confidence ${r.estimate.confidence} vs ${share}`);
      assert.deepEqual(r.estimate.agreeing, r.matches.filter((_, j) => agree[j]).map((m) => m.id));
      for (let j = 1; j < r.matches.length; j++) assert.ok(r.matches[j].distance >= r.matches[j - 1].distance);
    });
  } finally {
    await loc.close();
  }
});

test('index build --approximate: an HNSW graph whose recall against exact search is measured and recorded', async () => {
  const dir = join(tempDir('vgl-index-'), 'hnsw');
  const s = await buildIndex({ run: tiny.runDir, split: 'test', out: dir, approximate: 'f16', progress: false }, quiet);
  assert.equal(s.meta.search.kind, 'hnsw');
  if (s.meta.search.kind !== 'hnsw') return;
  const r = s.meta.search.recall!;
  assert.equal(r.queries, 6);
  // 12 descriptors: the graph visits them all, and re-ranking is exact: the same neighbours.
  assert.equal(r.recallAt1, 1);
  assert.equal(r.recallAt10, 1);
  assert.deepEqual(r.placeRecall!.approximate, r.placeRecall!.exact);
  // No --expansion-search: the first width of the ladder already finds every exact neighbour here, and is chosen.
  assert.deepEqual(r.tuning, { targetRecallAt1: 0.99, reached: true, tried: [{ ef: 16, recallAt1: 1 }] });
  assert.equal(s.meta.search.expansionSearch, 16);
  const meta = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
  assert.equal(meta.search.recall.recallAt10, 1);
  // The approximate localizer answers as the exact one does.
  const [a, e] = [await Localizer.open(dir), await Localizer.open(exactDir)];
  try {
    const paths = DATABASE.slice(0, 4).map((d) => databasePath(tiny.root, d));
    const [ra, re] = [await a.localize(paths, 5), await e.localize(paths, 5)];
    assert.deepEqual(ra.map((r) => r.matches.map((m) => m.id)), re.map((r) => r.matches.map((m) => m.id)));
    ra.forEach((r, i) => r.matches.forEach((m, j) => assert.ok(Math.abs(m.distance - re[i].matches[j].distance) < 1e-4)));
  } finally {
    await a.close();
    await e.close();
  }
  await assert.rejects(buildIndex({ run: tiny.runDir, split: 'test', out: dir, progress: false }, quiet), (e: unknown) => /^--out .*: already holds an index.*overwrite/.test(commandLineMessage(e)));
});

test('index add: appends new images without touching the old rows; re-adding skips; the new images localize to their positions', async () => {
  const dir = join(tempDir('vgl-index-'), 'grown');
  await cp(exactDir, dir, { recursive: true });
  const before = (await readNpy(join(dir, 'descriptors.npy'))).data;
  const extra = [
    { east: 500_200, north: 4_000_050, rgb: [250, 10, 10] as [number, number, number], right: [10, 250, 10] as [number, number, number] },
    { east: 500_300, north: 4_000_080, rgb: [10, 10, 250] as [number, number, number], right: [250, 250, 10] as [number, number, number] },
  ];
  const folder = await imageFolder(extra);
  const s = await addToIndex({ index: dir, paths: [folder.dir], progress: false }, quiet);
  assert.deepEqual([s.added, s.skipped, s.count], [2, 0, DATABASE.length + 2]);
  const index = await openIndex(dir);
  assert.equal(index.meta.additions.length, 1);
  const after = (await readNpy(index.files.descriptors)).data;
  assert.deepEqual(after.subarray(0, before.length), before);
  const again = await addToIndex({ index: dir, paths: folder.paths }, quiet);
  assert.deepEqual([again.added, again.skipped], [0, 2]);
  const loc = await Localizer.open(dir);
  try {
    const r = await loc.localize(folder.paths, 3);
    r.forEach((x, i) => {
      assert.equal(x.matches[0].id, DATABASE.length + i);
      assert.ok(Math.abs(x.estimate!.east - extra[i].east) < 0.05 && Math.abs(x.estimate!.north - extra[i].north) < 0.05);
    });
  } finally {
    await loc.close();
  }
  await assert.rejects(addToIndex({ index: dir, paths: [join(folder.dir, 'nope.jpg')] }, quiet), /nope\.jpg: not found/);
  await assert.rejects(addToIndex({ index: dir, paths: [join(dir, 'index.json')] }, quiet), /index\.json: not a \.jpg\/\.jpeg\/\.png image/);
  const unnamed = join(tempDir('vgl-index-'), 'photo.png');
  await cp(folder.paths[0], unnamed);
  await assert.rejects(addToIndex({ index: dir, paths: [unnamed] }, quiet), /position in the name[\s\S]*photo\.png/);
});

test('index build --run: a run that averaged weights is indexed with average.pth (else best.pth), recorded in the index; localize loads and names that file', async () => {
  const averaged = tempDir('vgl-index-avg-run-');
  await untrainedRunFolder(tiny.root, averaged, 11, { averageSeed: 12 });
  const logs: string[] = [];
  const out = join(tempDir('vgl-index-avg-'), 'index');
  await buildIndex({ run: averaged, split: 'test', out, progress: false }, (l) => logs.push(l));
  const index = await openIndex(out);
  assert.equal(index.meta.model.checkpoint, join(averaged, 'average.pth'));
  assert.ok(logs.some((l) => l.startsWith(`model: ${join(averaged, 'average.pth')} (the weight average`)), logs.join('\n'));
  // Its descriptors are average.pth's network's: another network (best.pth) gives others.
  const { data } = await readNpy(index.files.descriptors);
  const first = await loadImage(index.images[0].file, { size: { height: 32, width: 32 } });
  const describe = async (checkpoint: string) => {
    const { net } = await modelFromRun(averaged, checkpoint);
    try {
      return torch.tidy(() => torch.inferenceMode(() => net.eval().forward(torch.fromHost(first)).toFloat32Array()));
    } finally {
      net.dispose();
    }
  };
  const near = (a: Float32Array, b: ArrayLike<number>) => a.every((v, j) => Math.abs(v - b[j]!) < 1e-4);
  assert.ok(near(await describe(join(averaged, 'average.pth')), data.subarray(0, index.meta.dim)));
  assert.ok(!near(await describe(join(averaged, 'best.pth')), data.subarray(0, index.meta.dim)));
  logs.length = 0;
  const loc = await Localizer.open(out, { log: (l) => logs.push(l) });
  await loc.close();
  assert.deepEqual(logs, [`model: ${join(averaged, 'average.pth')} (the weights ${index.files.meta} records)`]);
  // The exact index of the run without averaging holds best.pth.
  assert.equal((await openIndex(exactDir)).meta.model.checkpoint, join(tiny.runDir, 'best.pth'));
});

test('openIndex names the file at fault', async () => {
  await assert.rejects(openIndex('/nonexistent/index'), (e: Error) => e instanceof IndexError && /--index \/nonexistent\/index: folder not found/.test(e.message));
  const dir = join(tempDir('vgl-index-'), 'broken');
  await cp(exactDir, dir, { recursive: true });
  const images = JSON.parse(await readFile(join(dir, 'images.json'), 'utf8'));
  await writeFile(join(dir, 'images.json'), JSON.stringify(images.slice(1)));
  await assert.rejects(openIndex(dir), /images\.json: 11 images, but .*index\.json says 12/);
  await writeFile(join(dir, 'images.json'), '[["a", 1, "x"]]');
  await assert.rejects(openIndex(dir), /images\.json: not a vgl index file/);
  await writeFile(join(dir, 'images.json'), JSON.stringify(images));
  const npy = await readFile(join(dir, 'descriptors.npy'));
  await writeFile(join(dir, 'descriptors.npy'), npy.subarray(0, npy.length - 8));
  await assert.rejects(openIndex(dir), /descriptors\.npy: .*truncated/);
  await writeFile(join(dir, 'index.json'), '{"format": "something else"}');
  await assert.rejects(openIndex(dir), /index\.json: not a vgl index file \(format/);
});
