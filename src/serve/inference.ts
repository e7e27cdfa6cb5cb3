// The server's side of the inference worker: a bounded queue of prepared images, sent to the worker
// in batches (the requests waiting while it works go together in one forward pass), answers routed
// back to their requests. A worker that dies fails its batch and is started again.
import { Worker } from 'node:worker_threads';

export interface WorkerSetup {
  indexDir: string;
  radius: number;
}

export type WorkerRequest =
  | { type: 'localize'; id: number; inputs: Float32Array; count: number; k: number }
  | { type: 'close' };

export type WorkerReply =
  | { type: 'ready'; count: number }
  | { type: 'fatal'; message: string }
  | { type: 'result'; id: number; k: number; indices: Int32Array; distances: Float32Array; describeMs: number; searchMs: number }
  | { type: 'error'; id: number; message: string };

/** The nearest database rows of one image. */
export interface Neighbours {
  indices: Int32Array;
  distances: Float32Array;
  /** Time of the batch it ran in: describing the images, searching. */
  describeMs: number;
  searchMs: number;
  batch: number;
}

/** The queue is full: the service is overloaded (HTTP 503). */
export class BusyError extends Error {
  readonly statusCode = 503;
  constructor(queued: number) {
    super(`busy: ${queued} photos are waiting; try again shortly`);
    this.name = 'BusyError';
  }
}

export interface InferenceOptions {
  /** Images per forward pass at most (default 8). */
  maxBatch?: number;
  /** Images waiting at most; beyond, requests are refused with BusyError (default 64). */
  maxQueue?: number;
  radius?: number;
}

interface Pending {
  input: Float32Array;
  k: number;
  resolve: (n: Neighbours) => void;
  reject: (e: Error) => void;
}

const ENTRY = new URL('./worker-entry.mjs', import.meta.url);

export class Inference {
  private worker: Worker | null = null;
  private queue: Pending[] = [];
  private inFlight: Pending[] = [];
  private nextId = 1;
  private closing = false;
  readonly stats = { served: 0, failed: 0, batches: 0, restarts: 0, alive: false };

  private constructor(readonly indexDir: string, private readonly options: Required<InferenceOptions>) {}

  /** Starts the worker and waits until it has loaded the index and the model. */
  static async start(indexDir: string, options: InferenceOptions = {}): Promise<Inference> {
    const inf = new Inference(indexDir, { maxBatch: options.maxBatch ?? 8, maxQueue: options.maxQueue ?? 64, radius: options.radius ?? 25 });
    await inf.spawn();
    return inf;
  }

  get queued(): number {
    return this.queue.length;
  }

  private spawn(): Promise<void> {
    const setup: WorkerSetup = { indexDir: this.indexDir, radius: this.options.radius };
    const worker = new Worker(ENTRY, { workerData: setup });
    this.worker = worker;
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (m: WorkerReply) => {
        if (m.type === 'ready') {
          ready = true;
          this.stats.alive = true;
          resolve();
          this.pump();
        } else if (m.type === 'fatal') {
          reject(new Error(`inference worker: ${m.message}`));
        } else this.answer(m);
      });
      worker.on('error', (e) => {
        if (!ready) reject(e);
        this.failInFlight(new Error(`inference worker failed: ${e.message}`));
      });
      worker.on('exit', (code) => {
        this.stats.alive = false;
        if (this.worker === worker) this.worker = null;
        if (!ready) {
          reject(new Error(`inference worker exited (code ${code}) before it was ready`));
          return;
        }
        this.failInFlight(new Error(`inference worker exited (code ${code})`));
        if (!this.closing) {
          this.stats.restarts++;
          this.spawn().catch((e: Error) => {
            for (const p of this.queue.splice(0)) p.reject(e);
          });
        }
      });
    });
  }

  /** The k nearest database rows of one prepared image ([3, H, W] values). */
  neighbours(input: Float32Array, k: number): Promise<Neighbours> {
    if (this.closing) return Promise.reject(new Error('the service is shutting down'));
    if (this.queue.length >= this.options.maxQueue) return Promise.reject(new BusyError(this.queue.length));
    return new Promise((resolve, reject) => {
      this.queue.push({ input, k, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.worker === null || !this.stats.alive || this.inFlight.length > 0 || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.options.maxBatch);
    const per = batch[0].input.length;
    const inputs = new Float32Array(per * batch.length);
    batch.forEach((p, i) => inputs.set(p.input, i * per));
    const k = Math.max(...batch.map((p) => p.k));
    this.inFlight = batch;
    this.stats.batches++;
    const msg: WorkerRequest = { type: 'localize', id: this.nextId++, inputs, count: batch.length, k };
    this.worker.postMessage(msg, [inputs.buffer]);
  }

  private answer(m: Extract<WorkerReply, { type: 'result' | 'error' }>): void {
    const batch = this.inFlight;
    this.inFlight = [];
    if (m.type === 'error') {
      this.stats.failed += batch.length;
      for (const p of batch) p.reject(new Error(`inference: ${m.message}`));
    } else {
      batch.forEach((p, i) => {
        const kk = Math.min(p.k, m.k);
        this.stats.served++;
        p.resolve({
          indices: m.indices.slice(i * m.k, i * m.k + kk), distances: m.distances.slice(i * m.k, i * m.k + kk),
          describeMs: m.describeMs, searchMs: m.searchMs, batch: batch.length,
        });
      });
    }
    this.pump();
  }

  private failInFlight(e: Error): void {
    const batch = this.inFlight;
    this.inFlight = [];
    this.stats.failed += batch.length;
    for (const p of batch) p.reject(e);
  }

  /** Stops the worker (waiting requests fail). */
  async close(): Promise<void> {
    this.closing = true;
    for (const p of this.queue.splice(0)) p.reject(new Error('the service is shutting down'));
    const w = this.worker;
    if (w === null) return;
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.postMessage({ type: 'close' } satisfies WorkerRequest);
    const timer = setTimeout(() => void w.terminate(), 5000);
    await exited;
    clearTimeout(timer);
  }
}
