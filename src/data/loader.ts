// Batch loader: images in order, decoded ahead in parallel, bounded memory, cancellable.
// sharp decodes on libuv's thread pool, so several images in flight keep the cores busy while the
// consumer (training/extraction) works on the previous batch.

import type { Float32HostTensor } from './image.ts';

/** Turns image `index` (path `path`) into a float32 tensor [k, 3, H, W]; k is usually 1. */
export type ImageTransform = (path: string, index: number) => Promise<Float32HostTensor>;

export interface BatchLoaderOptions {
  batchSize: number;
  /** Images decoding at once (default: libuv pool size, UV_THREADPOOL_SIZE or 4). */
  concurrency?: number;
  /** Finished batches held ahead of the consumer (default 2): bounds memory. */
  prefetchBatches?: number;
  /** Drop a last, smaller batch (default false). */
  dropLast?: boolean;
  signal?: AbortSignal;
}

export interface ImageBatch {
  /** float32 [sum of k over the batch, 3, H, W]. */
  images: Float32HostTensor;
  /** Positions in `paths` of the batch's images, in order. */
  indices: number[];
  /** Rows of `images` per image (1, or 5 for five crops). */
  itemsPerImage: number;
}

/** A failure to load one image; the message starts with its path. */
export class ImageLoadError extends Error {
  constructor(readonly path: string, readonly index: number, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(reason.includes(path) ? reason : `${path}: ${reason}`, { cause });
    this.name = 'ImageLoadError';
  }
}

export function defaultConcurrency(): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(pool) && pool > 0 ? pool : 4; // libuv's default pool size
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`batch loader: ${name} must be a positive integer, got ${v}`);
}

/**
 * Yields batches of `paths` in order. At most `concurrency` transforms run at once and at most
 * `prefetchBatches` batches beyond the current one are loaded ahead. Breaking out of a
 * for-await loop (or calling return()) stops new work and waits for the in-flight images.
 */
export async function* loadBatches(paths: readonly string[], transform: ImageTransform, options: BatchLoaderOptions): AsyncGenerator<ImageBatch, void, undefined> {
  const { batchSize, dropLast = false, signal } = options;
  const concurrency = options.concurrency ?? defaultConcurrency();
  const prefetchBatches = options.prefetchBatches ?? 2;
  checkPositiveInt('batchSize', batchSize);
  checkPositiveInt('concurrency', concurrency);
  if (!Number.isInteger(prefetchBatches) || prefetchBatches < 0) {
    throw new Error(`batch loader: prefetchBatches must be an integer >= 0, got ${prefetchBatches}`);
  }
  const total = dropLast ? paths.length - (paths.length % batchSize) : paths.length;
  const window = (prefetchBatches + 1) * batchSize; // images held: current batch + prefetched ones

  const tasks = new Map<number, Promise<Float32HostTensor>>();
  const inFlight = new Set<Promise<unknown>>();
  let next = 0; // next index to start
  let consumed = 0; // first index of the batch being assembled
  let running = 0;
  let stopped = false;

  const pump = (): void => {
    while (!stopped && running < concurrency && next < total && next < consumed + window) {
      const i = next++;
      const path = paths[i]!;
      running++;
      const task = (async () => {
        try {
          return await transform(path, i);
        } catch (err) {
          throw err instanceof ImageLoadError ? err : new ImageLoadError(path, i, err);
        }
      })();
      tasks.set(i, task);
      // Handled here so a failure ahead of the consumer is not an unhandled rejection;
      // the consumer still sees it when it awaits this index.
      const settled = task.then(() => undefined, () => undefined).then(() => {
        running--;
        inFlight.delete(settled);
        pump();
      });
      inFlight.add(settled);
    }
  };

  try {
    for (let start = 0; start < total; start += batchSize) {
      signal?.throwIfAborted();
      consumed = start;
      pump();
      const end = Math.min(start + batchSize, total);
      const parts: Float32HostTensor[] = [];
      for (let i = start; i < end; i++) {
        const t = await tasks.get(i)!;
        tasks.delete(i);
        signal?.throwIfAborted();
        parts.push(t);
      }
      // Let the next batches start decoding before the consumer takes this one.
      consumed = end;
      pump();
      yield assemble(parts, paths, start);
    }
  } finally {
    stopped = true;
    await Promise.all([...inFlight]);
    tasks.clear();
  }
}

function assemble(parts: Float32HostTensor[], paths: readonly string[], start: number): ImageBatch {
  const first = parts[0]!;
  const shape = first.shape;
  if (first.dtype !== 'float32' || shape.length !== 4 || shape[1] !== 3) {
    throw new ImageLoadError(paths[start]!, start, new Error(`transform returned ${first.dtype} [${shape.join(', ')}], expected float32 [k, 3, H, W]`));
  }
  const per = first.data.length;
  parts.forEach((p, k) => {
    if (p.dtype !== 'float32' || p.shape.length !== 4 || p.shape.some((s, d) => s !== shape[d])) {
      const i = start + k;
      throw new ImageLoadError(paths[i]!, i, new Error(
        `shape [${p.shape.join(', ')}] differs from [${shape.join(', ')}] of ${paths[start]} in the same batch `
        + '(single_query keeps each image\'s size: use batch size 1)'));
    }
  });
  const data = new Float32Array(per * parts.length);
  parts.forEach((p, k) => data.set(p.data, k * per));
  return {
    images: { dtype: 'float32', shape: [shape[0]! * parts.length, 3, shape[2]!, shape[3]!], data },
    indices: parts.map((_, k) => start + k),
    itemsPerImage: shape[0]!,
  };
}
