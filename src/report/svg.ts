// Small figure primitives for reports: scatter/map, histogram and line plots written as SVG text,
// rendered to PNG with sharp (librsvg), plus labelled image grids (src/data/grid.ts).
// Each plot function is pure (options in, SVG string out) so tests can check the text.
import { writeFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import sharp from 'sharp';

/** A colour-blind-friendly qualitative palette (Okabe-Ito). */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#F0E442', '#000000'] as const;

const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';

import { escapeXml } from '../data/grid.ts';
export { escapeXml };

/** About `target` round-numbered ticks (steps 1, 2, 5 x 10^k) covering [min, max]. */
export function niceTicks(min: number, max: number, target = 6): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (max < min) [min, max] = [max, min];
  if (max === min) return [min];
  const raw = (max - min) / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  // The 1-2-5 step whose tick count is closest to the target (larger step on ties).
  const count = (s: number) => Math.floor(max / s + 1e-9) - Math.ceil(min / s - 1e-9) + 1;
  let step = 10 * mag;
  for (const m of [10, 5, 2, 1, 0.5]) if (Math.abs(count(m * mag) - target) < Math.abs(count(step) - target)) step = m * mag;
  const first = Math.ceil(min / step - 1e-9) * step;
  const out: number[] = [];
  for (let v = first; v <= max + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  return out;
}

/** Formats a tick value with as many decimals as the tick spacing needs and thousands separators. */
export function formatTick(value: number, step: number): string {
  const decimals = step > 0 && step < 1 ? Math.min(6, Math.ceil(-Math.log10(step) - 1e-9)) : 0;
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** Pixel box of the plotting area inside a figure. */
interface Frame { x0: number; y0: number; x1: number; y1: number }

interface Axis { min: number; max: number; ticks: number[]; label: string; offset: number }

/** An axis over [min, max] with about `target` ticks. (Ticks show full values, e.g. UTM "4,478,200": what people check against a GIS.) */
function makeAxis(min: number, max: number, label: string, target: number): Axis {
  return { min, max, ticks: niceTicks(min, max, target), label, offset: 0 };
}

function scale(v: number, min: number, max: number, p0: number, p1: number): number {
  return max === min ? (p0 + p1) / 2 : p0 + ((v - min) / (max - min)) * (p1 - p0);
}

/** Title, subtitle, frame, grid, ticks and axis labels shared by every plot. */
function chrome(width: number, height: number, title: string, subtitle: string | undefined, f: Frame, xa: Axis, ya: Axis, xTickLabels?: (v: number) => string): string {
  const parts: string[] = [];
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(`<text x="${width / 2}" y="28" text-anchor="middle" font-size="19" font-weight="bold" fill="#222">${escapeXml(title)}</text>`);
  if (subtitle) parts.push(`<text x="${width / 2}" y="50" text-anchor="middle" font-size="13" fill="#555">${escapeXml(subtitle)}</text>`);
  const xStep = xa.ticks.length > 1 ? xa.ticks[1] - xa.ticks[0] : 1;
  const yStep = ya.ticks.length > 1 ? ya.ticks[1] - ya.ticks[0] : 1;
  for (const t of xa.ticks) {
    const x = scale(t, xa.min, xa.max, f.x0, f.x1);
    parts.push(`<line x1="${x.toFixed(1)}" y1="${f.y0}" x2="${x.toFixed(1)}" y2="${f.y1}" stroke="#e6e6e6"/>`);
    parts.push(`<line x1="${x.toFixed(1)}" y1="${f.y1}" x2="${x.toFixed(1)}" y2="${f.y1 + 5}" stroke="#444"/>`);
    const text = xTickLabels ? xTickLabels(t) : formatTick(t - xa.offset, xStep);
    parts.push(`<text x="${x.toFixed(1)}" y="${f.y1 + 20}" text-anchor="middle" font-size="12" fill="#333">${escapeXml(text)}</text>`);
  }
  for (const t of ya.ticks) {
    const y = scale(t, ya.min, ya.max, f.y1, f.y0);
    parts.push(`<line x1="${f.x0}" y1="${y.toFixed(1)}" x2="${f.x1}" y2="${y.toFixed(1)}" stroke="#e6e6e6"/>`);
    parts.push(`<line x1="${f.x0 - 5}" y1="${y.toFixed(1)}" x2="${f.x0}" y2="${y.toFixed(1)}" stroke="#444"/>`);
    parts.push(`<text x="${f.x0 - 9}" y="${(y + 4).toFixed(1)}" text-anchor="end" font-size="12" fill="#333">${escapeXml(formatTick(t - ya.offset, yStep))}</text>`);
  }
  parts.push(`<rect x="${f.x0}" y="${f.y0}" width="${f.x1 - f.x0}" height="${f.y1 - f.y0}" fill="none" stroke="#444"/>`);
  parts.push(`<text x="${(f.x0 + f.x1) / 2}" y="${height - 14}" text-anchor="middle" font-size="14" fill="#222">${escapeXml(xa.label)}</text>`);
  const cy = (f.y0 + f.y1) / 2;
  const longest = Math.max(0, ...ya.ticks.map((t) => formatTick(t - ya.offset, yStep).length));
  const lx = Math.max(16, f.x0 - 20 - longest * 7.3);
  parts.push(`<text x="${lx.toFixed(1)}" y="${cy}" text-anchor="middle" font-size="14" fill="#222" transform="rotate(-90 ${lx.toFixed(1)} ${cy})">${escapeXml(ya.label)}</text>`);
  return parts.join('\n');
}

/** A legend box in the top-right corner of the frame. */
function legend(f: Frame, items: { name: string; color: string; kind: 'dot' | 'bar' | 'line'; dashed?: boolean }[]): string {
  if (items.length === 0) return '';
  const w = Math.max(...items.map((i) => i.name.length)) * 7.4 + 44;
  const h = items.length * 20 + 10;
  const x = f.x1 - w - 8, y = f.y0 + 8;
  const rows = items.map((it, k) => {
    const cy = y + 15 + k * 20;
    const mark = it.kind === 'dot' ? `<circle cx="${x + 16}" cy="${cy}" r="5" fill="${it.color}"/>`
      : it.kind === 'bar' ? `<rect x="${x + 9}" y="${cy - 6}" width="14" height="12" fill="${it.color}"/>`
      : `<line x1="${x + 6}" y1="${cy}" x2="${x + 26}" y2="${cy}" stroke="${it.color}" stroke-width="2.5"${it.dashed ? ' stroke-dasharray="5 3"' : ''}/>`;
    return `${mark}<text x="${x + 32}" y="${cy + 4}" font-size="13" fill="#222">${escapeXml(it.name)}</text>`;
  });
  return `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="white" fill-opacity="0.9" stroke="#bbb" rx="3"/>\n${rows.join('\n')}`;
}

/** The colour of series k: its own, else the palette's k-th. */
function seriesColor(color: string | undefined, k: number): string {
  return color ?? PALETTE[k % PALETTE.length];
}

/** The data range of a plot: x and y minimum and maximum. */
interface Extent { xmin: number; xmax: number; ymin: number; ymax: number }

/** The smallest range holding every point `points` hands to `add`; [0, 1] on both axes when it hands none. */
function extentOf(points: (add: (x: number, y: number) => void) => void): Extent {
  const e: Extent = { xmin: Infinity, xmax: -Infinity, ymin: Infinity, ymax: -Infinity };
  points((x, y) => {
    e.xmin = Math.min(e.xmin, x); e.xmax = Math.max(e.xmax, x);
    e.ymin = Math.min(e.ymin, y); e.ymax = Math.max(e.ymax, y);
  });
  return Number.isFinite(e.xmin) ? e : { xmin: 0, xmax: 1, ymin: 0, ymax: 1 };
}

/** The start of a plot's body whose marks are clipped to the frame (`clip-path="url(#plot)"`): chrome, then the clip path. */
function clippedBody(width: number, height: number, title: string, subtitle: string | undefined, f: Frame, xa: Axis, ya: Axis): string[] {
  return [chrome(width, height, title, subtitle, f, xa, ya),
    `<clipPath id="plot"><rect x="${f.x0}" y="${f.y0}" width="${f.x1 - f.x0}" height="${f.y1 - f.y0}"/></clipPath>`];
}

function svgDoc(width: number, height: number, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}">\n${body}\n</svg>\n`;
}

/** Plot area inside the figure; `yLabelChars` (longest y tick label) sets the left margin. */
function frameFor(width: number, height: number, subtitle: boolean, yLabelChars = 6): Frame {
  return { x0: Math.round(44 + yLabelChars * 7.3), y0: subtitle ? 64 : 46, x1: width - 24, y1: height - 56 };
}

/** Characters of the longest tick label over [min, max]: sizes the left margin before the frame exists. */
function tickChars(min: number, max: number, target: number): number {
  const t = niceTicks(min, max, target);
  const step = t.length > 1 ? t[1] - t[0] : 1;
  return Math.max(1, ...t.map((v) => formatTick(v, step).length));
}

/** The text and size every plot takes. */
export interface PlotOptions {
  title: string;
  subtitle?: string;
  xLabel: string;
  width?: number;
  height?: number;
}

/** Points of one scatter series as x, y pairs ([x0, y0, x1, y1, ...]). */
export interface ScatterSeries {
  name: string;
  points: ArrayLike<number>;
  color?: string;
  /** Dot radius in pixels (default 2.5). */
  radius?: number;
  opacity?: number;
}

/** Options of scatterPlot. */
export interface ScatterOptions extends PlotOptions {
  yLabel: string;
  series: ScatterSeries[];
  /** Same metres per pixel on both axes (maps). Default false. */
  equalAspect?: boolean;
}

/** A scatter plot (or map, with equalAspect) of one or more point series, with legend. */
export function scatterPlot(o: ScatterOptions): string {
  const width = o.width ?? 900, height = o.height ?? 720;
  let { xmin, xmax, ymin, ymax } = extentOf((add) => {
    for (const s of o.series) for (let i = 0; i + 1 < s.points.length; i += 2) add(s.points[i], s.points[i + 1]);
  });
  const padX = Math.max((xmax - xmin) * 0.04, 1), padY = Math.max((ymax - ymin) * 0.04, 1);
  xmin -= padX; xmax += padX; ymin -= padY; ymax += padY;
  // Equal aspect can only widen the y range: size the margin for a generous version of it.
  const f = frameFor(width, height, o.subtitle !== undefined, tickChars(ymin - (xmax - xmin), ymax + (xmax - xmin), 6));
  if (o.equalAspect) {
    // Widen the narrower range so one metre covers the same pixels horizontally and vertically.
    const pw = f.x1 - f.x0, ph = f.y1 - f.y0;
    const mpp = Math.max((xmax - xmin) / pw, (ymax - ymin) / ph);
    const cx = (xmin + xmax) / 2, cy = (ymin + ymax) / 2;
    xmin = cx - (mpp * pw) / 2; xmax = cx + (mpp * pw) / 2;
    ymin = cy - (mpp * ph) / 2; ymax = cy + (mpp * ph) / 2;
  }
  const xa = makeAxis(xmin, xmax, o.xLabel, 7);
  const ya = makeAxis(ymin, ymax, o.yLabel, 6);
  const body = clippedBody(width, height, o.title, o.subtitle, f, xa, ya);
  o.series.forEach((s, k) => {
    const color = seriesColor(s.color, k);
    const r = s.radius ?? 2.5;
    const dots: string[] = [];
    for (let i = 0; i + 1 < s.points.length; i += 2) {
      const x = scale(s.points[i], xmin, xmax, f.x0, f.x1), y = scale(s.points[i + 1], ymin, ymax, f.y1, f.y0);
      dots.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${r}"/>`);
    }
    body.push(`<g clip-path="url(#plot)" fill="${color}" fill-opacity="${s.opacity ?? 0.7}">${dots.join('')}</g>`);
  });
  body.push(legend(f, o.series.map((s, k) => ({ name: `${s.name} (${Math.floor(s.points.length / 2).toLocaleString('en-US')})`, color: seriesColor(s.color, k), kind: 'dot' as const }))));
  return svgDoc(width, height, body.join('\n'));
}

/** Values of one histogram series. */
export interface HistogramSeries {
  name: string;
  values: ArrayLike<number>;
  color?: string;
}

/** Options of histogram. */
export interface HistogramOptions extends PlotOptions {
  /** Default "count". */
  yLabel?: string;
  series: HistogramSeries[];
  /** One bin per integer value (counts such as positives per query). */
  integerBins?: boolean;
  /** Bin range for real values; values above it go into the last bin (noted in the figure). Default data range. */
  range?: [number, number];
  /** Number of bins for real values (default 30). */
  bins?: number;
  /** Vertical reference lines, e.g. the 10 m and 25 m thresholds. */
  markers?: { x: number; label: string }[];
}

/** Bin edges and counts of one series; values above the last edge count in the last bin. */
export function binCounts(values: ArrayLike<number>, edges: number[]): { counts: number[]; overflow: number; underflow: number } {
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

/** A histogram of one or more series (bars side by side per bin), with legend and optional markers. */
export function histogram(o: HistogramOptions): string {
  const width = o.width ?? 900, height = o.height ?? 520;
  const f = frameFor(width, height, o.subtitle !== undefined);
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
  const binned = o.series.map((s) => binCounts(s.values, edges));
  // Headroom above the tallest bar keeps the legend and marker labels off the data.
  const ymax = Math.max(1, ...binned.flatMap((b) => b.counts)) * (o.series.length > 1 || (o.markers?.length ?? 0) > 0 ? 1.25 : 1.08);
  const xa = makeAxis(edges[0], edges[edges.length - 1], o.xLabel, o.integerBins ? Math.min(12, edges.length - 1) : 8);
  if (o.integerBins) xa.ticks = niceTicks(edges[0] + 0.5, edges[edges.length - 1] - 0.5, Math.min(15, edges.length - 1)).filter((t) => Number.isInteger(t));
  const ya = makeAxis(0, ymax, o.yLabel ?? 'count', 6);
  ya.ticks = ya.ticks.filter((t) => Number.isInteger(t) || ymax < 5);
  const body: string[] = [chrome(width, height, o.title, o.subtitle, f, xa, ya)];
  const nS = o.series.length;
  const binPx = (f.x1 - f.x0) / (edges.length - 1);
  binned.forEach((b, k) => {
    const color = seriesColor(o.series[k].color, k);
    const bars: string[] = [];
    b.counts.forEach((c, i) => {
      if (c === 0) return;
      const x = f.x0 + i * binPx + binPx * 0.08 + (k * binPx * 0.84) / nS;
      const y = scale(c, 0, ymax, f.y1, f.y0);
      bars.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(0.8, (binPx * 0.84) / nS).toFixed(1)}" height="${(f.y1 - y).toFixed(1)}"/>`);
    });
    body.push(`<g fill="${color}" fill-opacity="0.85">${bars.join('')}</g>`);
  });
  for (const m of o.markers ?? []) {
    if (m.x < edges[0] || m.x > edges[edges.length - 1]) continue;
    const x = scale(m.x, edges[0], edges[edges.length - 1], f.x0, f.x1);
    body.push(`<line x1="${x.toFixed(1)}" y1="${f.y0}" x2="${x.toFixed(1)}" y2="${f.y1}" stroke="#333" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    body.push(`<text x="${(x + 5).toFixed(1)}" y="${f.y0 + 16}" font-size="12" fill="#333">${escapeXml(m.label)}</text>`);
  }
  const over = binned.map((b, k) => (b.overflow > 0 ? `${b.overflow} ${o.series[k].name} values > ${formatTick(edges[edges.length - 1], 1)} counted in the last bin` : '')).filter((s) => s !== '');
  if (over.length > 0) body.push(`<text x="${f.x1 - 6}" y="${f.y1 - 8}" text-anchor="end" font-size="12" fill="#a33">${escapeXml(over.join('; '))}</text>`);
  if (o.series.length > 1) body.push(legend(f, o.series.map((s, k) => ({ name: s.name, color: seriesColor(s.color, k), kind: 'bar' as const }))));
  return svgDoc(width, height, body.join('\n'));
}

/** One line of a line plot. */
export interface LineSeries {
  name: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  color?: string;
  dashed?: boolean;
  /** Draw a dot at each point (default true when there are at most 60 points). */
  dots?: boolean;
}

/** Options of linePlot. */
export interface LinePlotOptions extends PlotOptions {
  yLabel: string;
  series: LineSeries[];
  /** Fixed y range (e.g. [0, 100] for recall); default data range. */
  yRange?: [number, number];
}

/** A line plot of one or more series (training curves, recall@N), with legend. */
export function linePlot(o: LinePlotOptions): string {
  const width = o.width ?? 900, height = o.height ?? 520;
  let { xmin, xmax, ymin, ymax } = extentOf((add) => {
    for (const s of o.series) {
      for (let i = 0; i < Math.min(s.x.length, s.y.length); i++) if (Number.isFinite(s.x[i]) && Number.isFinite(s.y[i])) add(s.x[i], s.y[i]);
    }
  });
  if (xmax === xmin) { xmin -= 1; xmax += 1; }
  if (o.yRange) [ymin, ymax] = o.yRange;
  else { const pad = Math.max((ymax - ymin) * 0.06, Math.abs(ymax) * 1e-3, 1e-9); ymin -= pad; ymax += pad; }
  const f = frameFor(width, height, o.subtitle !== undefined, tickChars(ymin, ymax, 6));
  const xa = makeAxis(xmin, xmax, o.xLabel, 8);
  const ya = makeAxis(ymin, ymax, o.yLabel, 6);
  const body = clippedBody(width, height, o.title, o.subtitle, f, xa, ya);
  o.series.forEach((s, k) => {
    const color = seriesColor(s.color, k);
    const pts: string[] = [];
    const n = Math.min(s.x.length, s.y.length);
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(s.x[i]) || !Number.isFinite(s.y[i])) continue;
      pts.push(`${scale(s.x[i], xmin, xmax, f.x0, f.x1).toFixed(1)},${scale(s.y[i], ymin, ymax, f.y1, f.y0).toFixed(1)}`);
    }
    body.push(`<polyline clip-path="url(#plot)" points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="2.2"${s.dashed ? ' stroke-dasharray="7 4"' : ''}/>`);
    if (s.dots ?? n <= 60) body.push(`<g fill="${color}">${pts.map((p) => { const [x, y] = p.split(','); return `<circle cx="${x}" cy="${y}" r="3.2"/>`; }).join('')}</g>`);
  });
  body.push(legend(f, o.series.map((s, k) => ({ name: s.name, color: seriesColor(s.color, k), kind: 'line' as const, dashed: s.dashed }))));
  return svgDoc(width, height, body.join('\n'));
}

/**
 * Writes SVG text as `<base>.svg` and `<base>.png` (rendered by sharp); returns both paths. (A vega-lite
 * `Figure` is written by `writeFigure` in src/report/figures.ts.)
 */
export async function writeSvgFigure(svg: string, base: string): Promise<{ svg: string; png: string }> {
  await mkdir(dirname(base), { recursive: true });
  const svgPath = `${base}.svg`, pngPath = `${base}.png`;
  await writeFile(svgPath, svg);
  await sharp(Buffer.from(svg)).png().toFile(pngPath);
  return { svg: svgPath, png: pngPath };
}

// Labelled image grids live with the images (src/data/grid.ts), so evaluation draws its prediction grids
// with the same code; re-exported here for the reports.
export { imageGrid, type GridCell, type GridRow, type ImageGridOptions } from '../data/grid.ts';
