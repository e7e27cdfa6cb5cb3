// Raw-pixel baseline on a datasets_vg split (meant for the synthetic city): each image shrunk to a
// tiny thumbnail (greyscale or colour), mean-free and L2-normalised, brute-force nearest neighbour
// in plain TypeScript, recall@1/5/10 with the 25 m radius taken from the file names.
// A trained network should beat this clearly; if it is near 100% the dataset is too easy. Two more
// rows put it in context: chance (random ranking, exact expectation from the positives) and a
// hand-made gradient descriptor (HOG-like), which shows how much structure is there to learn.
//
//   node --import tsx scripts/synth-baseline.ts --root DIR --name NAME [--split test] [--thumb 16x12] [--json out.json]

import { parseArgs } from 'node:util';
import { writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import { openDataset } from '../src/data/dataset.ts';
import { mapLimit } from '../src/util/concurrency.ts';
import { computePositives } from '../src/data/positives.ts';

type Mode = 'grey' | 'colour' | 'hog';
const RECALL_AT = [1, 5, 10] as const;

/** Gradient orientation histograms: CX x CY cells x B unsigned orientations, sqrt, then L2 (on greyscale). */
const CX = 8, CY = 6, B = 9;
async function hog(p: string): Promise<Float32Array> {
  const { data, info } = await sharp(p).removeAlpha().greyscale().raw().toBuffer({ resolveWithObject: true });
  const W = info.width, H = info.height;
  const v = new Float32Array(CX * CY * B);
  for (let y = 1; y < H - 1; y++) {
    for (let x = 1; x < W - 1; x++) {
      const gx = data[y * W + x + 1]! - data[y * W + x - 1]!, gy = data[(y + 1) * W + x]! - data[(y - 1) * W + x]!;
      let a = Math.atan2(gy, gx);
      if (a < 0) a += Math.PI;
      const b = Math.min(B - 1, Math.floor((a / Math.PI) * B));
      v[(Math.floor((y * CY) / H) * CX + Math.floor((x * CX) / W)) * B + b]! += Math.hypot(gx, gy);
    }
  }
  let norm = 0;
  for (let i = 0; i < v.length; i++) { v[i] = Math.sqrt(v[i]!); norm += v[i]! * v[i]!; }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < v.length; i++) v[i]! /= norm;
  return v;
}

async function descriptors(paths: string[], w: number, h: number, mode: Mode): Promise<Float32Array[]> {
  if (mode === 'hog') return mapLimit(paths, 8, hog);
  return mapLimit(paths, 8, async (p) => {
    let img = sharp(p).resize(w, h, { fit: 'fill', kernel: 'cubic' }).removeAlpha();
    if (mode === 'grey') img = img.greyscale();
    const { data } = await img.raw().toBuffer({ resolveWithObject: true });
    const v = new Float32Array(data.length);
    let mean = 0;
    for (let i = 0; i < data.length; i++) mean += data[i]!;
    mean /= data.length;
    let norm = 0;
    for (let i = 0; i < data.length; i++) { v[i] = data[i]! - mean; norm += v[i]! * v[i]!; }
    norm = Math.sqrt(norm) || 1;
    for (let i = 0; i < v.length; i++) v[i]! /= norm;
    return v;
  });
}

/** Top-k database indices per query by L2 distance (= largest dot product on unit vectors). */
function search(db: Float32Array[], queries: Float32Array[], k: number): Int32Array[] {
  return queries.map((q) => {
    const best = new Int32Array(k).fill(-1);
    const score = new Float64Array(k).fill(-Infinity);
    for (let j = 0; j < db.length; j++) {
      const d = db[j]!;
      let s = 0;
      for (let i = 0; i < q.length; i++) s += q[i]! * d[i]!;
      if (s <= score[k - 1]!) continue;
      let t = k - 1;
      while (t > 0 && score[t - 1]! < s) { score[t] = score[t - 1]!; best[t] = best[t - 1]!; t--; }
      score[t] = s; best[t] = j;
    }
    return best;
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      root: { type: 'string' }, name: { type: 'string' }, split: { type: 'string', default: 'test' },
      thumb: { type: 'string', default: '16x12' }, json: { type: 'string' },
    },
  });
  if (values.root === undefined || values.name === undefined) throw new Error('usage: synth-baseline.ts --root DIR --name NAME [--split test] [--thumb 16x12] [--json FILE]');
  const m = /^(\d+)x(\d+)$/.exec(values.thumb!);
  if (m === null) throw new Error(`--thumb "${values.thumb}": expected WIDTHxHEIGHT, e.g. 16x12`);
  const [w, h] = [Number(m[1]), Number(m[2])];
  const ds = await openDataset(values.root, values.name, values.split!);
  const positives = computePositives(ds).soft;
  const withPositive = positives.filter((p) => p.length > 0).length;
  const rows: { method: string; recall: Record<string, number> }[] = [];
  // Chance: a random ranking finds one of the k positives among n in the top N with 1 - C(n-k, N)/C(n, N).
  const n = ds.databasePaths.length;
  const chance: Record<string, number> = {};
  for (const N of RECALL_AT) {
    let sum = 0;
    for (const p of positives) {
      let miss = 1;
      for (let i = 0; i < N; i++) miss *= Math.max(0, n - p.length - i) / (n - i);
      sum += 1 - miss;
    }
    chance[`R@${N}`] = (100 * sum) / positives.length;
  }
  rows.push({ method: 'chance (random ranking)', recall: chance });
  const label: Record<Mode, string> = {
    grey: `raw pixels ${w}x${h} grey`, colour: `raw pixels ${w}x${h} colour`, hog: `HOG ${CX}x${CY} cells x ${B} bins`,
  };
  for (const mode of ['grey', 'colour', 'hog'] as const) {
    const db = await descriptors(ds.databasePaths, w, h, mode);
    const qs = await descriptors(ds.queriesPaths, w, h, mode);
    const top = search(db, qs, Math.max(...RECALL_AT));
    const recall: Record<string, number> = {};
    for (const n of RECALL_AT) {
      let hit = 0;
      top.forEach((list, q) => {
        const pos = new Set(positives[q]!);
        if (Array.from(list.subarray(0, n)).some((j) => pos.has(j))) hit++;
      });
      recall[`R@${n}`] = (100 * hit) / qs.length;
    }
    rows.push({ method: label[mode], recall });
  }
  const out = process.stdout;
  out.write(`raw-pixel baseline: ${values.name}/${values.split}, ${ds.databasePaths.length} database, ${ds.queriesPaths.length} queries `
    + `(${withPositive} with a database image within 25 m)\n\n`);
  out.write(`| method | ${RECALL_AT.map((n) => `R@${n}`).join(' | ')} |\n|---|${RECALL_AT.map(() => '---').join('|')}|\n`);
  for (const r of rows) out.write(`| ${r.method} | ${RECALL_AT.map((n) => r.recall[`R@${n}`]!.toFixed(1)).join(' | ')} |\n`);
  if (values.json !== undefined) {
    await writeFile(values.json, JSON.stringify({ name: values.name, split: values.split, thumbnail: [w, h], database: ds.databasePaths.length, queries: ds.queriesPaths.length, rows }, null, 2) + '\n');
  }
}

await main();
