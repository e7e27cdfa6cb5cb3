// The results of an earlier evaluation read back, so recall at other radii comes from saved
// predictions — no re-extraction, no new search. (Models are read by models/assemble.ts.)
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { openDataset } from '../data/dataset.ts';
import { recallAtRadii, type RankedPredictions, type Recalls } from './recall.ts';
import { OptionFileError } from '../errors.ts';

// ---------------------------------------------------------------------------------------------
// Saved results of an evaluation (evaluate with outDir: recalls.json + predictions.json)

/** What recall at new radii needs of an earlier evaluation. */
export interface SavedEvaluation {
  dir: string;
  dataset: { root: string; name: string; split: string };
  method: string;
  radius: number;
  /** The N of recall@N the evaluation reported. */
  recallValues: number[];
  databaseCount: number;
  /** Ranked database indices per query, as many ranks as predictions.json holds. */
  predictions: RankedPredictions;
  /** Query positions and, per query and rank, the retrieved image's position (row-major pairs). */
  queriesPositions: Float64Array;
  predictedPositions: Float64Array;
  /** Query files relative to the split folder (to check the dataset still matches). */
  queryFiles: string[];
}

function field<T>(o: Record<string, unknown>, key: string, file: string, check: (v: unknown) => boolean, expected: string): T {
  const v = o[key];
  if (!check(v)) throw new Error(`${file}: "${key}" missing or not ${expected}`);
  return v as T;
}

const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown) => typeof v === 'string';

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  if (!existsSync(path)) throw new OptionFileError('from', `${path} not found (${what}; written by vgl eval with an output folder)`);
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path}: not a readable evaluation file (${(e as Error).message})`);
  }
}

/** Reads recalls.json and predictions.json of an evaluation output folder. */
export async function readSavedEvaluation(dir: string): Promise<SavedEvaluation> {
  const recallsFile = join(dir, 'recalls.json');
  const predictionsFile = join(dir, 'predictions.json');
  const recalls = await readJson(recallsFile, 'the recall summary');
  const saved = await readJson(predictionsFile, 'the ranked predictions');
  const ds = recalls.dataset as Record<string, unknown> | undefined;
  if (!ds || !isStr(ds.root) || !isStr(ds.name) || !isStr(ds.split)) throw new Error(`${recallsFile}: "dataset" {root, name, split} missing`);
  const databaseCount = field<number>(recalls, 'databaseCount', recallsFile, isNum, 'a number');
  const queriesCount = field<number>(recalls, 'queriesCount', recallsFile, isNum, 'a number');
  const queries = field<Record<string, unknown>[]>(saved, 'queries', predictionsFile, Array.isArray, 'a list');
  if (queries.length !== queriesCount) throw new Error(`${predictionsFile}: ${queries.length} queries, but ${recallsFile} reports ${queriesCount}`);
  // Ranks saved per query: every query holds the same number unless the database was smaller than k.
  const k = queries.reduce((m, q) => Math.min(m, Array.isArray(q.predictions) ? q.predictions.length : 0), Infinity);
  if (queries.length > 0 && (!Number.isFinite(k) || k < 1)) throw new Error(`${predictionsFile}: a query has no predictions`);
  const kk = queries.length === 0 ? 0 : k;
  const indices = new Int32Array(queries.length * kk);
  const predictedPositions = new Float64Array(queries.length * kk * 2);
  const queriesPositions = new Float64Array(queries.length * 2);
  const queryFiles: string[] = [];
  queries.forEach((q, i) => {
    if (!isNum(q.east) || !isNum(q.north) || !isStr(q.file)) throw new Error(`${predictionsFile}: query ${i} lacks file/east/north`);
    queriesPositions[2 * i] = q.east as number;
    queriesPositions[2 * i + 1] = q.north as number;
    queryFiles.push(q.file as string);
    const list = q.predictions as Record<string, unknown>[];
    for (let r = 0; r < kk; r++) {
      const p = list[r];
      if (p.rank !== r || !Number.isInteger(p.database) || (p.database as number) < 0 || (p.database as number) >= databaseCount || !isNum(p.east) || !isNum(p.north)) {
        throw new Error(`${predictionsFile}: query ${i} rank ${r}: expected {rank: ${r}, database: 0..${databaseCount - 1}, east, north}`);
      }
      indices[i * kk + r] = p.database as number;
      predictedPositions[2 * (i * kk + r)] = p.east as number;
      predictedPositions[2 * (i * kk + r) + 1] = p.north as number;
    }
  });
  return {
    dir,
    dataset: { root: ds.root as string, name: ds.name as string, split: ds.split as string },
    method: isStr(recalls.method) ? (recalls.method as string) : 'unknown',
    radius: isNum(recalls.radius) ? (recalls.radius as number) : NaN,
    recallValues: recalls.recalls && typeof recalls.recalls === 'object'
      ? Object.keys(recalls.recalls).map(Number).filter((n) => Number.isInteger(n) && n >= 1) : [],
    databaseCount,
    predictions: { count: queries.length, k: kk, databaseCount, indices },
    queriesPositions, predictedPositions, queryFiles,
  };
}

/** Where the positions used for recall came from. */
export type PositionsSource = 'dataset' | 'predictions';

/**
 * recall@N (percent) at each radius from saved predictions. Positions come from the dataset named in
 * recalls.json (checked to still match: counts and query files), through recallAtRadii; when that
 * dataset is gone, from the positions predictions.json stores for each query and retrieved image
 * (the same inclusive radius test). Either way nothing is extracted or searched again.
 */
export async function recallFromSaved(saved: SavedEvaluation, radii: readonly number[], ns: readonly number[]): Promise<{ recalls: Record<number, Recalls>; positions: PositionsSource; note?: string }> {
  const { root, name, split } = saved.dataset;
  const dir = join(resolve(root), name, 'images', split);
  if (existsSync(dir)) {
    const ds = await openDataset(root, name, split);
    if (ds.databasePaths.length !== saved.databaseCount || ds.queriesPaths.length !== saved.predictions.count) {
      throw new Error(`dataset ${dir} now has ${ds.databasePaths.length} database images and ${ds.queriesPaths.length} queries; ` +
        `the evaluation in ${saved.dir} saw ${saved.databaseCount} and ${saved.predictions.count}: evaluate again`);
    }
    const changed = saved.queryFiles.findIndex((f, i) => join(ds.dir, f) !== ds.queriesPaths[i]);
    if (changed >= 0) throw new Error(`dataset ${dir}: query ${changed} is ${ds.queriesPaths[changed]}, the evaluation saved ${saved.queryFiles[changed]}: evaluate again`);
    return { recalls: recallAtRadii(saved.predictions, ds.databasePositions, ds.queriesPositions, radii, ns), positions: 'dataset' };
  }
  return {
    recalls: recallFromSavedPositions(saved, radii, ns), positions: 'predictions',
    note: `dataset folder ${dir} not found: positions taken from predictions.json`,
  };
}

/** recall@N at each radius from the positions stored in predictions.json (no dataset needed). */
export function recallFromSavedPositions(saved: SavedEvaluation, radii: readonly number[], ns: readonly number[]): Record<number, Recalls> {
  const { count, k, databaseCount } = saved.predictions;
  for (const n of ns) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`recall: N must be a positive integer, got ${n}`);
    if (n > k && k < databaseCount) throw new Error(`recall@${n} needs ${n} predictions per query but ${saved.dir}/predictions.json holds ${k}`);
  }
  const q = saved.queriesPositions, p = saved.predictedPositions;
  const out: Record<number, Recalls> = {};
  for (const radius of radii) {
    if (!Number.isFinite(radius) || radius < 0) throw new Error(`radius must be a finite number of metres >= 0, got ${radius}`);
    const r2 = radius * radius;
    const first = new Int32Array(count).fill(-1);
    for (let i = 0; i < count; i++) {
      for (let r = 0; r < k; r++) {
        const dx = p[2 * (i * k + r)] - q[2 * i], dy = p[2 * (i * k + r) + 1] - q[2 * i + 1];
        if (dx * dx + dy * dy <= r2) {
          first[i] = r;
          break;
        }
      }
    }
    const recalls: Recalls = {};
    for (const n of ns) {
      let hits = 0;
      for (const f of first) if (f >= 0 && f < n) hits++;
      recalls[n] = count === 0 ? 0 : (100 * hits) / count;
    }
    out[radius] = recalls;
  }
  return out;
}
