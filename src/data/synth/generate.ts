// `vgl synth` as a library call: plan the dataset, render every view on worker threads, write the
// datasets_vg layout <out>/<name>/images/{train,val,test}/{database,queries}/*.jpg, synth.json (the
// parameters) and synth-preview.png (test queries beside database images of their place).

import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { SingleBar } from 'cli-progress';
import { SynthOptionsSchema, resolveParams, type SynthOptions, type SynthParams } from './options.ts';
import { planDataset, type SynthPlan, type UtmDistrict } from './plan.ts';
import { writeJob, type RenderJob } from './write.ts';
import { writePreview } from './preview.ts';
import type { WorkerInit } from './worker.ts';
import type { Split } from './city.ts';

export interface SynthSummary {
  /** Absolute <out>/<name>. */
  dir: string;
  params: SynthParams;
  counts: Record<Split, { database: number; queries: number; places: number }>;
  images: number;
  districts: UtmDistrict[];
  seconds: number;
}

/** Generates the synthetic dataset; options are validated (zod) and completed from the size preset. */
export async function generateCity(options: SynthOptions): Promise<SynthSummary> {
  const parsed = SynthOptionsSchema.safeParse(options);
  if (!parsed.success) {
    throw new Error(`synth: invalid options\n${parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n')}`);
  }
  const o = parsed.data;
  const t0 = performance.now();
  const params = resolveParams(o);
  const plan = planDataset(params);
  const dir = resolve(o.out, o.name);
  await prepareFolder(dir, o.overwrite);
  for (const split of ['train', 'val', 'test']) {
    for (const kind of ['database', 'queries']) await mkdir(join(dir, 'images', split, kind), { recursive: true });
  }
  // Written first: it also marks the folder as ours, so an interrupted run can be --overwrite'n.
  await writeFile(join(dir, 'synth.json'), JSON.stringify(describe(plan), null, 2) + '\n');
  const jobs: RenderJob[] = plan.images.map((im) => ({
    path: join(dir, im.file), camera: im.view.camera, conditions: im.view.conditions, occluders: im.view.occluders,
  }));
  const bar = o.progress ? progressBar(jobs.length) : undefined;
  if (o.workers === 0) {
    for (const job of jobs) {
      await writeJob(plan.city, job, params);
      bar?.tick(1);
    }
  } else {
    await renderOnWorkers(jobs, params, o.workers, (n) => bar?.tick(n));
  }
  bar?.stop();
  await writePreview(plan, join(dir, 'synth-preview.png'));
  return {
    dir, params, counts: plan.counts, images: jobs.length, districts: plan.districts,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The generation record written next to the images (no times: same seed, same bytes). */
function describe(plan: SynthPlan): object {
  const { params, city } = plan;
  return {
    generator: 'vgl synth',
    format: 1,
    ...params,
    utm: city.arch.utm,
    cityExtent: { east0: city.arch.utm.east, north0: city.arch.utm.north, width: city.width, height: city.height },
    buildings: city.buildings.length,
    facadeStyles: city.arch.facadeCount,
    districts: plan.districts,
    counts: plan.counts,
    databaseConditions: 'daylight, sun azimuth 150, elevation 50, camera 2.5 m, pitch 0',
    queryPerturbations: 'position within queryOffset of a place, heading uniform, camera 1.5-2.6 m, pitch -5..7, fov ±15%, '
      + 'time of day (morning/noon/afternoon/overcast/dusk/night), fog 35%, season (snow, foliage), 0-3 cars and 0-4 people',
  };
}

async function prepareFolder(dir: string, overwrite: boolean): Promise<void> {
  if (!existsSync(dir)) return;
  if (!overwrite) throw new Error(`synth: ${dir} already exists; pass --overwrite to replace it`);
  if (!existsSync(join(dir, 'synth.json'))) {
    throw new Error(`synth: ${dir} exists but has no synth.json (not made by vgl synth); refusing to delete it with --overwrite`);
  }
  await rm(dir, { recursive: true, force: true });
}

function progressBar(total: number): { tick(n: number): void; stop(): void } {
  const bar = new SingleBar({
    format: 'synth {bar} {percentage}% | {value}/{total} images | {rate} img/s | ETA {eta_formatted}',
    stream: process.stderr,
    hideCursor: true,
  });
  const t0 = performance.now();
  let done = 0;
  bar.start(total, 0, { rate: '0' });
  return {
    tick(n) {
      done += n;
      bar.update(done, { rate: (done / Math.max(1e-3, (performance.now() - t0) / 1000)).toFixed(0) });
    },
    stop() { bar.stop(); },
  };
}

// Workers do not inherit the tsx loader that `bin/vgl.js` registers in-process (and node 20 ignores
// `--import` for a .ts worker entry): a tiny plain-JS bootstrap registers tsx, then loads worker.ts.
const WORKER_BOOT = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
  .then((m) => { m.register(); return import(${JSON.stringify(new URL('./worker.ts', import.meta.url).href)}); })
  .catch((e) => { require('node:worker_threads').parentPort.postMessage({ error: String(e && e.stack || e) }); });`;

/** Hands out small chunks of jobs to each worker as it finishes the last (balances uneven views). */
async function renderOnWorkers(jobs: RenderJob[], params: SynthParams, count: number, onDone: (n: number) => void): Promise<void> {
  const init: WorkerInit = {
    style: params.style, seed: params.seed, layout: params, width: params.width, height: params.height, quality: params.quality,
  };
  const chunk = 16;
  let next = 0;
  const workers: Worker[] = [];
  try {
    await Promise.all(Array.from({ length: Math.min(count, Math.ceil(jobs.length / chunk)) }, () => new Promise<void>((resolveWorker, reject) => {
      const w = new Worker(WORKER_BOOT, { eval: true, workerData: init });
      workers.push(w);
      const send = () => {
        if (next >= jobs.length) { resolveWorker(); return; }
        w.postMessage(jobs.slice(next, next + chunk));
        next += chunk;
      };
      w.on('message', (m: { ok?: number; error?: string }) => {
        if (m.error !== undefined) { reject(new Error(`synth worker: ${m.error}`)); return; }
        onDone(m.ok ?? 0);
        send();
      });
      w.on('error', reject);
      w.on('exit', (code) => { if (code !== 0) reject(new Error(`synth worker exited with code ${code}`)); });
      w.once('online', send);
    })));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
