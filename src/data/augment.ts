// Query-only augmentations of the benchmark reference, on planar [0,1] float images, seeded.
// Order (reference): colour jitter -> random perspective -> random resized crop -> random rotation
// -> resize; then horizontal flip. Camera augmentations of our own slot in: gamma and grey after the
// colour jitter, blur and noise after the resize. Definitions follow torchvision's (blend-based colour ops clamped
// to [0,1], HSV hue shift, perspective from four jittered corners, crop area/ratio sampling).
// The random draws are our own stream (src/data/random.ts), not torch's: same seed, same bytes.

import {
  type Float32HostTensor, type FloatImage, type ImageInput, type ImageSize, type Normalization, DEFAULT_SIZE,
  decodeRgb, floatTensor, loadImage, normalizeFloatInto, resizeFloat, rgbToFloat,
} from './image.ts';
import { Rng, deriveSeed } from './random.ts';

/** Plain numeric fields (zod-friendly). Absent or 0 = off. */
export interface AugmentOptions {
  /** Brightness factor drawn from [max(0, 1-v), 1+v]. */
  brightness?: number;
  /** Contrast factor drawn from [max(0, 1-v), 1+v]. */
  contrast?: number;
  /** Saturation factor drawn from [max(0, 1-v), 1+v]. */
  saturation?: number;
  /** Hue shift drawn from [-v, v] (fraction of a turn, v <= 0.5). */
  hue?: number;
  /**
   * 'fixed' (default): brightness, contrast, saturation, hue, as the reference's four separate
   * ColorJitter transforms; 'random': a random order per image, as one torchvision ColorJitter.
   */
  jitterOrder?: 'fixed' | 'random';
  /** Distortion scale in [0, 1] of the random perspective. */
  randPerspective?: number;
  /** Probability of applying the perspective (torchvision default 0.5). */
  perspectiveProbability?: number;
  /** Random resized crop with area scale in [1 - v, 1] and aspect ratio in [3/4, 4/3]. */
  randomResizedCrop?: number;
  /** Rotation by an angle drawn from [-v, v] degrees (counter-clockwise positive). */
  randomRotation?: number;
  /** Probability of mirroring the query alone (ours; the reference mirrors whole batches of tuples: TrainConfig.horizontalFlip). */
  queryHorizontalFlip?: number;
  // Camera augmentations (not in the reference): what separates a night or winter photo from the
  // day database besides the scene — grey, dark-adapted, blurred and noisy images.
  /** Probability of turning the image grey (luma in all three channels). */
  grayscale?: number;
  /** Gamma exponent drawn log-uniformly from [1/(1+v), 1+v] (exposure and tone curve). */
  gamma?: number;
  /** Gaussian blur with sigma drawn from [0, v] pixels of the output size (focus, motion, JPEG). */
  blur?: number;
  /** Sensor noise at the output size: std drawn from [0, v] (of the [0,1] range), half luma and half per-channel. */
  noise?: number;
}

export function validateAugmentOptions(o: AugmentOptions): void {
  const inRange = (name: keyof AugmentOptions, lo: number, hi: number) => {
    const v = o[name];
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) {
      throw new Error(`augmentation ${name} must be a number in [${lo}, ${hi}], got ${String(v)}`);
    }
  };
  inRange('brightness', 0, Infinity);
  inRange('contrast', 0, Infinity);
  inRange('saturation', 0, Infinity);
  inRange('hue', 0, 0.5);
  inRange('randPerspective', 0, 1);
  inRange('perspectiveProbability', 0, 1);
  inRange('randomResizedCrop', 0, 1 - 1e-9);
  inRange('randomRotation', 0, 360);
  inRange('queryHorizontalFlip', 0, 1);
  inRange('grayscale', 0, 1);
  inRange('gamma', 0, 10);
  inRange('blur', 0, 20);
  inRange('noise', 0, 1);
  if (o.jitterOrder !== undefined && o.jitterOrder !== 'fixed' && o.jitterOrder !== 'random') {
    throw new Error(`augmentation jitterOrder must be 'fixed' or 'random', got ${String(o.jitterOrder)}`);
  }
}

export function hasAugmentation(o: AugmentOptions): boolean {
  return Boolean(o.brightness || o.contrast || o.saturation || o.hue || o.randPerspective
    || o.randomResizedCrop || o.randomRotation || o.queryHorizontalFlip || o.grayscale || o.gamma || o.blur || o.noise);
}

// ---------------------------------------------------------------- colour

const clamp01 = (x: number) => (x < 0 ? 0 : x > 1 ? 1 : x);

// Luma weights of PIL's convert("L"): the reference jitters PIL images (torchvision's tensor
// path uses 0.2989 for red, a 1e-4 difference).
const grey = (r: number, g: number, b: number) => 0.299 * r + 0.587 * g + 0.114 * b;

// The colour ops are plain loops over the three planes: TypedArray.map and per-pixel callbacks
// cost 3-5x more in V8 on 640x480 images.

/** x * factor, clamped (blend with black). */
export function adjustBrightness(img: FloatImage, factor: number): FloatImage {
  const src = img.data;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = clamp01(src[i]! * factor);
  return { width: img.width, height: img.height, data: out };
}

/** Blend with the image's mean grey level. */
export function adjustContrast(img: FloatImage, factor: number): FloatImage {
  const plane = img.width * img.height;
  const src = img.data;
  let sum = 0;
  for (let i = 0; i < plane; i++) sum += grey(src[i]!, src[i + plane]!, src[i + 2 * plane]!);
  const m = (1 - factor) * (sum / plane);
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = clamp01(factor * src[i]! + m);
  return { width: img.width, height: img.height, data: out };
}

/** Blend with the greyscale image (factor 0 = grey, 1 = unchanged). */
export function adjustSaturation(img: FloatImage, factor: number): FloatImage {
  const plane = img.width * img.height;
  const src = img.data;
  const out = new Float32Array(src.length);
  for (let i = 0; i < plane; i++) {
    const r = src[i]!, g = src[i + plane]!, b = src[i + 2 * plane]!;
    const m = (1 - factor) * grey(r, g, b);
    out[i] = clamp01(factor * r + m);
    out[i + plane] = clamp01(factor * g + m);
    out[i + 2 * plane] = clamp01(factor * b + m);
  }
  return { width: img.width, height: img.height, data: out };
}

/** Rotates the hue by `shift` turns (in [-0.5, 0.5]) in HSV space. */
export function adjustHue(img: FloatImage, shift: number): FloatImage {
  const plane = img.width * img.height;
  const src = img.data;
  const out = new Float32Array(src.length);
  for (let i = 0; i < plane; i++) {
    const r = src[i]!, g = src[i + plane]!, b = src[i + 2 * plane]!;
    const v = Math.max(r, g, b);
    const c = v - Math.min(r, g, b);
    if (c === 0) { // grey: no hue to shift
      out[i] = r; out[i + plane] = g; out[i + 2 * plane] = b;
      continue;
    }
    const s = c / v;
    let h = v === r ? (g - b) / c : v === g ? 2 + (b - r) / c : 4 + (r - g) / c;
    h = h / 6 + shift;
    h -= Math.floor(h); // wrap to [0, 1)
    const h6 = h * 6;
    const k = Math.floor(h6) % 6;
    const f = h6 - Math.floor(h6);
    const p = clamp01(v * (1 - s));
    const q = clamp01(v * (1 - s * f));
    const t = clamp01(v * (1 - s * (1 - f)));
    let ro: number, go: number, bo: number;
    switch (k) {
      case 0: ro = v; go = t; bo = p; break;
      case 1: ro = q; go = v; bo = p; break;
      case 2: ro = p; go = v; bo = t; break;
      case 3: ro = p; go = q; bo = v; break;
      case 4: ro = t; go = p; bo = v; break;
      default: ro = v; go = p; bo = q;
    }
    out[i] = ro; out[i + plane] = go; out[i + 2 * plane] = bo;
  }
  return { width: img.width, height: img.height, data: out };
}

// ---------------------------------------------------------------- geometry

export function hflip(img: FloatImage): FloatImage {
  const { width: w, height: h } = img;
  const out = new Float32Array(img.data.length);
  for (let row = 0; row < 3 * h; row++) {
    const o = row * w;
    for (let x = 0; x < w; x++) out[o + x] = img.data[o + w - 1 - x]!;
  }
  return { width: w, height: h, data: out };
}

/** Solves A x = b (n x n, row-major) by Gaussian elimination with partial pivoting. */
export function solveLinear(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let col = 0; col < n; col++) {
    let piv = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[piv]![col]!)) piv = r;
    if (Math.abs(m[piv]![col]!) < 1e-12) throw new Error('solveLinear: singular system');
    [m[col], m[piv]] = [m[piv]!, m[col]!];
    const pr = m[col]!;
    for (let r = col + 1; r < n; r++) {
      const row = m[r]!;
      const f = row[col]! / pr[col]!;
      if (f === 0) continue;
      for (let k = col; k <= n; k++) row[k]! -= f * pr[k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= m[r]![k]! * x[k]!;
    x[r] = s / m[r]![r]!;
  }
  return x;
}

export type Point = readonly [number, number];

/**
 * Homography coefficients [a b c d e f g h] mapping each `from` point to its `to` point:
 * X = (a x + b y + c) / (g x + h y + 1), Y = (d x + e y + f) / (g x + h y + 1).
 */
export function homography(from: readonly Point[], to: readonly Point[]): number[] {
  if (from.length !== 4 || to.length !== 4) throw new Error('homography: need 4 point pairs');
  const a: number[][] = [];
  const b: number[] = [];
  for (let i = 0; i < 4; i++) {
    const [x, y] = from[i]!;
    const [X, Y] = to[i]!;
    a.push([x, y, 1, 0, 0, 0, -x * X, -y * X]); b.push(X);
    a.push([0, 0, 0, x, y, 1, -x * Y, -y * Y]); b.push(Y);
  }
  return solveLinear(a, b);
}

/**
 * Perspective warp as torchvision's: the output pixel at `endpoints[i]` shows the input pixel at
 * `startpoints[i]`. Bilinear sampling at pixel centres, 0 outside the input.
 */
export function perspective(img: FloatImage, startpoints: readonly Point[], endpoints: readonly Point[]): FloatImage {
  const [a, b, c, d, e, f, g, h] = homography(endpoints, startpoints) as [number, number, number, number, number, number, number, number];
  const { width: w, height: ht } = img;
  const plane = w * ht;
  const out = new Float32Array(3 * plane);
  const src = img.data;
  for (let y = 0; y < ht; y++) {
    const yc = y + 0.5;
    const nu = b * yc + c, nv = e * yc + f, nd = h * yc + 1; // row constants
    for (let x = 0; x < w; x++) {
      const xc = x + 0.5;
      const den = g * xc + nd;
      const u = (a * xc + nu) / den - 0.5;
      const v = (d * xc + nv) / den - 0.5;
      const x0 = Math.floor(u);
      const y0 = Math.floor(v);
      if (x0 < -1 || y0 < -1 || x0 >= w || y0 >= ht) continue; // all four taps outside: stays 0
      const fx = u - x0;
      const fy = v - y0;
      // Weights of the four taps; a tap outside the image gets weight 0 (zero padding).
      const inX0 = x0 >= 0, inX1 = x0 + 1 < w, inY0 = y0 >= 0, inY1 = y0 + 1 < ht;
      const w00 = inX0 && inY0 ? (1 - fx) * (1 - fy) : 0;
      const w10 = inX1 && inY0 ? fx * (1 - fy) : 0;
      const w01 = inX0 && inY1 ? (1 - fx) * fy : 0;
      const w11 = inX1 && inY1 ? fx * fy : 0;
      const i00 = y0 * w + x0; // index arithmetic only; weight 0 taps are never read
      const o = y * w + x;
      for (let base = 0; base < 3 * plane; base += plane) {
        let acc = 0;
        if (w00) acc += w00 * src[base + i00]!;
        if (w10) acc += w10 * src[base + i00 + 1]!;
        if (w01) acc += w01 * src[base + i00 + w]!;
        if (w11) acc += w11 * src[base + i00 + w + 1]!;
        out[base + o] = acc;
      }
    }
  }
  return { width: w, height: ht, data: out };
}

/** torchvision RandomPerspective.get_params: each corner moves inwards by up to scale * half side. */
export function perspectiveParams(rng: Rng, width: number, height: number, distortion: number): { startpoints: Point[]; endpoints: Point[] } {
  const dx = Math.floor(distortion * Math.floor(width / 2));
  const dy = Math.floor(distortion * Math.floor(height / 2));
  const topLeft: Point = [rng.int(0, dx + 1), rng.int(0, dy + 1)];
  const topRight: Point = [rng.int(width - dx - 1, width), rng.int(0, dy + 1)];
  const bottomRight: Point = [rng.int(width - dx - 1, width), rng.int(height - dy - 1, height)];
  const bottomLeft: Point = [rng.int(0, dx + 1), rng.int(height - dy - 1, height)];
  return {
    startpoints: [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]],
    endpoints: [topLeft, topRight, bottomRight, bottomLeft],
  };
}

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** torchvision RandomResizedCrop.get_params: 10 tries at a random area and log-uniform ratio, else a central crop. */
export function resizedCropParams(rng: Rng, width: number, height: number, scale: readonly [number, number], ratio: readonly [number, number] = [3 / 4, 4 / 3]): Box {
  const area = width * height;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      return { top: rng.int(0, height - h + 1), left: rng.int(0, width - w + 1), width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.round(w / ratio[0]);
  else if (inRatio > ratio[1]) w = Math.round(h * ratio[1]);
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), width: w, height: h };
}

/**
 * Rotates counter-clockwise by `degrees` about the image centre, same size, nearest neighbour,
 * 0 where the rotated frame leaves the image (torchvision rotate defaults).
 */
export function rotate(img: FloatImage, degrees: number): FloatImage {
  const { width: w, height: h } = img;
  const plane = w * h;
  const out = new Float32Array(3 * plane);
  const t = (degrees * Math.PI) / 180;
  const cos = Math.cos(t);
  const sin = Math.sin(t);
  for (let y = 0; y < h; y++) {
    const yc = y + 0.5 - h / 2;
    for (let x = 0; x < w; x++) {
      const xc = x + 0.5 - w / 2;
      // Inverse map: the output pixel shows the input point rotated back by -degrees.
      const u = Math.round(xc * cos - yc * sin + w / 2 - 0.5);
      const v = Math.round(xc * sin + yc * cos + h / 2 - 0.5);
      if (u < 0 || v < 0 || u >= w || v >= h) continue;
      const o = y * w + x;
      const s = v * w + u;
      out[o] = img.data[s]!;
      out[o + plane] = img.data[s + plane]!;
      out[o + 2 * plane] = img.data[s + 2 * plane]!;
    }
  }
  return { width: w, height: h, data: out };
}

// ---------------------------------------------------------------- camera

/** Luma (PIL weights) in all three planes. */
export function toGrayscale(img: FloatImage): FloatImage {
  const n = img.width * img.height, src = img.data;
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    const y = grey(src[i], src[n + i], src[2 * n + i]);
    out[i] = y; out[n + i] = y; out[2 * n + i] = y;
  }
  return { width: img.width, height: img.height, data: out };
}

/** x^exponent per value (inputs are in [0,1], so the range is kept). */
export function adjustGamma(img: FloatImage, exponent: number): FloatImage {
  const src = img.data, out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = Math.pow(src[i] < 0 ? 0 : src[i], exponent);
  return { width: img.width, height: img.height, data: out };
}

/** Separable Gaussian blur (kernel radius ceil(3 sigma), edges clamped); sigma <= 0 returns the input. */
export function gaussianBlur(img: FloatImage, sigma: number): FloatImage {
  if (!(sigma > 0)) return img;
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  const { width: w, height: h } = img;
  const tmp = new Float32Array(img.data.length), out = new Float32Array(img.data.length);
  for (let c = 0; c < 3; c++) {
    const o = c * w * h;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let acc = 0;
        for (let i = -r; i <= r; i++) acc += k[i + r] * img.data[o + y * w + Math.min(w - 1, Math.max(0, x + i))];
        tmp[o + y * w + x] = acc;
      }
    }
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let acc = 0;
        for (let i = -r; i <= r; i++) acc += k[i + r] * tmp[o + Math.min(h - 1, Math.max(0, y + i)) * w + x];
        out[o + y * w + x] = acc;
      }
    }
  }
  return { width: w, height: h, data: out };
}

/** Adds zero-mean Gaussian noise of this std: half of the variance shared by the three channels (luma grain), half per channel; clamped to [0,1]. */
export function addNoise(img: FloatImage, std: number, rng: Rng): FloatImage {
  const n = img.width * img.height, src = img.data, out = new Float32Array(src.length);
  const s = std * Math.SQRT1_2;
  for (let i = 0; i < n; i++) {
    const shared = rng.normal(0, s);
    for (let c = 0; c < 3; c++) out[c * n + i] = clamp01(src[c * n + i] + shared + rng.normal(0, s));
  }
  return { width: img.width, height: img.height, data: out };
}

// ---------------------------------------------------------------- pipeline

const jitterFactor = (rng: Rng, v: number) => rng.uniform(Math.max(0, 1 - v), 1 + v);

/** Applies the enabled augmentations in the reference order and returns an image of `size`. */
export function augmentImage(img: FloatImage, size: ImageSize, o: AugmentOptions, rng: Rng): FloatImage {
  const jitters: ((x: FloatImage) => FloatImage)[] = [];
  if (o.brightness) jitters.push((x) => adjustBrightness(x, jitterFactor(rng, o.brightness!)));
  if (o.contrast) jitters.push((x) => adjustContrast(x, jitterFactor(rng, o.contrast!)));
  if (o.saturation) jitters.push((x) => adjustSaturation(x, jitterFactor(rng, o.saturation!)));
  if (o.hue) jitters.push((x) => adjustHue(x, rng.uniform(-o.hue!, o.hue!)));
  if (o.jitterOrder === 'random') rng.shuffle(jitters);
  for (const j of jitters) img = j(img);
  if (o.gamma) img = adjustGamma(img, Math.exp(rng.uniform(-Math.log1p(o.gamma), Math.log1p(o.gamma))));
  if (o.grayscale && rng.bernoulli(o.grayscale)) img = toGrayscale(img);

  if (o.randPerspective && rng.bernoulli(o.perspectiveProbability ?? 0.5)) {
    const { startpoints, endpoints } = perspectiveParams(rng, img.width, img.height, o.randPerspective);
    img = perspective(img, startpoints, endpoints);
  }
  if (o.randomResizedCrop) {
    const box = resizedCropParams(rng, img.width, img.height, [1 - o.randomResizedCrop, 1]);
    img = resizeFloat(img, size.width, size.height, box);
  }
  if (o.randomRotation) img = rotate(img, rng.uniform(-o.randomRotation, o.randomRotation));
  if (img.width !== size.width || img.height !== size.height) img = resizeFloat(img, size.width, size.height);
  // Blur and noise at the network's resolution, where the sensor's grain survives downscaling.
  if (o.blur) img = gaussianBlur(img, rng.uniform(0, o.blur));
  if (o.noise) img = addNoise(img, rng.uniform(0, o.noise), rng);
  if (o.queryHorizontalFlip && rng.bernoulli(o.queryHorizontalFlip)) img = hflip(img);
  return img;
}

export interface QueryTransformOptions {
  size?: ImageSize;
  normalization?: Normalization;
  augment: AugmentOptions;
  /** Base seed; image i uses deriveSeed(seed, i), so results do not depend on decode order. */
  seed: number;
}

/**
 * Loads a query with augmentation: [1, 3, H, W] float32. Big images are first shrunk by sharp
 * (keeping the aspect, never below H x W) so the JS warps touch no more pixels than needed.
 */
export async function loadAugmentedImage(input: ImageInput, seed: number, options: Omit<QueryTransformOptions, 'seed'>): Promise<Float32HostTensor> {
  const size = options.size ?? DEFAULT_SIZE;
  validateAugmentOptions(options.augment);
  // Nothing enabled: exactly the database images' path (same resize, same bytes).
  if (!hasAugmentation(options.augment)) return loadImage(input, { size, normalization: options.normalization });
  const rgb = await decodeRgb(input, { width: size.width, height: size.height, fit: 'outside', withoutEnlargement: true });
  const img = augmentImage(rgbToFloat(rgb), size, options.augment, new Rng(seed));
  const out = new Float32Array(3 * size.height * size.width);
  normalizeFloatInto(img, options.normalization ?? 'imagenet', out);
  return floatTensor([1, 3, size.height, size.width], out);
}

/** A loader transform (path, index) for queries; seeds are per index, so reruns are identical. */
export function queryTransform(options: QueryTransformOptions): (input: ImageInput, index: number) => Promise<Float32HostTensor> {
  validateAugmentOptions(options.augment);
  return (input, index) => loadAugmentedImage(input, deriveSeed(options.seed, index), options);
}
