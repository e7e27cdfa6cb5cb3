import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as torch from '../../src/torch/index.ts';
import { extractDescriptors, saveDescriptors, loadDescriptors } from '../../src/eval/extract.ts';
import { writeNpy, writeNpyChunks, readNpy, readNpyInt32, npyHeader } from '../../src/data/npy.ts';
import type { Float32HostTensor } from '../../src/data/image.ts';
import { MeanColourModel } from './helpers.ts';

/** Image i: [k, 3, 2, 2] with crop j, channel c constant at i + 1 + c * (j + 1). */
function fakeTransform(k: number) {
  return async (_path: string, i: number): Promise<Float32HostTensor> => {
    const data = new Float32Array(k * 3 * 4);
    for (let j = 0; j < k; j++) for (let c = 0; c < 3; c++) data.fill(i + 1 + c * (j + 1), (j * 3 + c) * 4, (j * 3 + c + 1) * 4);
    return { dtype: 'float32', shape: [k, 3, 2, 2], data };
  };
}
const unit = (v: number[]) => v.map((x) => x / Math.hypot(...v));

test('descriptors of every image in order, across an uneven last batch; model put in eval mode', async () => {
  const model = new MeanColourModel();
  const paths = Array.from({ length: 7 }, (_, i) => `img${i}.png`);
  const d = await extractDescriptors(model, paths, { transform: fakeTransform(1), batchSize: 3, progress: false });
  assert.deepEqual(d.shape, [7, 3]);
  assert.equal(model.evalCalls, 1);
  const got = d.toFloat32Array();
  for (let i = 0; i < 7; i++) {
    const want = unit([i + 1, i + 2, i + 3]);
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(got[i * 3 + c] - want[c]) < 1e-6);
  }
  d.dispose();
});

test('five crops: 5 rows per image in crop order, or their mean with meanOfCrops', async () => {
  const model = new MeanColourModel();
  const paths = ['a', 'b', 'c'];
  const all = await extractDescriptors(model, paths, { transform: fakeTransform(5), batchSize: 2, progress: false });
  const mean = await extractDescriptors(model, paths, { transform: fakeTransform(5), batchSize: 2, meanOfCrops: true, progress: false });
  assert.deepEqual(all.shape, [15, 3]);
  assert.deepEqual(mean.shape, [3, 3]);
  const a = all.toFloat32Array(), m = mean.toFloat32Array();
  for (let i = 0; i < 3; i++) {
    const crops = [0, 1, 2, 3, 4].map((j) => unit([i + 1, i + 1 + (j + 1), i + 1 + 2 * (j + 1)]));
    crops.forEach((want, j) => want.forEach((w, c) => assert.ok(Math.abs(a[(i * 5 + j) * 3 + c] - w) < 1e-6)));
    for (let c = 0; c < 3; c++) {
      const avg = crops.reduce((s, v) => s + v[c], 0) / 5; // the mean of unit crop descriptors, not re-normalised
      assert.ok(Math.abs(m[i * 3 + c] - avg) < 1e-6);
    }
  }
  torch.dispose(all, mean);
});

test('a model with the wrong output size, and single_query with batches, are refused by name', async () => {
  const model = new MeanColourModel();
  const wrong = { ...model, dim: 4, inputNormalization: 'imagenet' as const, forward: model.forward, eval: () => undefined };
  await assert.rejects(extractDescriptors(wrong, ['p0', 'p1'], { transform: fakeTransform(1), progress: false }), /returned \[2,3\] for a batch of 2 inputs starting at p0; expected \[2, 4\]/);
  await assert.rejects(extractDescriptors(model, ['p0'], { mode: 'single_query', batchSize: 4, progress: false }), /batch size must be 1 \(got 4\)/);
  const broken = { dim: 3, inputNormalization: 'imagenet' as const, forward: (x: torch.Tensor) => x.mean([2, 3]).div(0).mul(0), eval: () => undefined };
  await assert.rejects(extractDescriptors(broken, ['p0', 'p1', 'p2'], { transform: fakeTransform(1), batchSize: 2, progress: false }), /NaN or infinite descriptors for the batch of 2 image\(s\) starting at p0/);
  await assert.rejects(extractDescriptors(model, ['/nonexistent/x.png'], { progress: false }), /\/nonexistent\/x\.png/);
});

test('.npy v1.0: header layout, round trip, and numpy reads it', async (ctx) => {
  const header = npyHeader([3, 2]);
  assert.equal(header.length % 64, 0);
  assert.equal(header.toString('latin1', 0, 8), '\x93NUMPY\x01\x00');
  assert.match(header.toString('latin1', 10), /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(3, 2\), \} *\n$/);
  assert.match(npyHeader([5]).toString('latin1'), /'shape': \(5,\)/);
  const dir = await mkdtemp(join(tmpdir(), 'vgl-npy-'));
  ctx.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'd.npy');
  const values = Float32Array.from([1, -2.5, 3.25, 0, 1e-7, 65504]);
  await writeNpy(file, values, [3, 2]);
  const back = await readNpy(file);
  assert.deepEqual(back.shape, [3, 2]);
  assert.deepEqual(Array.from(back.data), Array.from(values));
  const t = torch.tensor(values, [3, 2]);
  await saveDescriptors(join(dir, 't.npy'), t);
  assert.deepEqual((await readFile(join(dir, 't.npy'))).subarray(header.length), (await readFile(file)).subarray(header.length));
  const loaded = await loadDescriptors(join(dir, 't.npy'));
  assert.ok(loaded.equal(t));
  torch.dispose(t, loaded);
  await assert.rejects(writeNpy(file, values, [4, 2]), /6 values do not fill shape \[4,2\]/);
  // Chunked writing gives the same file; a short or long chunk list is an error naming the file.
  const chunked = join(dir, 'chunked.npy');
  await writeNpyChunks(chunked, [3, 2], [values.subarray(0, 2), values.subarray(2, 5), values.subarray(5)]);
  assert.deepEqual(await readFile(chunked), await readFile(file));
  await assert.rejects(writeNpyChunks(chunked, [3, 2], [values.subarray(0, 4)]), /cannot write .*chunked\.npy: npy: 4 values for shape \[3,2\] \(6 values\)/);
  await assert.rejects(readNpyInt32(file), /has dtype <f4; expected little-endian int32/);
  await assert.rejects(readNpy(join(dir, 'missing.npy')), /ENOENT/);
  const python = '/usr/bin/python3';
  if (existsSync(python) && spawnSync(python, ['-c', 'import numpy']).status === 0) {
    const r = spawnSync(python, ['-c', `import numpy as np; a = np.load(${JSON.stringify(file)}); print(a.dtype, a.shape, a.tolist())`], { encoding: 'utf8' });
    assert.equal(r.stdout.trim(), 'float32 (3, 2) [[1.0, -2.5], [3.25, 0.0], [1.0000000116860974e-07, 65504.0]]');
    // numpy's own file reads back through readNpy.
    const made = join(dir, 'numpy.npy');
    spawnSync(python, ['-c', `import numpy as np; np.save(${JSON.stringify(made)}, np.arange(6, dtype=np.float64).reshape(2, 3) / 4)`]);
    const fromNumpy = await readNpy(made);
    assert.deepEqual(fromNumpy.shape, [2, 3]);
    assert.deepEqual(Array.from(fromNumpy.data), [0, 0.25, 0.5, 0.75, 1, 1.25]);
    const ints = join(dir, 'ints.npy');
    spawnSync(python, ['-c', `import numpy as np; np.save(${JSON.stringify(ints)}, np.array([[3, -1], [70000, 2]], dtype=np.int32))`]);
    assert.deepEqual(Array.from((await readNpyInt32(ints)).data), [3, -1, 70000, 2]);
  }
});

test('.npy writes are atomic: a failed write leaves the previous file whole, no temp file, and names the path', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vgl-npy-atomic-'));
  try {
    const file = join(dir, 'database.npy');
    await writeNpy(file, Float32Array.of(1, 2, 3, 4), [2, 2]);
    const before = await readFile(file);
    // A writer whose chunks fall short (as a full disk or a killed extraction would): refused, old file kept.
    await assert.rejects(writeNpyChunks(file, [3, 2], [Float32Array.of(9, 9, 9)]), (e: Error) => e.message.startsWith(`cannot write ${file}:`) && /3 values for shape \[3,2\]/.test(e.message));
    assert.deepEqual(await readFile(file), before);
    assert.deepEqual((await import('node:fs/promises').then((fs) => fs.readdir(dir))), ['database.npy'], 'no temp file left');
    await assert.rejects(writeNpy(join(dir, 'missing', 'q.npy'), Float32Array.of(1), [1]), /cannot write .*missing\/q\.npy: ENOENT/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
