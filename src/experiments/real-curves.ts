// Recall@1 on the real test sets against training epoch, one line per training-data choice (synthetic
// only, real only, mixed): the picture that says which data makes real places easier to recognise.
// Each choice trains the demo's recipe; after every epoch's validation the network is evaluated on the
// real test splits. Epoch 0 on the plot is the ImageNet network before training.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import { csvText } from '../util/csv.ts';
import { openDataset, type GeoDataset } from '../data/dataset.ts';
import { train } from '../train/train.ts';
import { epochCurves, writeFigure } from '../util/figure.ts';
import {
  DEMO_TESTS, TRAINING_DATA, demoConfig, ensureDemoDatasets, recallsOf, untrainedNetwork,
  type DemoTest, type TrainingData,
} from './demo.ts';

export interface CurvesOptions {
  datasetsFolder: string;
  outputFolder: string;
  head: 'gem' | 'netvlad';
  choices: TrainingData[];
  epochs: number;
  queriesPerEpoch: number;
  seed: number;
  progress: boolean;
  log: (line: string) => void;
}

/** One measured point: recall@1/5/10 of one training-data choice after `epoch` epochs on one test set. */
export interface CurvePoint {
  choice: TrainingData;
  epoch: number;
  dataset: string;
  r1: number;
  r5: number;
  r10: number;
}

const REAL_TESTS = DEMO_TESTS.filter((t) => t.real && !t.size); // at the training size

/** Points of `known` with `found` added, a rerun's measurement replacing the old one of the same choice, epoch and test set. */
function mergePoints(known: readonly CurvePoint[], found: readonly CurvePoint[]): CurvePoint[] {
  const key = (p: CurvePoint) => `${p.choice}/${p.epoch}/${p.dataset}`;
  const merged = new Map(known.map((p) => [key(p), p]));
  for (const p of found) merged.set(key(p), p);
  return [...merged.values()];
}

/**
 * Trains one model per training-data choice and writes curves.json (every point, kept across
 * reruns: a killed run resumes its training and keeps the epochs already measured), curves.csv and
 * one figure per real test set (curves-<dataset>.svg/.png).
 */
export async function runCurves(o: CurvesOptions): Promise<CurvePoint[]> {
  await mkdir(o.outputFolder, { recursive: true });
  await ensureDemoDatasets(o);
  const tests: [DemoTest, GeoDataset][] = [];
  for (const t of REAL_TESTS) tests.push([t, await openDataset(o.datasetsFolder, t.dataset, 'test')]);
  const file = join(o.outputFolder, 'curves.json');
  let points: CurvePoint[] = existsSync(file) ? JSON.parse(await readFile(file, 'utf8')) as CurvePoint[] : [];
  for (const choice of o.choices) {
    const config = demoConfig({ ...o, trainOn: choice }, o.head, `${choice}-${o.head}`);
    const measure = async (net: Parameters<typeof recallsOf>[0], epoch: number) => {
      const found: CurvePoint[] = [];
      for (const [t, ds] of tests) {
        const r = await recallsOf(net, ds, config, undefined, false);
        found.push({ choice, epoch, dataset: t.dataset, r1: r[1], r5: r[5], r10: r[10] });
      }
      o.log(`${choice}, epoch ${epoch}: ${found.map((p) => `${p.dataset} R@1 ${p.r1.toFixed(1)}`).join(', ')}`);
      points = mergePoints(points, found);
      await writeFileAtomic(file, `${JSON.stringify(points, null, 2)}\n`); // a killed rerun keeps the epochs measured
    };
    if (!points.some((p) => p.choice === choice && p.epoch === 0)) {
      const untrained = await untrainedNetwork(config, o.log);
      await measure(untrained, 0);
      untrained.dispose();
    }
    await train(config, { progress: o.progress, log: o.log, test: false, afterValidation: (net, epoch) => measure(net, epoch + 1) });
  }
  await writeCurves(points, o.outputFolder);
  return points;
}

/** curves.csv and one line plot per real test set (R@1 against epoch, a line per training-data choice). */
export async function writeCurves(points: readonly CurvePoint[], outputFolder: string): Promise<string[]> {
  await writeFile(join(outputFolder, 'curves.csv'), csvText(['choice', 'epoch', 'dataset', 'r1', 'r5', 'r10'],
    points.map((p) => [p.choice, p.epoch, p.dataset, p.r1.toFixed(2), p.r5.toFixed(2), p.r10.toFixed(2)])));
  const written: string[] = [];
  for (const t of REAL_TESTS) {
    const mine = (Object.keys(TRAINING_DATA) as TrainingData[]).flatMap((choice) => points
      .filter((p) => p.choice === choice && p.dataset === t.dataset).sort((a, b) => a.epoch - b.epoch)
      .map((p) => ({ series: `${choice} (${TRAINING_DATA[choice].join(' + ')})`, epoch: p.epoch, value: p.r1 })));
    const f = epochCurves(`curves-${t.dataset}`, `Recall@1 on ${t.label} (real, test split) during training`,
      'epoch 0 = ImageNet MobileNetV2 before training; one line per training data', 'recall@1 (%)', mine);
    if (f !== undefined) written.push((await writeFigure(f, join(outputFolder, `curves-${t.dataset}`))).png);
  }
  return written;
}
