// An experiment plan (experiments/*.yaml): shared training options, the variants to train (a list, a
// grid of option values, or both crossed), the seeds, the test sets every trained model is evaluated
// on, and evaluation-only variants that need no retraining. expandPlan turns it into the runs to make,
// each a validated training config in its own folder.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import YAML from 'yaml';
import { UsageError } from '../errors.ts';
import { TrainConfigSchema, trainOptionsFromMapping, type TrainConfig } from '../train/config.ts';
import { TEST_METHODS } from '../eval/test-methods.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const name = z.string().regex(NAME, 'letters, digits, ".", "_" and "-" (a folder name)');
const size = z.string().regex(/^\d+x\d+$/, 'HxW, e.g. 240x320').transform((s) => s.split('x').map(Number) as [number, number]);
const options = z.record(z.string(), z.unknown());

const TestSchema = z.object({
  dataset: z.string().min(1),
  split: z.enum(['train', 'val', 'test']).default('test'),
  /** Test-time size when not the training size. */
  size: size.optional(),
  label: z.string().optional(),
}).strict();

/** An evaluation-only variant: the trained models evaluated another way (extra radii, test method, size). */
const EvaluationSchema = z.object({
  name,
  radii: z.array(z.number().positive()).min(1).optional(),
  testMethod: z.enum(TEST_METHODS).optional(),
  size: size.optional(),
}).strict();

export const PlanSchema = z.object({
  name,
  description: z.string().optional(),
  /** demo: runs here (synthetic + real sets, small sizes); full: the reference's settings, for a GPU machine. */
  scale: z.enum(['demo', 'full']).default('demo'),
  defaults: options.default({}),
  variants: z.array(z.object({ name }).catchall(z.unknown())).min(1).optional(),
  grid: z.record(z.string(), z.array(z.unknown()).min(1, 'a grid option needs at least one value')).optional(),
  seeds: z.array(z.number().int().nonnegative()).min(1).default([0]),
  tests: z.array(TestSchema).default([]),
  evaluations: z.array(EvaluationSchema).default([]),
}).strict();

export type Plan = z.output<typeof PlanSchema>;
export type PlanTest = z.output<typeof TestSchema>;
export type PlanEvaluation = z.output<typeof EvaluationSchema>;

/** One training run of a plan: a variant at a seed. */
export interface PlannedRun {
  /** `<variant>/seed-<s>`: also its folder under the experiment folder. */
  id: string;
  variant: string;
  seed: number;
  /** The options the variant sets over the defaults (for tables). */
  options: Record<string, unknown>;
  config: TrainConfig;
}

/** Reads and validates a plan file (YAML or JSON); errors name the file and the field. */
export function readPlan(path: string): Plan {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${path}: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = YAML.parse(text);
  } catch (e) {
    throw new UsageError(`${path}: not valid YAML: ${(e as Error).message}`);
  }
  return parsePlan(data, path);
}

export function parsePlan(data: unknown, where: string): Plan {
  const r = PlanSchema.safeParse(data);
  if (!r.success) {
    throw new UsageError(`${where}: invalid plan:\n${r.error.issues.map((i) => `  ${i.path.join('.') || '(plan)'}: ${i.message}`).join('\n')}`);
  }
  return r.data;
}

const valueName = (v: unknown): string => (Array.isArray(v) ? v.join('x') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));

/** The variants: the list, the grid's product, or each listed variant crossed with the grid. */
function variantsOf(plan: Plan): { name: string; options: Record<string, unknown> }[] {
  const listed = plan.variants?.map(({ name: n, ...o }) => ({ name: n, options: o as Record<string, unknown> })) ?? [{ name: '', options: {} }];
  const grid = Object.entries(plan.grid ?? {});
  let combos: { name: string; options: Record<string, unknown> }[] = [{ name: '', options: {} }];
  for (const [key, values] of grid) {
    combos = combos.flatMap((c) => values.map((v) => ({
      name: [c.name, `${key}=${valueName(v)}`].filter(Boolean).join(','),
      options: { ...c.options, [key]: v },
    })));
  }
  const out = listed.flatMap((l) => combos.map((c) => ({
    name: [l.name, c.name].filter(Boolean).join(',') || 'default',
    options: { ...l.options, ...c.options },
  })));
  const seen = new Set<string>();
  for (const v of out) {
    if (seen.has(v.name)) throw new UsageError(`plan ${plan.name}: two variants are named "${v.name}"`);
    seen.add(v.name);
  }
  return out;
}

/**
 * The runs of a plan, in order (variant by variant, seeds inside), each config validated with the
 * variant's options over the defaults; outputFolder is `<experimentDir>/<variant>/seed-<s>`.
 */
export function expandPlan(plan: Plan, experimentDir: string): PlannedRun[] {
  const runs: PlannedRun[] = [];
  for (const v of variantsOf(plan)) {
    let merged: Record<string, unknown>;
    try {
      const defaults = trainOptionsFromMapping(plan.defaults);
      const own = trainOptionsFromMapping(v.options);
      merged = { ...defaults, ...own, augment: { ...(defaults.augment as object), ...(own.augment as object) } };
    } catch (e) {
      throw new UsageError(`plan ${plan.name}, variant ${v.name}: ${(e as Error).message}`);
    }
    for (const seed of plan.seeds) {
      const id = `${v.name}/seed-${seed}`;
      const r = TrainConfigSchema.safeParse({ ...merged, seed, outputFolder: join(experimentDir, v.name, `seed-${seed}`) });
      if (!r.success) {
        throw new UsageError(`plan ${plan.name}, variant ${v.name}:\n${r.error.issues.map((i) => {
          const key = i.path.map(String).join('.');
          return `  ${key || 'options'}: ${i.code === 'unrecognized_keys' ? `unknown option${i.keys.length > 1 ? 's' : ''} ${i.keys.join(', ')}` : i.message}`;
        }).join('\n')}`);
      }
      runs.push({ id, variant: v.name, seed, options: v.options, config: r.data });
    }
  }
  return runs;
}
