// Worker thread of `vgl synth`: rebuilds the (seeded, hence identical) city once, then renders,
// JPEG-encodes and writes the jobs the main thread sends, answering with how many it wrote.

import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { buildCity, type CityLayout } from './city.ts';
import { writeJob, type RenderJob } from './write.ts';
import type { StyleName } from './styles.ts';

export interface WorkerInit {
  style: StyleName;
  seed: number;
  layout: CityLayout;
  width: number;
  height: number;
  quality: number;
}

if (parentPort === null) throw new Error('synth worker.ts must run in a worker thread');
const port = parentPort;
// One libvips thread per worker: the workers themselves use the cores.
sharp.concurrency(1);
const init = workerData as WorkerInit;
const city = buildCity(init.style, init.seed, init.layout);

port.on('message', (jobs: RenderJob[]) => {
  void (async () => {
    try {
      for (const job of jobs) await writeJob(city, job, init);
      port.postMessage({ ok: jobs.length });
    } catch (e) {
      port.postMessage({ error: e instanceof Error ? `${e.message}` : String(e) });
    }
  })();
});
