// Batch loader throughput at 480x640 from JPEGs, with and without query augmentation.
// Generates the JPEGs (smooth gradients + noise, ~photo-sized files) in a temp folder.
// Also measures how long a consumer that blocks the main thread (a synchronous training step)
// waits for each batch, in-process and with worker threads.
// Usage: npx tsx scripts/bench-loader.ts [--images 200] [--batch 12] [--concurrency N] [--rounds 2] [--workers 2] [--step-ms 300]

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { queryTransform, type AugmentOptions } from '../src/data/augment.ts';
import { imageTransform } from '../src/data/image.ts';
import { defaultConcurrency, loadBatches, type ImageTransform, type TransformSpec } from '../src/data/loader.ts';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '200' },
    batch: { type: 'string', default: '12' },
    concurrency: { type: 'string' },
    rounds: { type: 'string', default: '2' },
    workers: { type: 'string', default: '2' },
    'step-ms': { type: 'string', default: '300' },
  },
});
const count = Number(values.images);
const batchSize = Number(values.batch);
const concurrency = values.concurrency ? Number(values.concurrency) : defaultConcurrency();
const rounds = Number(values.rounds);
const workers = Number(values.workers);
const stepMs = Number(values['step-ms']);
const H = 480;
const W = 640;

async function makeJpegs(dir: string): Promise<string[]> {
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    // A gradient whose colours vary per image, plus noise so the JPEG is not trivially small.
    const raw = Buffer.alloc(W * H * 3);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const o = (y * W + x) * 3;
        raw[o] = (x + 3 * i) & 255;
        raw[o + 1] = (y + 7 * i) & 255;
        raw[o + 2] = ((x ^ y) + i) & 255;
      }
    }
    const p = join(dir, `@${String(i).padStart(7, '0')}.00@0000000.00@.jpg`);
    await sharp(raw, { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 90 }).toFile(p);
    paths.push(p);
  }
  return paths;
}

async function measure(name: string, paths: string[], transform: ImageTransform | TransformSpec, poolSize = 0): Promise<number> {
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    let n = 0;
    let checksum = 0;
    for await (const b of loadBatches(paths, transform, { batchSize, concurrency, prefetchBatches: 2, workers: poolSize })) {
      n += b.indices.length;
      checksum += b.images.data[0]!;
    }
    const s = (performance.now() - t0) / 1000;
    const rate = n / s;
    best = Math.max(best, rate);
    console.log(`${name.padEnd(34)} round ${r + 1}: ${n} images in ${s.toFixed(2)} s = ${rate.toFixed(1)} images/s (checksum ${checksum.toFixed(3)})`);
  }
  return best;
}

/** A consumer that blocks the main thread for stepMs per batch: mean wait per batch after the first. */
async function waitPerBatch(paths: string[], transform: ImageTransform | TransformSpec, poolSize: number): Promise<number> {
  const waits: number[] = [];
  let t = performance.now();
  for await (const _ of loadBatches(paths, transform, { batchSize, concurrency, prefetchBatches: 2, workers: poolSize })) {
    waits.push(performance.now() - t);
    const end = performance.now() + stepMs;
    while (performance.now() < end) { /* synchronous "training step" */ }
    t = performance.now();
  }
  const steady = waits.slice(1);
  return steady.reduce((a, b) => a + b, 0) / Math.max(1, steady.length);
}

const dir = await mkdtemp(join(tmpdir(), 'vgl-bench-loader-'));
try {
  const t0 = performance.now();
  const paths = await makeJpegs(dir);
  console.log(`generated ${paths.length} JPEGs of ${W}x${H} in ${((performance.now() - t0) / 1000).toFixed(1)} s; batch ${batchSize}, concurrency ${concurrency}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '(default 4)'}`);
  const size = { height: H, width: W };
  const colour: AugmentOptions = { brightness: 0.5, contrast: 0.5, saturation: 0.5, hue: 0.1 };
  const all: AugmentOptions = { ...colour, randPerspective: 0.3, perspectiveProbability: 1, randomResizedCrop: 0.3, randomRotation: 10, queryHorizontalFlip: 0.5 };
  const results: Record<string, number> = {};
  results['hard_resize (no augmentation)'] = await measure('hard_resize (no augmentation)', paths, imageTransform({ size }));
  results['five_crops'] = await measure('five_crops', paths, imageTransform({ size, mode: 'five_crops' }));
  results['query, augmentation off'] = await measure('query, augmentation off', paths, queryTransform({ size, seed: 0, augment: {} }));
  results['query, colour jitter'] = await measure('query, colour jitter', paths, queryTransform({ size, seed: 0, augment: colour }));
  results['query, all augmentations'] = await measure('query, all augmentations', paths, queryTransform({ size, seed: 0, augment: all }));
  if (workers > 0) {
    const spec: TransformSpec = { kind: 'query', options: { size, seed: 0, augment: all } };
    results[`query, all augmentations, ${workers} workers`] = await measure(`query, all aug., ${workers} workers`, paths, spec, workers);
  }
  console.log('\nbest of rounds (images/s):');
  for (const [k, v] of Object.entries(results)) console.log(`  ${k.padEnd(44)} ${v.toFixed(1)}`);
  if (stepMs > 0) {
    console.log(`\nconsumer blocking ${stepMs} ms per batch (a synchronous step): mean wait per batch after the first`);
    const plain = await waitPerBatch(paths, imageTransform({ size }), 0);
    console.log(`  hard_resize, in-process                      ${plain.toFixed(0)} ms`);
    const aug = await waitPerBatch(paths, queryTransform({ size, seed: 0, augment: all }), 0);
    console.log(`  all augmentations, in-process                ${aug.toFixed(0)} ms`);
    if (workers > 0) {
      const viaWorkers = await waitPerBatch(paths, { kind: 'query', options: { size, seed: 0, augment: all } }, workers);
      console.log(`  all augmentations, ${workers} workers                  ${viaWorkers.toFixed(0)} ms`);
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
