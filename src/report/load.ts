// Reads an experiments folder (runs/experiments: one sub-folder per plan, or a single plan's folder)
// into typed data: each plan as run (plan.json), the records of its finished runs (evaluation.json),
// the table computed from them (the same function `vgl experiment table` uses) and each trained run's
// validation curve (log.jsonl). Nothing here is estimated: every number later shown comes from these files.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import { comparisonsOf, type Plan } from '../experiments/plan.ts';
import { readExperimentFolder, type RunRecord } from '../experiments/record.ts';
import { experimentTable, type ExperimentTable } from '../experiments/table.ts';

/** One validation of a training run (one per epoch). */
export interface EpochPoint { epoch: number; recalls: Record<number, number>; meanLoss: number }

/** The validation curve of the run that trained a record's model. */
export interface RunCurve { variant: string; seed: number; log: string; points: EpochPoint[] }

export interface PlanResult {
  name: string;
  /** The plan's experiment folder. */
  dir: string;
  plan: Plan;
  /** Finished runs, in plan order. */
  records: RunRecord[];
  /** Each record's file (same order as records): where its numbers come from. */
  recordFiles: string[];
  /** Runs the plan asks for (variants x seeds). */
  planned: number;
  /** Absent when no run has finished. */
  table?: ExperimentTable;
  curves: RunCurve[];
}

export interface Study {
  root: string;
  plans: PlanResult[];
}

const PLAN_FILE = 'plan.json';

/** Validation entries of a run's log.jsonl (other events skipped); [] when there is no log. */
export function readValidationCurve(logFile: string): EpochPoint[] {
  if (!existsSync(logFile)) return [];
  const out: EpochPoint[] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('"validation"')) continue;
    const e = JSON.parse(line) as { event: string; epoch: number; recalls: Record<string, number>; meanLoss?: number };
    if (e.event !== 'validation') continue;
    out.push({ epoch: e.epoch, recalls: Object.fromEntries(Object.entries(e.recalls).map(([n, v]) => [Number(n), v])), meanLoss: e.meanLoss ?? NaN });
  }
  return out;
}

/** One plan's experiment folder. */
export function loadPlan(dir: string): PlanResult {
  const { plan, runs, records, recordFiles } = readExperimentFolder(dir);
  const curves: RunCurve[] = [];
  for (const [i, r] of records.entries()) {
    if (r.model === 'untrained') continue;
    // A reused model was trained in its source plan's folder, the sibling of this one.
    const folder = r.trainedBy ? join(dirname(resolve(dir)), r.trainedBy) : dirname(recordFiles[i]!);
    const log = join(folder, 'log.jsonl');
    const points = readValidationCurve(log);
    if (points.length > 0) curves.push({ variant: r.variant, seed: r.seed, log, points });
  }
  return {
    name: plan.name, dir, plan, records, recordFiles, planned: runs.length,
    ...(records.length > 0 ? { table: experimentTable(records, comparisonsOf(plan)) } : {}), curves,
  };
}

/** Every plan folder under `root` (or `root` itself when it is a plan's folder), sorted by name. */
export function loadStudy(root: string): Study {
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new UsageError(`${root}: not a folder`);
  if (existsSync(join(root, PLAN_FILE))) return { root, plans: [loadPlan(root)] };
  const dirs = readdirSync(root).map((d) => join(root, d)).filter((d) => existsSync(join(d, PLAN_FILE))).sort();
  if (dirs.length === 0) throw new UsageError(`${root}: no plan folders (sub-folders with ${PLAN_FILE}, written by vgl experiment run)`);
  return { root, plans: dirs.map(loadPlan) };
}

/** "<plan>/<variant>/seed-<s>" of a record file, for citing where a number comes from. */
export const recordId = (file: string): string => join(basename(dirname(dirname(dirname(file)))), basename(dirname(dirname(file))), basename(dirname(file)));
