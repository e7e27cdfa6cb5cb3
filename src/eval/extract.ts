// Descriptor extraction: images -> batches (prefetching loader) -> model.forward in inference mode ->
// one [rows, D] float32 matrix, filled in place (no per-batch copies kept). Saved as NumPy .npy v1.0
// so `numpy.load` reads it.
import { open, readFile } from 'node:fs/promises';
import * as torch from '../torch/index.ts';
import type { Tensor } from '../torch/index.ts';
import { loadImage, type ImageSize, type Interpolation, type Normalization, type ResizeMode } from '../data/image.ts';
import { loadBatches, type ImageTransform } from '../data/loader.ts';
import { progressBar } from '../util/progress.ts';
import { readNpy, writeNpyChunks } from '../data/npy.ts';

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
