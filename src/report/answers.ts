// The brief's three questions, answered from what the method is and from this study's numbers
// (baselines for contrastive training, mining for mining, scalability for the trade-off). Where the
// plan a question rests on is missing, the answer says so instead of quoting numbers.
import type { ExperimentTable } from '../experiments/table.ts';
import { b, cite, heading, para, type Block, type Inline } from './doc.ts';
import type { PlanResult, Study } from './load.ts';
import { cellOf, comparisonOf, f1, interval, pm } from './text.ts';

const plan = (s: Study, name: string): PlanResult | undefined => s.plans.find((p) => p.name === name && p.table);
const firstTest = (t: ExperimentTable) => t.tests.find((k) => !k.includes('#'))!;
const judged = (d: { significant: boolean; difference: number }) => (!d.significant ? 'within noise' : d.difference > 0 ? 'a gain beyond noise' : 'a loss beyond noise');

/** Q1: contrastive learning and retrieval; measured: trained against untrained (baselines). */
export function answerContrastive(s: Study): Inline[] {
  const out: Inline[] = [
    'Contrastive (metric) learning trains an embedding from comparisons rather than labels: descriptors of matching pairs are pulled together and those of non-matching pairs pushed apart, here with the triplet loss of the Method section ', cite(1), ' (SARE ', cite(4), ' and SOLAR ', cite(6), ' are variants). ',
    'Retrieval needs exactly this: it ranks the database by descriptor distance, so the training objective is the ranking itself — a query should be nearer to an image of its place than to any image of another place, by a margin. Positions make the pairs without manual labels (weak supervision). ',
  ];
  const p = plan(s, 'baselines');
  if (!p) return [...out, 'The baselines plan is not in this folder, so this study cannot say how much contrastive training changed the network.'];
  const t = p.table!;
  const parts: Inline[] = [];
  for (const c of t.cells) {
    for (const d of c.comparisons) {
      if (!/untrained/.test(d.against) || /untrained/.test(c.variant)) continue;
      const base = cellOf(t, d.against, c.test);
      parts.push(`${c.variant} on ${c.test}: ${base ? pm(base.recalls[1]!) : '–'} → ${pm(c.recalls[1]!)}, `, b(interval(d)), ` (${judged(d)}); `);
    }
  }
  if (parts.length === 0) return [...out, 'The baselines plan has no untrained comparison in this folder.'];
  const gains = t.cells.flatMap((c) => c.comparisons.filter((d) => /untrained/.test(d.against) && !/untrained/.test(c.variant)).map((d) => ({ c, d })));
  const up = gains.filter(({ d }) => d.significant && d.difference > 0), down = gains.filter(({ d }) => d.significant && d.difference < 0);
  const where = (xs: typeof gains) => [...new Set(xs.map(({ c }) => c.test))].join(', ');
  return [...out, 'In this study, R@1 from the untrained network to the trained one: ', ...parts,
    `in all, training raised R@1 beyond noise in ${up.length} of ${gains.length} (model, test set) pairs${up.length > 0 ? ` (on ${where(up)})` : ''} and lowered it in ${down.length}${down.length > 0 ? ` (on ${where(down)})` : ''}. `,
    up.length === 0 && down.length === 0 ? 'At this training budget the contrastive objective did not move the network measurably from its ImageNet starting point.'
      : up.length > down.length ? 'Where training changed recall measurably, it mostly raised it.' : up.length === down.length ? 'Training raised recall as often as it lowered it.' : 'Training lowered recall more often than it raised it: what the network learned does not carry over to those test sets.'];
}

/** Q2: mining and its downsides; measured: recall and cost of full / partial / random mining. */
export function answerMining(s: Study): Inline[] {
  const out: Inline[] = [
    'Mining chooses, for every training query, the positive and the negatives its triplets use: positions only say which images are near, so the positive is the nearby image the network finds most similar, and the informative negatives are the far-away images it currently finds most similar (hard negatives) ', cite(1), '; random negatives soon satisfy the margin and give no gradient. ',
    'Its downsides: it costs a pass of the current network over a pool of database images at every cache refresh, plus a nearest-neighbour search; the cache is stale between refreshes; hardest negatives can be mislabelled positives (the same place seen from beyond the radius) or outliers that destabilise training; and its cost grows with the database, which is why MSLS samples a smaller pool ', cite(14), '. ',
  ];
  const p = plan(s, 'mining');
  if (!p) return [...out, 'The mining plan is not in this folder, so its cost and effect are not measured here.'];
  const t = p.table!;
  const test = firstTest(t);
  const costs = t.costs.filter((c) => c.perEpochSeconds).map((c) => {
    const e = c.perEpochSeconds!;
    const total = e.cache + e.mine + e.train + e.validate;
    return `${c.variant} ${f1(e.cache + e.mine)} s of ${f1(total)} s per epoch (${f1((100 * (e.cache + e.mine)) / total)}%)`;
  });
  const effects = t.cells.filter((c) => c.test === test).flatMap((c) => c.comparisons.map((d): Inline[] => [`${c.variant} against ${d.against}: `, b(interval(d)), ` (${judged(d)})`]))
    .flatMap((x, i, all) => [...x, i < all.length - 1 ? '; ' : '. ']);
  return [...out, `Measured here: caching and mining take ${costs.join('; ')}. `,
    ...(effects.length > 0 ? [`Their effect on R@1 on ${test}: `, ...effects] : []),
    effects.length > 0 && t.cells.filter((c) => c.test === test).every((c) => c.comparisons.every((d) => !d.significant))
      ? 'The way negatives are mined makes no measurable difference at this scale, so its cost buys nothing here; hard mining pays once random negatives have become easy, after many more steps.'
      : 'Mining changed recall on this test set (above); weigh the difference against its cost per epoch.'];
}

/** Q3: NetVLAD, GeM and the recall–scalability trade-off; measured: dimension, bytes, search time, recall. */
export function answerScalability(s: Study): Inline[] {
  const out: Inline[] = [
    'Retrieval stores one descriptor per database image and compares the query with all of them (or an index of them): memory and exact search time grow linearly with the dimension and the database size. ',
    'NetVLAD\'s descriptor is K x D (clusters x channels), rich but large; GeM\'s is D, K times smaller and faster to search, usually at some recall ', cite(1, 2), '. PCA with whitening ', cite(1), ' or a learned projection ', cite(2), ' trades dimensions back for recall. ',
  ];
  const p = plan(s, 'scalability') ?? plan(s, 'baselines');
  if (!p) return [...out, 'Neither the scalability nor the baselines plan is in this folder, so the trade-off is not measured here.'];
  const t = p.table!;
  const test = firstTest(t);
  const gem = cellOf(t, 'gem', test), vlad = cellOf(t, 'netvlad', test);
  if (!gem || !vlad) return [...out, `The ${p.name} plan has no gem and netvlad variants to compare.`];
  const d = comparisonOf(vlad, 'gem');
  const timed = (v: string) => t.cells.find((c) => c.variant === v && c.searchTimes)?.searchTimes ?? [];
  const common = timed('gem').filter((g) => g.msPerQuery !== null && timed('netvlad').some((n) => n.databaseSize === g.databaseSize && n.msPerQuery !== null)).at(-1);
  const nTime = common ? timed('netvlad').find((n) => n.databaseSize === common.databaseSize)!.msPerQuery! : undefined;
  const ratio = gem.descriptor && vlad.descriptor ? vlad.descriptor.bytes / gem.descriptor.bytes : NaN;
  const parts: Inline[] = [
    `Measured here (${p.name}, ${test}): GeM ${gem.descriptor?.dim ?? '?'}-d (${gem.descriptor?.bytes.toLocaleString('en-US') ?? '?'} bytes) R@1 ${pm(gem.recalls[1]!)}; NetVLAD ${vlad.descriptor?.dim ?? '?'}-d (${vlad.descriptor?.bytes.toLocaleString('en-US') ?? '?'} bytes, ${f1(ratio)}x) R@1 ${pm(vlad.recalls[1]!)}`,
    ...(d ? ['; the difference ', b(interval(d)), ` is ${judged(d)}`] : []), '. ',
    ...(common && nTime !== undefined ? [`Exact search at ${common.databaseSize.toLocaleString('en-US')} images takes ${common.msPerQuery!.toFixed(2)} ms per query for GeM and ${nTime.toFixed(2)} ms for NetVLAD (${f1(nTime / common.msPerQuery!)}x). `] : []),
  ];
  const pcas = t.cells.filter((c) => c.test.startsWith(`${test}#pca`) && c.descriptor);
  if (pcas.length > 0) {
    const best = pcas.reduce((a, c) => (c.recalls[1]!.mean > a.recalls[1]!.mean ? c : a), pcas[0]!);
    parts.push(`With PCA the best is ${best.variant} + ${best.test.split('#')[1]} (${best.descriptor!.dim}-d): R@1 ${pm(best.recalls[1]!)}. `);
  }
  const vladWins = d ? d.significant && d.difference > 0 : false;
  parts.push(vladWins ? 'Here NetVLAD buys its recall with its size: the trade-off the literature describes.' : `Here NetVLAD's ${f1(ratio)}x size buys no recall beyond noise, so GeM (or a compressed NetVLAD) is the better point on the trade-off at this scale.`);
  return [...out, ...parts];
}

export function answers(s: Study): Block[] {
  return [
    heading(1, 'Answers to the brief\'s questions'),
    heading(2, 'What is contrastive learning and how does it relate to image retrieval?'), para(...answerContrastive(s)),
    heading(2, 'What does mining mean, and what are its downsides?'), para(...answerMining(s)),
    heading(2, 'How do NetVLAD and GeM relate to the recall–scalability trade-off?'), para(...answerScalability(s)),
  ];
}
