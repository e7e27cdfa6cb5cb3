// The service's inference worker: a thread that owns the model and the descriptors (libtorch work
// blocks its thread, never the server's event loop). It receives prepared images in batches and
// answers with each image's nearest database images; the server estimates positions itself.
import { parentPort, workerData } from 'node:worker_threads';
import { Localizer } from './localizer.ts';
import type { WorkerReply, WorkerRequest, WorkerSetup } from './inference.ts';

const port = parentPort!;
const setup = workerData as WorkerSetup;
const post = (m: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

try {
  const localizer = await Localizer.open(setup.indexDir, { radius: setup.radius, log: (s) => console.error(`inference worker: ${s}`) });
  port.on('message', (m: WorkerRequest) => {
    if (m.type === 'close') {
      void localizer.close().then(() => process.exit(0));
      return;
    }
    try {
      const t0 = performance.now();
      const descriptors = localizer.describe(m.inputs, m.count);
      const t1 = performance.now();
      const rows = localizer.search(descriptors, m.k);
      post({ type: 'result', id: m.id, k: rows.k, indices: rows.indices, distances: rows.distances, describeMs: t1 - t0, searchMs: performance.now() - t1 },
        [rows.indices.buffer as ArrayBuffer, rows.distances.buffer as ArrayBuffer]);
    } catch (e) {
      post({ type: 'error', id: m.id, message: (e as Error).message });
    }
  });
  post({ type: 'ready', count: localizer.count });
} catch (e) {
  post({ type: 'fatal', message: (e as Error).message });
}
