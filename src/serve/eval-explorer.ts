// The evaluation explorer's data: a `vgl eval --output-folder` folder read once (recalls.json,
// predictions.json, grids/*.png) and served as a compact per-query list. Image files are only ever
// named by query and rank (paths come from the folder's own predictions), never by a request's path.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { QueryPrediction } from '../eval/predictions.ts';

/** A query of predictions.json, with its top-1 error in metres (null without predictions). */
export interface ExplorerQuery extends QueryPrediction {
  errorMetres: number | null;
}

export interface Evaluation {
  dir: string;
  /** recalls.json as written by vgl eval. */
  summary: Record<string, unknown>;
  radius: number;
  datasetDir: string;
  queries: ExplorerQuery[];
  /** Grid PNG file names under grids/. */
  grids: string[];
}

function fail(file: string, why: string): never {
  throw new Error(`--eval: ${file}: ${why} (expected the --output-folder of vgl eval: recalls.json, predictions.json, grids/)`);
}

/** Reads an evaluation output folder; errors name the file at fault. */
export async function loadEvaluation(dir: string): Promise<Evaluation> {
  const abs = resolve(dir);
  if (!existsSync(abs)) fail(dir, 'folder not found');
  const recallsFile = join(abs, 'recalls.json');
  const predictionsFile = join(abs, 'predictions.json');
  for (const f of [recallsFile, predictionsFile]) if (!existsSync(f)) fail(f, 'missing');
  let summary: Record<string, unknown>;
  let predictions: Record<string, unknown>;
  try {
    summary = JSON.parse(await readFile(recallsFile, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    fail(recallsFile, `not valid JSON (${(e as Error).message})`);
  }
  try {
    predictions = JSON.parse(await readFile(predictionsFile, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    fail(predictionsFile, `not valid JSON (${(e as Error).message})`);
  }
  const queries = predictions.queries;
  if (!Array.isArray(queries)) fail(predictionsFile, '"queries" missing');
  const datasetDir = typeof predictions.datasetDir === 'string' ? predictions.datasetDir : null;
  if (datasetDir === null || !isAbsolute(datasetDir)) fail(predictionsFile, '"datasetDir" missing or not absolute');
  const radius = typeof predictions.radius === 'number' ? predictions.radius : Number(summary.radius ?? 25);
  const list: ExplorerQuery[] = (queries as ExplorerQuery[]).map((q, i) => {
    if (typeof q?.file !== 'string' || !Array.isArray(q.predictions) || typeof q.firstCorrectRank !== 'number') fail(predictionsFile, `query ${i} lacks file, firstCorrectRank or predictions`);
    return {
      query: q.query ?? i, file: q.file, east: q.east, north: q.north, firstCorrectRank: q.firstCorrectRank, positives: q.positives,
      errorMetres: q.predictions[0]?.errorMetres ?? null, predictions: q.predictions,
    };
  });
  const gridsDir = join(abs, 'grids');
  const grids = existsSync(gridsDir) ? (await readdir(gridsDir)).filter((f) => /^[\w.-]+\.png$/.test(f)).sort() : [];
  return { dir: abs, summary, radius, datasetDir, queries: list, grids };
}

/** The image a query or one of its predictions names, as an absolute path; null when out of range. */
export function evaluationImage(ev: Evaluation, query: number, rank?: number): string | null {
  const q = ev.queries[query];
  if (q === undefined) return null;
  if (rank === undefined) return join(ev.datasetDir, q.file);
  const p = q.predictions[rank];
  return p === undefined ? null : join(ev.datasetDir, p.file);
}
