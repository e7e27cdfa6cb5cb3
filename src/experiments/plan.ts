// An experiment plan (experiments/*.yaml): shared training options, the variants to train (a list, a
// grid of option values, or both crossed), the seeds, the test sets every trained model is evaluated
// on, and evaluation-only variants that need no retraining. expandPlan turns it into the runs to make,
// each a validated training config in its own folder.
//
// A variant may reuse another plan's trained models (`from: baselines.yaml#netvlad`): it is not
// retrained, only evaluated on this plan's tests, so an ablation's baseline or an evaluation-only
// study (recall vs radius, PCA) costs no training. The other plan's experiment folder is the sibling
// of this one (runs/experiments/<its name>), where its runs are made if they are not yet.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import YAML from 'yaml';
import { UsageError } from '../errors.ts';
import { TrainConfigSchema, trainOptionsFromMapping, flatNameOf, type TrainConfig } from '../train/config.ts';
import { TEST_METHODS } from '../eval/test-methods.ts';
import { parseSize } from '../data/image.ts';
import { PRECISIONS } from '../torch/precision.ts';
import { FINAL_SPLIT } from '../data/splits.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const name = z.string().regex(NAME, 'letters, digits, ".", "_" and "-" (a folder name)');
// "HxW" in a plan file; [H, W] in the plan.json a run writes (the parsed plan), which tables read back
const size = z.unknown().transform((v, ctx): [number, number] => {
  const parsed = typeof v === 'string' ? parseSize(v)
    : Array.isArray(v) && v.length === 2 && v.every((n) => Number.isInteger(n) && n > 0) ? (v as [number, number]) : null;
  if (parsed) return parsed;
  ctx.addIssue({ code: 'custom', message: 'HxW, e.g. 240x320' });
  return z.NEVER;
});
const options = z.record(z.string(), z.unknown());

const TestSchema = z.object({
  dataset: z.string().min(1),
  /** 'final': the real routes' sealed split (data/real.ts); every evaluation of it is recorded in the experiment's final-evaluations.jsonl. */
  split: z.enum(['train', 'val', 'test', FINAL_SPLIT]).default('test'),
  /** Test-time size when not the training size. */
  size: size.optional(),
  label: z.string().optional(),
}).strict();

/** An evaluation-only variant: the trained models evaluated another way (extra radii, test method, size, PCA, search cost). */
const EvaluationSchema = z.object({
  name,
  radii: z.array(z.number().positive()).min(1).optional(),
  testMethod: z.enum(TEST_METHODS).optional(),
  size: size.optional(),
  /** PCA to this dimension, fitted on the training dataset's train database (as the reference does). */
  pcaDim: z.number().int().positive().optional(),
  pcaWhiten: z.boolean().optional(),
  /** Database sizes at which exact search is timed per query (the test database repeated, jittered). */
  searchSizes: z.array(z.number().int().positive()).min(1).optional(),
  /** Extraction precision (default: the run's; bf16 checked on the test images, see choosePrecision). */
  precision: z.enum(PRECISIONS).optional(),
}).strict().refine((e) => e.pcaWhiten === undefined || e.pcaDim !== undefined, { message: 'pcaWhiten needs pcaDim', path: ['pcaWhiten'] });

const FROM = /^[^#]+#[A-Za-z0-9][A-Za-z0-9._=,-]*$/;
const VariantSchema = z.object({
  name,
  /** Reuse another plan's trained models: "<plan file, relative to this one>#<variant>". */
  from: z.string().regex(FROM, '"<plan file>#<variant>", e.g. baselines.yaml#netvlad').optional(),
  /** The variants this one's R@1 is compared with (default: the plan's first variant). */
  against: z.union([name, z.array(name).min(1)]).optional(),
  /**
   * The starting network evaluated without training (ImageNet backbone; NetVLAD's clusters from
   * k-means, as training would start): the reference "trained beats untrained" is measured against.
   */
  untrained: z.boolean().optional(),
}).catchall(z.unknown());

export const PlanSchema = z.object({
  name,
  description: z.string().optional(),
  /** demo: runs here (synthetic + real sets, small sizes); full: the reference's settings, for a GPU machine. */
  scale: z.enum(['demo', 'full']).default('demo'),
  defaults: options.default({}),
  variants: z.array(VariantSchema).min(1).optional(),
  grid: z.record(z.string(), z.array(z.unknown()).min(1, 'a grid option needs at least one value')).optional(),
  seeds: z.array(z.number().int().nonnegative()).min(1).default([0]),
  tests: z.array(TestSchema).default([]),
  evaluations: z.array(EvaluationSchema).default([]),
}).strict();

export type Plan = z.output<typeof PlanSchema>;
export type PlanTest = z.output<typeof TestSchema>;
export type PlanEvaluation = z.output<typeof EvaluationSchema>;

/** One run of a plan: a variant at a seed. */
export interface PlannedRun {
  /** `<variant>/seed-<s>`: also its folder under the experiment folder. */
  id: string;
  variant: string;
  seed: number;
  /** Where its evaluation.json goes: `<experimentDir>/<variant>/seed-<s>`. */
  folder: string;
  /** The options the variant sets over the defaults (for tables; a reused variant's are its source's). */
  options: Record<string, unknown>;
  /** The training config; a reused run's is its source run's (trained in the source's folder). */
  config: TrainConfig;
  /** A reused variant: the other plan and its run that trains the model. */
  source?: { plan: Plan; run: PlannedRun; experimentDir: string };
  /** The starting network, evaluated without training. */
  untrained?: boolean;
}

/** Each variant's comparison partners (`against`, default the plan's first variant; none for the first). */
export type Comparisons = Record<string, string[]>;

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

interface Variant { name: string; options: Record<string, unknown>; from?: string; against?: string[]; untrained?: boolean }

/** The variants: the list, the grid's product, or each listed variant crossed with the grid (a reused variant is never crossed). */
function variantsOf(plan: Plan): Variant[] {
  const listed: Variant[] = plan.variants?.map(({ name: n, from, against, untrained, ...o }) => ({
    name: n, from, untrained, against: typeof against === 'string' ? [against] : against, options: o as Record<string, unknown>,
  })) ?? [{ name: '', options: {} }];
  const grid = Object.entries(plan.grid ?? {});
  let combos: { name: string; options: Record<string, unknown> }[] = [{ name: '', options: {} }];
  for (const [key, values] of grid) {
    combos = combos.flatMap((c) => values.map((v) => ({
      name: [c.name, `${key}=${valueName(v)}`].filter(Boolean).join(','),
      options: { ...c.options, [key]: v },
    })));
  }
  const out = listed.flatMap((l): Variant[] => {
    if (l.from !== undefined) {
      if (l.untrained) throw new UsageError(`plan ${plan.name}, variant ${l.name}: a reused variant (from ${l.from}) is trained there; untrained does not apply`);
      if (Object.keys(l.options).length > 0) {
        throw new UsageError(`plan ${plan.name}, variant ${l.name}: a reused variant (from ${l.from}) takes its options from there, not ${Object.keys(l.options).join(', ')}`);
      }
      return [l];
    }
    return combos.map((c) => ({
      name: [l.name, c.name].filter(Boolean).join(',') || 'default', against: l.against, untrained: l.untrained,
      options: { ...l.options, ...c.options },
    }));
  });
  const seen = new Set<string>();
  for (const v of out) {
    if (seen.has(v.name)) throw new UsageError(`plan ${plan.name}: two variants are named "${v.name}"`);
    seen.add(v.name);
  }
  for (const v of out) {
    for (const a of v.against ?? []) {
      if (!seen.has(a)) throw new UsageError(`plan ${plan.name}, variant ${v.name}: against ${a}: no such variant (${[...seen].join(', ')})`);
    }
  }
  return out;
}

/** Each variant's comparison partners: its `against`, else the plan's first variant. */
export function comparisonsOf(plan: Plan): Comparisons {
  const variants = variantsOf(plan);
  return Object.fromEntries(variants.map((v, i) => [v.name, v.against ?? (i === 0 ? [] : [variants[0]!.name])]));
}

/** The run ids and record folders of a plan, without building configs (for tables of a finished experiment). */
export function planRunFolders(plan: Plan, experimentDir: string): { id: string; folder: string }[] {
  return variantsOf(plan).flatMap((v) => plan.seeds.map((seed) => ({ id: `${v.name}/seed-${seed}`, folder: join(experimentDir, v.name, `seed-${seed}`) })));
}

/** A reused variant's source: the other plan (read from its file) and the folder of its experiment. */
function sourceOf(plan: Plan, v: Variant, experimentDir: string, planFile: string | undefined, seen: Set<string>): { plan: Plan; runs: PlannedRun[]; experimentDir: string; variant: string } {
  const [file, variant] = v.from!.split('#') as [string, string];
  if (planFile === undefined) throw new UsageError(`plan ${plan.name}, variant ${v.name}: from ${v.from} needs the plan's file to find ${file}`);
  const path = resolve(dirname(planFile), file);
  if (seen.has(path)) throw new UsageError(`plan ${plan.name}, variant ${v.name}: from ${v.from} leads back to ${path} (a cycle)`);
  const source = readPlan(path);
  const dir = join(dirname(experimentDir), source.name);
  const runs = expandPlan(source, dir, { planFile: path, seen: new Set([...seen, path]) }).filter((r) => r.variant === variant);
  if (runs.length === 0) throw new UsageError(`plan ${plan.name}, variant ${v.name}: ${path} has no variant ${variant}`);
  return { plan: source, runs, experimentDir: dir, variant };
}

/** Option strings with "{seed}" replaced by the run's seed (e.g. resume: runs/experiments/baselines/netvlad/seed-{seed}/best.pth for CRN). */
function withSeed(options: Record<string, unknown>, seed: number): Record<string, unknown> {
  return Object.fromEntries(Object.entries(options).map(([k, v]) => [k, typeof v === 'string' ? v.replaceAll('{seed}', String(seed)) : v]));
}

/**
 * The runs of a plan, in order (variant by variant, seeds inside), each config validated with the
 * variant's options over the defaults; outputFolder is `<experimentDir>/<variant>/seed-<s>`. A reused
 * variant's runs carry their source run (its plan file found relative to `planFile`), one per seed.
 */
export function expandPlan(plan: Plan, experimentDir: string, o: { planFile?: string; seen?: Set<string> } = {}): PlannedRun[] {
  const runs: PlannedRun[] = [];
  const seen = o.seen ?? new Set(o.planFile === undefined ? [] : [resolve(o.planFile)]);
  for (const v of variantsOf(plan)) {
    if (v.from !== undefined) {
      const source = sourceOf(plan, v, experimentDir, o.planFile, seen);
      for (const seed of plan.seeds) {
        const run = source.runs.find((r) => r.seed === seed);
        if (!run) throw new UsageError(`plan ${plan.name}, variant ${v.name}: ${source.plan.name} has no seed ${seed} of ${source.variant} (its seeds: ${source.plan.seeds.join(', ')})`);
        runs.push({
          id: `${v.name}/seed-${seed}`, variant: v.name, seed, folder: join(experimentDir, v.name, `seed-${seed}`),
          options: run.options, config: run.config, source: { plan: source.plan, run, experimentDir: source.experimentDir },
        });
      }
      continue;
    }
    let merged: Record<string, unknown>;
    try {
      const defaults = trainOptionsFromMapping(plan.defaults);
      const own = trainOptionsFromMapping(v.options);
      merged = { ...defaults, ...own, augment: { ...(defaults.augment as object), ...(own.augment as object) } };
      // null unsets a default (weights: null trains from scratch)
      merged = Object.fromEntries(Object.entries(merged).filter(([, value]) => value !== null));
    } catch (e) {
      throw new UsageError(`plan ${plan.name}, variant ${v.name}: ${(e as Error).message}`);
    }
    for (const seed of plan.seeds) {
      const id = `${v.name}/seed-${seed}`;
      const r = TrainConfigSchema.safeParse({ ...withSeed(merged, seed), seed, outputFolder: join(experimentDir, v.name, `seed-${seed}`) });
      if (!r.success) {
        throw new UsageError(`plan ${plan.name}, variant ${v.name}:\n${r.error.issues.map((i) => {
          const key = flatNameOf(i.path);
          return `  ${key || 'options'}: ${i.code === 'unrecognized_keys' ? `unknown option${i.keys.length > 1 ? 's' : ''} ${i.keys.join(', ')}` : i.message}`;
        }).join('\n')}`);
      }
      runs.push({ id, variant: v.name, seed, folder: r.data.run.outputFolder, options: v.options, config: r.data, ...(v.untrained ? { untrained: true } : {}) });
    }
  }
  return runs;
}
