// Plots as data: vega-lite specifications built by pure functions (data in, spec out), rendered
// headless by vega to SVG and by resvg to PNG, each figure's data written beside it as JSON so a
// plotted point can be checked against the files it came from. The one figure pipeline: the report's
// study figures (src/report/figures.ts), a dataset's figures and the demo's curves are all made here.
// (Image grids are pictures, not plots: src/data/grid.ts.)
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as vl from 'vega-lite';
import * as vega from 'vega';
import { Resvg } from '@resvg/resvg-js';
import type { TopLevelSpec } from 'vega-lite';

const FONT = 'DejaVu Sans';
/** Okabe-Ito: distinguishable with colour-blindness, and in greyscale print by its shapes. */
export const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];

const CONFIG = {
  font: FONT,
  background: 'white',
  range: { category: COLOURS },
  axis: { labelFontSize: 10, titleFontSize: 11, grid: true, gridColor: '#e6e6e6' },
  legend: { labelFontSize: 10, titleFontSize: 11, labelLimit: 220 },
  header: { labelFontSize: 11, titleFontSize: 11 },
  title: { fontSize: 13 },
  view: { stroke: '#bbb' },
} as const;

export interface Figure { name: string; spec: TopLevelSpec; data: unknown[] }

export function figure(name: string, title: string | { text: string; subtitle?: string }, data: Record<string, unknown>[], body: Record<string, unknown>): Figure {
  return { name, data, spec: { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title, data: { values: data }, config: CONFIG, ...body } as TopLevelSpec };
}

/** Database and query positions on an equal-scale map (UTM metres, as a reader checks them against a GIS). */
export function positionsMap(name: string, title: string, subtitle: string, parts: readonly { part: string; positions: Float64Array }[]): Figure {
  const data = parts.flatMap(({ part, positions }) => Array.from({ length: positions.length / 2 }, (_, i) => ({ part, east: positions[2 * i], north: positions[2 * i + 1] })));
  const east = spanOf(data.map((d) => d.east)), north = spanOf(data.map((d) => d.north));
  // One metre is as long across as up: the longer side gets 520 px, a short side at least 200 (its range widened).
  const perPixel = Math.max(east.span, north.span) / 520;
  const width = Math.max(200, east.span / perPixel), height = Math.max(200, north.span / perPixel);
  const domain = (a: { mid: number }, px: number) => [a.mid - (px * perPixel) / 2, a.mid + (px * perPixel) / 2];
  const axis = (field: string, label: string, d: number[]) => ({ field, type: 'quantitative', title: label, scale: { domain: d, nice: false, zero: false }, axis: { format: ',.0f', labelOverlap: true } });
  return figure(name, { text: title, subtitle }, data, {
    width: Math.round(width), height: Math.round(height),
    mark: { type: 'circle', size: 12, opacity: 0.6 },
    encoding: { x: axis('east', 'UTM east (m)', domain(east, width)), y: axis('north', 'UTM north (m)', domain(north, height)), color: { field: 'part', type: 'nominal', title: null, sort: parts.map((p) => p.part) } },
  });
}

function spanOf(values: readonly number[]): { mid: number; span: number } {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!Number.isFinite(lo)) return { mid: 0, span: 1 };
  return { mid: (lo + hi) / 2, span: Math.max((hi - lo) * 1.06, 1) };
}

/** Bin counts of one series over equal-width `edges`; values above the last edge count in the last bin. */
export function binCounts(values: ArrayLike<number>, edges: readonly number[]): { counts: number[]; overflow: number; underflow: number } {
  const counts = new Array<number>(edges.length - 1).fill(0);
  let overflow = 0, underflow = 0;
  const w = edges[1] - edges[0];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v) || v < edges[0]) { underflow++; continue; }
    let b = Math.floor((v - edges[0]) / w);
    if (b >= counts.length) { if (v > edges[edges.length - 1]) overflow++; b = counts.length - 1; }
    counts[b]++;
  }
  return { counts, overflow, underflow };
}

export interface HistogramOptions {
  xLabel: string;
  yLabel?: string;
  series: readonly { name: string; values: ArrayLike<number> }[];
  /** One bin per integer value (counts such as positives per query). */
  integerBins?: boolean;
  /** Bin range for real values (values above it go into the last bin, as the subtitle says); default the data's. */
  range?: [number, number];
  /** Bins for real values (default 30). */
  bins?: number;
  /** Dashed vertical lines, e.g. the 10 m and 25 m thresholds. */
  markers?: readonly { x: number; label: string }[];
}

/** A histogram of one or more series, their bars side by side in each bin. */
export function histogram(name: string, title: string, subtitle: string, o: HistogramOptions): Figure {
  let lo = Infinity, hi = -Infinity;
  for (const s of o.series) for (let i = 0; i < s.values.length; i++) if (Number.isFinite(s.values[i])) { lo = Math.min(lo, s.values[i]); hi = Math.max(hi, s.values[i]); }
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  let edges: number[];
  if (o.integerBins) {
    lo = Math.floor(Math.min(lo, 0)); hi = Math.ceil(hi);
    edges = Array.from({ length: hi - lo + 2 }, (_, k) => lo - 0.5 + k);
  } else {
    const [a, b] = o.range ?? [lo, hi > lo ? hi : lo + 1];
    const n = o.bins ?? 30;
    edges = Array.from({ length: n + 1 }, (_, k) => a + ((b - a) * k) / n);
  }
  const w = edges[1] - edges[0], S = o.series.length;
  const binned = o.series.map((s) => binCounts(s.values, edges));
  const data = binned.flatMap((b, k) => b.counts.map((count, i) => ({
    series: o.series[k].name, from: edges[i], to: edges[i + 1], count,
    // Side by side: series k takes the k-th share of the bin's inner 90 %.
    x0: edges[i] + w * (0.05 + (0.9 * k) / S), x1: edges[i] + w * (0.05 + (0.9 * (k + 1)) / S),
  }))).filter((d) => d.count > 0);
  const over = binned.map((b, k) => (b.overflow > 0 ? `${b.overflow} ${o.series[k].name} values above ${edges[edges.length - 1]} counted in the last bin` : '')).filter((t) => t !== '');
  const x = { field: 'x0', type: 'quantitative', title: o.xLabel, scale: { domain: [edges[0], edges[edges.length - 1]], nice: false, zero: false }, ...(o.integerBins ? { axis: { tickMinStep: 1, format: 'd' } } : {}) };
  const markers = (o.markers ?? []).filter((m) => m.x >= edges[0] && m.x <= edges[edges.length - 1]);
  return figure(name, { text: title, subtitle: [subtitle, ...over].join('; ') }, data, {
    width: 460, height: 240,
    layer: [
      { mark: { type: 'bar', opacity: 0.9 }, encoding: { x, x2: { field: 'x1' }, y: { field: 'count', type: 'quantitative', title: o.yLabel ?? 'count' }, y2: { datum: 0 }, color: { field: 'series', type: 'nominal', title: null, sort: o.series.map((s) => s.name) } } },
      ...(markers.length === 0 ? [] : [
        { data: { values: markers }, mark: { type: 'rule', strokeDash: [6, 4], color: '#333' }, encoding: { x: { field: 'x', type: 'quantitative' } } },
        { data: { values: markers }, mark: { type: 'text', align: 'left', dx: 4, baseline: 'top', y: 4, fontSize: 10, color: '#333' }, encoding: { x: { field: 'x', type: 'quantitative' }, text: { field: 'label' } } },
      ]),
    ],
  });
}

/** A value against epoch, one line per series (e.g. recall@1 on a test set during training, per training data). */
export function epochCurves(name: string, title: string, subtitle: string, yTitle: string, points: readonly { series: string; epoch: number; value: number }[]): Figure | undefined {
  if (points.length === 0) return undefined;
  return figure(name, { text: title, subtitle }, points as unknown as Record<string, unknown>[], {
    width: 420, height: 240,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'value', type: 'quantitative', title: yTitle, scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null }, shape: { field: 'series', type: 'nominal', title: null },
    },
  });
}

/** SVG text of a spec (vega's headless renderer: no browser, no canvas). */
export async function toSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none', logLevel: vega.Error });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Writes a Figure as <base>.svg, <base>.png (2x) and <base>.json (the plotted data); returns the paths. */
export async function writeFigure(f: Figure, base: string): Promise<{ svg: string; png: string; json: string }> {
  await mkdir(dirname(base), { recursive: true });
  const svg = await toSvg(f.spec);
  const png = new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: FONT }, fitTo: { mode: 'zoom', value: 2 } }).render().asPng();
  const out = { svg: `${base}.svg`, png: `${base}.png`, json: `${base}.json` };
  await writeFile(out.svg, svg);
  await writeFile(out.png, png);
  await writeFile(out.json, `${JSON.stringify(f.data, null, 1)}\n`);
  return out;
}
