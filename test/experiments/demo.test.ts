// The demo end to end on a tiny rendered city and the real photographs: its table has a row for every
// test set, real ones marked, with the query counts of the route splits; and the verdict on real gains
// is computed as the issue states it (day→night R@1 gain ≥ 5, no real test set losing more than 2).
// Over seeds on the sealed final split: the real sets only, statistics checked by hand, each look recorded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/tmp.ts';
import { runDemo, formatTable, judgeRealGains, DEMO_TESTS, demoBackbone, demoConfig, demoTests, type DemoRow } from '../../src/experiments/demo.ts';
import { TrainConfigSchema, flattenConfig } from '../../src/train/config.ts';
import { OptionError } from '../../src/errors.ts';
import { aggregateSeeds, judgeSeeds, runDemoOverSeeds, seedsRowsOfPlan } from '../../src/experiments/seeds.ts';
import { expandPlan, readPlan, PlanSchema } from '../../src/experiments/plan.ts';
import type { RunRecord } from '../../src/experiments/record.ts';
import { GARDENS_POINT_TEST, GARDENS_POINT_FINAL, NORDLAND_TEST, NORDLAND_FINAL } from '../../src/data/real.ts';

const recalls = (r1: number) => ({ 1: r1, 5: r1 + 10, 10: r1 + 20, 20: r1 + 30 });
const row = (model: string, dataset: string, real: boolean, before: number, after: number): DemoRow => ({
  model, dataset, split: 'test', label: dataset, real, queries: 10, untrained: recalls(before), trained: recalls(after), ranks: { untrained: [], trained: [] },
});

test('the demo on ResNet-50 conv4: its config trains at 240x320 with the Keras weights and round-trips through config.json; its tests leave out the 240x320 repeats; val and final test the real sets', () => {
  const o = { datasetsFolder: '/data', outputFolder: '/runs', epochs: 4, queriesPerEpoch: 200, seed: 1, backbone: 'resnet50conv4' };
  const gem = demoConfig(o, 'gem'), netvlad = demoConfig(o, 'netvlad');
  assert.equal(gem.model.backbone, 'resnet50conv4');
  assert.equal(gem.model.resnetFlavour, 'keras');
  assert.match(gem.model.weights ?? '', /weights\/resnet50_keras_imagenet\.pth$/);
  assert.deepEqual(gem.data.resize, [240, 320]);
  assert.equal(gem.run.outputFolder, join('/runs', 'resnet50conv4-gem'));
  // One size: NetVLAD trains every epoch at it (MobileNetV2's NetVLAD trains half, at two sizes).
  assert.deepEqual(netvlad.loss.invarianceSizes, []);
  assert.equal(netvlad.optim.epochs, 4);
  assert.equal(demoConfig({ ...o, backbone: undefined }, 'netvlad').optim.epochs, 2);
  assert.equal(demoConfig({ ...o, backbone: undefined }, 'netvlad').model.backbone, 'mobilenetv2');
  // What a run writes as config.json reads back to the same config.
  for (const c of [gem, netvlad]) assert.deepEqual(TrainConfigSchema.parse(JSON.parse(JSON.stringify(flattenConfig(c)))), c);

  const at = (tests: readonly { dataset: string; size?: readonly number[] }[]) => tests.map((t) => `${t.dataset}${t.size ? `@${t.size.join('x')}` : ''}`);
  assert.deepEqual(at(demoTests(demoBackbone('resnet50conv4'))), at(DEMO_TESTS.filter((t) => t.size === undefined)));
  assert.deepEqual(at(demoTests(demoBackbone())), at(DEMO_TESTS));
  assert.deepEqual(at(demoTests(demoBackbone('resnet50conv4'), 'final')), ['gardens_point_day', 'gardens_point_night', 'nordland']);
  // The val splits that choose a recipe are the real routes' too.
  assert.deepEqual(at(demoTests(demoBackbone(), 'val')), ['gardens_point_day', 'gardens_point_night', 'nordland',
    'gardens_point_day@240x320', 'gardens_point_night@240x320']);
  assert.throws(() => demoBackbone('vgg16'), (e: unknown) => e instanceof OptionError && e.option === 'backbone' && /vgg16: expected mobilenetv2 \| resnet50conv4/.test(e.message));
});

test('real-gain verdict: night gain and worst real change against the targets', () => {
  const rows = [
    row('A', 'synth-city', false, 40, 10), // synthetic losses do not count
    row('A', 'gardens_point_day', true, 60, 58.5),
    row('A', 'gardens_point_night', true, 47.6, 52.6),
    row('A', 'nordland', true, 6, 9),
    row('B', 'gardens_point_day', true, 60, 57.9),
    row('B', 'gardens_point_night', true, 40, 50),
    row('C', 'gardens_point_night', true, 40, 44.9),
  ];
  const [a, b, c] = judgeRealGains(rows);
  assert.equal(a.model, 'A');
  assert.ok(Math.abs(a.nightGain - 5) < 1e-9 && Math.abs(a.worstRealChange + 1.5) < 1e-9 && a.worstRealDataset === 'gardens_point_day');
  assert.equal(a.pass, true);
  assert.ok(Math.abs(b.worstRealChange + 2.1) < 1e-9);
  assert.equal(b.pass, false, 'a real loss of 2.1 points fails');
  assert.equal(c.pass, false, 'a night gain of 4.9 points fails');
  // At another test size: the night target is judged at the training size, losses at every size.
  const larger = (r: DemoRow): DemoRow => ({ ...r, size: '240x320' });
  const [d] = judgeRealGains([row('D', 'gardens_point_night', true, 40, 50), larger(row('D', 'gardens_point_night', true, 50, 51))]);
  assert.equal(d.nightGain, 10);
  assert.equal(d.pass, true);
  const [e] = judgeRealGains([row('E', 'gardens_point_night', true, 40, 50), larger(row('E', 'gardens_point_day', true, 73.1, 65.4))]);
  assert.ok(Math.abs(e.worstRealChange + 7.7) < 1e-9);
  assert.equal(e.worstRealDataset, 'gardens_point_day@240x320');
  assert.equal(e.pass, false, 'a loss at 240x320 fails');
});

test('over seeds: mean ± std per recall, the paired R@1 change over queries scored by the share of seeds, the targets on the means', () => {
  // Two seeds, four queries; first correct ranks (-1: none in the top N).
  const seeded = (model: string, untrained: number[], trained: number[]): DemoRow => ({
    ...row(model, 'gardens_point_night', true, 0, 0), split: 'final', queries: 4, ranks: { untrained, trained },
    untrained: recalls(100 * untrained.filter((r) => r === 0).length / 4), trained: recalls(100 * trained.filter((r) => r === 0).length / 4),
  });
  const seeds = [
    { seed: 0, rows: [seeded('A', [0, -1, 3, -1], [0, 0, 3, -1])] }, // R@1 25 → 50
    { seed: 1, rows: [seeded('A', [0, -1, 0, -1], [0, 0, 0, 0])] }, // R@1 50 → 100
  ];
  const [a] = aggregateSeeds(seeds);
  assert.equal(a.untrained[1].mean, 37.5);
  assert.ok(Math.abs(a.untrained[1].std - Math.sqrt(2 * 12.5 ** 2)) < 1e-9, `std ${a.untrained[1].std}`);
  assert.equal(a.trained[1].mean, 75);
  // Per query, the share of seeds with a correct top-1: untrained [1, 0, .5, 0], trained [1, 1, .5, .5]:
  // mean difference (0 + 1 + 0 + .5) / 4 = 37.5 points, the difference of the means.
  assert.equal(a.change.difference, 37.5);
  // A resampled mean lies between the smallest and largest per-query difference (0 and 100 points).
  assert.ok(a.change.low >= 0 && a.change.high <= 100 && a.change.low <= 37.5 && a.change.high >= 37.5, `[${a.change.low}, ${a.change.high}]`);
  const [v] = judgeSeeds([a]);
  assert.equal(v.pass, a.change.low > 0, 'met: a gain of 37.5 ≥ 5 whose interval lies above 0, and no loss');
  assert.throws(() => aggregateSeeds([seeds[0], { seed: 2, rows: [] }]), /seed 2: no row for A on gardens_point_night/);
});

test('experiments/real-places.yaml trains the demo\'s ResNet-50 recipe: each variant\'s config is demoConfig\'s (but folder and seed), tested on the final split', () => {
  const file = fileURLToPath(new URL('../../experiments/real-places.yaml', import.meta.url));
  const plan = readPlan(file);
  const runs = expandPlan(plan, '/exp', { planFile: file });
  const gem = runs.find((r) => r.variant === 'gem' && r.seed === 2)!;
  const demo = demoConfig({ datasetsFolder: 'data/datasets', outputFolder: '/elsewhere', queriesPerEpoch: 200, seed: 2, backbone: 'resnet50conv4' }, 'gem');
  const flat = (c: typeof demo) => {
    const { outputFolder: _, weights, ...rest } = flattenConfig(c) as Record<string, unknown>;
    return { ...rest, weights: String(weights).replace(/^.*\/weights\//, 'weights/') };
  };
  assert.deepEqual(flat(gem.config), flat(demo));
  assert.equal(demo.optim.epochs, 1, 'the backbone\'s own epochs when none are given');
  assert.equal(demo.run.precision, 'auto');
  assert.deepEqual(plan.tests.map((t) => `${t.dataset}/${t.split}`), ['gardens_point_day/final', 'gardens_point_night/final', 'nordland/final']);
  assert.deepEqual(plan.seeds, [0, 1, 2]);
});

test('the three-seed verdict from a plan\'s records: each trained variant against its untrained one, seed by seed, judged by the backbone\'s targets', () => {
  const plan = PlanSchema.parse({
    name: 'p', defaults: { backbone: 'resnet50conv4', aggregation: 'gem' },
    variants: [{ name: 'gem-untrained', untrained: true }, { name: 'gem', against: 'gem-untrained' }], seeds: [0, 1],
    tests: [{ dataset: 'gardens_point_night', split: 'final' }, { dataset: 'nordland', split: 'final' }],
  });
  const test = (dataset: string, ranks: number[]) => ({
    key: `${dataset}/final`, dataset, split: 'final', size: [240, 320] as [number, number], queries: ranks.length, radius: 25, ranks,
    recalls: { 1: 100 * ranks.filter((r) => r === 0).length / ranks.length, 5: 100 * ranks.filter((r) => r >= 0 && r < 5).length / ranks.length },
  });
  const record = (variant: string, seed: number, night: number[], nordland: number[]) => ({ variant, seed, tests: [test('gardens_point_night', night), test('nordland', nordland)] }) as unknown as RunRecord;
  const records = [
    record('gem-untrained', 0, [0, -1, 1, 0], [0, 0]), record('gem-untrained', 1, [0, -1, 1, 0], [0, 0]),
    record('gem', 0, [0, 0, 1, 0], [0, 1]), record('gem', 1, [0, 0, 0, 0], [0, 0]),
  ];
  assert.equal(seedsRowsOfPlan(plan, records.slice(0, 3)), undefined, 'seed 1 of gem missing');
  const rows = seedsRowsOfPlan(plan, records)!;
  assert.deepEqual(rows.map((r) => [r.model, r.dataset, r.split, r.queries]), [['ResNet-50 conv4 + GeM', 'gardens_point_night', 'final', 4], ['ResNet-50 conv4 + GeM', 'nordland', 'final', 2]]);
  // Night: untrained R@1 50 both seeds; trained 75, 100 → mean 87.5. Per query shares untrained [1, 0, 0, 1], trained [1, 1, .5, 1]: +37.5.
  assert.equal(rows[0]!.untrained[1].mean, 50);
  assert.equal(rows[0]!.trained[1].mean, 87.5);
  assert.equal(rows[0]!.change.difference, 37.5);
  // Nordland: 100 → 75 (seed 0 loses a query): −25, below ResNet-50's −1, so the verdict fails whatever the night.
  assert.equal(rows[1]!.change.difference, -25);
  const [v] = judgeSeeds(rows, demoBackbone('resnet50conv4').target);
  assert.equal(v.target.minGain, 3);
  assert.equal(v.worstRealDataset, 'nordland');
  assert.equal(v.pass, false);
});

test('the demo table holds the real test sets with their route-split query counts; over seeds on the sealed final split, its own table and a record of each look', { timeout: 600_000 }, async () => {
  const dir = tempDir('vgl-demo-test-');
  const common = {
    datasetsFolder: join(dir, 'datasets'), heads: ['gem'] as ('gem' | 'netvlad')[], trainOn: 'real' as const,
    epochs: 1, queriesPerEpoch: 8, progress: false, log: () => {}, citySize: 'tiny' as const,
  };
  const rows = await runDemo({ ...common, outputFolder: join(dir, 'runs', 'seed-0'), seed: 0 });
  assert.deepEqual(rows.map((r) => r.dataset), DEMO_TESTS.map((t) => t.dataset));
  const gpTest = GARDENS_POINT_TEST.max - GARDENS_POINT_TEST.min + 1;
  const nordlandTest = (NORDLAND_TEST.max - NORDLAND_TEST.min) / 10 + 1; // frames every 10 index units
  const byName = Object.fromEntries(rows.map((r) => [r.dataset, r]));
  assert.equal(byName.gardens_point_day.queries, gpTest);
  assert.equal(byName.gardens_point_night.queries, gpTest);
  assert.equal(byName.nordland.queries, nordlandTest);
  assert.deepEqual(rows.filter((r) => r.real).map((r) => `${r.dataset}${r.size ? `@${r.size}` : ''}`),
    ['gardens_point_day', 'gardens_point_night', 'nordland', 'gardens_point_day@240x320', 'gardens_point_night@240x320']);
  // The larger size is a different measurement of the same queries.
  const large = rows.find((r) => r.size === '240x320' && r.dataset === 'gardens_point_night')!;
  assert.equal(large.queries, gpTest);
  for (const r of rows) {
    for (const n of [1, 5, 10]) assert.ok(r.untrained[n] >= 0 && r.untrained[n] <= 100 && r.trained[n] >= 0 && r.trained[n] <= 100);
    assert.ok(r.untrained[1] <= r.untrained[5] && r.untrained[5] <= r.untrained[10]);
  }
  const md = readFileSync(join(dir, 'runs', 'seed-0', 'results.md'), 'utf8');
  assert.equal(md, `${formatTable(rows)}\n\n${md.split('\n\n')[1]}`);
  for (const label of ['Gardens Point day→day (real)', 'Gardens Point day→night (real)', 'Nordland summer→winter (real)', 'Gardens Point day→night at 240x320 (real)']) assert.ok(md.includes(label), label);
  for (const dir2 of ['gardens_point_night', 'gardens_point_night@240x320']) assert.ok(existsSync(join(dir, 'runs', 'seed-0', 'mobilenetv2-gem', 'trained', dir2)), dir2);
  assert.match(md, /MobileNetV2 \+ GeM: day→night R@1 [+-]\d+\.\d .*: (met|NOT met)/);
  const json = JSON.parse(readFileSync(join(dir, 'runs', 'seed-0', 'results.json'), 'utf8'));
  assert.equal(json.trainOn, 'real');
  assert.equal(json.rows.length, DEMO_TESTS.length);
  assert.equal(json.verdicts.length, 1);
  assert.ok(!existsSync(join(dir, 'runs', 'seed-0', 'final-evaluations.jsonl')), 'the test split is no look at final');

  // The same recipe on the final split over seeds 0 (its run reused: same options) and 1.
  const { rows: final } = await runDemoOverSeeds({ ...common, outputFolder: join(dir, 'runs'), seeds: [0, 1] });
  const gpFinal = GARDENS_POINT_FINAL.max - GARDENS_POINT_FINAL.min + 1;
  const nordlandFinal = (NORDLAND_FINAL.max - NORDLAND_FINAL.min) / 10 + 1;
  assert.deepEqual(final.map((r) => [r.dataset, r.size ?? '', r.queries]), [
    ['gardens_point_day', '', gpFinal], ['gardens_point_night', '', gpFinal], ['nordland', '', nordlandFinal],
    ['gardens_point_day', '240x320', gpFinal], ['gardens_point_night', '240x320', gpFinal]]);
  const perSeed = [0, 1].map((s) => JSON.parse(readFileSync(join(dir, 'runs', `seed-${s}`, 'results.json'), 'utf8')) as { split: string; rows: DemoRow[] });
  assert.deepEqual(perSeed.map((p) => p.split), ['final', 'final']);
  for (const r of final) {
    const mine = perSeed.map((p) => p.rows.find((x) => x.dataset === r.dataset && x.size === r.size)!);
    assert.ok(Math.abs(r.trained[1].mean - (mine[0].trained[1] + mine[1].trained[1]) / 2) < 1e-9);
    assert.ok(Math.abs(r.change.difference - (r.trained[1].mean - r.untrained[1].mean)) < 1e-9, 'the paired change is the change of the means');
  }
  const ledger = readFileSync(join(dir, 'runs', 'final-evaluations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(ledger.map((l) => [l.model, l.seed]), [['MobileNetV2 + GeM', 0], ['MobileNetV2 + GeM', 1]]);
  assert.ok(ledger.every((l) => typeof l.commit === 'string' && l.config.lr === 3e-5));
  assert.match(readFileSync(join(dir, 'runs', 'final.md'), 'utf8'), /\| MobileNetV2 \+ GeM \| Gardens Point day→night \| 30 \|/);
});
