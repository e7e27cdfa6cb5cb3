// Image decode, resize and normalisation: file (or bytes) -> float32 NCHW HostTensor.
// Decoding and resizing run in sharp (libvips, on libuv's thread pool); the conversion to
// normalised floats is a table look-up per byte on the JS thread.

import { open } from 'node:fs/promises';
import sharp, { type KernelEnum } from 'sharp';
import type { HostTensor } from '../torch/dtype.ts';

/** Output size, H x W as in the reference (`--resize 480 640`). */
export interface ImageSize {
  height: number;
  width: number;
}

/** A config's [height, width] as an ImageSize. */
export const imageSize = ([height, width]: readonly [number, number] | readonly number[]): ImageSize => ({ height: height!, width: width! });

export const DEFAULT_SIZE: Readonly<ImageSize> = { height: 480, width: 640 };

/** "HxW" (e.g. "480x640", spaces around allowed) → [height, width]; null when it is not that. */
export function parseSize(text: string): [number, number] | null {
  const m = /^\s*(\d+)x(\d+)\s*$/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/**
 * 'imagenet': ImageNet mean/std on [0,1] values; 'minus_one_one': 2x-1 (Keras MobileNetV2); 'unit': [0,1];
 * 'caffe': Keras' "caffe" mode (its ResNet50): 0–255 minus the ImageNet mean, no std. Keras also flips
 * RGB to BGR; vgl keeps RGB and its converted weights take the flip into conv1 instead.
 */
export type Normalization = 'imagenet' | 'minus_one_one' | 'unit' | 'caffe';

/**
 * How an image becomes the network input (the reference's test methods).
 * - hard_resize: stretch to H x W (database images always use this).
 * - single_query: keep the aspect, shorter side = min(H, W); the size varies per image.
 * - central_crop: scale to cover H x W keeping the aspect, then take the central H x W.
 * - five_crops: shorter side = min(H, W), then five squares of that side: top-left, top-right,
 *   bottom-left, bottom-right, centre (torchvision's five_crop order). Output N = 5.
 */
export type ResizeMode = 'hard_resize' | 'single_query' | 'central_crop' | 'five_crops';

export type Interpolation = 'bilinear' | 'nearest' | 'lanczos3';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;
/** Keras' "caffe" mean in RGB order (Keras lists it as BGR: 103.939, 116.779, 123.68). */
export const CAFFE_MEAN_RGB = [123.68, 116.779, 103.939] as const;

/** A path, or encoded bytes with a name to use in error messages. */
export type ImageInput = string | { name: string; data: Uint8Array };

/** 8-bit RGB pixels, interleaved (HWC), as sharp returns them. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Float RGB in [0,1], planar (CHW): the layout augmentations work on. */
export interface FloatImage {
  width: number;
  height: number;
  data: Float32Array;
}

/** What image loading produces: a HostTensor known to hold float32 data. */
export interface Float32HostTensor extends HostTensor {
  dtype: 'float32';
  data: Float32Array;
}

export interface ImageOptions {
  size?: ImageSize;
  mode?: ResizeMode;
  normalization?: Normalization;
  interpolation?: Interpolation;
}

/** An image that cannot be read or decoded; `path` names the file. */
export class ImageReadError extends Error {
  constructor(readonly path: string, reason: string, options?: { cause?: unknown }) {
    super(`cannot read image ${path}: ${reason}`, options);
    this.name = 'ImageReadError';
  }
}

export function inputName(input: ImageInput): string {
  return typeof input === 'string' ? input : input.name;
}

function checkSize(size: ImageSize): void {
  for (const [k, v] of Object.entries(size)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`image size: ${k} must be a positive integer, got ${v}`);
  }
}

const KERNEL: Record<Interpolation, keyof KernelEnum> = {
  bilinear: 'linear',
  nearest: 'nearest',
  lanczos3: 'lanczos3',
};

/** How sharp should resize while decoding: exact H x W, or keep aspect ('cover' / 'outside'). */
export interface DecodeResize {
  width: number;
  height: number;
  fit: 'fill' | 'cover' | 'outside';
  interpolation?: Interpolation;
  /** With 'outside': do not enlarge images already smaller than the box. */
  withoutEnlargement?: boolean;
}

/**
 * Decodes to 8-bit RGB: alpha dropped, greyscale repeated to 3 channels, 16-bit reduced to 8 (as
 * PIL's convert("RGB")). EXIF orientation is not applied, as PIL's Image.open does not either.
 */
export async function decodeRgb(input: ImageInput, resize?: DecodeResize): Promise<RgbImage> {
  const name = inputName(input);
  try {
    let pipeline = sharp(typeof input === 'string' ? input : input.data, { failOn: 'error' })
      .removeAlpha()
      .toColourspace('srgb');
    if (resize) {
      pipeline = pipeline.resize(resize.width, resize.height, {
        fit: resize.fit,
        position: 'centre',
        kernel: KERNEL[resize.interpolation ?? 'bilinear'],
        withoutEnlargement: resize.withoutEnlargement ?? false,
      });
    }
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels after conversion, got ${info.channels}`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (err) {
    if (err instanceof ImageReadError) throw err;
    const reason = typeof input === 'string' ? await imageFailureReason(input, err) : cleanMessage(err);
    throw new ImageReadError(name, reason, { cause: err });
  }
}

/** sharp's message, each distinct line once (libjpeg repeats its warnings). */
function cleanMessage(err: unknown): string {
  const lines = (err instanceof Error ? err.message : String(err)).split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return [...new Set(lines)].join('; ');
}

/**
 * Whether a JPEG or PNG file stops before its end marker (JPEG: FF D9 near the end; PNG: the IEND
 * chunk last): a download or copy cut short. The format is read from the first bytes, not the name;
 * null for other formats.
 */
export async function isTruncated(path: string): Promise<boolean | null> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(Math.min(size, 8));
    await fh.read(head, 0, head.length, 0);
    const kind = head[0] === 0xff && head[1] === 0xd8 ? 'jpeg' : head.subarray(1, 4).toString('latin1') === 'PNG' ? 'png' : null;
    if (kind === null) return null;
    const n = Math.min(size, 64);
    const tail = Buffer.alloc(n);
    await fh.read(tail, 0, n, size - n);
    if (kind === 'png') return !tail.subarray(Math.max(0, n - 12)).includes(Buffer.from('IEND'));
    // Some writers append a few bytes after the end-of-image marker: look in the last 64.
    for (let i = n - 2; i >= 0; i--) if (tail[i] === 0xff && tail[i + 1] === 0xd9) return false;
    return true;
  } finally {
    await fh.close();
  }
}

/** A decoding failure in words: "truncated ..." when the file is cut short, else the decoder's message. */
async function imageFailureReason(path: string, err: unknown): Promise<string> {
  try {
    if (await isTruncated(path)) return `truncated: the file ends before the image does (no end-of-image marker; decoder: ${cleanMessage(err)})`;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'file not found';
  }
  return cleanMessage(err);
}

/** Null when `path` is a readable image (header and end marker), else why not. Cheap: no pixel decoding. */
export async function checkImageFile(path: string): Promise<string | null> {
  try {
    const meta = await sharp(path).metadata();
    if (!meta.width || !meta.height) return 'no image size in the header';
  } catch (err) {
    return imageFailureReason(path, err);
  }
  try {
    if (await isTruncated(path)) return 'truncated: the file ends before the image does (no end-of-image marker)';
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}

/** value -> output float for each channel and each byte value: normalisation as a look-up. */
function lookupTables(normalization: Normalization): Float32Array[] {
  return [0, 1, 2].map((c) => {
    const t = new Float32Array(256);
    for (let v = 0; v < 256; v++) t[v] = normalizeValue(v / 255, c, normalization);
    return t;
  });
}

function normalizeValue(x: number, channel: number, normalization: Normalization): number {
  switch (normalization) {
    case 'imagenet': return (x - IMAGENET_MEAN[channel]!) / IMAGENET_STD[channel]!;
    case 'minus_one_one': return 2 * x - 1;
    case 'unit': return x;
    case 'caffe': return 255 * x - CAFFE_MEAN_RGB[channel]!;
  }
}

const tableCache = new Map<Normalization, Float32Array[]>();
function tablesFor(normalization: Normalization): Float32Array[] {
  let t = tableCache.get(normalization);
  if (!t) tableCache.set(normalization, (t = lookupTables(normalization)));
  return t;
}

/**
 * Writes a crop of an 8-bit HWC image as normalised planar CHW floats into `out` at `offset`
 * (a whole image when the crop is the full frame).
 */
export function normalizeRgbInto(
  img: RgbImage, normalization: Normalization, out: Float32Array, offset = 0,
  crop: { left: number; top: number; width: number; height: number } = { left: 0, top: 0, width: img.width, height: img.height },
): void {
  const [t0, t1, t2] = tablesFor(normalization) as [Float32Array, Float32Array, Float32Array];
  const { left, top, width, height } = crop;
  if (left < 0 || top < 0 || left + width > img.width || top + height > img.height) {
    throw new Error(`crop ${width}x${height}+${left}+${top} outside image ${img.width}x${img.height}`);
  }
  const plane = width * height;
  const src = img.data;
  let o = offset;
  for (let y = 0; y < height; y++) {
    let s = ((top + y) * img.width + left) * 3;
    for (let x = 0; x < width; x++, o++, s += 3) {
      out[o] = t0[src[s]!]!;
      out[o + plane] = t1[src[s + 1]!]!;
      out[o + 2 * plane] = t2[src[s + 2]!]!;
    }
  }
}

/** normalizeValue as (x − mean)·scale on [0,1] values, per channel. */
function meanAndScale(normalization: Normalization, channel: number): [number, number] {
  switch (normalization) {
    case 'imagenet': return [IMAGENET_MEAN[channel]!, 1 / IMAGENET_STD[channel]!];
    case 'minus_one_one': return [0.5, 2];
    case 'unit': return [0, 1];
    case 'caffe': return [CAFFE_MEAN_RGB[channel]! / 255, 255];
  }
}

/** Normalises a [0,1] planar float image into `out` at `offset`. */
export function normalizeFloatInto(img: FloatImage, normalization: Normalization, out: Float32Array, offset = 0): void {
  const plane = img.width * img.height;
  for (let c = 0; c < 3; c++) {
    const base = c * plane;
    const [mean, scale] = meanAndScale(normalization, c);
    for (let i = 0; i < plane; i++) out[offset + base + i] = (img.data[base + i]! - mean) * scale;
  }
}

/** 8-bit HWC -> [0,1] planar floats. */
export function rgbToFloat(img: RgbImage): FloatImage {
  const plane = img.width * img.height;
  const data = new Float32Array(3 * plane);
  const src = img.data;
  for (let i = 0, s = 0; i < plane; i++, s += 3) {
    data[i] = src[s]! / 255;
    data[i + plane] = src[s + 1]! / 255;
    data[i + 2 * plane] = src[s + 2]! / 255;
  }
  return { width: img.width, height: img.height, data };
}

export function floatTensor(shape: number[], data: Float32Array): Float32HostTensor {
  return { dtype: 'float32', shape, data };
}

/** Five square crops of side s: top-left, top-right, bottom-left, bottom-right, centre. */
export function fiveCropBoxes(width: number, height: number, side: number): { left: number; top: number; width: number; height: number }[] {
  if (side > width || side > height) throw new Error(`five crops of ${side} do not fit ${width}x${height}`);
  const box = (left: number, top: number) => ({ left, top, width: side, height: side });
  return [
    box(0, 0),
    box(width - side, 0),
    box(0, height - side),
    box(width - side, height - side),
    box(Math.round((width - side) / 2), Math.round((height - side) / 2)),
  ];
}

/**
 * Loads one image as a float32 tensor [N, 3, H, W] (N = 5 for five_crops, else 1).
 * Defaults: 480 x 640, hard_resize, ImageNet normalisation, bilinear.
 */
export async function loadImage(input: ImageInput, options: ImageOptions = {}): Promise<Float32HostTensor> {
  const size = options.size ?? DEFAULT_SIZE;
  checkSize(size);
  const mode = options.mode ?? 'hard_resize';
  const normalization = options.normalization ?? 'imagenet';
  const interpolation = options.interpolation ?? 'bilinear';
  const { height: H, width: W } = size;
  const shorter = Math.min(H, W);
  switch (mode) {
    case 'hard_resize':
    case 'central_crop': {
      const img = await decodeRgb(input, { width: W, height: H, fit: mode === 'hard_resize' ? 'fill' : 'cover', interpolation });
      const out = new Float32Array(3 * H * W);
      normalizeRgbInto(img, normalization, out);
      return floatTensor([1, 3, H, W], out);
    }
    case 'single_query': {
      const img = await decodeRgb(input, { width: shorter, height: shorter, fit: 'outside', interpolation });
      const out = new Float32Array(3 * img.height * img.width);
      normalizeRgbInto(img, normalization, out);
      return floatTensor([1, 3, img.height, img.width], out);
    }
    case 'five_crops': {
      const img = await decodeRgb(input, { width: shorter, height: shorter, fit: 'outside', interpolation });
      const boxes = fiveCropBoxes(img.width, img.height, shorter);
      const per = 3 * shorter * shorter;
      const out = new Float32Array(boxes.length * per);
      boxes.forEach((b, k) => normalizeRgbInto(img, normalization, out, k * per, b));
      return floatTensor([boxes.length, 3, shorter, shorter], out);
    }
  }
}

/**
 * Bilinear (triangle) filter taps along one axis over the span [inOffset, inOffset + inLength);
 * antialiased when shrinking, as PIL and torch do. Taps stay inside the span, so a crop is resized
 * as if it had been cut out first (its edges are clamped, no bleeding from outside).
 */
function axisTaps(outSize: number, inOffset: number, inLength: number) {
  const scale = inLength / outSize;
  const support = Math.max(scale, 1);
  const starts = new Int32Array(outSize);
  const counts = new Int32Array(outSize);
  const maxTaps = Math.ceil(support) * 2 + 2;
  const weights = new Float32Array(outSize * maxTaps);
  for (let i = 0; i < outSize; i++) {
    const centre = inOffset + (i + 0.5) * scale;
    const lo = Math.max(inOffset, Math.floor(centre - support));
    const hi = Math.min(inOffset + inLength - 1, Math.ceil(centre + support));
    let sum = 0;
    let n = 0;
    for (let j = lo; j <= hi && n < maxTaps; j++) {
      const w = Math.max(0, 1 - Math.abs((j + 0.5 - centre) / support));
      if (w === 0) { // the triangle's taps are contiguous: skip leading zeros, stop at trailing ones
        if (n === 0) continue;
        break;
      }
      weights[i * maxTaps + n] = w;
      if (n === 0) starts[i] = j;
      sum += w;
      n++;
    }
    if (sum === 0) {
      // Only when the centre falls outside the image: take the nearest edge pixel.
      starts[i] = Math.min(inOffset + inLength - 1, Math.max(inOffset, Math.floor(centre)));
      weights[i * maxTaps] = 1;
      n = 1;
      sum = 1;
    }
    for (let k = 0; k < n; k++) weights[i * maxTaps + k]! /= sum;
    counts[i] = n;
  }
  return { starts, counts, weights, maxTaps };
}

/**
 * Resizes a planar float image (optionally a box of it) to outWidth x outHeight with a bilinear
 * filter that averages when shrinking (like PIL's BILINEAR and torch's antialias=True).
 */
export function resizeFloat(
  img: FloatImage, outWidth: number, outHeight: number,
  box: { left: number; top: number; width: number; height: number } = { left: 0, top: 0, width: img.width, height: img.height },
): FloatImage {
  const { left, top, width, height } = box;
  if (!Number.isInteger(left) || !Number.isInteger(top) || left < 0 || top < 0 || width < 1 || height < 1
    || left + width > img.width || top + height > img.height) {
    throw new Error(`resize box ${width}x${height}+${left}+${top} outside image ${img.width}x${img.height}`);
  }
  const hx = axisTaps(outWidth, left, width);
  const hy = axisTaps(outHeight, top, height);
  const inPlane = img.width * img.height;
  // Horizontal pass only over the rows the vertical pass will read.
  const rowLo = hy.starts.reduce((a, b) => Math.min(a, b), img.height);
  let rowHi = 0;
  for (let i = 0; i < outHeight; i++) rowHi = Math.max(rowHi, hy.starts[i]! + hy.counts[i]! - 1);
  const rows = rowHi - rowLo + 1;
  const tmp = new Float32Array(3 * rows * outWidth);
  // Arrays hoisted into locals: V8 keeps property loads inside these hot loops otherwise.
  const src = img.data, inW = img.width;
  const xStarts = hx.starts, xCounts = hx.counts, xWeights = hx.weights, xTaps = hx.maxTaps;
  for (let c = 0; c < 3; c++) {
    for (let r = 0; r < rows; r++) {
      const row = c * inPlane + (rowLo + r) * inW;
      const dst = (c * rows + r) * outWidth;
      for (let x = 0; x < outWidth; x++) {
        const s = row + xStarts[x]!;
        const wo = x * xTaps;
        const n = xCounts[x]!;
        let acc = xWeights[wo]! * src[s]!;
        for (let k = 1; k < n; k++) acc += xWeights[wo + k]! * src[s + k]!;
        tmp[dst + x] = acc;
      }
    }
  }
  const outPlane = outWidth * outHeight;
  const out = new Float32Array(3 * outPlane);
  const yStarts = hy.starts, yCounts = hy.counts, yWeights = hy.weights, yTaps = hy.maxTaps;
  // Vertical pass as weighted sums of whole rows (contiguous, cache-friendly).
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < outHeight; y++) {
      const s = yStarts[y]! - rowLo;
      const wo = y * yTaps;
      const n = yCounts[y]!;
      const dst = c * outPlane + y * outWidth;
      for (let k = 0; k < n; k++) {
        const wk = yWeights[wo + k]!;
        const from = (c * rows + s + k) * outWidth;
        for (let x = 0; x < outWidth; x++) out[dst + x] += wk * tmp[from + x]!;
      }
    }
  }
  return { width: outWidth, height: outHeight, data: out };
}

/** A loader transform (input, index) => tensor for the given options (no augmentation). */
export function imageTransform(options: ImageOptions = {}): (input: ImageInput, index: number) => Promise<Float32HostTensor> {
  checkSize(options.size ?? DEFAULT_SIZE);
  return (input) => loadImage(input, options);
}
