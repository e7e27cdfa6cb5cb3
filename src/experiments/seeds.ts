// The demo's recipe over several seeds on one split — by default the sealed final split, where a
// recipe is measured once it is frozen: per model and real test set, recall@N as mean ± std over the
// seeds, and the trained − untrained R@1 difference with its paired bootstrap 95% interval over queries
// (a query's score: the share of seeds that found it), the statistics the study's tables use.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { meanStd, pairedBootstrap, type BootstrapResult } from '../eval/stats.ts';
import { DEMO_SPLITS, FINAL_SPLIT, type DemoSplit } from '../data/splits.ts';
import { DEMO_BACKBONES, DEMO_TESTS, FINAL_LEDGER, demoBackbone, demoModelName, runDemo, sizedName, REAL_GAIN_TARGET, type DemoOptions, type DemoRow, type RealGainTarget } from './demo.ts';
import { comparisonsOf, type Plan } from './plan.ts';
import { readExperimentFolder, type RunRecord } from './record.ts';

const BOOTSTRAP = { samples: 10_000, seed: 0, level: 0.95, scale: 100 } as const;
const NS = [1, 5, 10] as const;

export interface SeedsOptions extends Omit<DemoOptions, 'seed' | 'split' | 'finalLedger'> {
  seeds: number[];
  split?: DemoSplit;
}

/** One model on one test set, over the seeds. */
export interface SeedsRow {
  model: string;
  dataset: string;
  size?: string;
  label: string;
  /** The split tested. */
  split: DemoSplit;
  queries: number;
  seeds: number[];
  /** recall@N (percent): mean and sample std over the seeds. */
  untrained: Record<number, { mean: number; std: number }>;
  trained: Record<number, { mean: number; std: number }>;
  /** Trained − untrained R@1, paired over queries (scores: the share of seeds with a correct top-1). */
  change: BootstrapResult;
}

/** Whether a model meets the demo's real-data targets on the seeds' means, and the night gain's interval excludes 0. */
export interface SeedsVerdict {
  model: string;
  nightGain: BootstrapResult;
  worstRealChange: number;
  worstRealDataset: string;
  pass: boolean;
  target: RealGainTarget;
}

const scoresAt = (ranks: readonly number[][], n: number) =>
  ranks[0]!.map((_, q) => ranks.reduce((s, r) => s + (r[q]! >= 0 && r[q]! < n ? 1 : 0), 0) / ranks.length);

/** Rows of several seeds' demos (the same models and test sets in the same order) → one row per model and test set. */
export function aggregateSeeds(perSeed: readonly { seed: number; rows: readonly DemoRow[] }[]): SeedsRow[] {
  if (perSeed.length === 0) throw new Error('aggregateSeeds: no seeds');
  const [first] = perSeed;
  return first.rows.filter((r) => r.real).map((row) => {
    const same = perSeed.map(({ seed, rows }) => {
      const r = rows.find((x) => x.model === row.model && x.dataset === row.dataset && x.size === row.size);
      if (!r) throw new Error(`seed ${seed}: no row for ${row.model} on ${sizedName(row.dataset, row.size)}`);
      if (r.queries !== row.queries) throw new Error(`seed ${seed}: ${r.queries} queries on ${sizedName(row.dataset, row.size)}, seed ${first.seed} ${row.queries}`);
      return r;
    });
    const over = (pick: (r: DemoRow) => number) => {
      const { mean, std } = meanStd(same.map(pick));
      return { mean, std };
    };
    return {
      model: row.model, dataset: row.dataset, ...(row.size ? { size: row.size } : {}), label: row.label, split: row.split, queries: row.queries,
      seeds: perSeed.map((s) => s.seed),
      untrained: Object.fromEntries(NS.map((n) => [n, over((r) => r.untrained[n])])),
      trained: Object.fromEntries(NS.map((n) => [n, over((r) => r.trained[n])])),
      change: pairedBootstrap(scoresAt(same.map((r) => r.ranks.untrained), 1), scoresAt(same.map((r) => r.ranks.trained), 1), BOOTSTRAP),
    };
  });
}

/** A backbone's targets (MobileNetV2: day→night R@1 gain ≥ +5 at the training size, no real set below −2) on the means over seeds. */
export function judgeSeeds(rows: readonly SeedsRow[], target: RealGainTarget = REAL_GAIN_TARGET): SeedsVerdict[] {
  return [...new Set(rows.map((r) => r.model))].map((model) => {
    const mine = rows.filter((r) => r.model === model);
    const night = mine.find((r) => r.dataset === target.dataset && r.size === undefined);
    if (!night) throw new Error(`${model}: no ${target.dataset} row`);
    const worst = mine.reduce((w, r) => (r.change.difference < w.change.difference ? r : w));
    return {
      model, nightGain: night.change, worstRealChange: worst.change.difference, worstRealDataset: sizedName(worst.dataset, worst.size),
      pass: night.change.difference >= target.minGain && night.change.low > 0 && worst.change.difference >= -target.maxLoss, target,
    };
  });
}

const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(1)}`;
const cell = (m: { mean: number; std: number }) => `${m.mean.toFixed(1)} ± ${m.std.toFixed(1)}`;

/** A Markdown table: R@1 untrained and trained (mean ± std), the paired R@1 difference [95% interval], R@5 and R@10 means. */
export function formatSeedsTable(rows: readonly SeedsRow[], split: DemoSplit): string {
  const head = `| model | test set (${split} split) | queries | R@1 untrained | R@1 trained | R@1 change [95% interval] | R@5 untrained → trained | R@10 untrained → trained |`;
  const rule = '|---|---|---|---|---|---|---|---|';
  const body = rows.map((r) => `| ${r.model} | ${r.label} | ${r.queries} | ${cell(r.untrained[1])} | ${cell(r.trained[1])} | ` +
    `${signed(r.change.difference)} [${signed(r.change.low)}, ${signed(r.change.high)}]${r.change.significant ? ' *' : ''} | ` +
    `${[5, 10].map((n) => `${r.untrained[n].mean.toFixed(1)} → ${r.trained[n].mean.toFixed(1)}`).join(' | ')} |`);
  return [head, rule, ...body].join('\n');
}

export function formatSeedsVerdicts(verdicts: readonly SeedsVerdict[]): string {
  return verdicts.map((v) => `${v.model}: day→night R@1 ${signed(v.nightGain.difference)} [${signed(v.nightGain.low)}, ${signed(v.nightGain.high)}] ` +
    `(target ≥ +${v.target.minGain}, interval above 0), worst real R@1 change ${signed(v.worstRealChange)} on ${v.worstRealDataset} ` +
    `(target ≥ -${v.target.maxLoss}): ${v.pass ? 'met' : 'NOT met'}`).join('\n');
}

/**
 * Runs the demo once per seed (each in <outputFolder>/seed-<n>, resumable as the demo is) on `split`,
 * then writes <outputFolder>/<split>.{json,md}: the rows over seeds and the verdicts.
 */
export async function runDemoOverSeeds(o: SeedsOptions): Promise<{ rows: SeedsRow[]; verdicts: SeedsVerdict[] }> {
  const split = o.split ?? FINAL_SPLIT;
  if (o.seeds.length === 0) throw new Error('runDemoOverSeeds: no seeds');
  await mkdir(o.outputFolder, { recursive: true });
  const t0 = Date.now();
  const perSeed: { seed: number; rows: DemoRow[] }[] = [];
  for (const seed of o.seeds) {
    o.log(`seed ${seed} (${perSeed.length + 1} of ${o.seeds.length})`);
    perSeed.push({ seed, rows: await runDemo({ ...o, seed, split, outputFolder: join(o.outputFolder, `seed-${seed}`), finalLedger: join(o.outputFolder, FINAL_LEDGER) }) });
  }
  const rows = aggregateSeeds(perSeed);
  const verdicts = judgeSeeds(rows, demoBackbone(o.backbone).target);
  await writeFile(join(o.outputFolder, `${split}.json`), `${JSON.stringify({ split, seeds: o.seeds, trainOn: o.trainOn ?? 'real', bootstrap: BOOTSTRAP, rows, verdicts, seconds: (Date.now() - t0) / 1000 }, null, 2)}\n`);
  await writeFile(join(o.outputFolder, `${split}.md`), `${formatSeedsTable(rows, split)}\n\n${formatSeedsVerdicts(verdicts)}\n`);
  return { rows, verdicts };
}

/**
 * A plan's three-seed measurement of the demo's recipe (experiments/real-places.yaml), from its run
 * records: each trained variant against the untrained variant it names in `against`, paired seed by
 * seed, on every real test set, as the demo's rows; models named as the demo names them. Undefined
 * while a pair's run is missing for a seed, or no variant of the plan is a trained-against-untrained pair.
 */
export function seedsRowsOfPlan(plan: Plan, records: readonly RunRecord[]): SeedsRow[] | undefined {
  const comparisons = comparisonsOf(plan);
  const byId = new Map(records.map((r) => [`${r.variant}/seed-${r.seed}`, r]));
  const untrained = new Set((plan.variants ?? []).filter((v) => v.untrained).map((v) => v.name));
  const pairs = Object.entries(comparisons).flatMap(([v, against]) => against.filter((a) => untrained.has(a)).slice(0, 1).map((a) => [v, a] as const))
    .filter(([v]) => !untrained.has(v));
  if (pairs.length === 0) return undefined;
  const perSeed: { seed: number; rows: DemoRow[] }[] = [];
  for (const seed of plan.seeds) {
    const rows: DemoRow[] = [];
    for (const [variant, against] of pairs) {
      const trained = byId.get(`${variant}/seed-${seed}`), before = byId.get(`${against}/seed-${seed}`);
      if (!trained || !before) return undefined;
      const options = { ...plan.defaults, ...plan.variants?.find((v) => v.name === variant) } as Record<string, unknown>;
      const backbone = Object.values(DEMO_BACKBONES).find((b) => b.backbone === options.backbone);
      // Only the demo's own models and real test sets (another backbone or head is not a demo row).
      if (!backbone || (options.aggregation !== 'gem' && options.aggregation !== 'netvlad')) continue;
      const model = demoModelName(backbone, options.aggregation);
      for (const t of trained.tests) {
        const b = before.tests.find((x) => x.key === t.key);
        const demoTest = DEMO_TESTS.find((d) => d.dataset === t.dataset && d.size === undefined);
        const split = DEMO_SPLITS.find((s) => s === t.split);
        if (!b || !demoTest?.real || !split) continue;
        rows.push({
          model, dataset: t.dataset, split, label: demoTest.label, real: true, queries: t.queries,
          untrained: b.recalls, trained: t.recalls, ranks: { untrained: b.ranks, trained: t.ranks },
        });
      }
    }
    perSeed.push({ seed, rows });
  }
  return aggregateSeeds(perSeed);
}

/** The experiment folder of the plan that measures the demo's ResNet-50 recipe on final (experiments/real-places.yaml). */
export const REAL_PLACES_EXPERIMENT = join('runs', 'experiments', 'real-places');

/**
 * The three-seed verdict on a demo backbone's models from the plan's runs in `experimentDir`, when they
 * are all there (else undefined): its rows over seeds and the verdicts against the backbone's targets.
 */
export function planVerdicts(experimentDir: string, backbone?: string): { rows: SeedsRow[]; verdicts: SeedsVerdict[]; split: DemoSplit } | undefined {
  if (!existsSync(join(experimentDir, 'plan.json'))) return undefined;
  const { plan, records } = readExperimentFolder(experimentDir);
  const b = demoBackbone(backbone);
  const rows = seedsRowsOfPlan(plan, records)?.filter((r) => r.model.startsWith(`${b.label} + `));
  if (!rows || rows.length === 0) return undefined;
  const split = rows[0]!.split;
  return { rows, verdicts: judgeSeeds(rows, b.target), split };
}
