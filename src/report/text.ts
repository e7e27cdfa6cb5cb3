// Statements written from the numbers: every claim of the report's discussion is a function of the
// tables, so when the numbers change the words change with them. A difference is called a difference
// only when its paired bootstrap interval excludes 0; otherwise it is "within noise".
import type { BootstrapResult } from '../eval/stats.ts';
import type { ExperimentTable, TableCell } from '../experiments/table.ts';
import type { RunRecord } from '../experiments/record.ts';
import { meanStd } from '../eval/stats.ts';
import { b, type Inline } from './doc.ts';

export const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '–');
/** A signed difference; one that rounds to zero prints +0.0. */
export const signed = (x: number): string => (Math.abs(x) < 0.05 ? '+0.0' : `${x > 0 ? '+' : '−'}${Math.abs(x).toFixed(1)}`);
export const pm = (c: { mean: number; std: number }): string => `${f1(c.mean)} ± ${f1(c.std)}`;
export const interval = (d: BootstrapResult): string => `${signed(d.difference)} [${signed(d.low)}, ${signed(d.high)}]`;
const joinAnd = (xs: string[]): string => (xs.length <= 1 ? xs.join('') : `${xs.slice(0, -1).join(', ')} and ${xs.at(-1)}`);

export type Verdict = 'higher' | 'lower' | 'same';
/** The direction of a difference that counts (interval excludes 0), else 'same'. */
export const verdictOf = (d: BootstrapResult): Verdict => (!d.significant ? 'same' : d.difference > 0 ? 'higher' : 'lower');

export const cellOf = (t: ExperimentTable, variant: string, test: string): TableCell | undefined => t.cells.find((c) => c.variant === variant && c.test === test);
export const comparisonOf = (c: TableCell | undefined, against: string) => c?.comparisons.find((x) => x.against === against);

/** "A's R@1 on T is 38.3 ± 0.3 against B's 36.7 ± 0.0: +1.7 [+0.1, +3.4], higher beyond noise." */
export function compareSentence(t: ExperimentTable, variant: string, against: string, test: string): Inline[] | undefined {
  const c = cellOf(t, variant, test), base = cellOf(t, against, test), d = comparisonOf(c, against);
  if (!c || !base || !d) return undefined;
  const v = verdictOf(d);
  const word = v === 'same' ? 'within noise (the interval includes 0)' : `${v} beyond noise`;
  return [`on ${test}, ${variant} has R@1 ${pm(c.recalls[1]!)} against ${against}'s ${pm(base.recalls[1]!)}: `, b(`${interval(d)}`), `, ${word}`];
}

/** The comparisons of a plan that count, as sentences; or a sentence saying that none does. */
export function significantFindings(t: ExperimentTable, tests: readonly string[]): { found: Inline[][]; none: boolean } {
  const found: Inline[][] = [];
  for (const c of t.cells) {
    if (!tests.includes(c.test)) continue;
    for (const d of c.comparisons) {
      if (!d.significant) continue;
      found.push([`${c.variant} vs ${d.against} on ${c.test}: R@1 ${interval(d)} (${d.difference > 0 ? 'higher' : 'lower'})`]);
    }
  }
  return { found, none: found.length === 0 };
}

// ---- Ablation 3: the training positives' radius --------------------------------------------------

export interface RadiusVariant { variant: string; radius: number }

/** Expected and observed for the hard-positive radius at training; the verdict follows the intervals. */
export function trainThresholdStatement(t: ExperimentTable, variants: readonly RadiusVariant[], test: string): { expected: Inline[]; observed: Inline[]; verdict: 'confirmed' | 'partly confirmed' | 'not confirmed' | 'contradicted' } {
  const sorted = [...variants].sort((a, b) => a.radius - b.radius);
  const base = variants.find((v) => v.variant === t.baseline) ?? sorted[0]!;
  const small = sorted[0]!, large = sorted.at(-1)!;
  const expected: Inline[] = [
    `A small radius (${small.radius} m) keeps only images of the very same spot as positives: the positives are right, but fewer queries have one and the network sees little viewpoint change. `,
    `A large radius (${large.radius} m) lets images of neighbouring places count as positives: the network is taught to match scenes that do not show the same place. `,
    `We therefore expect the baseline's ${base.radius} m to do at least as well as either extreme, and both extremes to lose R@1 on the training domain's test set (${test}).`,
  ];
  const rows = sorted.map((v) => ({ v, c: cellOf(t, v.variant, test) })).filter((r) => r.c);
  const best = rows.reduce((a, r) => (r.c!.recalls[1]!.mean > a.c!.recalls[1]!.mean ? r : a), rows[0]!);
  const dir = (v: RadiusVariant): Verdict | undefined => {
    const d = comparisonOf(cellOf(t, v.variant, test), base.variant);
    return d ? verdictOf(d) : undefined;
  };
  const ds = [small, large].filter((v) => v !== base).map((v) => ({ v, dir: dir(v), d: comparisonOf(cellOf(t, v.variant, test), base.variant) }));
  const lower = ds.filter((x) => x.dir === 'lower'), higher = ds.filter((x) => x.dir === 'higher');
  const verdict = higher.length > 0 ? 'contradicted' : lower.length === ds.length && ds.length > 0 ? 'confirmed' : lower.length > 0 ? 'partly confirmed' : 'not confirmed';
  const observed: Inline[] = [
    `On ${test}, R@1 is ${rows.map((r) => `${pm(r.c!.recalls[1]!)} at ${r.v.radius} m`).join(', ')}; the highest mean is at ${best.v.radius} m. `,
    ...ds.flatMap((x) => (x.d ? [`Against ${base.radius} m, ${x.v.radius} m differs by `, b(interval(x.d)), ` (${x.dir === 'same' ? 'within noise' : `${x.dir} beyond noise`}). `] : [])),
    `The prediction is `, b(verdict), verdict === 'not confirmed' ? ': at this scale no radius is distinguishable from the baseline.'
      : verdict === 'contradicted' ? `: ${joinAnd(higher.map((x) => `${x.v.radius} m`))} is better than ${base.radius} m.`
        : verdict === 'partly confirmed' ? `: only ${joinAnd(lower.map((x) => `${x.v.radius} m`))} loses recall measurably.` : ': both extremes lose recall measurably.',
  ];
  return { expected, observed, verdict };
}

// ---- Ablation 4: the radius at test time -------------------------------------------------------

export interface RadiusCurve { variant: string; test: string; points: { radius: number; recall: number }[] }

export function radiusCurves(t: ExperimentTable): RadiusCurve[] {
  return t.cells.filter((c) => c.recallsByRadius).map((c) => ({
    variant: c.variant, test: c.test.replace(/#.*$/, ''),
    points: Object.entries(c.recallsByRadius!).map(([r, v]) => ({ radius: Number(r), recall: v[1]! })).sort((a, x) => a.radius - x.radius),
  }));
}

/** Expected: recall never falls as the radius grows, and saturates. Observed: checked on every curve, with the numbers. */
export function valRadiusStatement(curves: readonly RadiusCurve[], reference = 25): { expected: Inline[]; observed: Inline[]; verdict: 'confirmed' | 'not confirmed' } {
  const expected: Inline[] = [
    `A larger radius accepts every match a smaller one accepts, so recall@N can only stay equal or grow with it; it should grow fastest up to the spacing of neighbouring database images and then level off, `,
    `because a wrong retrieval that is a neighbouring place becomes right while a retrieval of a far-away place stays wrong. The model is not retrained: only what counts as correct changes.`,
  ];
  const falls: string[] = [];
  const lines: Inline[] = [];
  for (const c of curves) {
    for (let i = 1; i < c.points.length; i++) if (c.points[i]!.recall < c.points[i - 1]!.recall - 1e-9) falls.push(`${c.variant} on ${c.test} (${c.points[i - 1]!.radius} → ${c.points[i]!.radius} m)`);
  }
  const byTest = [...new Set(curves.map((c) => c.test))];
  for (const test of byTest) {
    const cs = curves.filter((c) => c.test === test);
    const parts = cs.map((c) => {
      const first = c.points[0]!, last = c.points.at(-1)!, ref = c.points.find((p) => p.radius === reference);
      const sat = c.points.find((p) => p.recall >= 90);
      return `${c.variant} ${f1(first.recall)} at ${first.radius} m${ref ? `, ${f1(ref.recall)} at ${reference} m` : ''}, ${f1(last.recall)} at ${last.radius} m (${sat ? `90% reached at ${sat.radius} m` : `below 90% even at ${last.radius} m`})`;
    });
    lines.push(`${test}: ${parts.join('; ')}. `);
  }
  const verdict = falls.length === 0 ? 'confirmed' : 'not confirmed';
  // Where 90% is reached, per test set and model: the same for every model of a test set means the test set, not the model, sets it.
  const reach = (c: RadiusCurve) => c.points.find((p) => p.recall >= 90)?.radius ?? Infinity;
  const sameWithinTest = byTest.every((test) => new Set(curves.filter((c) => c.test === test).map(reach)).size === 1);
  const saturating = byTest.filter((test) => curves.filter((c) => c.test === test).every((c) => reach(c) < Infinity));
  const observed: Inline[] = [
    ...lines,
    'The prediction is ', b(verdict), falls.length === 0 ? ': recall never falls as the radius grows. '
      : `: recall falls with the radius for ${joinAnd(falls)}, which a correct evaluation cannot produce (check the positives). `,
    sameWithinTest ? 'Every model of a test set reaches 90% at the same radius (or none does): where recall levels off is set by the test set, not by the model. '
      : 'The models of a test set reach 90% at different radii: the model, not only the test set, sets where recall levels off. ',
    saturating.length > 0 ? `On ${joinAnd(saturating)} recall reaches 90%: most errors at ${reference} m are neighbouring places. ` : '',
    saturating.length < byTest.length ? `On ${joinAnd(byTest.filter((x) => !saturating.includes(x)))} it stays below 90% at every radius: most errors are far-away places, an appearance problem rather than one of localisation precision.` : '',
  ];
  return { expected, observed, verdict };
}

// ---- Ablation 6: image size at training x at test ------------------------------------------------

export interface SizeResult { test: string; train: string; testSize: string; recall: number; std: number }

const sizeOf = (v: unknown): string | undefined => (typeof v === 'string' ? v : Array.isArray(v) ? v.join('x') : undefined);
export const pixelsOf = (s: string): number => s.split('x').map(Number).reduce((a, x) => a * x, 1);

/** The training size of a record: its options' resize, else the plan's default. */
export function trainSizeOf(r: RunRecord, defaults: Record<string, unknown>): string | undefined {
  return sizeOf(r.options.resize) ?? sizeOf(defaults.resize);
}

/** Mean ± std over seeds of R@1 for each (test set, training size, test size): one value per pair, from the records. */
export function sizeGrid(records: readonly RunRecord[], defaults: Record<string, unknown>): SizeResult[] {
  const groups = new Map<string, { test: string; train: string; testSize: string; bySeed: Map<number, number> }>();
  for (const r of records) {
    const train = trainSizeOf(r, defaults);
    if (!train) continue;
    for (const t of r.tests) {
      if (t.key.includes('#') && !/#test-\d+x\d+$/.test(t.key)) continue;
      const testSize = t.size.join('x');
      const k = JSON.stringify([t.dataset, train, testSize]);
      const g = groups.get(k) ?? { test: t.dataset, train, testSize, bySeed: new Map() };
      g.bySeed.set(r.seed, t.recalls[1]!); // the same model at the same size twice (base key and #test-<its size>) counts once
      groups.set(k, g);
    }
  }
  return [...groups.values()].map((g) => ({ test: g.test, train: g.train, testSize: g.testSize, ...(({ mean, std }) => ({ recall: mean, std }))(meanStd([...g.bySeed.values()])) }));
}

/** Expected: larger images help and a model does best at its training size. Observed per test set, from the grid and the intervals. */
export function imageSizeStatement(grid: readonly SizeResult[], t: ExperimentTable | undefined, baselineVariant: string | undefined, variantOfTrainSize: Record<string, string>): { expected: Inline[]; observed: Inline[]; paragraphs: Inline[][]; verdicts: Record<string, { larger: boolean; matched: boolean }> } {
  const expected: Inline[] = [
    'Larger images keep more detail of façades and landmarks, so we expect recall to grow with the image size; the datasets\' 480x640 is the usual choice for that reason. ',
    'We also expect a model to do best at the size it was trained at: convolutional features are not scale-invariant, and a model tested at another size sees its training features at another scale.',
  ];
  const observed: Inline[] = [];
  const verdicts: Record<string, { larger: boolean; matched: boolean }> = {};
  const starts: number[] = [];
  for (const test of [...new Set(grid.map((g) => g.test))]) {
    const cells = grid.filter((g) => g.test === test);
    const trains = [...new Set(cells.map((c) => c.train))].sort((a, x) => pixelsOf(a) - pixelsOf(x));
    const bestPer = trains.map((tr) => {
      const row = cells.filter((c) => c.train === tr);
      return { train: tr, best: row.reduce((a, c) => (c.recall > a.recall ? c : a), row[0]!) };
    });
    const matched = bestPer.filter((x) => x.best.testSize === x.train).length;
    const largestTest = [...new Set(cells.map((c) => c.testSize))].sort((a, x) => pixelsOf(x) - pixelsOf(a))[0]!;
    const top = cells.reduce((a, c) => (c.recall > a.recall ? c : a), cells[0]!);
    const smallestTest = [...new Set(cells.map((c) => c.testSize))].sort((a, x) => pixelsOf(a) - pixelsOf(x))[0]!;
    // "Larger helps": averaged over the training sizes, the largest test size beats the smallest.
    const meanAt = (size: string) => meanStd(cells.filter((c) => c.testSize === size).map((c) => c.recall)).mean;
    const larger = meanAt(largestTest) > meanAt(smallestTest);
    starts.push(observed.length);
    observed.push(b(`${test}: `), `the best cell is trained at ${top.train} and tested at ${top.testSize} (R@1 ${pm({ mean: top.recall, std: top.std })}). `);
    observed.push(`Averaged over the training sizes, R@1 is ${f1(meanAt(smallestTest))} at ${smallestTest} and ${f1(meanAt(largestTest))} at ${largestTest}. `);
    verdicts[test] = { larger, matched: matched === bestPer.length };
    observed.push(`The best test size is ${bestPer.map((x) => `${x.best.testSize} for the model trained at ${x.train}`).join(', ')}: `,
      matched === bestPer.length ? 'every model does best at its own training size, as expected. '
        : matched === 0 ? 'no model does best at its own training size; ' : `${matched} of ${bestPer.length} models do best at their own training size; `);
    if (matched < bestPer.length) {
      const larger = bestPer.every((x) => pixelsOf(x.best.testSize) >= pixelsOf(x.train));
      observed.push(!larger ? 'the mismatch goes both ways. ' : matched === 0 ? 'each does best on test images larger than its training ones. ' : 'the others do best on test images larger than their training ones. ');
    }
    // Training larger than the baseline, at the largest test size: the effect of training size with the test size fixed.
    if (t && baselineVariant) {
      const baseSize = Object.entries(variantOfTrainSize).find(([, v]) => v === baselineVariant)?.[0];
      for (const tr of trains) {
        const v = variantOfTrainSize[tr];
        if (!v || v === baselineVariant) continue;
        const key = t.tests.find((k) => k.startsWith(`${test}#`) && k.endsWith(`-${largestTest}`));
        const d = key ? comparisonOf(cellOf(t, v, key), baselineVariant) : undefined;
        if (d) observed.push(`Trained at ${tr} instead of ${baseSize ?? 'the baseline\'s size'}, tested at ${largestTest}: `, b(interval(d)), ` (${verdictOf(d) === 'same' ? 'within noise' : `${verdictOf(d)} beyond noise`}). `);
      }
    }
  }
  const all = Object.values(verdicts);
  starts.push(observed.length);
  observed.push('Overall, larger test images are ', b(all.every((v) => v.larger) ? 'better on every test set' : all.some((v) => v.larger) ? 'better on some test sets only' : 'not better'),
    ' and matching the training size is ', b(all.every((v) => v.matched) ? 'best on every test set' : all.some((v) => v.matched) ? 'best on some test sets only' : 'never best'), '.');
  // One paragraph per test set, and the overall one.
  const paragraphs = starts.map((at, i) => observed.slice(at, starts[i + 1] ?? observed.length));
  return { expected, observed, paragraphs, verdicts };
}
