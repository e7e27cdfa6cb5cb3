import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { ImageLoadError, loadBatches, type ImageBatch, type ImageTransform, type TransformSpec } from '../../src/data/loader.ts';
import { imageTransform, type Float32HostTensor } from '../../src/data/image.ts';

/** A fake transform: image i is a 1x3x2x2 tensor filled with i, finishing after a scrambled delay. */
function fakeTransform(stats = { running: 0, maxRunning: 0, started: [] as number[] }): { transform: ImageTransform; stats: typeof stats } {
  const transform: ImageTransform = async (_path, i) => {
    stats.started.push(i);
    stats.running++;
    stats.maxRunning = Math.max(stats.maxRunning, stats.running);
    await sleep((i * 7) % 5); // later images often finish first
    stats.running--;
    const t: Float32HostTensor = { dtype: 'float32', shape: [1, 3, 2, 2], data: new Float32Array(12).fill(i) };
    return t;
  };
  return { transform, stats };
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `img${i}.jpg`);

async function collect(it: AsyncIterable<ImageBatch>): Promise<ImageBatch[]> {
  const out: ImageBatch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

test('yields every image once, in order, in batches of the requested size', async () => {
  const { transform, stats } = fakeTransform();
  const batches = await collect(loadBatches(names(10), transform, { batchSize: 3, concurrency: 4 }));
  assert.deepEqual(batches.map((b) => b.indices), [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]);
  assert.deepEqual(batches.map((b) => b.images.shape), [[3, 3, 2, 2], [3, 3, 2, 2], [3, 3, 2, 2], [1, 3, 2, 2]]);
  for (const b of batches) {
    b.indices.forEach((idx, k) => assert.ok((b.images.data as Float32Array).subarray(k * 12, (k + 1) * 12).every((v) => v === idx)));
  }
  assert.deepEqual([...stats.started].sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => i));
  assert.ok(stats.maxRunning <= 4 && stats.maxRunning >= 2, `max running ${stats.maxRunning}`);
  const dropped = await collect(loadBatches(names(10), fakeTransform().transform, { batchSize: 3, dropLast: true }));
  assert.deepEqual(dropped.map((b) => b.indices.length), [3, 3, 3]);
  assert.deepEqual(await collect(loadBatches([], transform, { batchSize: 3 })), []);
});

test('prefetch is bounded and stops when the consumer stops (return)', async () => {
  const { transform, stats } = fakeTransform();
  const it = loadBatches(names(100), transform, { batchSize: 4, concurrency: 3, prefetchBatches: 2 });
  const first = await it.next();
  assert.deepEqual(first.value?.indices, [0, 1, 2, 3]);
  await sleep(50); // a slow consumer: the loader fills its window, no more
  assert.ok(stats.started.length <= 4 + 2 * 4 + 4, `started ${stats.started.length}`);
  assert.ok(stats.started.length >= 8, `prefetched only ${stats.started.length}`);
  await it.return(undefined);
  const startedAtReturn = stats.started.length;
  assert.equal(stats.running, 0); // return() waited for the images in flight
  await sleep(20);
  assert.equal(stats.started.length, startedAtReturn);
  assert.equal((await it.next()).done, true);
  // Breaking out of for-await does the same.
  const s2 = fakeTransform();
  for await (const b of loadBatches(names(100), s2.transform, { batchSize: 2, prefetchBatches: 1 })) {
    if (b.indices[0] === 4) break;
  }
  assert.equal(s2.stats.running, 0);
  assert.ok(s2.stats.started.length <= 6 + 2 * 2, `started ${s2.stats.started.length}`);
});

test('an abort signal stops the iteration', async () => {
  const ctrl = new AbortController();
  const seen: number[] = [];
  await assert.rejects(async () => {
    for await (const b of loadBatches(names(20), fakeTransform().transform, { batchSize: 2, signal: ctrl.signal })) {
      seen.push(...b.indices);
      if (seen.length === 4) ctrl.abort();
    }
  }, { name: 'AbortError' });
  assert.deepEqual(seen, [0, 1, 2, 3]);
});

test('real images: decoded in order; a corrupt file surfaces as an error naming it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vgl-loader-'));
  try {
    const paths: string[] = [];
    for (let i = 0; i < 7; i++) {
      const p = join(dir, `${i}.png`);
      // Image i is a flat grey of value 30 i.
      await sharp({ create: { width: 6, height: 4, channels: 3, background: { r: 30 * i, g: 30 * i, b: 30 * i } } }).png().toFile(p);
      paths.push(p);
    }
    const tf = imageTransform({ size: { height: 4, width: 6 }, normalization: 'unit' });
    const batches = await collect(loadBatches(paths, tf, { batchSize: 3 }));
    assert.deepEqual(batches.map((b) => b.images.shape[0]), [3, 3, 1]);
    batches.forEach((b) => b.indices.forEach((idx, k) => {
      const v = (b.images.data as Float32Array)[k * 72]!;
      assert.ok(Math.abs(v - (30 * idx) / 255) < 1e-6, `image ${idx}: ${v}`);
    }));
    // Five crops: 5 rows per image.
    const five = await collect(loadBatches(paths.slice(0, 4), imageTransform({ size: { height: 4, width: 6 }, mode: 'five_crops' }), { batchSize: 2 }));
    assert.deepEqual(five.map((b) => [b.itemsPerImage, ...b.images.shape]), [[5, 10, 3, 4, 4], [5, 10, 3, 4, 4]]);

    await writeFile(paths[4]!, 'not an image');
    const yielded: number[] = [];
    await assert.rejects(async () => {
      for await (const b of loadBatches(paths, tf, { batchSize: 2, concurrency: 4 })) yielded.push(...b.indices);
    }, (e: unknown) => e instanceof ImageLoadError && e.path === paths[4] && e.index === 4 && e.message.includes(paths[4]!));
    assert.deepEqual(yielded, [0, 1, 2, 3]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('errors from a transform are tagged with the file; mixed sizes and bad options are rejected', async () => {
  const failing: ImageTransform = async (path) => { if (path === 'img2.jpg') throw new Error('boom'); return fakeTransform().transform(path, 0); };
  await assert.rejects(collect(loadBatches(names(4), failing, { batchSize: 4 })),
    (e: unknown) => e instanceof ImageLoadError && e.message === 'img2.jpg: boom' && e.index === 2);
  const mixed: ImageTransform = async (_p, i) => ({ dtype: 'float32', shape: [1, 3, 2, 2 + i], data: new Float32Array(6 * (2 + i)) });
  await assert.rejects(collect(loadBatches(names(2), mixed, { batchSize: 2 })), /img1\.jpg: shape \[1, 3, 2, 3\] differs/);
  await assert.rejects(collect(loadBatches(names(2), mixed, { batchSize: 0 })), /batchSize must be a positive integer/);
  await assert.rejects(collect(loadBatches(names(2), mixed, { batchSize: 1, prefetchBatches: -1 })), /prefetchBatches/);
});

test('worker threads: same bytes as in-process, errors still name the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vgl-loader-workers-'));
  try {
    const paths: string[] = [];
    for (let i = 0; i < 6; i++) {
      const p = join(dir, `${i}.jpg`);
      await sharp({ create: { width: 40, height: 30, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 120, sigma: 40 } } }).jpeg().toFile(p);
      paths.push(p);
    }
    const spec: TransformSpec = {
      kind: 'query',
      options: { seed: 4, size: { height: 24, width: 32 }, augment: { brightness: 0.4, hue: 0.1, randPerspective: 0.3, randomResizedCrop: 0.3, randomRotation: 10, queryHorizontalFlip: 0.5 } },
    };
    const viaWorkers = await collect(loadBatches(paths, spec, { batchSize: 4, workers: 2 }));
    const inline = await collect(loadBatches(paths, spec, { batchSize: 4 }));
    assert.deepEqual(viaWorkers.map((b) => b.indices), [[0, 1, 2, 3], [4, 5]]);
    viaWorkers.forEach((b, k) => {
      assert.deepEqual(b.images.shape, inline[k]!.images.shape);
      assert.ok(Buffer.from(b.images.data.buffer).equals(Buffer.from(inline[k]!.images.data.buffer)), `batch ${k} differs`);
    });
    await writeFile(paths[2]!, 'broken');
    await assert.rejects(collect(loadBatches(paths, { kind: 'image', options: { size: { height: 24, width: 32 } } }, { batchSize: 4, workers: 1 })),
      (e: unknown) => e instanceof ImageLoadError && e.path === paths[2] && e.message.includes(paths[2]!));
    await assert.rejects(collect(loadBatches(paths, fakeTransform().transform, { batchSize: 2, workers: 1 })), /workers need a TransformSpec/);
    await assert.rejects(collect(loadBatches(paths, { kind: 'query', options: { seed: 0, augment: { hue: 3 } } }, { batchSize: 2, workers: 1 })), /hue must be/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
