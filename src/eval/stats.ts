// Statistics a reviewer accepts for recall@N: mean ± standard deviation over seeds, and the paired
// bootstrap over queries for the difference between two variants evaluated on the same queries.
import { Rng } from '../data/random.ts';

/** Mean and sample standard deviation (n - 1; 0 for a single value). */
export function meanStd(xs: readonly number[]): { mean: number; std: number; n: number } {
  if (xs.length === 0) throw new Error('meanStd: no values');
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.length > 1 ? xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1) : 0;
  return { mean, std: Math.sqrt(variance), n: xs.length };
}

export interface BootstrapResult {
  /** mean(b) - mean(a), in the unit of the scores (x100 for percentage points of 0/1 scores). */
  difference: number;
  /** The percentile interval of the resampled differences. */
  low: number;
  high: number;
  level: number;
  samples: number;
  queries: number;
  /** The interval excludes 0. */
  significant: boolean;
}

/**
 * Paired bootstrap over queries: a[i] and b[i] are query i's scores under two variants (1/0 for
 * "a correct match in the top N", or the fraction of seeds that had one). Queries are drawn with
 * replacement `samples` times (seeded), and the central `level` interval of mean(b) - mean(a) is kept.
 */
export function pairedBootstrap(a: readonly number[], b: readonly number[], o: { samples?: number; level?: number; seed?: number; scale?: number } = {}): BootstrapResult {
  if (a.length !== b.length) throw new Error(`pairedBootstrap: ${a.length} and ${b.length} scores; the variants must be evaluated on the same queries`);
  if (a.length === 0) throw new Error('pairedBootstrap: no queries');
  const samples = o.samples ?? 10_000;
  const level = o.level ?? 0.95;
  const scale = o.scale ?? 1;
  const n = a.length;
  const d = Float64Array.from(a, (x, i) => b[i]! - x);
  const rng = new Rng(o.seed ?? 0);
  const means = new Float64Array(samples);
  for (let s = 0; s < samples; s++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += d[rng.int(0, n)]!;
    means[s] = (sum / n) * scale;
  }
  means.sort();
  const tail = (1 - level) / 2;
  const at = (q: number) => means[Math.min(samples - 1, Math.max(0, Math.round(q * (samples - 1))))]!;
  // Scores are fractions (k of the seeds), whose float differences do not cancel exactly: a bound that
  // is 0 but for rounding (1e-17) must not make a difference significant.
  const snap = (x: number) => (Math.abs(x) < 1e-9 * scale ? 0 : x);
  const low = snap(at(tail)), high = snap(at(1 - tail));
  const difference = snap((d.reduce((x, y) => x + y, 0) / n) * scale);
  return { difference, low, high, level, samples, queries: n, significant: low > 0 || high < 0 };
}
