// One section per plan found in the experiments folder (baselines, ablations, mining, scalability,
// variations; any other plan gets the generic section): its table, its plots and what the numbers
// say. Plans the brief asks for that are not in the folder are listed as missing, never filled in.
import { cpuUseText, type ExperimentTable } from '../experiments/table.ts';
import { b, heading, para, type Block, type FigureBlock, type Inline, type TableBlock } from './doc.ts';
import * as fig from './figures.ts';
import type { Figure } from '../util/figure.ts';
import type { PlanResult } from './load.ts';
import {
  compareSentence, f1, imageSizeStatement, interval, pm, radiusCurves, significantFindings, sizeGrid,
  trainSizeOf, trainThresholdStatement, valRadiusStatement, type RadiusVariant,
} from './text.ts';

/** The study's plans, in the report's order, with what each asks (the plans' header comments). */
export const CATALOGUE: { name: string; title: string; asks: string }[] = [
  { name: 'baselines', title: 'Baselines: GeM and NetVLAD', asks: 'GeM against NetVLAD on the same backbone and recipe, each against its untrained network (ImageNet backbone; NetVLAD\'s clusters from k-means).' },
  { name: 'ablation-1-lr-optimizer', title: 'Ablation 1: learning rate and optimiser', asks: 'Adam, AdamW and SGD with momentum, each at learning rates of its own scale, for NetVLAD.' },
  { name: 'ablation-2-cross-dataset', title: 'Ablation 2: cross-dataset', asks: 'The baselines trained on one dataset against the same recipe trained on another, each tested on every test set.' },
  { name: 'ablation-3-train-threshold', title: 'Ablation 3: the positives\' radius at training', asks: 'train_positives_dist_threshold (10 m in the reference) changed to smaller and larger radii.' },
  { name: 'ablation-4-val-radius', title: 'Ablation 4: the positives\' radius at test', asks: 'val_positive_dist_threshold (25 m) changed at evaluation only, on the baselines\' trained models.' },
  { name: 'ablation-5-augmentations', title: 'Ablation 5: data augmentation', asks: 'Colour jitter and random crops, each alone, and all the augmentations combined (with perspective, rotation and flips), tested on the training domain and the others.' },
  { name: 'ablation-6-image-size', title: 'Ablation 6: image size at training and at test', asks: 'Models trained at several sizes, each tested at several sizes.' },
  { name: 'mining', title: 'Mining', asks: 'Full, partial and random negatives: recall and the cost of each.' },
  { name: 'scalability', title: 'Recall and scalability', asks: 'Descriptor dimension (GeM, NetVLAD, PCA with and without whitening, learned FC whitening), bytes per image and exact search time.' },
  { name: 'variation-losses', title: 'Variation: losses', asks: 'Triplet against SARE (ind, joint) and SOLAR, trained with ablation 1\'s best rate (SGD 1e-2).' },
  { name: 'variation-attention', title: 'Variation: attention', asks: 'CBAM, non-local, second-order attention and CRN in front of NetVLAD, trained with ablation 1\'s best rate (SGD 1e-2).' },
  { name: 'variation-backbones', title: 'Variation: backbones', asks: 'ImageNet CNNs (MobileNetV2, ResNet-50 to conv4; each against its untrained network) and transformers trained from scratch with the class token.' },
  { name: 'variation-mining', title: 'Variation: cheaper mining', asks: 'Partial mining with smaller pools of sampled negatives, against full mining, trained with ablation 1\'s best rate (SGD 1e-2).' },
];

/** Writes a figure under figures/ and returns its block (null when there is nothing to plot). */
export type FigureSink = (f: Figure | undefined, caption: Inline[], width?: number) => Promise<FigureBlock | null>;

/** A test key as shown: the evaluation variant after a breakable separator. */
export const displayKey = (k: string) => k.replace('#', ' · ');
const baseKey = (k: string) => k.replace(/#.*$/, '');
const evalName = (k: string) => (k.includes('#') ? k.slice(k.indexOf('#') + 1) : '');

/** The test keys a plan's main table shows: evaluation variants that repeat the base recall (radii, search timing) are left out; with size variants the base keys are. */
export function mainTests(p: PlanResult): string[] {
  const t = p.table!;
  const bySize = new Set(p.plan.evaluations.filter((e) => e.size).map((e) => e.name));
  // Only extra radii or search timing leave the 25 m recall as it is; any other option (size, PCA, test method, precision) changes it.
  const repeats = new Set(p.plan.evaluations.filter((e) => Object.keys(e).every((k) => ['name', 'radii', 'searchSizes'].includes(k))).map((e) => e.name));
  return t.tests.filter((k) => {
    const e = evalName(k);
    if (e === '') return bySize.size === 0;
    return !repeats.has(e);
  });
}

/** mean ± std for every N, the paired bootstrap against each comparison: one row per (test, variant). */
export function resultsTable(p: PlanResult, tests: readonly string[]): TableBlock {
  const t = p.table!;
  const rows: Inline[][][] = [];
  for (const test of tests) {
    for (const c of t.cells.filter((x) => x.test === test)) {
      const vs: Inline[] = c.comparisons.length === 0 ? ['–'] : c.comparisons.flatMap((d, i): Inline[] => [
        ...(i > 0 ? ['; '] : []), d.significant ? b(`${interval(d)} *`) : interval(d), ...(c.comparisons.length > 1 || d.against !== t.baseline ? [` vs ${d.against}`] : [])]);
      rows.push([[displayKey(test)], [c.variant], [String(c.seeds.length)], [String(c.queries)], ...t.ns.map((n) => [pm(c.recalls[n]!)]), vs]);
    }
  }
  return {
    kind: 'table', scale: 0.85,
    caption: [`${p.name}: recall@N (%) at ${radiusOf(p)} m, mean ± std over seeds; R@1 difference against ${t.baseline} (or the variant named) with its paired bootstrap 95% interval, * when it excludes 0. Source: ${p.dir}/*/seed-*/evaluation.json.`],
    header: ['test', 'variant', 'seeds', 'queries', ...t.ns.map((n) => `R@${n}`), 'Δ R@1 [95% CI]'],
    align: ['l', 'l', 'r', 'r', ...t.ns.map(() => 'r' as const), 'l'],
    rows,
  };
}

const radiusOf = (p: PlanResult) => p.records[0]?.tests[0]?.radius ?? 25;

function costTable(p: PlanResult): TableBlock {
  const t = p.table!;
  return {
    kind: 'table', scale: 0.85,
    caption: [`${p.name}: cost per variant, means over seeds (from phasesMs and wallMs of the records; a reused variant's training is its source's). `
      + 'CPU use: the runs\' CPU time over wall time x threads; "shared" marks runs that shared the CPUs with other work, whose wall times overstate the cost.'],
    header: ['variant', 'epochs', 'cache s/ep', 'mining s/ep', 'training s/ep', 'validation s/ep', 'training min', 'evaluation min', 'CPU use'],
    rows: t.costs.map((c) => {
      const e = c.perEpochSeconds;
      return [[c.variant + (c.trainedBy ? ` (${c.trainedBy})` : '')], [Number.isNaN(c.epochs) ? '–' : f1(c.epochs)],
        ...(e ? [e.cache, e.mine, e.train, e.validate].map((x) => [f1(x)]) : [['–'], ['–'], ['–'], ['–']]), [f1(c.trainMinutes)], [f1(c.evaluateMinutes)],
        [cpuUseText(c) || '–']];
    }),
  };
}

const list = (items: Inline[][]): Block => ({ kind: 'list', items });

/** The numeric option of a record's variant, in either spelling, else the plan default, else `fallback`. */
function optionOf(p: PlanResult, variant: string, snake: string, camel: string, fallback: number): number {
  const r = p.records.find((x) => x.variant === variant);
  const v = r?.options[snake] ?? r?.options[camel] ?? p.plan.defaults[snake] ?? p.plan.defaults[camel];
  return typeof v === 'number' ? v : fallback;
}

export async function planSection(p: PlanResult, sink: FigureSink): Promise<Block[]> {
  const known = CATALOGUE.find((c) => c.name === p.name);
  const out: Block[] = [heading(2, known?.title ?? `Plan ${p.name}`)];
  out.push(para(b('What it asks. '), known?.asks ?? p.plan.description ?? 'A plan outside the brief\'s list.', ` ${p.records.length} of ${p.planned} runs finished (variants ${[...new Set(p.records.map((r) => r.variant))].join(', ') || 'none'}; seeds ${p.plan.seeds.join(', ')}).`));
  if (!p.table) {
    out.push(para('No run of this plan has finished: nothing to report yet.'));
    return out;
  }
  const t = p.table;
  if (p.records.length < p.planned) out.push(para(b('Incomplete. '), `The plan is still running or was stopped: the numbers below are those of the ${p.records.length} finished runs only.`));
  const tests = mainTests(p);
  const bases = t.tests.filter((k) => !k.includes('#'));
  out.push(resultsTable(p, tests));

  const curves = await sink(fig.trainingCurves(`${p.name}-training`, `${p.name}: validation during training`, p.curves),
    [`${p.name}: validation R@5 (left) and mean training loss (right) per epoch, from each training run's log.jsonl; thin lines are seeds, thick lines their mean.`]);
  if (curves) out.push(curves);

  switch (p.name) {
    case 'baselines': out.push(...(await baselines(p, t, bases, sink))); break;
    case 'ablation-3-train-threshold': out.push(...ablation3(p, t, bases)); break;
    case 'ablation-4-val-radius': out.push(...(await ablation4(p, t, sink))); break;
    case 'ablation-6-image-size': out.push(...(await ablation6(p, t, sink))); break;
    case 'scalability': out.push(...(await scalability(p, t, bases, sink))); break;
    default: {
      const bars = await sink(fig.recallBars(`${p.name}-r1`, `${p.name}: R@1 per variant`, t, bases), [`${p.name}: mean R@1 per variant and test set, bars ± one std over seeds.`]);
      if (bars) out.push(bars);
      out.push(...findings(t, tests));
    }
  }
  if (p.name === 'mining' || p.name === 'variation-mining' || p.name === 'ablation-1-lr-optimizer') {
    const points = t.costs.filter((c) => c.perEpochSeconds).flatMap((c) => Object.entries(c.perEpochSeconds!).map(([phase, seconds]) => ({ variant: c.variant, phase, seconds })));
    const cost = await sink(fig.phaseCost(`${p.name}-cost`, `${p.name}: time per epoch`, points), [`${p.name}: seconds per epoch of each training phase (cache: describing the images mining needs; mine: the nearest-neighbour search; train: the steps).`], 0.7);
    if (cost) out.push(cost);
  }
  out.push(costTable(p));
  return out;
}

function findings(t: ExperimentTable, tests: readonly string[]): Block[] {
  const { found, none } = significantFindings(t, tests);
  if (none) return [para(b('What it shows. '), `No variant differs in R@1 from its comparison beyond noise on any test set (every 95% interval includes 0).`)];
  return [para(b('What it shows. '), `${found.length} difference${found.length > 1 ? 's' : ''} in R@1 exclude 0 (every other is within noise):`), list(found)];
}

async function baselines(p: PlanResult, t: ExperimentTable, bases: string[], sink: FigureSink): Promise<Block[]> {
  const out: Block[] = [];
  const f = await sink(fig.recallAtN(`${p.name}-recall-n`, 'recall@N', t, bases), ['Baselines: mean recall@N against N, per test set.']);
  if (f) out.push(f);
  const pairs: [string, string][] = [];
  for (const c of t.cells) for (const d of c.comparisons) if (!pairs.some(([a, x]) => a === c.variant && x === d.against)) pairs.push([c.variant, d.against]);
  for (const [v, against] of pairs) {
    const items = bases.map((test) => compareSentence(t, v, against, test)).filter((x): x is Inline[] => x !== undefined);
    if (items.length > 0) out.push(para(b(`${v} against ${against}. `)), list(items));
  }
  out.push(...findings(t, bases));
  return out;
}

function ablation3(p: PlanResult, t: ExperimentTable, bases: string[]): Block[] {
  const variants: RadiusVariant[] = [...new Set(p.records.map((r) => r.variant))].map((v) => ({ variant: v, radius: optionOf(p, v, 'train_positives_dist_threshold', 'trainPositivesDistThreshold', 10) }));
  if (variants.length < 2) return findings(t, bases);
  const s = trainThresholdStatement(t, variants, bases[0]!);
  return [heading(3, 'Expected'), para(...s.expected), heading(3, 'Observed'), para(...s.observed), ...findings(t, bases)];
}

async function ablation4(p: PlanResult, t: ExperimentTable, sink: FigureSink): Promise<Block[]> {
  const curves = radiusCurves(t);
  if (curves.length === 0) return [];
  const radii = [...new Set(curves.flatMap((c) => c.points.map((x) => x.radius)))].sort((a, x) => a - x);
  const table: TableBlock = {
    kind: 'table', scale: 0.85, caption: ['Ablation 4: R@1 (%) by the radius a match counts within, mean over seeds (recallsByRadius of the records).'],
    header: ['test', 'variant', ...radii.map((r) => `${r} m`)], align: ['l', 'l', ...radii.map(() => 'r' as const)],
    rows: curves.map((c) => [[c.test], [c.variant], ...radii.map((r) => [f1(c.points.find((x) => x.radius === r)?.recall ?? NaN)])]),
  };
  const f = await sink(fig.recallVsRadius(`${p.name}-radius`, 'R@1 against the radius', t), ['Ablation 4: R@1 against the test radius, the same models evaluated with each radius.']);
  const s = valRadiusStatement(curves);
  return [table, ...(f ? [f] : []), heading(3, 'Expected'), para(...s.expected), heading(3, 'Observed'), para(...s.observed)];
}

async function ablation6(p: PlanResult, t: ExperimentTable, sink: FigureSink): Promise<Block[]> {
  const grid = sizeGrid(p.records, p.plan.defaults);
  if (grid.length === 0) return [];
  const variantOf: Record<string, string> = {};
  for (const r of p.records) {
    const size = trainSizeOf(r, p.plan.defaults);
    if (size) variantOf[size] = r.variant;
  }
  const f = await sink(fig.sizeHeatmap(`${p.name}-heatmap`, 'R@1: training size x test size', grid), ['Ablation 6: mean R@1 by training size (rows) and test size (columns), per test set.']);
  const s = imageSizeStatement(grid, t, t.baseline, variantOf);
  return [...(f ? [f] : []), heading(3, 'Expected'), para(...s.expected), heading(3, 'Observed'), ...s.paragraphs.map((x) => para(...x))];
}

async function scalability(p: PlanResult, t: ExperimentTable, bases: string[], sink: FigureSink): Promise<Block[]> {
  const out: Block[] = [];
  const head = (v: string) => (v.startsWith('netvlad') ? 'NetVLAD' : v.startsWith('gem') ? 'GeM' : v);
  const points = t.cells.filter((c) => c.descriptor && !c.searchTimes && bases.includes(baseKey(c.test)))
    .map((c) => ({ test: baseKey(c.test), descriptor: `${c.variant}${evalName(c.test) ? ` + ${evalName(c.test)}` : ''}`, head: head(c.variant), bytes: c.descriptor!.bytes, recall: c.recalls[1]!.mean }));
  const f1g = await sink(fig.recallVsBytes(`${p.name}-bytes`, 'R@1 against bytes per image', points, bases), ['Scalability: R@1 against the descriptor\'s bytes per image (float32), every variant and PCA.']);
  if (f1g) out.push(f1g);
  const timed = t.cells.filter((c) => c.searchTimes);
  const sp = timed.flatMap((c) => c.searchTimes!.filter((s) => s.msPerQuery !== null).map((s) => ({ descriptor: `${c.variant} (${c.descriptor?.dim}-d)`, databaseSize: s.databaseSize, ms: s.msPerQuery! })));
  const f2 = await sink(fig.searchTime(`${p.name}-search`, 'exact search time', sp), ['Scalability: exact search time per query against the database size (the test database repeated and jittered), mean over seeds.'], 0.7);
  if (f2) out.push(f2);
  if (timed.length > 0) {
    const sizes = [...new Set(timed.flatMap((c) => c.searchTimes!.map((s) => s.databaseSize)))].sort((a, x) => a - x);
    out.push({
      kind: 'table', scale: 0.85, caption: ['Scalability: descriptor size and exact search time per query (ms; – where the database did not fit in the memory the measurement allows itself).'],
      header: ['variant', 'dim', 'bytes / image', ...sizes.map((s) => `${s.toLocaleString('en-US')} images`)],
      rows: timed.map((c) => [[c.variant], [String(c.descriptor?.dim ?? '–')], [String(c.descriptor?.bytes ?? '–')], ...sizes.map((s) => {
        const m = c.searchTimes!.find((x) => x.databaseSize === s)?.msPerQuery;
        return [m === null || m === undefined ? '–' : m.toFixed(m < 1 ? 3 : 1)];
      })]),
    });
  }
  // The best-recall descriptor per byte budget on the first test set: what compression costs.
  const first = bases[0];
  if (first) {
    const ps = points.filter((x) => x.test === first).sort((a, x) => a.bytes - x.bytes || x.recall - a.recall);
    const best = ps.reduce((a, x) => (x.recall > a.recall ? x : a), ps[0]!);
    const smallestNear = ps.find((x) => x.recall >= best.recall - 1);
    if (best && smallestNear) {
      out.push(para(b('Compression. '), `On ${first} the highest R@1 is ${f1(best.recall)} (${best.descriptor}, ${best.bytes.toLocaleString('en-US')} bytes); `,
        smallestNear.bytes >= best.bytes ? 'no smaller descriptor comes within one point of it.'
          : `the smallest descriptor within one point of it is ${smallestNear.descriptor} at ${smallestNear.bytes.toLocaleString('en-US')} bytes (R@1 ${f1(smallestNear.recall)}), ${(best.bytes / smallestNear.bytes).toFixed(1)}x smaller.`));
    }
  }
  out.push(...findings(t, mainTests(p)));
  return out;
}

