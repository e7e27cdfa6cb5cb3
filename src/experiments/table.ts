// `vgl experiment table`: per test set and variant, recall@N as mean ± std over seeds, with n queries
// and the number of seeds; each variant against the plan's first (the baseline) by a paired bootstrap
// over queries on R@1 (a query's score: the fraction of seeds that found it).
import { meanStd, pairedBootstrap, type BootstrapResult } from '../eval/stats.ts';
import type { RunRecord } from './runner.ts';

export interface TableCell {
  variant: string;
  test: string;
  seeds: number[];
  queries: number;
  /** N → mean and std of recall@N (percent) over seeds. */
  recalls: Record<number, { mean: number; std: number }>;
  /** Evaluation variants with radii: radius → N → mean recall@N over seeds. */
  recallsByRadius?: Record<number, Record<number, number>>;
  /** R@1 against the baseline (absent for the baseline itself). */
  vsBaseline?: BootstrapResult;
  trainMinutes: number;
}

export interface ExperimentTable {
  baseline: string;
  tests: string[];
  ns: number[];
  cells: TableCell[];
}

const BOOTSTRAP = { samples: 10_000, seed: 0, level: 0.95, scale: 100 } as const;

/** Per query: the fraction of the records (seeds) whose first correct rank is within N. */
function queryScores(records: readonly RunRecord[], test: string, n: number): number[] {
  const rows = records.map((r) => r.tests.find((t) => t.key === test)!.ranks);
  return rows[0]!.map((_, q) => rows.reduce((s, ranks) => s + (ranks[q]! >= 0 && ranks[q]! < n ? 1 : 0), 0) / rows.length);
}

export function experimentTable(records: readonly RunRecord[]): ExperimentTable {
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
        variant: v, test, seeds: runs.map((r) => r.seed), queries: results[0]!.queries, recalls,
        trainMinutes: meanStd(runs.map((r) => r.wallMs.train / 60_000)).mean,
      };
      if (results[0]!.recallsByRadius) {
        cell.recallsByRadius = {};
        for (const radius of Object.keys(results[0]!.recallsByRadius).map(Number)) {
          cell.recallsByRadius[radius] = Object.fromEntries(ns.map((n) => [n, meanStd(results.map((t) => t.recallsByRadius![radius]![n]!)).mean]));
        }
      }
      const base = byVariant.get(baseline)!.filter((r) => r.tests.some((t) => t.key === test));
      if (v !== baseline && base.length > 0) cell.vsBaseline = pairedBootstrap(queryScores(base, test, 1), queryScores(runs, test, 1), BOOTSTRAP);
      cells.push(cell);
    }
  }
  return { baseline, tests, ns, cells };
}

const f1 = (x: number) => x.toFixed(1);
// A difference that rounds to zero prints +0.0, not -0.0.
const signed = (x: number) => (Math.abs(x) < 0.05 ? '+0.0' : `${x > 0 ? '+' : ''}${x.toFixed(1)}`);

export function tableMarkdown(t: ExperimentTable): string {
  const parts: string[] = [];
  for (const test of t.tests) {
    const cells = t.cells.filter((c) => c.test === test);
    parts.push(`### ${test} (${cells[0]?.queries ?? 0} queries)\n`);
    parts.push(`| variant | seeds | ${t.ns.map((n) => `R@${n}`).join(' | ')} | R@1 vs ${t.baseline} (95% CI) | train min |`);
    parts.push(`|---|---|${t.ns.map(() => '---|').join('')}---|---|`);
    const radiusLines: string[] = [];
    for (const c of cells) {
      const vs = c.vsBaseline
        ? `${signed(c.vsBaseline.difference)} [${signed(c.vsBaseline.low)}, ${signed(c.vsBaseline.high)}]${c.vsBaseline.significant ? ' *' : ''}`
        : 'baseline';
      if (c.recallsByRadius) {
        radiusLines.push(`- ${c.variant}: R@1 by radius ${Object.entries(c.recallsByRadius).map(([r, v]) => `${r} m ${f1(v[1] ?? NaN)}`).join(', ')}`);
      }
      parts.push(`| ${c.variant} | ${c.seeds.length} | ${t.ns.map((n) => `${f1(c.recalls[n]!.mean)} ± ${f1(c.recalls[n]!.std)}`).join(' | ')} | ${vs} | ${c.trainMinutes.toFixed(1)} |`);
    }
    if (radiusLines.length > 0) parts.push('', ...radiusLines);
    parts.push('');
  }
  parts.push('mean ± std over seeds; * : the paired bootstrap interval over queries (10,000 resamples) excludes 0.');
  return parts.join('\n');
}

export function tableCsv(t: ExperimentTable): string {
  const lines = ['test,variant,seeds,queries,n,recall_mean,recall_std,r1_diff_vs_baseline,r1_diff_low,r1_diff_high,significant,train_minutes'];
  for (const c of t.cells) {
    for (const n of t.ns) {
      const b = c.vsBaseline;
      lines.push([c.test, c.variant, c.seeds.length, c.queries, n, c.recalls[n]!.mean.toFixed(3), c.recalls[n]!.std.toFixed(3),
        b ? b.difference.toFixed(3) : '', b ? b.low.toFixed(3) : '', b ? b.high.toFixed(3) : '', b ? String(b.significant) : '', c.trainMinutes.toFixed(2)]
        .map((x) => (/[",]/.test(String(x)) ? `"${String(x).replace(/"/g, '""')}"` : String(x))).join(','));
    }
  }
  return `${lines.join('\n')}\n`;
}
