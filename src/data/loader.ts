// Batch loader: images in order, decoded ahead in parallel, bounded memory, cancellable.
// sharp decodes on libuv's thread pool, so several images in flight keep the cores busy while the
// consumer (training/extraction) works on the previous batch. With `workers`, the JS part of each
// image (normalisation, augmentation) also leaves the main thread: worker threads run the whole
// transform and hand the floats back without a copy.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { queryTransform, type QueryTransformOptions } from './augment.ts';
import { imageTransform, type Float32HostTensor, type ImageOptions } from './image.ts';

/** Turns image `index` (path `path`) into a float32 tensor [k, 3, H, W]; k is usually 1. */
export type ImageTransform = (path: string, index: number) => Promise<Float32HostTensor>;

/** A transform described by data, so worker threads can rebuild it. */
export type TransformSpec =
  | { kind: 'image'; options: ImageOptions }
  | { kind: 'query'; options: QueryTransformOptions };

export function transformFromSpec(spec: TransformSpec): ImageTransform {
  switch (spec.kind) {
    case 'image': return imageTransform(spec.options);
    case 'query': return queryTransform(spec.options);
  }
}

export interface BatchLoaderOptions {
  batchSize: number;
  /**
   * Images started at once (default: max(libuv pool size, batchSize), so a whole batch sits in
   * the pool's queue and decodes even while the main thread is busy in a synchronous step).
   */
  concurrency?: number;
  /** Worker threads running a TransformSpec (default 0: transforms run on this thread). */
  workers?: number;
  /**
   * Batches loaded ahead of the one being assembled (default 1: double buffering). Memory held is
   * about (prefetchBatches + 2) batches: e.g. 48 images of 480x640 = 177 MB per batch.
   */
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
export async function* loadBatches(paths: readonly string[], transformOrSpec: ImageTransform | TransformSpec, options: BatchLoaderOptions): AsyncGenerator<ImageBatch, void, undefined> {
  const { batchSize, dropLast = false, signal, workers = 0 } = options;
  checkPositiveInt('batchSize', batchSize);
  const concurrency = options.concurrency ?? Math.max(defaultConcurrency(), batchSize);
  const prefetchBatches = options.prefetchBatches ?? 1;
  checkPositiveInt('concurrency', concurrency);
  if (!Number.isInteger(workers) || workers < 0) throw new Error(`batch loader: workers must be an integer >= 0, got ${workers}`);
  if (workers > 0 && typeof transformOrSpec === 'function') {
    throw new Error('batch loader: workers need a TransformSpec ({ kind, options }), not a function');
  }
  if (!Number.isInteger(prefetchBatches) || prefetchBatches < 0) {
    throw new Error(`batch loader: prefetchBatches must be an integer >= 0, got ${prefetchBatches}`);
  }
  const pool = workers > 0 ? new TransformPool(transformOrSpec as TransformSpec, workers) : undefined;
  const transform = pool ? pool.transform : typeof transformOrSpec === 'function' ? transformOrSpec : transformFromSpec(transformOrSpec);
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
    await pool?.close();
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

// ---------------------------------------------------------------- worker threads

interface WorkerRequest { id: number; path: string; index: number }
type WorkerReply =
  | { id: number; shape: number[]; data: Float32Array }
  | { id: number; error: string; path?: string };

const WORKER_TAG = 'vgl-image-worker';

/** Worker threads that each rebuild the transform from its spec and serve requests concurrently. */
export class TransformPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (t: Float32HostTensor) => void; reject: (e: unknown) => void; path: string; index: number; worker: number }>();
  private readonly load: number[];
  private nextId = 0;
  private failure: Error | undefined;

  constructor(spec: TransformSpec, count: number) {
    checkPositiveInt('workers', count);
    transformFromSpec(spec); // validates the options here, where the error is easy to see
    // The worker imports this module through tsx's loader (the repo runs TypeScript directly).
    const tsxApi = import.meta.resolve('tsx/esm/api');
    const code = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); });`;
    for (let w = 0; w < count; w++) {
      const worker = new Worker(code, { eval: true, workerData: { tag: WORKER_TAG, spec } });
      worker.on('message', (m: WorkerReply) => this.settle(m));
      worker.on('error', (e) => this.fail(e));
      worker.on('exit', (code) => { if (code !== 0) this.fail(new Error(`image worker exited with code ${code}`)); });
      worker.unref(); // idle workers must not keep the process alive; ref'd while requests are out
      this.workers.push(worker);
    }
    this.load = new Array<number>(count).fill(0);
  }

  readonly transform: ImageTransform = (path, index) => {
    if (this.failure) return Promise.reject(this.failure);
    let w = 0;
    for (let k = 1; k < this.load.length; k++) if (this.load[k]! < this.load[w]!) w = k;
    const id = this.nextId++;
    if (this.load[w]!++ === 0) this.workers[w]!.ref();
    return new Promise<Float32HostTensor>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, path, index, worker: w });
      this.workers[w]!.postMessage({ id, path, index } satisfies WorkerRequest);
    });
  };

  private settle(m: WorkerReply): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (--this.load[p.worker]! === 0) this.workers[p.worker]!.unref();
    if ('error' in m) p.reject(new ImageLoadError(p.path, p.index, new Error(m.error)));
    else p.resolve({ dtype: 'float32', shape: m.shape, data: m.data });
  }

  private fail(e: unknown): void {
    this.failure ??= e instanceof Error ? e : new Error(String(e));
    for (const p of this.pending.values()) p.reject(new ImageLoadError(p.path, p.index, this.failure));
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.failure ??= new Error('image worker pool closed');
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

function serveWorker(spec: TransformSpec): void {
  const transform = transformFromSpec(spec);
  const port = parentPort!;
  port.on('message', (req: WorkerRequest) => {
    transform(req.path, req.index).then(
      (t) => port.postMessage({ id: req.id, shape: t.shape, data: t.data } satisfies WorkerReply, [t.data.buffer as ArrayBuffer]),
      (e: unknown) => port.postMessage({ id: req.id, error: e instanceof Error ? e.message : String(e) } satisfies WorkerReply),
    );
  });
}

if (!isMainThread && (workerData as { tag?: string } | null)?.tag === WORKER_TAG) {
  serveWorker((workerData as { spec: TransformSpec }).spec);
}
