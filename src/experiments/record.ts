// What a finished run of an experiment leaves in its folder (evaluation.json): the schema, and the one
// way to read it, which names the file at fault. The runner writes records, the tables and the report
// read them; none of them depends on another for the format.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { UsageError } from '../errors.ts';
import type { Recalls } from '../eval/recall.ts';
import { parsePlan, planRunFolders, type Plan } from './plan.ts';

export const RUN_RECORD = 'evaluation.json';

/** recall@N in percent by N ("1", "5", … in the file). */
const RecallsSchema = z.record(z.string().regex(/^\d+$/), z.number()).transform((r) => r as unknown as Recalls);
const PrecisionSchema = z.object({ precision: z.enum(['fp32', 'bf16']), reason: z.string() });

/** One test set's result for one trained model. */
export const TestResultSchema = z.object({
  /** dataset[/split][@HxW]: the column of tables. */
  key: z.string(),
  dataset: z.string(),
  split: z.string(),
  size: z.tuple([z.number().int().positive(), z.number().int().positive()]),
  queries: z.number().int().nonnegative(),
  radius: z.number().nonnegative(),
  recalls: RecallsSchema,
  /** An evaluation-only variant's extra radii: radius → recall@N. */
  recallsByRadius: z.record(z.string(), RecallsSchema).transform((r) => r as unknown as Record<number, Recalls>).optional(),
  /** Per query, the first rank (0-based) holding a database image within radius, -1 for none in the top N. */
  ranks: z.array(z.number().int().min(-1)),
  /** The descriptor searched: its dimension and bytes per image (float32). */
  descriptor: z.object({
    dim: z.number().int().positive(), bytes: z.number().int().positive(),
    pca: z.object({ whiten: z.boolean(), explainedVariance: z.number() }).optional(),
  }).optional(),
  /** An evaluation variant with searchSizes: exact search time per query at each database size (null: did not fit in memory). */
  searchTimes: z.array(z.object({ databaseSize: z.number().int().positive(), msPerQuery: z.number().nullable() })).optional(),
  /** Where not fp32: what extraction computed in and why (the run's --precision or the variant's). */
  precision: PrecisionSchema.optional(),
  ms: z.number(),
}).refine((t) => t.ranks.length === t.queries, { message: 'ranks must hold one entry per query' });
export type TestResult = z.output<typeof TestResultSchema>;

const PhaseTimes = z.object({ train: z.number(), evaluate: z.number() });

/** What a finished run leaves in evaluation.json. */
export const RunRecordSchema = z.object({
  id: z.string(),
  variant: z.string(),
  seed: z.number().int(),
  options: z.record(z.string(), z.unknown()),
  /** The checkpoint evaluated ('untrained' for the starting network). */
  model: z.string(),
  /** A reused run: the source run that trained the model (`<plan>/<variant>/seed-<s>`); its times are the source's. */
  trainedBy: z.string().optional(),
  commit: z.string(),
  machine: z.object({ cpus: z.string(), cores: z.number().int(), threads: z.number().int(), device: z.string(), node: z.string() }),
  wallMs: PhaseTimes,
  /**
   * CPU time of the process (all its threads) and the machine's 1-minute load average, highest of the
   * samples at each phase's start and end: a load above `machine.threads` means the run shared the
   * CPUs with other work, and its wall times overstate what it costs on a quiet machine. Absent in
   * records written before they were measured.
   */
  cpuMs: PhaseTimes.optional(),
  load: PhaseTimes.optional(),
  /** Sums over the run's cache loops (log.jsonl), and over its validations. */
  phasesMs: z.object({ cache: z.number(), mine: z.number(), train: z.number(), validate: z.number() }),
  /** Epochs trained (validations in the log): phasesMs / epochs is the cost of one epoch. */
  epochs: z.number().int().nonnegative(),
  tests: z.array(TestResultSchema),
});
export type RunRecord = z.output<typeof RunRecordSchema>;

/** Reads and validates one run's evaluation.json; an unreadable file or a bad field is named with the file. */
export function readRunRecord(file: string): RunRecord {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`${file}: ${(e as Error).message}`);
  }
  const parsed = RunRecordSchema.safeParse(data);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new UsageError(`${file}: not a vgl run record (${issues.join('; ')}); run the experiment again to rewrite it`);
  }
  return parsed.data;
}

/** The records of the runs that are done (their folder holds evaluation.json), in the order given. */
export function readRecords(runs: readonly { folder: string }[]): RunRecord[] {
  return runs.map((r) => join(r.folder, RUN_RECORD)).filter((f) => existsSync(f)).map(readRunRecord);
}

/** The plan an experiment folder ran (its plan.json), its run folders, and the records of the runs that are done with their files, in plan order. */
export interface ExperimentFolder {
  plan: Plan;
  runs: { id: string; folder: string }[];
  records: RunRecord[];
  recordFiles: string[];
}

/** Reads an experiment folder as `vgl experiment run` wrote it; a missing plan.json or an unreadable file is named. */
export function readExperimentFolder(dir: string): ExperimentFolder {
  const file = join(dir, 'plan.json');
  if (!existsSync(file)) throw new UsageError(`${dir}: no plan.json (not an experiment folder written by vgl experiment run)`);
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`${file}: ${(e as Error).message}`);
  }
  const plan = parsePlan(data, file);
  const runs = planRunFolders(plan, dir);
  const recordFiles = runs.map((r) => join(r.folder, RUN_RECORD)).filter((f) => existsSync(f));
  return { plan, runs, records: recordFiles.map(readRunRecord), recordFiles };
}
