// `vgl synth` as a library call: plan the dataset, render every view on worker threads, write the
// datasets_vg layout <out>/<name>/images/{train,val,test}/{database,queries}/*.jpg, synth.json (the
// parameters) and synth-preview.png (test queries beside database images of their place).

import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { progressBar } from '../../util/progress.ts';
import { SynthOptionsSchema, resolveParams, type ResolvedSynthOptions, type SynthOptions, type SynthParams } from './options.ts';
import { planDataset, type SynthPlan, type UtmDistrict } from './plan.ts';
import { writeJob, type RenderJob } from './write.ts';
import { writePreview } from './preview.ts';
import { DATABASE_CONDITIONS, QUERY } from './views.ts';
import type { WorkerInit } from './worker.ts';
import type { Split } from './city.ts';

export interface SynthSummary {
  /** Absolute <out>/<name>. */
  dir: string;
  params: SynthParams;
  /** Per written split. */
  counts: Partial<Record<Split, { database: number; queries: number; places: number }>>;
  images: number;
  districts: UtmDistrict[];
  seconds: number;
}

function validate(options: SynthOptions): ResolvedSynthOptions {
  const parsed = SynthOptionsSchema.safeParse(options);
  if (!parsed.success) {
    throw new Error(`synth: invalid options\n${parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n')}`);
  }
  return parsed.data;
}

/** Generates the synthetic dataset; options are validated (zod) and completed from the size preset. */
export async function generateCity(options: SynthOptions): Promise<SynthSummary> {
  const o = validate(options);
  const t0 = performance.now();
  const plan = planDataset(resolveParams(o));
  return render(plan, o, t0);
}

/**
 * Reuses <out>/<name> if a finished `vgl synth` run with exactly these parameters is there (as the
 * demo wants: generate once, train many times); otherwise (re)generates it. A folder not made by
 * vgl synth is never replaced.
 */
export async function ensureCity(options: SynthOptions): Promise<SynthSummary & { reused: boolean }> {
  const o = validate(options);
  const t0 = performance.now();
  const plan = planDataset(resolveParams(o));
  const dir = resolve(o.out, o.name);
  const record = join(dir, 'synth.json');
  if (existsSync(record)) {
    const onDisk = await readFile(record, 'utf8');
    if (onDisk === recordText(plan, true) && (await countImages(dir)) === plan.images.length) {
      return { dir, params: plan.params, counts: plan.counts, images: plan.images.length, districts: plan.districts, seconds: 0, reused: true };
    }
  }
  return { ...(await render(plan, { ...o, overwrite: true }, t0)), reused: false };
}

async function countImages(dir: string): Promise<number> {
  let n = 0;
  for (const split of ['train', 'val', 'test']) {
    for (const kind of ['database', 'queries']) {
      const d = join(dir, 'images', split, kind);
      if (existsSync(d)) n += (await readdir(d)).filter((f) => f.endsWith('.jpg')).length;
    }
  }
  return n;
}

async function render(plan: SynthPlan, o: ResolvedSynthOptions, t0: number): Promise<SynthSummary> {
  const { params } = plan;
  const dir = resolve(o.out, o.name);
  await prepareFolder(dir, o.overwrite);
  for (const split of params.splits) {
    for (const kind of ['database', 'queries']) await mkdir(join(dir, 'images', split, kind), { recursive: true });
  }
  // Written first (marked incomplete): it also marks the folder as ours, so an interrupted run can be
  // overwritten; rewritten as complete at the end.
  await writeFile(join(dir, 'synth.json'), recordText(plan, false));
  const jobs: RenderJob[] = plan.images.map((im) => ({
    path: join(dir, im.file), camera: im.view.camera, conditions: im.view.conditions, occluders: im.view.occluders,
  }));
  const bar = progressBar('synth', jobs.length, { show: o.progress, unit: 'img' });
  if (o.workers === 0) {
    for (const job of jobs) {
      await writeJob(plan.city, job, params);
      bar.tick(1);
    }
  } else {
    await renderOnWorkers(jobs, params, o.workers, (n) => bar.tick(n));
  }
  bar.stop();
  await writePreview(plan, join(dir, 'synth-preview.png'));
  await writeFile(join(dir, 'synth.json'), recordText(plan, true));
  return {
    dir, params, counts: plan.counts, images: jobs.length, districts: plan.districts,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The generation record written next to the images (no times: same seed, same bytes). */
function recordText(plan: SynthPlan, complete: boolean): string {
  return JSON.stringify(describe(plan, complete), null, 2) + '\n';
}

function describe(plan: SynthPlan, complete: boolean): object {
  const { params, city } = plan;
  return {
    generator: 'vgl synth',
    format: 1,
    complete,
    ...params,
    utm: city.arch.utm,
    cityExtent: { east0: city.arch.utm.east, north0: city.arch.utm.north, width: city.width, height: city.height },
    buildings: city.buildings.length,
    facadeStyles: city.arch.facadeCount,
    districts: plan.districts,
    counts: plan.counts,
    databaseCamera: { height: 2.5, pitch: 0, fov: params.fov },
    databaseConditions: { ...DATABASE_CONDITIONS, foliage: city.arch.foliage },
    queryPerturbations: { offset: `within ${params.queryOffset} m of a database place, anywhere across the road`, ...QUERY },
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
