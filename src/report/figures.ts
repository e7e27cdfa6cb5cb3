// The report's study figures: vega-lite specifications built from the study's tables and curves
// (src/util/figure.ts renders and writes them, as it does every plot vgl draws).
import type { ExperimentTable } from '../experiments/table.ts';
import type { RunCurve } from './load.ts';
import { figure, type Figure } from '../util/figure.ts';

/** Validation recall@N (and mean loss) against epoch: one thin line per run, a thick one per variant's mean. */
export function trainingCurves(name: string, title: string, curves: readonly RunCurve[], n = 5): Figure | undefined {
  const data = curves.flatMap((c) => c.points.map((p) => ({ variant: c.variant, seed: c.seed, run: `${c.variant}/${c.seed}`, epoch: p.epoch + 1, recall: p.recalls[n] ?? null, loss: p.meanLoss })));
  if (data.length === 0) return undefined;
  const x = { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } };
  const panel = (field: string, yTitle: string) => ({
    width: 260, height: 180,
    layer: [
      { mark: { type: 'line', strokeWidth: 1, opacity: 0.35 }, encoding: { x, y: { field, type: 'quantitative' }, color: { field: 'variant', type: 'nominal' }, detail: { field: 'run' } } },
      { mark: { type: 'line', strokeWidth: 2.5, point: true }, encoding: { x, y: { aggregate: 'mean', field, type: 'quantitative', title: yTitle, scale: { zero: false } }, color: { field: 'variant', type: 'nominal' }, shape: { field: 'variant', type: 'nominal' } } },
    ],
  });
  return figure(name, title, data, { hconcat: [panel('recall', `validation R@${n} (%)`), panel('loss', 'mean training loss')] });
}

/** Mean recall@N against N per variant, one panel per test set. */
export function recallAtN(name: string, title: string, t: ExperimentTable, tests: readonly string[]): Figure {
  const data = t.cells.filter((c) => tests.includes(c.test)).flatMap((c) => t.ns.map((n) => ({ test: c.test, variant: c.variant, n, recall: c.recalls[n]!.mean, std: c.recalls[n]!.std })));
  return figure(name, title, data, {
    facet: { field: 'test', type: 'nominal', title: null, sort: tests }, columns: 3,
    spec: {
      width: 170, height: 140,
      layer: [
        { mark: { type: 'line', point: true }, encoding: { x: { field: 'n', type: 'quantitative', scale: { type: 'log' }, title: 'N', axis: { values: t.ns } }, y: { field: 'recall', type: 'quantitative', title: 'recall@N (%)', scale: { domain: [0, 100] } }, color: { field: 'variant', type: 'nominal', sort: null }, shape: { field: 'variant', type: 'nominal', sort: null } } },
      ],
    },
  });
}

/** Mean R@1 per variant with ± one std over seeds, one panel per test set. */
export function recallBars(name: string, title: string, t: ExperimentTable, tests: readonly string[]): Figure {
  const data = t.cells.filter((c) => tests.includes(c.test)).map((c) => ({ test: c.test, variant: c.variant, recall: c.recalls[1]!.mean, low: c.recalls[1]!.mean - c.recalls[1]!.std, high: c.recalls[1]!.mean + c.recalls[1]!.std }));
  const variants = [...new Set(data.map((d) => d.variant))];
  return figure(name, title, data, {
    facet: { field: 'test', type: 'nominal', title: null, sort: tests }, columns: 3, resolve: { scale: { y: 'independent' } },
    spec: {
      width: Math.max(120, 26 * variants.length), height: 140,
      layer: [
        { mark: 'bar', encoding: { x: { field: 'variant', type: 'nominal', sort: variants, title: null, axis: { labelAngle: -40 } }, y: { field: 'recall', type: 'quantitative', title: 'R@1 (%)' }, color: { field: 'variant', type: 'nominal', sort: variants, legend: null } } },
        { mark: { type: 'rule', color: '#222' }, encoding: { x: { field: 'variant', type: 'nominal', sort: variants }, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' } } },
      ],
    },
  });
}

/** Recall@1 against the radius a match counts within (evaluation variants with radii). */
export function recallVsRadius(name: string, title: string, t: ExperimentTable): Figure | undefined {
  const data = t.cells.filter((c) => c.recallsByRadius).flatMap((c) => Object.entries(c.recallsByRadius!).map(([r, v]) => ({ test: c.test.replace(/#.*$/, ''), variant: c.variant, radius: Number(r), recall: v[1] ?? null })));
  if (data.length === 0) return undefined;
  return figure(name, title, data, {
    facet: { field: 'test', type: 'nominal', title: null }, columns: 3,
    spec: {
      width: 170, height: 140,
      mark: { type: 'line', point: true },
      encoding: { x: { field: 'radius', type: 'quantitative', title: 'radius (m)' }, y: { field: 'recall', type: 'quantitative', title: 'R@1 (%)', scale: { domain: [0, 100] } }, color: { field: 'variant', type: 'nominal' }, shape: { field: 'variant', type: 'nominal' } },
    },
  });
}

/** Size grid: rows the training size, columns the test size, colour and label the mean R@1. */
export interface SizeCell { test: string; train: string; testSize: string; recall: number; std: number }

const pixels = (s: string) => s.split('x').map(Number).reduce((a, b) => a * b, 1);

export function sizeHeatmap(name: string, title: string, cells: readonly SizeCell[]): Figure | undefined {
  if (cells.length === 0) return undefined;
  const order = (k: 'train' | 'testSize') => [...new Set(cells.map((c) => c[k]))].sort((a, b) => pixels(a) - pixels(b));
  const data = cells.map((c) => ({ ...c, label: c.recall.toFixed(1) }));
  return figure(name, title, data, {
    facet: { field: 'test', type: 'nominal', title: null }, columns: 3,
    spec: {
      width: 170, height: 120,
      encoding: { x: { field: 'testSize', type: 'ordinal', sort: order('testSize'), title: 'test size' }, y: { field: 'train', type: 'ordinal', sort: order('train'), title: 'training size' } },
      layer: [
        { mark: 'rect', encoding: { color: { field: 'recall', type: 'quantitative', title: 'R@1 (%)', scale: { scheme: 'blues' } } } },
        { mark: { type: 'text', fontSize: 10 }, encoding: { text: { field: 'label' }, color: { condition: { test: `datum.recall > ${Math.max(...cells.map((c) => c.recall)) * 0.8}`, value: 'white' }, value: 'black' } } },
      ],
    },
  });
}

/** R@1 against bytes per image (log scale), one point per descriptor (variant, with its PCA). */
export interface BytesPoint { test: string; descriptor: string; head: string; bytes: number; recall: number }

export function recallVsBytes(name: string, title: string, points: readonly BytesPoint[], tests?: readonly string[]): Figure | undefined {
  if (points.length === 0) return undefined;
  return figure(name, title, points as unknown as Record<string, unknown>[], {
    facet: { field: 'test', type: 'nominal', title: null, ...(tests ? { sort: tests } : {}) }, columns: 3,
    spec: {
      width: 170, height: 150,
      layer: [
        { mark: { type: 'point', filled: true, size: 60 }, encoding: { x: { field: 'bytes', type: 'quantitative', scale: { type: 'log' }, title: 'bytes per image', axis: { tickCount: 4, format: '~s' } }, y: { field: 'recall', type: 'quantitative', title: 'R@1 (%)', scale: { zero: false } }, color: { field: 'head', type: 'nominal' }, shape: { field: 'head', type: 'nominal' }, tooltip: { field: 'descriptor' } } },
      ],
    },
  });
}

/** Exact search time per query against database size (log-log), one line per descriptor. */
export interface SearchPoint { descriptor: string; databaseSize: number; ms: number }

export function searchTime(name: string, title: string, points: readonly SearchPoint[]): Figure | undefined {
  if (points.length === 0) return undefined;
  return figure(name, title, points as unknown as Record<string, unknown>[], {
    width: 300, height: 200,
    mark: { type: 'line', point: true },
    encoding: { x: { field: 'databaseSize', type: 'quantitative', scale: { type: 'log' }, title: 'database images' }, y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'ms per query' }, color: { field: 'descriptor', type: 'nominal' }, shape: { field: 'descriptor', type: 'nominal' } },
  });
}

/** Seconds per epoch of each training phase, stacked, per variant. */
export interface CostPoint { variant: string; phase: string; seconds: number }

export function phaseCost(name: string, title: string, points: readonly CostPoint[]): Figure | undefined {
  if (points.length === 0) return undefined;
  return figure(name, title, points as unknown as Record<string, unknown>[], {
    width: 300, height: 160,
    mark: 'bar',
    encoding: { y: { field: 'variant', type: 'nominal', title: null, sort: null }, x: { field: 'seconds', type: 'quantitative', title: 'seconds per epoch' }, color: { field: 'phase', type: 'nominal', sort: ['cache', 'mine', 'train', 'validate'] }, order: { field: 'phase' } },
  });
}

