// `vgl experiment table`: per test set and variant, recall@N as mean ± std over seeds, with n queries
// and the number of seeds; each variant against its comparison (the plan's first variant unless it
// names another) by a paired bootstrap over queries on R@1 (a query's score: the fraction of seeds
// that found it). Descriptor size and search time come along where the runs measured them.
import { meanStd, pairedBootstrap, type BootstrapResult } from '../eval/stats.ts';
import type { SearchTime } from '../eval/search-time.ts';
import type { Comparisons } from './plan.ts';
import type { RunRecord } from './record.ts';
import { csvText } from '../util/csv.ts';

export interface TableCell {
  variant: string;
  test: string;
  seeds: number[];
  queries: number;
  /** N → mean and std of recall@N (percent) over seeds. */
  recalls: Record<number, { mean: number; std: number }>;
  /** Evaluation variants with radii: radius → N → mean recall@N over seeds. */
  recallsByRadius?: Record<number, Record<number, number>>;
  /**
   * R@1 against each variant it is compared with (none for the baseline itself); an evaluation-only
   * variant's cell also against the plain evaluation of the same models (`<test> (same models)`).
   */
  comparisons: (BootstrapResult & { against: string })[];
  /** Descriptor dimension and bytes per image (float32). */
  descriptor?: { dim: number; bytes: number };
  /** Exact search time per query by database size: mean over seeds (null where it did not fit in memory). */
  searchTimes?: SearchTime[];
  trainMinutes: number;
}

/** What a variant's runs cost (means over seeds): the training phases per epoch, training and evaluation in all. */
export interface VariantCost {
  variant: string;
  /** The plan and run that trained the models, for a reused variant. */
  trainedBy?: string;
  epochs: number;
  /** Seconds per epoch of each training phase (absent for records without an epoch count). */
  perEpochSeconds?: { cache: number; mine: number; train: number; validate: number };
  trainMinutes: number;
  evaluateMinutes: number;
  /** CPU minutes (all threads) of training and evaluation, where the records measured them. */
  cpuMinutes?: { train: number; evaluate: number };
  /** The highest 1-minute load average any of the runs saw, and the threads they ran with. */
  load?: { highest: number; threads: number };
  /**
   * The runs' own CPU time over their wall time times their threads (0..1; a reused model's training
   * is its source's and not counted). A run alone on the machine keeps its threads busy (here 0.8-0.9);
   * one that shared the CPUs with other work gets a fraction, and its wall times overstate its cost.
   */
  cpuUse?: number;
}

/** A record's own share of a time (wall or CPU): a reused model's training is its source run's, not this run's. */
export const ownTime = (r: RunRecord, t: { train: number; evaluate: number }): number => (r.trainedBy ? 0 : t.train) + t.evaluate;

/** Below this CPU use a variant's runs shared the machine (their wall times are not its cost). */
export const SHARED_CPU_USE = 0.5;

export interface ExperimentTable {
  /** The plan's first variant (what variants are compared with unless they name another). */
  baseline: string;
  tests: string[];
  ns: number[];
  cells: TableCell[];
  costs: VariantCost[];
}

const BOOTSTRAP = { samples: 10_000, seed: 0, level: 0.95, scale: 100 } as const;

/** Per query: the fraction of the records (seeds) whose first correct rank is within N. */
function queryScores(records: readonly RunRecord[], test: string, n: number): number[] {
  const rows = records.map((r) => r.tests.find((t) => t.key === test)!.ranks);
  return rows[0]!.map((_, q) => rows.reduce((s, ranks) => s + (ranks[q]! >= 0 && ranks[q]! < n ? 1 : 0), 0) / rows.length);
}

/** The table of an experiment's records; `comparisons` maps a variant to those it is compared with (default: the first variant). */
export function experimentTable(records: readonly RunRecord[], comparisons: Comparisons = {}): ExperimentTable {
  if (records.length === 0) throw new Error('no finished run yet');
  const variants = [...new Set(records.map((r) => r.variant))];
  const tests = records[0]!.tests.map((t) => t.key);
  const ns = Object.keys(records[0]!.tests[0]?.recalls ?? {}).map(Number);
  const byVariant = new Map(variants.map((v) => [v, records.filter((r) => r.variant === v)]));
  const baseline = variants[0]!;
  const cells: TableCell[] = [];
  for (const test of tests) {
    for (const v of variants) {
      const runs = byVariant.get(v)!.filter((r) => r.tests.some((t) => t.key === test));
      if (runs.length === 0) continue;
      const results = runs.map((r) => r.tests.find((t) => t.key === test)!);
      const recalls: TableCell['recalls'] = {};
      for (const n of ns) {
        const { mean, std } = meanStd(results.map((t) => t.recalls[n]!));
        recalls[n] = { mean, std };
      }
      const cell: TableCell = {
        variant: v, test, seeds: runs.map((r) => r.seed), queries: results[0]!.queries, recalls, comparisons: [],
        trainMinutes: meanStd(runs.map((r) => r.wallMs.train / 60_000)).mean,
      };
      if (results[0]!.recallsByRadius) {
        cell.recallsByRadius = {};
        for (const radius of Object.keys(results[0]!.recallsByRadius).map(Number)) {
          cell.recallsByRadius[radius] = Object.fromEntries(ns.map((n) => [n, meanStd(results.map((t) => t.recallsByRadius![radius]![n]!)).mean]));
        }
      }
      const d = results[0]!.descriptor;
      if (d) cell.descriptor = { dim: d.dim, bytes: d.bytes };
      if (results[0]!.searchTimes) {
        cell.searchTimes = results[0]!.searchTimes.map((s, i) => {
          const ms = results.map((t) => t.searchTimes?.[i]?.msPerQuery ?? null);
          return { databaseSize: s.databaseSize, msPerQuery: ms.some((m) => m === null) ? null : meanStd(ms as number[]).mean };
        });
      }
      for (const against of comparisons[v] ?? (v === baseline ? [] : [baseline])) {
        const base = (byVariant.get(against) ?? []).filter((r) => r.tests.some((t) => t.key === test));
        if (base.length > 0) cell.comparisons.push({ against, ...pairedBootstrap(queryScores(base, test, 1), queryScores(runs, test, 1), BOOTSTRAP) });
      }
      // An evaluation-only variant (test#name) is also compared with the same models evaluated the plain way.
      const plain = test.split('#')[0]!;
      if (plain !== test && runs.every((r) => r.tests.some((t) => t.key === plain))) {
        cell.comparisons.push({ against: `${plain} (same models)`, ...pairedBootstrap(queryScores(runs, plain, 1), queryScores(runs, test, 1), BOOTSTRAP) });
      }
      cells.push(cell);
    }
  }
  return { baseline, tests, ns, cells, costs: variants.map((v) => costOf(v, byVariant.get(v)!)) };
}

function costOf(variant: string, runs: readonly RunRecord[]): VariantCost {
  const mean = (f: (r: RunRecord) => number) => meanStd(runs.map(f)).mean;
  const cost: VariantCost = {
    variant, epochs: mean((r) => r.epochs ?? NaN),
    trainMinutes: mean((r) => r.wallMs.train / 60_000), evaluateMinutes: mean((r) => r.wallMs.evaluate / 60_000),
  };
  if (runs.every((r) => r.cpuMs)) {
    cost.cpuMinutes = { train: mean((r) => r.cpuMs!.train / 60_000), evaluate: mean((r) => r.cpuMs!.evaluate / 60_000) };
    const cpu = runs.reduce((a, r) => a + ownTime(r, r.cpuMs!), 0);
    const wall = runs.reduce((a, r) => a + ownTime(r, r.wallMs) * r.machine.threads, 0);
    if (wall > 0) cost.cpuUse = cpu / wall;
  }
  if (runs.every((r) => r.load)) {
    cost.load = { highest: Math.max(...runs.map((r) => Math.max(r.load!.train, r.load!.evaluate))), threads: Math.max(...runs.map((r) => r.machine.threads)) };
  }
  if (runs[0]!.trainedBy) cost.trainedBy = runs[0]!.trainedBy.replace(/\/seed-\d+$/, '');
  if (runs.every((r) => r.epochs > 0)) {
    const per = (k: keyof RunRecord['phasesMs']) => mean((r) => r.phasesMs[k] / r.epochs / 1000);
    cost.perEpochSeconds = { cache: per('cache'), mine: per('mine'), train: per('train'), validate: per('validate') };
  }
  return cost;
}

const f1 = (x: number) => x.toFixed(1);
// A difference that rounds to zero prints +0.0, not -0.0.
const signed = (x: number) => (Math.abs(x) < 0.05 ? '+0.0' : `${x > 0 ? '+' : ''}${x.toFixed(1)}`);

export function tableMarkdown(t: ExperimentTable): string {
  const parts: string[] = [];
  for (const test of t.tests) {
    const cells = t.cells.filter((c) => c.test === test);
    parts.push(`### ${test} (${cells[0]?.queries ?? 0} queries)\n`);
    const dims = cells.some((c) => c.descriptor && c.descriptor.dim !== cells[0]!.descriptor?.dim);
    parts.push(`| variant | seeds | ${dims ? 'dim | ' : ''}${t.ns.map((n) => `R@${n}`).join(' | ')} | R@1 difference (95% CI) | train min |`);
    parts.push(`|---|---|${dims ? '---|' : ''}${t.ns.map(() => '---|').join('')}---|---|`);
    const notes: string[] = [];
    for (const c of cells) {
      const vs = c.comparisons.map((b) => `${signed(b.difference)} [${signed(b.low)}, ${signed(b.high)}]${b.significant ? ' *' : ''} vs ${b.against}`).join('; ') || 'baseline';
      if (c.recallsByRadius) {
        notes.push(`- ${c.variant}: R@1 by radius ${Object.entries(c.recallsByRadius).map(([r, v]) => `${r} m ${f1(v[1] ?? NaN)}`).join(', ')}`);
      }
      if (c.searchTimes) {
        notes.push(`- ${c.variant} (${c.descriptor?.dim ?? '?'}-d, ${c.descriptor?.bytes ?? '?'} bytes per image): exact search ms per query by database size ${c.searchTimes
          .map((s) => `${s.databaseSize.toLocaleString('en-US')}: ${s.msPerQuery === null ? 'did not fit' : s.msPerQuery.toFixed(s.msPerQuery < 1 ? 3 : 1)}`).join(', ')}`);
      }
      parts.push(`| ${c.variant} | ${c.seeds.length} | ${dims ? `${c.descriptor?.dim ?? ''} | ` : ''}${t.ns.map((n) => `${f1(c.recalls[n]!.mean)} ± ${f1(c.recalls[n]!.std)}`).join(' | ')} | ${vs} | ${c.trainMinutes.toFixed(1)} |`);
    }
    if (notes.length > 0) parts.push('', ...notes);
    parts.push('');
  }
  parts.push('mean ± std over seeds; * : the paired bootstrap interval over queries (10,000 resamples) excludes 0.', '');
  parts.push('### Cost per variant (mean over seeds)\n');
  parts.push('| variant | epochs | cache s/epoch | mining s/epoch | training s/epoch | validation s/epoch | training min | evaluation min | CPU min | CPU use |');
  parts.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const c of t.costs) {
    const e = c.perEpochSeconds;
    const phases = (e ? [e.cache, e.mine, e.train, e.validate].map(f1) : ['', '', '', '']).join(' | ');
    const cpu = c.cpuMinutes ? f1(c.cpuMinutes.train + c.cpuMinutes.evaluate) : '';
    parts.push(`| ${c.variant}${c.trainedBy ? ` (models of ${c.trainedBy})` : ''} | ${Number.isNaN(c.epochs) ? '' : f1(c.epochs)} | ${phases} | ${f1(c.trainMinutes)} | ${f1(c.evaluateMinutes)} | ${cpu} | ${cpuUseText(c)} |`);
  }
  if (t.costs.some((c) => c.cpuUse !== undefined)) {
    parts.push('', 'Minutes are wall time. CPU min: the process\'s CPU time over all its threads. CPU use: that time over wall time x threads; '
      + `(shared) below ${100 * SHARED_CPU_USE}%, where other work shared the CPUs and the wall times overstate the cost.`);
  }
  return parts.join('\n');
}

/** "86%", or "21% (shared)" for runs that shared the machine; empty for records without CPU times. */
export const cpuUseText = (c: VariantCost): string =>
  (c.cpuUse === undefined ? '' : `${Math.round(100 * c.cpuUse)}%${c.cpuUse < SHARED_CPU_USE ? ' (shared)' : ''}`);

export function tableCsv(t: ExperimentTable): string {
  const header = ['test', 'variant', 'seeds', 'queries', 'dim', 'bytes', 'n', 'recall_mean', 'recall_std', 'against', 'r1_diff', 'r1_diff_low', 'r1_diff_high', 'significant', 'train_minutes'];
  const rows = t.cells.flatMap((c) => t.ns.flatMap((n) => (c.comparisons.length > 0 ? c.comparisons : [undefined]).map((b) => [
    c.test, c.variant, c.seeds.length, c.queries, c.descriptor?.dim ?? '', c.descriptor?.bytes ?? '', n, c.recalls[n]!.mean.toFixed(3), c.recalls[n]!.std.toFixed(3),
    b?.against ?? '', b ? b.difference.toFixed(3) : '', b ? b.low.toFixed(3) : '', b ? b.high.toFixed(3) : '', b ? String(b.significant) : '', c.trainMinutes.toFixed(2)])));
  return csvText(header, rows);
}
