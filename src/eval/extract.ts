// Descriptor extraction: images -> batches (prefetching loader) -> model.forward in inference mode ->
// one [rows, D] float32 matrix, filled in place (no per-batch copies kept). Saved as NumPy .npy v1.0
// so `numpy.load` reads it.
import { open, readFile } from 'node:fs/promises';
import * as torch from '../torch/index.ts';
import { withAtomicFile } from '../torch/serialization/atomic.ts';
import type { Tensor } from '../torch/index.ts';
import { loadImage, type ImageSize, type Interpolation, type Normalization, type ResizeMode } from '../data/image.ts';
import { loadBatches, type ImageTransform } from '../data/loader.ts';
import { progressBar } from '../data/progress.ts';

/** What evaluation needs of a network (the lead's network class satisfies it structurally). */
export interface DescriptorModel {
  /** Images [B, 3, H, W] -> descriptors [B, dim] (searched by plain L2 distance, so any length). */
  forward(images: Tensor): Tensor;
  readonly dim: number;
  readonly inputNormalization: Exclude<Normalization, 'unit'>;
  eval(): unknown;
}

export interface ExtractOptions {
  /** How each image becomes network input (default hard_resize; five_crops gives 5 rows per image). */
  mode?: ResizeMode;
  /** Network input size (default 480 x 640). */
  size?: ImageSize;
  interpolation?: Interpolation;
  /** Images per forward pass (default 16; single_query requires 1, as image sizes differ). */
  batchSize?: number;
  /** Images decoding at once (loader default). */
  concurrency?: number;
  /** With five_crops: average the 5 crop descriptors into one row per image (default false: keep all 5). */
  meanOfCrops?: boolean;
  /** Progress bar on stderr (default: when stderr is a TTY). */
  progress?: boolean;
  /** Progress bar label, e.g. "database". */
  label?: string;
  /** Device for the forward pass (default cpu); the result is always on the CPU. */
  device?: torch.Device;
  signal?: AbortSignal;
  /** Replaces image loading (tests, custom pipelines): must return float32 [k, 3, H, W]. */
  transform?: ImageTransform;
}

export function imageNormalization(model: Pick<DescriptorModel, 'inputNormalization'>): Normalization {
  return model.inputNormalization;
}

/**
 * Descriptors of `paths` in order: [paths.length * c, model.dim] float32 on the CPU, where c is 5 for
 * five_crops without meanOfCrops (rows 5i..5i+4 are image i's crops in five-crop order), else 1.
 */
export async function extractDescriptors(model: DescriptorModel, paths: readonly string[], options: ExtractOptions = {}): Promise<Tensor> {
  const mode = options.mode ?? 'hard_resize';
  const batchSize = options.batchSize ?? (mode === 'single_query' ? 1 : 16);
  if (mode === 'single_query' && batchSize !== 1) {
    throw new Error(`extract: single_query keeps each image's own size, so the batch size must be 1 (got ${batchSize})`);
  }
  const dim = model.dim;
  if (!Number.isInteger(dim) || dim < 1) throw new Error(`extract: model.dim must be a positive integer, got ${dim}`);
  const normalization = imageNormalization(model);
  const transform = options.transform
    ?? ((path: string) => loadImage(path, { mode, size: options.size, interpolation: options.interpolation, normalization }));
  const device = options.device ?? 'cpu';
  model.eval();

  let out: Tensor | null = null;
  const bar = progressBar(options.label ?? 'extract', paths.length, { show: options.progress, unit: 'img' });
  try {
    for await (const batch of loadBatches(paths, transform, { batchSize, concurrency: options.concurrency, signal: options.signal })) {
      const c = batch.itemsPerImage;
      const images = batch.indices.length;
      const perImage = options.meanOfCrops ? 1 : c;
      torch.inferenceMode(() => torch.tidy(() => {
        let x = torch.fromHost(batch.images);
        if (device !== 'cpu') x = x.to(device);
        let y = model.forward(x);
        if (y.ndim !== 2 || y.size(0) !== images * c || y.size(1) !== dim) {
          throw new Error(`extract: the model returned [${y.shape}] for a batch of ${images * c} inputs starting at ${paths[batch.indices[0]]}; expected [${images * c}, ${dim}] (model.dim = ${dim})`);
        }
        if (!y.isfinite().all()) {
          throw new Error(`extract: the model returned NaN or infinite descriptors for the batch of ${images} image(s) starting at ${paths[batch.indices[0]]}`);
        }
        if (device !== 'cpu') y = y.to('cpu');
        if (perImage !== c) y = y.view(images, c, dim).mean(1);
        if (out === null) out = torch.keep(torch.empty([paths.length * perImage, dim]));
        else if (out.size(0) !== paths.length * perImage) throw new Error(`extract: ${paths[batch.indices[0]]} gave ${c} inputs per image, unlike earlier batches`);
        out.narrow(0, batch.indices[0] * perImage, images * perImage).copy_(y);
      }));
      bar.tick(images);
    }
  } catch (e) {
    (out as Tensor | null)?.dispose();
    throw e;
  } finally {
    bar.stop();
  }
  return out ?? torch.empty([0, dim]);
}

// ---- .npy v1.0 (little-endian float32, C order) ---------------------------------------------

const NPY_MAGIC = '\x93NUMPY';

/** The .npy v1.0 header for a little-endian float32 C-order array of `shape`. */
export function npyHeader(shape: readonly number[]): Buffer {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  // Magic (6) + version (2) + length (2) + dict + '\n' is padded with spaces to a multiple of 64.
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  dict = dict.padEnd(total - 10 - 1, ' ') + '\n';
  if (dict.length > 65535) throw new Error('npy: header too long for format 1.0');
  const head = Buffer.alloc(10);
  head.write(NPY_MAGIC, 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(dict.length, 8);
  return Buffer.concat([head, Buffer.from(dict, 'latin1')]);
}

/** Writes float32 values of `shape` as a .npy file (numpy.load reads it). */
export async function writeNpy(path: string, data: Float32Array, shape: readonly number[]): Promise<void> {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`npy: ${data.length} values do not fill shape [${shape}] for ${path}`);
  await writeNpyChunks(path, shape, [data]);
}

/** Writes a .npy file from consecutive float32 chunks (C order), so a large matrix need not be copied whole. */
export async function writeNpyChunks(path: string, shape: readonly number[], chunks: Iterable<Float32Array>): Promise<void> {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('npy: big-endian hosts are not supported');
  const count = shape.reduce((a, b) => a * b, 1);
  // Atomic (temp file + rename): a full disk or a kill never leaves a short .npy behind.
  await withAtomicFile(path, async (fh) => {
    let written = 0;
    await fh.write(npyHeader(shape));
    for (const chunk of chunks) {
      written += chunk.length;
      if (written > count) break;
      const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      for (let o = 0; o < bytes.length; o += 1 << 26) await fh.write(bytes.subarray(o, Math.min(bytes.length, o + (1 << 26))));
    }
    if (written !== count) throw new Error(`npy: ${written} values for shape [${shape}] (${count} values)`);
  });
}

/** Header fields and raw data bytes of a C-order .npy file. */
async function readNpyRaw(path: string): Promise<{ shape: number[]; count: number; descr: string; raw: Buffer }> {
  const buf = await readFile(path);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== NPY_MAGIC) throw new Error(`npy: ${path} is not a .npy file (bad magic)`);
  const major = buf[6];
  const headerLength = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLength);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw new Error(`npy: ${path} has an unreadable header: ${header.trim()}`);
  if (fortran === 'True') throw new Error(`npy: ${path} is in Fortran order; save it C-ordered (numpy.ascontiguousarray)`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const raw = buf.subarray(start + headerLength);
  const size = { '<f4': 4, '<f8': 8, '<i4': 4 }[descr];
  if (size !== undefined && raw.length !== count * size) throw new Error(`npy: ${path} holds ${raw.length} data bytes, shape [${shape}] of ${descr} needs ${count * size}`);
  return { shape, count, descr, raw };
}

/** The shape and dtype of a .npy file, read from its header only (a large matrix is not loaded). */
export async function readNpyHeader(path: string): Promise<{ shape: number[]; descr: string; dataBytes: number }> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(Math.min(size, 65536 + 12));
    await fh.read(head, 0, head.length, 0);
    if (head.length < 10 || head.toString('latin1', 0, 6) !== NPY_MAGIC) throw new Error(`npy: ${path} is not a .npy file (bad magic)`);
    const headerLength = head[6] === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
    const start = head[6] === 1 ? 10 : 12;
    const header = head.toString('latin1', start, start + headerLength);
    const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
    const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
    if (descr === undefined || shapeText === undefined) throw new Error(`npy: ${path} has an unreadable header: ${header.trim()}`);
    const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
    return { shape, descr, dataBytes: size - start - headerLength };
  } finally {
    await fh.close();
  }
}

/** Reads a little-endian float32 or float64 C-order .npy file as float32. */
export async function readNpy(path: string): Promise<{ shape: number[]; data: Float32Array }> {
  const { shape, count, descr, raw } = await readNpyRaw(path);
  if (descr === '<f4') {
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(raw);
    return { shape, data };
  }
  if (descr === '<f8') {
    const wide = new Float64Array(count);
    new Uint8Array(wide.buffer).set(raw);
    return { shape, data: Float32Array.from(wide) };
  }
  throw new Error(`npy: ${path} has dtype ${descr}; only little-endian float32 (<f4) or float64 (<f8) are read`);
}

/** Reads a little-endian int32 C-order .npy file (e.g. neighbour indices saved by numpy). */
export async function readNpyInt32(path: string): Promise<{ shape: number[]; data: Int32Array }> {
  const { shape, count, descr, raw } = await readNpyRaw(path);
  if (descr !== '<i4') throw new Error(`npy: ${path} has dtype ${descr}; expected little-endian int32 (<i4)`);
  const data = new Int32Array(count);
  new Uint8Array(data.buffer).set(raw);
  return { shape, data };
}

/** Saves a descriptor matrix [rows, D] as .npy, copying ~64 MB of rows out of the engine at a time. */
export async function saveDescriptors(path: string, descriptors: Tensor): Promise<void> {
  if (descriptors.ndim !== 2) throw new Error(`npy: descriptors must be [rows, dim], got [${descriptors.shape}] for ${path}`);
  const [rows, dim] = descriptors.shape as [number, number];
  const step = Math.max(1, Math.floor((1 << 24) / Math.max(1, dim)));
  function* chunks(): Generator<Float32Array> {
    for (let r0 = 0; r0 < rows; r0 += step) yield torch.tidy(() => descriptors.narrow(0, r0, Math.min(step, rows - r0)).toFloat32Array());
  }
  await writeNpyChunks(path, [rows, dim], chunks());
}

/** Loads a .npy descriptor matrix [rows, D] as an engine tensor. */
export async function loadDescriptors(path: string): Promise<Tensor> {
  const { shape, data } = await readNpy(path);
  if (shape.length !== 2) throw new Error(`npy: ${path} has shape [${shape}]; descriptors must be [rows, dim]`);
  return torch.tensor(data, shape);
}
