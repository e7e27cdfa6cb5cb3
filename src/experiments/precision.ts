// The demo's models in fp32 and in bf16 (issue 12): recall@1/5/10 on every demo test set, three ways —
// trained and evaluated in fp32; the same fp32 model evaluated in bf16 (what bf16 evaluation costs);
// a model trained in bf16 and evaluated in bf16 (what bf16 training costs) — and the search alone: the
// bf16 pre-filter's top-N against the fp32 search, on the same fp32 descriptors.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as torch from '../torch/index.ts';
import { openDataset, type GeoDataset } from '../data/dataset.ts';
import type { GeoLocalizationNet } from '../models/network.ts';
import { modelFromCheckpoint } from '../models/assemble.ts';
import { loadCheckpoint } from '../torch/checkpoint.ts';
import { evaluateNet } from '../eval/evaluate-net.ts';
import { imageSize } from '../data/image.ts';
import { searchPrefiltered, type Neighbours } from '../eval/search.ts';
import type { Recalls } from '../eval/recall.ts';
import { train } from '../train/train.ts';
import { checkResumeConfig } from '../train/resume.ts';
import { averagePathOf } from '../train/average.ts';
import { TrainConfigSchema, type TrainConfig } from '../train/config.ts';
import { DEMO_TESTS, demoConfig, ensureDemoDatasets, recallsOf, sizedName, type DemoOptions, type DemoTest, type DemoTestRow } from './demo.ts';

/** The issue's accuracy target: bf16 recall@1/5/10 within this many points of fp32. */
export const PRECISION_TARGET_POINTS = 0.5;

export interface PrecisionOptions extends Omit<DemoOptions, 'precision' | 'citySize'> {
  /** A finished demo's output folder whose fp32 runs (mobilenetv2-<head>) to reuse, read only; default: trained under outputFolder/fp32. */
  fp32From?: string;
}

export interface PrecisionRow extends DemoTestRow {
  /** Trained in fp32, evaluated in fp32. */
  fp32: Recalls;
  /** The same fp32 model evaluated in bf16 (extraction and search). */
  evalBf16: Recalls;
  /** Trained in bf16, evaluated in bf16. */
  trainBf16: Recalls;
  /** The bf16 search on the fp32 model's fp32 descriptors: queries whose top-N equals the fp32 search's. */
  search: { topN: number; same: number; fallbacks: number };
}

/** Distances this close are the same to fp32 (two kernels summing in different orders may swap such neighbours). */
export const SAME_DISTANCE = 1e-6;

/**
 * Share of query rows whose ranked lists are the same: the same rows, in the same order except for
 * neighbours whose distances agree within SAME_DISTANCE (an order fp32 rounding decides).
 */
export function sameLists(a: Neighbours, b: Neighbours): number {
  if (a.count !== b.count || a.k !== b.k) throw new Error(`sameLists: [${a.count} x ${a.k}] and [${b.count} x ${b.k}] results`);
  let same = 0;
  for (let q = 0; q < a.count; q++) {
    const ia = a.indices.subarray(q * a.k, (q + 1) * a.k), ib = b.indices.subarray(q * b.k, (q + 1) * b.k);
    const rows = new Set(ia);
    let equal = ib.every((i) => rows.has(i));
    for (let r = 0; r < a.k && equal; r++) {
      equal = ia[r] === ib[r] || Math.abs(a.distances[q * a.k + r] - b.distances[q * b.k + r]) <= SAME_DISTANCE;
    }
    if (equal) same++;
  }
  return a.count === 0 ? 1 : same / a.count;
}

/** fp32 recalls of a network and how the bf16 search agrees with the fp32 search on its descriptors. */
async function fp32AndSearch(net: GeoLocalizationNet, ds: GeoDataset, config: TrainConfig, size: [number, number], progress: boolean) {
  const result = await evaluateNet(net, ds, {
    size: imageSize(size), batchSize: config.eval.inferBatchSize, precision: 'fp32',
    radius: config.data.valPositiveDistThreshold, recallValues: config.eval.recallValues, progress, images: false, returnDescriptors: true,
  });
  const { database, queries } = result.descriptors!;
  try {
    const { neighbours, stats } = searchPrefiltered(database, queries, { k: result.predictions.k });
    return { recalls: result.recalls, search: { topN: result.predictions.k, same: sameLists(result.predictions, neighbours), fallbacks: stats.fallbacks } };
  } finally {
    torch.dispose(database, queries);
  }
}

/**
 * Trains each head's demo model in fp32 (or reuses fp32From's) and in bf16 (runs resume when their
 * folders hold them), evaluates both averaged models on every demo test set and writes
 * precision.json and precision.md under outputFolder.
 */
export async function runPrecisionComparison(o: PrecisionOptions): Promise<PrecisionRow[]> {
  const t0 = Date.now();
  await mkdir(o.outputFolder, { recursive: true });
  await ensureDemoDatasets(o);
  const bf16 = torch.resolvePrecision('bf16');
  o.log(torch.describePrecision(bf16));
  const tests: [DemoTest, GeoDataset][] = [];
  const opened = new Map<string, GeoDataset>();
  for (const t of DEMO_TESTS) {
    if (!opened.has(t.dataset)) opened.set(t.dataset, await openDataset(o.datasetsFolder, t.dataset, 'test'));
    tests.push([t, opened.get(t.dataset)!]);
  }
  const rows: PrecisionRow[] = [];
  for (const head of o.heads) {
    const name = `MobileNetV2 + ${head === 'gem' ? 'GeM' : 'NetVLAD'}`;
    const configs = {
      fp32: demoConfig({ ...o, outputFolder: o.fp32From ?? join(o.outputFolder, 'fp32'), precision: 'fp32' }, head),
      bf16: demoConfig({ ...o, outputFolder: join(o.outputFolder, 'bf16'), precision: 'bf16' }, head),
    };
    const nets: Partial<Record<'fp32' | 'bf16', GeoLocalizationNet>> = {};
    try {
      for (const p of ['fp32', 'bf16'] as const) {
        const t = Date.now();
        if (p === 'fp32' && o.fp32From !== undefined) await checkFinishedRun(configs.fp32, '--fp32-from');
        else await train(configs[p], { progress: o.progress, log: o.log, test: false });
        o.log(`${name}, ${p}: ${p === 'fp32' && o.fp32From !== undefined ? `reusing ${configs.fp32.run.outputFolder}` : `trained (${((Date.now() - t) / 1000).toFixed(0)} s in this process)`}`);
        nets[p] = (await modelFromCheckpoint(averagePathOf(configs[p].run.outputFolder))).net;
      }
      for (const [t, ds] of tests) {
        const size = t.size ?? configs.fp32.data.resize;
        const { recalls, search } = await fp32AndSearch(nets.fp32!, ds, configs.fp32, size, o.progress);
        rows.push({
          model: name, dataset: t.dataset, ...(t.size ? { size: t.size.join('x') } : {}), label: t.label, real: t.real, queries: ds.queriesPaths.length,
          fp32: recalls,
          evalBf16: await recallsOf(nets.fp32!, ds, configs.fp32, undefined, o.progress, size, 'bf16'),
          trainBf16: await recallsOf(nets.bf16!, ds, configs.bf16, undefined, o.progress, size, 'bf16'),
          search,
        });
      }
    } finally {
      nets.fp32?.dispose();
      nets.bf16?.dispose();
    }
    o.log(`${name}: evaluated [${((Date.now() - t0) / 1000).toFixed(0)} s]`);
  }
  const summary = summarizePrecision(rows);
  await writeFile(join(o.outputFolder, 'precision.json'), `${JSON.stringify({ bf16: bf16.reason, rows, summary, seconds: (Date.now() - t0) / 1000 }, null, 2)}\n`);
  await writeFile(join(o.outputFolder, 'precision.md'), `${formatPrecisionTable(rows)}\n\n${formatPrecisionSummary(summary)}\n`);
  return rows;
}

/** A finished demo run of exactly this config (its options, every epoch averaged), left untouched. */
async function checkFinishedRun(config: TrainConfig, flag: string): Promise<void> {
  const file = join(config.run.outputFolder, 'config.json');
  const average = averagePathOf(config.run.outputFolder);
  if (!existsSync(file) || !existsSync(average)) throw new Error(`${flag}: ${config.run.outputFolder} holds no finished demo run (config.json, average.pth); run vgl demo with the same options first`);
  checkResumeConfig(TrainConfigSchema.parse(JSON.parse(await readFile(file, 'utf8'))), config, file);
  const { meta } = await loadCheckpoint<{ epochs: number }>(average);
  if (meta.epochs !== config.optim.epochs) throw new Error(`${flag}: ${average} averages ${meta.epochs} of ${config.optim.epochs} epochs; finish that demo run first`);
}

const NS = [1, 5, 10] as const;

export interface PrecisionSummary {
  /** Largest |bf16 − fp32| over rows and N, with where it happened, for evaluation and for training. */
  evaluation: { points: number; at: string };
  training: { points: number; at: string };
  /** Share of queries over all test sets whose bf16 search top-N equals the fp32 search's. */
  searchSame: number;
}

export function summarizePrecision(rows: readonly PrecisionRow[]): PrecisionSummary {
  const worst = (of: (r: PrecisionRow) => Recalls) => {
    let points = 0, at = '';
    for (const r of rows) {
      for (const n of NS) {
        const d = Math.abs(of(r)[n] - r.fp32[n]);
        if (d > points) [points, at] = [d, `${r.model}, ${sizedName(r.dataset, r.size)}, R@${n} (${r.queries} queries: one is ${(100 / r.queries).toFixed(2)} points)`];
      }
    }
    return { points, at };
  };
  const queries = rows.reduce((s, r) => s + r.queries, 0);
  return {
    evaluation: worst((r) => r.evalBf16), training: worst((r) => r.trainBf16),
    searchSame: queries === 0 ? 1 : rows.reduce((s, r) => s + r.search.same * r.queries, 0) / queries,
  };
}

const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(1)}`;

/** Markdown: per model and test set, recall@N in fp32 · evaluated in bf16 · trained and evaluated in bf16, and the search agreement. */
export function formatPrecisionTable(rows: readonly PrecisionRow[]): string {
  const head = `| model | test set | queries | ${NS.map((n) => `R@${n} fp32 · eval bf16 · train bf16`).join(' | ')} | bf16 search: same top-N |`;
  const rule = `|---|---|---|${NS.map(() => '---|').join('')}---|`;
  const body = rows.map((r) => `| ${r.model} | ${r.label}${r.real ? ' (real)' : ''} | ${r.queries} | ${NS.map((n) => {
    const a = r.fp32[n];
    return `${a.toFixed(1)} · ${r.evalBf16[n].toFixed(1)} (${signed(r.evalBf16[n] - a)}) · ${r.trainBf16[n].toFixed(1)} (${signed(r.trainBf16[n] - a)})`;
  }).join(' | ')} | ${(100 * r.search.same).toFixed(1)}% of top-${r.search.topN} |`);
  return [head, rule, ...body].join('\n');
}

export function formatPrecisionSummary(s: PrecisionSummary): string {
  const verdict = (p: number) => (p <= PRECISION_TARGET_POINTS ? 'within' : 'NOT within');
  return [
    `evaluation in bf16: largest change ${s.evaluation.points.toFixed(2)} points${s.evaluation.at ? ` (${s.evaluation.at})` : ''}, ${verdict(s.evaluation.points)} ${PRECISION_TARGET_POINTS}`,
    `training in bf16: largest change ${s.training.points.toFixed(2)} points${s.training.at ? ` (${s.training.at})` : ''}, ${verdict(s.training.points)} ${PRECISION_TARGET_POINTS}`,
    `bf16 search: ${(100 * s.searchSame).toFixed(2)}% of the queries have the fp32 search's top-N`,
  ].join('\n');
}
