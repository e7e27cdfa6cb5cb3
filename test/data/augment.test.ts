import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import {
  adjustBrightness, adjustContrast, adjustHue, adjustSaturation, augmentImage, hasAugmentation, hflip,
  homography, loadAugmentedImage, perspective, perspectiveParams, queryTransform, resizedCropParams,
  rotate, solveLinear, validateAugmentOptions, toGrayscale, adjustGamma, gaussianBlur, addNoise, type AugmentOptions,
} from '../../src/data/augment.ts';
import { loadImage, resizeFloat, type FloatImage } from '../../src/data/image.ts';
import { Rng, deriveSeed } from '../../src/data/random.ts';

/** Planar image from per-pixel [r, g, b] triples, row-major. */
function image(width: number, height: number, pixels: number[][]): FloatImage {
  const plane = width * height;
  const data = new Float32Array(3 * plane);
  pixels.forEach((p, i) => { data[i] = p[0]!; data[i + plane] = p[1]!; data[i + 2 * plane] = p[2]!; });
  return { width, height, data };
}
function pixel(img: FloatImage, x: number, y: number): number[] {
  const plane = img.width * img.height;
  const i = y * img.width + x;
  return [img.data[i]!, img.data[i + plane]!, img.data[i + 2 * plane]!];
}
const constant = (w: number, h: number, rgb: number[]) => image(w, h, Array.from({ length: w * h }, () => rgb));
function assertPixel(actual: number[], want: number[], tol = 1e-6): void {
  actual.forEach((v, c) => assert.ok(Math.abs(v - want[c]!) <= tol, `channel ${c}: ${actual} vs ${want}`));
}
/** Image whose pixel (x, y) has a distinct value in each channel. */
const indexed = (w: number, h: number) => image(w, h, Array.from({ length: w * h }, (_, i) => [i / 100, 0.5 + i / 200, 1 - i / 100]));

test('brightness multiplies and clamps', () => {
  const img = constant(3, 2, [0.4, 0.2, 0.6]);
  assertPixel(pixel(adjustBrightness(img, 1.5), 1, 1), [0.6, 0.3, 0.9]);
  assertPixel(pixel(adjustBrightness(img, 2), 0, 0), [0.8, 0.4, 1]);
  assertPixel(pixel(adjustBrightness(img, 0), 2, 0), [0, 0, 0]);
  // Through the pipeline the factor is the first draw, uniform in [1 - v, 1 + v].
  const out = augmentImage(constant(4, 3, [0.5, 0.5, 0.5]), { height: 3, width: 4 }, { brightness: 0.5 }, new Rng(11));
  const f = new Rng(11).uniform(0.5, 1.5);
  for (let i = 0; i < out.data.length; i++) assert.ok(Math.abs(out.data[i]! - 0.5 * f) < 1e-6);
});

test('contrast blends with the mean grey level', () => {
  // Greys 0.2 and 0.6: mean 0.4; factor 0.5 -> 0.3 and 0.5.
  const g = adjustContrast(image(2, 1, [[0.2, 0.2, 0.2], [0.6, 0.6, 0.6]]), 0.5);
  assertPixel(pixel(g, 0, 0), [0.3, 0.3, 0.3]);
  assertPixel(pixel(g, 1, 0), [0.5, 0.5, 0.5]);
  // Red and blue: greys 0.299 and 0.114, mean 0.2065; factor 0.5 adds 0.10325 to half of each.
  const rb = adjustContrast(image(2, 1, [[1, 0, 0], [0, 0, 1]]), 0.5);
  assertPixel(pixel(rb, 0, 0), [0.60325, 0.10325, 0.10325]);
  assertPixel(pixel(rb, 1, 0), [0.10325, 0.10325, 0.60325]);
  // Factor 2 clamps.
  assertPixel(pixel(adjustContrast(image(2, 1, [[1, 0, 0], [0, 0, 1]]), 2), 0, 0), [1, 0, 0]);
});

test('saturation: grey images are unchanged, factor 0 gives the luma grey', () => {
  const greyImg = image(2, 1, [[0.3, 0.3, 0.3], [0.8, 0.8, 0.8]]);
  for (const f of [0, 0.3, 1, 2.5]) {
    const out = adjustSaturation(greyImg, f);
    out.data.forEach((v, i) => assert.ok(Math.abs(v - greyImg.data[i]!) < 1e-6));
  }
  assertPixel(pixel(adjustSaturation(image(1, 1, [[1, 0, 0]]), 0), 0, 0), [0.299, 0.299, 0.299]);
  // Factor 2 on (0.6, 0.4, 0.2): grey = 0.1794 + 0.2348 + 0.0228 = 0.437; 2x - grey, clamped.
  assertPixel(pixel(adjustSaturation(image(1, 1, [[0.6, 0.4, 0.2]]), 2), 0, 0), [0.763, 0.363, 0]);
});

test('hue: red shifted by 1/3 is green, by -1/3 blue; orange by 1/12 is yellow; grey is fixed', () => {
  const red = image(1, 1, [[1, 0, 0]]);
  assertPixel(pixel(adjustHue(red, 1 / 3), 0, 0), [0, 1, 0]);
  assertPixel(pixel(adjustHue(red, -1 / 3), 0, 0), [0, 0, 1]);
  assertPixel(pixel(adjustHue(image(1, 1, [[1, 0.5, 0]]), 1 / 12), 0, 0), [1, 1, 0]);
  // Half-turn of a darker, less saturated colour: (0.8, 0.4, 0.4) -> cyan-ish (0.4, 0.8, 0.8).
  assertPixel(pixel(adjustHue(image(1, 1, [[0.8, 0.4, 0.4]]), 0.5), 0, 0), [0.4, 0.8, 0.8]);
  assertPixel(pixel(adjustHue(image(1, 1, [[0.25, 0.25, 0.25]]), 0.3), 0, 0), [0.25, 0.25, 0.25]);
});

test('horizontal flip of a gradient', () => {
  const grad = image(4, 2, [0, 1, 2, 3, 0, 1, 2, 3].map((x) => [x / 3, 1 - x / 3, 0.5]));
  const f = hflip(grad);
  for (let y = 0; y < 2; y++) for (let x = 0; x < 4; x++) assertPixel(pixel(f, x, y), [(3 - x) / 3, 1 - (3 - x) / 3, 0.5]);
  const out = augmentImage(grad, { height: 2, width: 4 }, { queryHorizontalFlip: 1 }, new Rng(0));
  assert.deepEqual(out.data, f.data);
});

test('rotation: 0 degrees is the identity, 180 flips both axes, 90 is counter-clockwise', () => {
  const img = indexed(5, 3);
  assert.deepEqual(rotate(img, 0).data, img.data);
  const r180 = rotate(img, 180);
  for (let y = 0; y < 3; y++) for (let x = 0; x < 5; x++) assert.deepEqual(pixel(r180, x, y), pixel(img, 4 - x, 2 - y));
  // 3x3, counter-clockwise: the top-right corner moves to the top-left.
  const sq = indexed(3, 3);
  const r90 = rotate(sq, 90);
  for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) assert.deepEqual(pixel(r90, x, y), pixel(sq, 2 - y, x));
  // 90 degrees on a 4x2 frame: corners leave the frame and become 0.
  const wide = rotate(constant(4, 2, [1, 1, 1]), 90);
  assertPixel(pixel(wide, 0, 0), [0, 0, 0]);
  assertPixel(pixel(wide, 1, 0), [1, 1, 1]);
});

test('random resized crop with scale 1 is the identity on 4:3 and square frames', () => {
  const r = new Rng(3);
  for (let i = 0; i < 50; i++) {
    assert.deepEqual(resizedCropParams(r, 640, 480, [1, 1]), { left: 0, top: 0, width: 640, height: 480 });
    assert.deepEqual(resizedCropParams(r, 100, 100, [1, 1]).width, 100);
  }
  // Wider than 4:3 falls back to the central 4:3 crop.
  assert.deepEqual(resizedCropParams(r, 400, 100, [1, 1]), { left: 133, top: 0, width: 133, height: 100 });
  const img = indexed(8, 6);
  const box = resizedCropParams(r, 8, 6, [1, 1]);
  assert.deepEqual(resizeFloat(img, 8, 6, box).data, img.data);
  // With a smaller scale the crop stays inside the frame with area in range.
  for (let i = 0; i < 200; i++) {
    const b = resizedCropParams(r, 640, 480, [0.6, 1]);
    assert.ok(b.left >= 0 && b.top >= 0 && b.left + b.width <= 640 && b.top + b.height <= 480);
    const area = (b.width * b.height) / (640 * 480);
    assert.ok(area > 0.59 && area <= 1.0, `area ${area}`);
    const ratio = b.width / b.height;
    assert.ok(ratio > 0.74 && ratio < 1.34, `ratio ${ratio}`);
  }
});

test('homography: an 8x8 solve recovers a known projective map', () => {
  assert.deepEqual(solveLinear([[2, 1], [1, 3]], [3, 5]).map((v) => Math.round(v * 1e9) / 1e9), [0.8, 1.4]);
  const H = [1.1, 0.2, 3, -0.1, 0.9, 5, 0.001, 0.002];
  const apply = ([x, y]: readonly [number, number]): [number, number] => {
    const d = H[6]! * x + H[7]! * y + 1;
    return [(H[0]! * x + H[1]! * y + H[2]!) / d, (H[3]! * x + H[4]! * y + H[5]!) / d];
  };
  const from = [[0, 0], [100, 0], [100, 80], [0, 80]] as const;
  const got = homography(from, from.map(apply));
  got.forEach((v, i) => assert.ok(Math.abs(v - H[i]!) < 1e-9, `coefficient ${i}: ${v}`));
});

test('perspective: identical corners are the identity; a 1-pixel shift moves the image right', () => {
  const img = indexed(5, 4);
  const corners = [[0, 0], [4, 0], [4, 3], [0, 3]] as const;
  const same = perspective(img, corners, corners);
  same.data.forEach((v, i) => assert.ok(Math.abs(v - img.data[i]!) < 1e-6));
  // Output at endpoint = input at startpoint: endpoints one pixel to the right of the start points.
  const shifted = perspective(img, corners, corners.map(([x, y]) => [x + 1, y] as const));
  for (let y = 0; y < 4; y++) {
    assertPixel(pixel(shifted, 0, y), [0, 0, 0]);
    for (let x = 1; x < 5; x++) assertPixel(pixel(shifted, x, y), pixel(img, x - 1, y), 1e-6);
  }
  // Distortion 0 leaves the corners where they are; otherwise each moves inwards within its quarter.
  const r = new Rng(1);
  const p0 = perspectiveParams(r, 640, 480, 0);
  assert.deepEqual(p0.endpoints, p0.startpoints);
  for (let i = 0; i < 100; i++) {
    const { endpoints: [tl, tr, br, bl] } = perspectiveParams(r, 640, 480, 0.5);
    assert.ok(tl![0] <= 160 && tl![1] <= 120 && tr![0] >= 479 && tr![1] <= 120);
    assert.ok(br![0] >= 479 && br![1] >= 359 && bl![0] <= 160 && bl![1] >= 359);
  }
});

const ALL: AugmentOptions = {
  brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1, randPerspective: 0.3, perspectiveProbability: 1,
  randomResizedCrop: 0.4, randomRotation: 10, queryHorizontalFlip: 0.5,
};

test('seeded: same seed gives identical bytes, another seed different ones', async () => {
  const { data } = await sharp({
    create: { width: 48, height: 32, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 40 } },
  }).png().toBuffer({ resolveWithObject: true });
  const input = { name: 'noise.png', data };
  const size = { height: 24, width: 32 };
  const a = await loadAugmentedImage(input, 5, { size, augment: ALL });
  const b = await loadAugmentedImage(input, 5, { size, augment: ALL });
  const c = await loadAugmentedImage(input, 6, { size, augment: ALL });
  assert.deepEqual(a.shape, [1, 3, 24, 32]);
  const bytes = (t: typeof a) => Buffer.from((t.data as Float32Array).buffer);
  assert.ok(bytes(a).equals(bytes(b)));
  assert.ok(!bytes(a).equals(bytes(c)));
  // The loader transform seeds image i with deriveSeed(seed, i): independent of call order.
  const tf = queryTransform({ seed: 9, size, augment: { ...ALL, jitterOrder: 'random' } });
  const second = await tf(input, 1);
  await tf(input, 0);
  const again = await tf(input, 1);
  assert.ok(bytes(second).equals(bytes(again)));
  const direct = await loadAugmentedImage(input, deriveSeed(9, 1), { size, augment: { ...ALL, jitterOrder: 'random' } });
  assert.ok(bytes(second).equals(bytes(direct)));
  // Without augmentation a query is loaded exactly as a database image (no randomness at all).
  const plain1 = await loadAugmentedImage(input, 1, { size, augment: {} });
  const plain2 = await loadAugmentedImage(input, 2, { size, augment: { brightness: 0 } });
  assert.ok(bytes(plain1).equals(bytes(plain2)));
  assert.ok(bytes(plain1).equals(bytes(await loadImage(input, { size }))));
});

test('options are validated and off by default', () => {
  assert.equal(hasAugmentation({}), false);
  assert.equal(hasAugmentation({ brightness: 0, hue: 0 }), false);
  assert.equal(hasAugmentation({ randomRotation: 5 }), true);
  validateAugmentOptions(ALL);
  assert.throws(() => validateAugmentOptions({ hue: 0.7 }), /hue must be a number in \[0, 0.5\]/);
  assert.throws(() => validateAugmentOptions({ randomResizedCrop: 1 }), /randomResizedCrop/);
  assert.throws(() => validateAugmentOptions({ brightness: -1 }), /brightness/);
  assert.throws(() => queryTransform({ seed: 0, augment: { queryHorizontalFlip: 2 } }), /queryHorizontalFlip/);
});

test('camera augmentations: grey, gamma, blur and noise by hand', () => {
  // PIL luma: 0.299 r + 0.587 g + 0.114 b
  assertPixel(pixel(toGrayscale(constant(2, 2, [1, 0.5, 0])), 1, 1), [0.5925, 0.5925, 0.5925]);
  assertPixel(pixel(adjustGamma(constant(1, 1, [0.25, 1, 0]), 0.5), 0, 0), [0.5, 1, 0]);
  // Blur: a constant image stays constant; an impulse spreads into the normalised Gaussian
  // (sigma 1, radius 3: centre weight 1 / sum_{i=-3..3} exp(-i^2/2) = 0.39905 per axis).
  assertPixel(pixel(gaussianBlur(constant(5, 4, [0.3, 0.6, 0.9]), 1.5), 2, 1), [0.3, 0.6, 0.9], 1e-6);
  const impulse = image(7, 7, Array.from({ length: 49 }, (_, i) => (i === 24 ? [1, 1, 1] : [0, 0, 0])));
  const b = gaussianBlur(impulse, 1);
  const w0 = 1 / [-3, -2, -1, 0, 1, 2, 3].reduce((s, i) => s + Math.exp(-(i * i) / 2), 0);
  assertPixel(pixel(b, 3, 3), [w0 * w0, w0 * w0, w0 * w0], 1e-6);
  assertPixel(pixel(b, 4, 3), [w0 * w0 * Math.exp(-0.5), w0 * w0 * Math.exp(-0.5), w0 * w0 * Math.exp(-0.5)], 1e-6);
  assert.ok(Math.abs(b.data.slice(0, 49).reduce((s, v) => s + v, 0) - 1) < 1e-5, 'blur keeps the mass');
  // Noise on mid-grey (no clamping): zero mean, the asked std, channels correlated by the shared half.
  const n = addNoise(constant(200, 200, [0.5, 0.5, 0.5]), 0.05, new Rng(3));
  const plane = 200 * 200;
  let m = 0, v = 0, cov = 0;
  for (let i = 0; i < plane; i++) { const d0 = n.data[i]! - 0.5, d1 = n.data[plane + i]! - 0.5; m += d0; v += d0 * d0; cov += d0 * d1; }
  m /= plane; v /= plane; cov /= plane;
  assert.ok(Math.abs(m) < 1e-3, `mean ${m}`);
  assert.ok(Math.abs(Math.sqrt(v) - 0.05) < 2e-3, `std ${Math.sqrt(v)}`);
  assert.ok(Math.abs(cov / v - 0.5) < 0.03, `channel correlation ${cov / v} (half the variance is shared)`);
});

test('camera augmentations run in the pipeline, seeded, and count as augmentation', () => {
  const o: AugmentOptions = { grayscale: 1, gamma: 0.5, blur: 1, noise: 0.1 };
  assert.ok(hasAugmentation(o));
  assert.throws(() => validateAugmentOptions({ noise: 2 }), /noise must be a number in \[0, 1\]/);
  const src = indexed(8, 6);
  const a = augmentImage(src, { height: 6, width: 8 }, o, new Rng(5));
  const again = augmentImage(src, { height: 6, width: 8 }, o, new Rng(5));
  assert.deepEqual(a.data, again.data);
  // grey before the noise, so channels differ only by the per-channel half of the noise
  const plane = 48;
  let diff = 0;
  for (let i = 0; i < plane; i++) diff += Math.abs(a.data[i]! - a.data[plane + i]!);
  assert.ok(diff > 0 && diff / plane < 0.2, `mean channel difference ${diff / plane}`);
  assert.notDeepEqual(a.data, augmentImage(src, { height: 6, width: 8 }, o, new Rng(6)).data);
});
