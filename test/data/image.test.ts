import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  ImageReadError, fiveCropBoxes, loadImage, resizeFloat, type FloatImage,
} from '../../src/data/image.ts';

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** A lossless PNG from interleaved bytes. */
function png(width: number, height: number, channels: 1 | 2 | 3 | 4, bytes: number[]): Promise<Buffer> {
  assert.equal(bytes.length, width * height * channels);
  return sharp(Buffer.from(bytes), { raw: { width, height, channels } }).png().toBuffer();
}

/** width x height RGB image where pixel (x, y) = (10x + y, 100 + 10x + y, 200 - 10x - y). */
function patternBytes(width: number, height: number): number[] {
  const b: number[] = [];
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) b.push(10 * x + y, 100 + 10 * x + y, 200 - 10 * x - y);
  return b;
}
const patternAt = (x: number, y: number): number[] => [10 * x + y, 100 + 10 * x + y, 200 - 10 * x - y];

/** Value of channel c at (x, y) of image n in an NCHW tensor. */
function at(t: { shape: number[]; data: ArrayLike<number> }, n: number, c: number, y: number, x: number): number {
  const [, C, H, W] = t.shape as [number, number, number, number];
  return t.data[((n * C + c) * H + y) * W + x]!;
}

const close = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('pure red 4x4 PNG -> ImageNet-normalised planes, exact to 1e-5', async () => {
  const red = await png(4, 4, 3, Array.from({ length: 16 }, () => [255, 0, 0]).flat());
  const t = await loadImage({ name: 'red.png', data: red }, { size: { height: 4, width: 4 } });
  assert.equal(t.dtype, 'float32');
  assert.deepEqual(t.shape, [1, 3, 4, 4]);
  assert.ok(t.data instanceof Float32Array);
  const want = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0 - 0.406) / 0.225];
  for (let c = 0; c < 3; c++) for (let i = 0; i < 16; i++) close(t.data[c * 16 + i] as number, want[c]!);
});

test('[-1,1] and [0,1] scalings', async () => {
  const img = await png(2, 1, 3, [255, 0, 128, 51, 204, 0]);
  const pm = await loadImage({ name: 'a.png', data: img }, { size: { height: 1, width: 2 }, normalization: 'minus_one_one' });
  const want = [[1, 51 / 255 * 2 - 1], [-1, 204 / 255 * 2 - 1], [128 / 255 * 2 - 1, -1]];
  for (let c = 0; c < 3; c++) for (let x = 0; x < 2; x++) close(at(pm, 0, c, 0, x), want[c]![x]!);
  const unit = await loadImage({ name: 'a.png', data: img }, { size: { height: 1, width: 2 }, normalization: 'unit' });
  close(at(unit, 0, 0, 0, 1), 0.2);
  close(at(unit, 0, 1, 0, 1), 0.8);
});

test('NCHW layout: pixel (x, y) of channel c lands at c*H*W + y*W + x', async () => {
  const img = await png(5, 3, 3, patternBytes(5, 3));
  const t = await loadImage({ name: 'p.png', data: img }, { size: { height: 3, width: 5 }, normalization: 'unit' });
  assert.deepEqual(t.shape, [1, 3, 3, 5]);
  for (let y = 0; y < 3; y++) for (let x = 0; x < 5; x++) for (let c = 0; c < 3; c++) close(at(t, 0, c, y, x), patternAt(x, y)[c]! / 255);
});

test('greyscale becomes three equal channels; alpha is dropped, colour kept', async () => {
  const grey = await png(2, 2, 1, [100, 100, 100, 100]);
  const t = await loadImage({ name: 'g.png', data: grey }, { size: { height: 2, width: 2 } });
  assert.deepEqual(t.shape, [1, 3, 2, 2]);
  for (let c = 0; c < 3; c++) for (let i = 0; i < 4; i++) close(t.data[c * 4 + i] as number, (100 / 255 - MEAN[c]!) / STD[c]!);
  const greyAlpha = await png(1, 1, 2, [40, 0]);
  const ga = await loadImage({ name: 'ga.png', data: greyAlpha }, { size: { height: 1, width: 1 }, normalization: 'unit' });
  assert.deepEqual([...ga.data].map((v) => Math.round((v as number) * 255)), [40, 40, 40]);
  const rgba = await png(1, 1, 4, [10, 20, 30, 0]);
  const ta = await loadImage({ name: 'rgba.png', data: rgba }, { size: { height: 1, width: 1 }, normalization: 'unit' });
  assert.deepEqual([...ta.data].map((v) => Math.round((v as number) * 255)), [10, 20, 30]);
});

test('hard resize of a known pattern', async () => {
  // Nearest upscaling by 2 replicates each pixel into a 2x2 block.
  const small = await png(3, 2, 3, patternBytes(3, 2));
  const up = await loadImage({ name: 's.png', data: small }, { size: { height: 4, width: 6 }, interpolation: 'nearest', normalization: 'unit' });
  for (let y = 0; y < 4; y++) for (let x = 0; x < 6; x++) for (let c = 0; c < 3; c++) {
    close(at(up, 0, c, y, x), patternAt(x >> 1, y >> 1)[c]! / 255);
  }
  // Bilinear halving of a 16x16 image, left half red, right half blue: columns away from the
  // edge stay pure, the two middle columns mirror each other, every row is the same.
  const bytes: number[] = [];
  for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) bytes.push(...(x < 8 ? [255, 0, 0] : [0, 0, 255]));
  const half = await loadImage({ name: 'rb.png', data: await png(16, 16, 3, bytes) }, { size: { height: 8, width: 8 }, normalization: 'unit' });
  assert.deepEqual(half.shape, [1, 3, 8, 8]);
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 3; x++) { close(at(half, 0, 0, y, x), 1, 1e-2); close(at(half, 0, 2, y, x), 0, 1e-2); }
    for (let x = 5; x < 8; x++) { close(at(half, 0, 0, y, x), 0, 1e-2); close(at(half, 0, 2, y, x), 1, 1e-2); }
    close(at(half, 0, 0, y, 3), at(half, 0, 2, y, 4), 1e-2);
    assert.ok(at(half, 0, 0, y, 3) > 0.5 && at(half, 0, 0, y, 4) < 0.5);
    for (let c = 0; c < 3; c++) for (let x = 0; x < 8; x++) close(at(half, 0, c, y, x), at(half, 0, c, 0, x));
  }
});

test('central crop, single query and five crops', async () => {
  const wide = await png(8, 4, 3, patternBytes(8, 4)); // W 8 x H 4
  const input = { name: 'wide.png', data: wide };
  // Cover 4x4 from 8x4: scale 1, central columns 2..5.
  const cc = await loadImage(input, { size: { height: 4, width: 4 }, mode: 'central_crop', normalization: 'unit' });
  assert.deepEqual(cc.shape, [1, 3, 4, 4]);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) close(at(cc, 0, 1, y, x), patternAt(x + 2, y)[1]! / 255);
  // Single query: shorter side -> min(H, W) = 2, aspect kept: 2 x 4.
  const sq = await loadImage(input, { size: { height: 2, width: 3 }, mode: 'single_query' });
  assert.deepEqual(sq.shape, [1, 3, 2, 4]);
  // Five crops of side 4 from 8x4 (no resize): left offsets 0, 4, 0, 4, 2.
  const fc = await loadImage(input, { size: { height: 4, width: 8 }, mode: 'five_crops', normalization: 'unit' });
  assert.deepEqual(fc.shape, [5, 3, 4, 4]);
  const lefts = [0, 4, 0, 4, 2];
  for (let n = 0; n < 5; n++) for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) for (let c = 0; c < 3; c++) {
    close(at(fc, n, c, y, x), patternAt(x + lefts[n]!, y)[c]! / 255);
  }
  assert.deepEqual(fiveCropBoxes(6, 10, 4).map((b) => [b.left, b.top]), [[0, 0], [2, 0], [0, 6], [2, 6], [1, 3]]);
});

test('a corrupt or missing file is an error naming the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vgl-image-'));
  try {
    const bad = join(dir, 'broken.jpg');
    await writeFile(bad, 'definitely not a jpeg');
    await assert.rejects(loadImage(bad), (e: unknown) => e instanceof ImageReadError && e.path === bad && e.message.includes(bad));
    const missing = join(dir, 'missing.jpg');
    await assert.rejects(loadImage(missing), (e: unknown) => e instanceof Error && e.message.includes(missing));
    await assert.rejects(loadImage({ name: 'upload-7', data: new Uint8Array([1, 2, 3]) }), /upload-7/);
    // A JPEG cut in half.
    const jpeg = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#336699' } }).jpeg().toBuffer();
    const cut = join(dir, 'cut.jpg');
    await writeFile(cut, jpeg.subarray(0, jpeg.length >> 1));
    await assert.rejects(loadImage(cut), /cut\.jpg/);
    await assert.rejects(loadImage(bad, { size: { height: 0, width: 4 } }), /height must be a positive integer/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('resizeFloat: bilinear with antialias, hand-computed', () => {
  const row = (values: number[]): FloatImage => ({ width: values.length, height: 1, data: Float32Array.from([...values, ...values, ...values]) });
  // Upscale [0, 1] -> 4: sample points 0.25, 0.75, 1.25, 1.75 (pixel centres), clamped at edges.
  const up = resizeFloat(row([0, 1]), 4, 1);
  [0, 0.25, 0.75, 1].forEach((v, i) => close(up.data[i]!, v));
  // Halve [0, 1, 2, 3]: triangle of radius 2 around 1 and 3 -> weights .75 .75 .25 (edge tap dropped).
  const down = resizeFloat(row([0, 1, 2, 3]), 2, 1);
  close(down.data[0]!, (0.75 * 0 + 0.75 * 1 + 0.25 * 2) / 1.75);
  close(down.data[1]!, (0.25 * 1 + 0.75 * 2 + 0.75 * 3) / 1.75);
  // Same size is the identity; a box is cropped then resized.
  const img: FloatImage = { width: 3, height: 2, data: Float32Array.from({ length: 18 }, (_, i) => i / 17) };
  assert.deepEqual(resizeFloat(img, 3, 2).data, img.data);
  const box = resizeFloat(img, 2, 1, { left: 1, top: 1, width: 2, height: 1 });
  assert.deepEqual([...box.data], [4, 5, 10, 11, 16, 17].map((i) => img.data[i]!));
  // A crop is resized as if cut out first: its edges clamp, nothing bleeds in from outside.
  const inner = resizeFloat(row([0, 0, 1, 1, 0, 0]), 4, 1, { left: 2, top: 0, width: 2, height: 1 });
  assert.deepEqual([...inner.data], new Array(12).fill(1));
  assert.throws(() => resizeFloat(img, 2, 2, { left: 2, top: 0, width: 2, height: 2 }), /outside image 3x2/);
});
