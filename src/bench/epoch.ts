// One training epoch on the synthetic demo city, timed per phase: caching (descriptor extraction of
// each cache loop), mining, training (forward + backward + step, image loading included) and
// evaluation (validation recall). The split comes from the trainer's own log records (train.ts
// LoopRecord / ValidationRecord), so it measures the code path `vgl train` runs, not a copy of it.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir, availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ensureCity } from '../data/synth/generate.ts';
import { TrainConfigSchema, flattenConfig } from '../train/config.ts';
import { ModelSpecShape } from '../models/assemble.ts';
import { PRECISIONS } from '../torch/precision.ts';
import { MOBILENETV2_035_WEIGHTS_DIR as MOBILENETV2_WEIGHTS } from '../models/weights/keras-mobilenetv2.ts';
import { DEMO_CITY_NAME as CITY_NAME } from '../data/synth/options.ts';
import { train, type LogEntry, type LoopRecord, type ValidationRecord } from '../train/train.ts';


const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const count = z.number().int().positive();

export const BenchEpochOptionsSchema = z.object({
  /** Where the city is (generated with ensureCity when absent). */
  datasetsFolder: z.string().min(1).default('data/datasets'),
  /** Run folder; default a temporary folder removed afterwards. Must not hold a run (it would resume). */
  outputFolder: z.string().min(1).optional(),
  backbone: ModelSpecShape.backbone.default('mobilenetv2'),
  aggregation: z.string().min(1).default('netvlad'),
  /** ImageNet weights; default the repository's MobileNetV2 for mobilenetv2, none otherwise. */
  weights: z.string().min(1).optional(),
  resize: z.tuple([count, count]).default([120, 160]),
  netvladClusters: count.default(32),
  mining: z.enum(['full', 'partial', 'random']).default('partial'),
  /** Training queries of the epoch (the demo city has 600) and per cache loop (default: one loop). */
  queriesPerEpoch: count.default(600),
  cacheRefreshRate: count.optional(),
  negSamplesNum: count.default(300),
  batchSize: count.default(4),
  inferBatchSize: count.default(32),
  seed: z.number().int().min(0).default(0),
  progress: z.boolean().default(false),
  /** The trainer's --precision (bf16 autocast with fp32 weights; auto: bf16 where the CPU has bf16 units). */
  precision: z.enum(PRECISIONS).default('fp32'),
  /** Data-parallel processes (vgl train --nproc-per-node, each with its share of the cores); 1: in this process. */
  nprocPerNode: count.default(1),
}).strict();

export type BenchEpochOptions = z.input<typeof BenchEpochOptionsSchema>;

export interface PhaseTiming {
  ms: number;
  /** Images the phase processed: described (caching, evaluation), trained on (training), cached descriptors mined over (mining). */
  images: number;
  imagesPerSecond: number;
}

export interface EpochBenchmark {
  /** renderMs: time to render the city (0 when an existing one was reused). */
  dataset: { dir: string; reused: boolean; renderMs: number; trainDatabase: number; trainQueries: number; valDatabase: number; valQueries: number };
  model: { backbone: string; aggregation: string; resize: [number, number]; weights: string | null };
  mining: string;
  /** What ran (the trainer's log says why). */
  precision: string;
  queriesPerEpoch: number;
  cacheLoops: number;
  threads: number;
  /** Data-parallel processes sharing those threads. */
  processes: number;
  phases: { caching: PhaseTiming; mining: PhaseTiming; training: PhaseTiming; evaluation: PhaseTiming };
  /** Checkpoint writes (one per cache loop, plus best/last after validation). */
  checkpointMs: number;
  /** The rest: model build, weight loading, head initialisation (k-means for NetVLAD), end-of-epoch checkpoints. */
  otherMs: number;
  totalMs: number;
  /** Validation recall@N after the epoch. */
  recalls: Record<number, number>;
  /** The trainer's log lines (this function prints nothing). */
  log: string[];
}

const phase = (ms: number, images: number): PhaseTiming => ({ ms, images, imagesPerSecond: ms > 0 ? Math.round((images / ms) * 1000 * 10) / 10 : 0 });

export async function benchEpoch(options: BenchEpochOptions = {}): Promise<EpochBenchmark> {
  const parsed = BenchEpochOptionsSchema.safeParse(options);
  if (!parsed.success) {
    throw new Error(`bench epoch: invalid options\n${parsed.error.issues.map((i) => `  ${i.path.join('.') || '(options)'}: ${i.message}`).join('\n')}`);
  }
  const o = parsed.data;
  if (o.outputFolder && existsSync(join(o.outputFolder, 'last.pth'))) {
    throw new Error(`bench epoch: ${join(o.outputFolder, 'last.pth')} exists — training would resume that run instead of timing a fresh epoch; give an empty --output-folder`);
  }
  const weights = o.weights ?? (o.backbone === 'mobilenetv2' ? MOBILENETV2_WEIGHTS : undefined);
  const city = await ensureCity({ out: o.datasetsFolder, name: CITY_NAME, size: 'demo', seed: o.seed, progress: o.progress });
  const out = o.outputFolder ?? await mkdtemp(join(tmpdir(), 'vgl-bench-epoch-'));
  const config = TrainConfigSchema.parse({
    datasetsFolder: o.datasetsFolder, datasetName: CITY_NAME, outputFolder: out,
    backbone: o.backbone, aggregation: o.aggregation, netvladClusters: o.netvladClusters, weights, resize: o.resize,
    lr: 1e-3, epochs: 1, patience: 1, mining: o.mining, queriesPerEpoch: o.queriesPerEpoch,
    cacheRefreshRate: o.cacheRefreshRate ?? o.queriesPerEpoch, negSamplesNum: o.negSamplesNum,
    batchSize: o.batchSize, inferBatchSize: o.inferBatchSize, seed: o.seed, precision: o.precision,
  });

  const loops: LoopRecord[] = [];
  const validations: ValidationRecord[] = [];
  const log: string[] = [];
  let precision: string = o.precision;
  const onRecord = (e: LogEntry) => {
    if (e.event === 'precision') precision = e.precision;
    if (e.event === 'loop') loops.push(e);
    else if (e.event === 'validation') validations.push(e);
  };
  const t0 = performance.now();
  let history: { recalls: Record<number, number> }[];
  try {
    if (o.nprocPerNode === 1) {
      history = (await train(config, { progress: o.progress, log: (line) => log.push(line), onRecord })).history;
    } else {
      // N processes as a user starts them; the phases are read back from the run's log.jsonl.
      const file = join(out, 'bench-config.json');
      await writeFile(file, JSON.stringify(flattenConfig(config)));
      const r = spawnSync(process.execPath, [join(REPO, 'bin', 'vgl.js'), 'train', '--config', file, '--nproc-per-node', String(o.nprocPerNode)], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`bench epoch: vgl train --nproc-per-node ${o.nprocPerNode} failed (${r.status ?? r.signal}):\n${r.stderr.slice(-2000)}`);
      log.push(...r.stderr.trim().split('\n'));
      for (const line of (await readFile(join(out, 'log.jsonl'), 'utf8')).trim().split('\n')) onRecord(JSON.parse(line) as LogEntry);
      history = validations.map((v) => ({ recalls: v.recalls }));
    }
  } finally {
    if (!o.outputFolder) await rm(out, { recursive: true, force: true });
  }
  const totalMs = Math.round(performance.now() - t0);

  const sum = (f: (l: LoopRecord) => number) => loops.reduce((a, l) => a + f(l), 0);
  const validation = validations[0];
  const inLoops = sum((l) => l.cacheMs + l.mineMs + l.trainMs + l.checkpointMs);
  const counts = city.counts;
  return {
    dataset: {
      dir: city.dir, reused: city.reused, renderMs: Math.round(city.seconds * 1000),
      trainDatabase: counts.train?.database ?? 0, trainQueries: counts.train?.queries ?? 0,
      valDatabase: counts.val?.database ?? 0, valQueries: counts.val?.queries ?? 0,
    },
    model: { backbone: o.backbone, aggregation: o.aggregation, resize: o.resize, weights: weights ?? null },
    mining: o.mining,
    precision,
    queriesPerEpoch: o.queriesPerEpoch,
    cacheLoops: loops.length,
    threads: availableParallelism(),
    processes: o.nprocPerNode,
    phases: {
      caching: phase(sum((l) => l.cacheMs), sum((l) => l.cachedImages)),
      mining: phase(sum((l) => l.mineMs), sum((l) => l.cachedImages)),
      training: phase(sum((l) => l.trainMs), sum((l) => l.images)),
      evaluation: phase(validation?.validateMs ?? 0, validation?.images ?? 0),
    },
    checkpointMs: sum((l) => l.checkpointMs),
    otherMs: Math.max(0, totalMs - inLoops - (validation?.validateMs ?? 0)),
    totalMs,
    recalls: history[0]?.recalls ?? {},
    log,
  };
}
