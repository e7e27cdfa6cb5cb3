import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { openDataset, openDatasets, verifyImages, listSplits, DatasetError, CONCATENATION_OFFSET } from '../../src/data/dataset.ts';
import { loadImage } from '../../src/data/image.ts';
import { computePositives } from '../../src/data/positives.ts';

async function tempRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'vgl-dataset-'));
}

test('opens a layout recursively, sorted, with positions aligned to paths', async () => {
  const root = await tempRoot();
  try {
    const db = join(root, 'toy', 'images', 'test', 'database');
    const q = join(root, 'toy', 'images', 'test', 'queries');
    await mkdir(join(db, 'sub'), { recursive: true });
    await mkdir(q, { recursive: true });
    await writeFile(join(db, '@0000020.00@0000005.00@.jpg'), 'x');
    await writeFile(join(db, '@0000010.00@0000001.50@.png'), 'x');
    await writeFile(join(db, 'sub', '@0000003.00@0000004.00@.JPEG'), 'x');
    await writeFile(join(db, 'notes.txt'), 'ignored');
    await writeFile(join(root, 'target.jpg'), 'x');
    await symlink(join(root, 'target.jpg'), join(q, '@0000007.25@0000008.75@.jpg'));
    const ds = await openDataset(root, 'toy', 'test');
    assert.deepEqual(ds.databasePaths, [
      join(db, '@0000010.00@0000001.50@.png'),
      join(db, '@0000020.00@0000005.00@.jpg'),
      join(db, 'sub', '@0000003.00@0000004.00@.JPEG'),
    ]);
    assert.deepEqual(Array.from(ds.databasePositions), [10, 1.5, 20, 5, 3, 4]);
    assert.deepEqual(Array.from(ds.queriesPositions), [7.25, 8.75]);
    assert.equal(ds.split, 'test');
    assert.equal(ds.dir, join(root, 'toy', 'images', 'test'));
    assert.deepEqual(await listSplits(root, 'toy'), ['test']);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('missing and empty folders are reported together', async () => {
  const root = await tempRoot();
  try {
    await mkdir(join(root, 'toy', 'images', 'val', 'database'), { recursive: true });
    await assert.rejects(openDataset(root, 'toy', 'val'), (e: unknown) => {
      assert.ok(e instanceof DatasetError);
      assert.equal(e.problems.length, 2);
      assert.match(e.problems[0], /val\/database: no \.jpg/);
      assert.match(e.problems[1], /val\/queries: folder missing/);
      return true;
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('bad names, empty and dangling files give one error: first 20 and a count', async () => {
  const root = await tempRoot();
  try {
    const db = join(root, 'toy', 'images', 'test', 'database');
    const q = join(root, 'toy', 'images', 'test', 'queries');
    await mkdir(db, { recursive: true });
    await mkdir(q, { recursive: true });
    for (let i = 0; i < 30; i++) await writeFile(join(db, `img_${String(i).padStart(2, '0')}.jpg`), 'x');
    await writeFile(join(q, '@1@2@.jpg'), '');
    await symlink(join(root, 'nowhere.jpg'), join(q, '@3@4@.jpg'));
    await assert.rejects(openDataset(root, 'toy', 'test'), (e: unknown) => {
      assert.ok(e instanceof DatasetError);
      assert.equal(e.problems.length, 32);
      assert.ok(e.problems.some((p) => p.includes('@1@2@.jpg: empty file')));
      assert.ok(e.problems.some((p) => /@3@4@\.jpg: unreadable \(ENOENT\)/.test(p)));
      const lines = e.message.split('\n');
      assert.match(lines[0], /32 problems/);
      assert.equal(lines.length, 1 + 20 + 1);
      assert.match(lines[21], /and 12 more \(32 in total\)/);
      assert.match(lines[1], /img_00\.jpg: name does not start with "@"/);
      return true;
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('verifyImages decodes headers and lists files that are not images', async () => {
  const root = await tempRoot();
  try {
    const db = join(root, 'toy', 'images', 'test', 'database');
    const q = join(root, 'toy', 'images', 'test', 'queries');
    await mkdir(db, { recursive: true });
    await mkdir(q, { recursive: true });
    const png = await sharp({ create: { width: 4, height: 3, channels: 3, background: '#336699' } }).png().toBuffer();
    await writeFile(join(db, '@1@2@.png'), png);
    await writeFile(join(q, '@1@2@.jpg'), 'not a jpeg');
    const ds = await openDataset(root, 'toy', 'test');
    await assert.rejects(verifyImages(ds, { progress: false }), (e: unknown) => {
      assert.ok(e instanceof DatasetError);
      assert.equal(e.problems.length, 1);
      assert.match(e.problems[0], /queries\/@1@2@\.jpg: .*unsupported image format/);
      return true;
    });
    // A JPEG cut short (a copy interrupted): its header decodes, its end marker is missing.
    const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#336699' } }).jpeg().toBuffer();
    await writeFile(join(q, '@1@2@.jpg'), jpeg.subarray(0, Math.floor(jpeg.length * 0.7)));
    await assert.rejects(verifyImages(ds, { progress: false }), (e: unknown) => {
      assert.ok(e instanceof DatasetError);
      assert.match(e.problems[0], /queries\/@1@2@\.jpg: truncated: the file ends before the image does/);
      return true;
    });
    // Decoding it for training says the same.
    await assert.rejects(loadImage(join(q, '@1@2@.jpg'), { size: { height: 8, width: 8 } }), /cannot read image .*@1@2@\.jpg: truncated/);
    await writeFile(join(q, '@1@2@.jpg'), png); // PNG bytes under a .jpg name: judged by content, fine
    await openDataset(root, 'toy', 'test', { verifyImages: { progress: false } });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('several datasets concatenate: paths in order, positives never cross datasets', async () => {
  const root = await tempRoot();
  try {
    // Two datasets at the same coordinates: without the offset, a's queries would find b's images.
    for (const name of ['a', 'b']) {
      for (const part of ['database', 'queries']) {
        const d = join(root, name, 'images', 'train', part);
        await mkdir(d, { recursive: true });
        await writeFile(join(d, `@0000010.00@0000020.00@@@@@@@@@@@@${name}1@.jpg`), 'x');
        await writeFile(join(d, `@0000015.00@0000020.00@@@@@@@@@@@@${name}2@.jpg`), 'x');
      }
    }
    const ds = await openDatasets(root, ['a', 'b'], 'train');
    assert.equal(ds.name, 'a,b');
    assert.deepEqual(ds.databasePaths.map((p) => p.split('@').at(-2)), ['a1', 'a2', 'b1', 'b2']);
    assert.deepEqual(Array.from(ds.databasePositions), [10, 20, 15, 20, 10, 20 + CONCATENATION_OFFSET, 15, 20 + CONCATENATION_OFFSET]);
    const positives = computePositives(ds, { valPositiveDistThreshold: 25, trainPositivesDistThreshold: 10 });
    assert.deepEqual(positives.soft.map((p) => Array.from(p)), [[0, 1], [1, 0], [2, 3], [3, 2]]);
    assert.deepEqual((await openDatasets(root, ['b'], 'train')).databasePaths, (await openDataset(root, 'b', 'train')).databasePaths);
    await assert.rejects(openDatasets(root, ['a', 'missing'], 'train'), /dataset "missing"/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
