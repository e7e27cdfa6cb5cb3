// Experiment plans: validation with errors that name the plan, the variant and the option; expansion
// of lists, grids and seeds into validated run configs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import { UsageError } from '../../src/errors.ts';
import { parsePlan, expandPlan, readPlan, comparisonsOf, planRunFolders } from '../../src/experiments/plan.ts';
import YAML from 'yaml';

const defaults = { datasets_folder: '/data', dataset_name: 'synth-city', backbone: 'mobilenetv2', resize: '120x160', epochs_num: 2 };

test('a list crossed with a grid, times the seeds: ids, folders, options over defaults', () => {
  const plan = parsePlan({
    name: 'ablation-1', defaults,
    variants: [{ name: 'gem', aggregation: 'gem' }, { name: 'netvlad', aggregation: 'netvlad', netvlad_clusters: 16 }],
    grid: { lr: [1e-5, 1e-4], optim: ['adam', 'sgd'] },
    seeds: [0, 1, 2],
    tests: [{ dataset: 'synth-city' }, { dataset: 'gardens_point_night', size: '240x320' }],
  }, 'plan.yaml');
  const runs = expandPlan(plan, '/exp');
  assert.equal(runs.length, 2 * 2 * 2 * 3);
  assert.equal(runs[0].id, 'gem,lr=0.00001,optim=adam/seed-0');
  assert.equal(runs[0].config.run.outputFolder, '/exp/gem,lr=0.00001,optim=adam/seed-0');
  assert.deepEqual([runs[0].config.optim.lr, runs[0].config.optim.optimizer, runs[0].config.model.aggregation, runs[0].config.run.seed], [1e-5, 'adam', 'gem', 0]);
  const last = runs.at(-1)!;
  assert.equal(last.id, 'netvlad,lr=0.0001,optim=sgd/seed-2');
  assert.deepEqual([last.config.model.netvladClusters, last.config.optim.epochs, last.config.data.resize, last.config.optim.optimizer], [16, 2, [120, 160], 'sgd']);
  assert.deepEqual(plan.tests[1], { dataset: 'gardens_point_night', split: 'test', size: [240, 320] });
  // The parsed plan (what plan.json holds) parses again to itself: tables read it back.
  assert.deepEqual(parsePlan(JSON.parse(JSON.stringify(plan)), 'plan.json'), plan);
  // Every id is distinct (one folder per run).
  assert.equal(new Set(runs.map((r) => r.id)).size, runs.length);
});

test('"{seed}" in an option string becomes each run\'s seed (CRN resumes the NetVLAD of its own seed); null unsets a default', () => {
  const plan = parsePlan({ name: 'crn', defaults, variants: [{ name: 'crn', aggregation: 'crn', resume: 'runs/netvlad/seed-{seed}/best.pth' }], seeds: [0, 2] }, 'p');
  assert.deepEqual(expandPlan(plan, '/e').map((r) => r.config.run.resume), ['runs/netvlad/seed-0/best.pth', 'runs/netvlad/seed-2/best.pth']);
  // and null unsets a default
  const scratch = parsePlan({ name: 's', defaults: { ...defaults, weights: 'w/imagenet.pth' }, variants: [{ name: 'a' }, { name: 'b', weights: null }] }, 'p');
  assert.deepEqual(expandPlan(scratch, '/e').map((r) => r.config.model.weights), ['w/imagenet.pth', undefined]);
});

test('augmentations at the top level of a variant merge with those of the defaults', () => {
  const plan = parsePlan({ name: 'aug', defaults: { ...defaults, noise: 0.1 }, variants: [{ name: 'blur', blur: 1 }, { name: 'none' }] }, 'p');
  const [blur, none] = expandPlan(plan, '/e');
  assert.deepEqual(blur.config.data.augment, { noise: 0.1, blur: 1 });
  assert.deepEqual(none.config.data.augment, { noise: 0.1 });
});

test('bad plans: unknown option, bad grid, bad test size, duplicate names, each named', async () => {
  const bad = (data: unknown, re: RegExp) => assert.throws(() => expandPlan(parsePlan(data, 'p.yaml'), '/e'), (e) => e instanceof UsageError && re.test(e.message), String(re));
  bad({ name: 'x', defaults, variants: [{ name: 'v', learning_rate: 0.1 }] }, /plan x, variant v:\n  options: unknown option learningRate/);
  bad({ name: 'x', defaults, grid: { lr: [] } }, /p\.yaml: invalid plan:\n  grid\.lr: a grid option needs at least one value/);
  bad({ name: 'x', defaults, grid: { lr: ['fast'] } }, /variant lr=fast:\n  lr: /);
  bad({ name: 'x', defaults, tests: [{ dataset: 'a', size: 'big' }] }, /tests\.0\.size: HxW/);
  bad({ name: 'x', defaults, variants: [{ name: 'a' }, { name: 'a' }] }, /two variants are named "a"/);
  bad({ name: 'x y', defaults }, /name: letters, digits/);
  bad({ name: 'x', defaults, sedes: [1] }, /Unrecognized key.*sedes/);
  const dir = tempDir('vgl-plan-');
  const file = join(dir, 'p.yaml');
  writeFileSync(file, 'name: [unclosed');
  assert.throws(() => readPlan(file), (e) => e instanceof UsageError && e.message.startsWith(`${file}: not valid YAML`));
  assert.throws(() => readPlan(join(dir, 'none.yaml')), (e) => e instanceof UsageError && /none\.yaml: ENOENT/.test(e.message));
});

test('a reused variant: the source plan\'s run config and folder (the sibling experiment), this plan\'s record folder; bad references named', () => {
  const dir = tempDir('vgl-plan-from-');
  writeFileSync(join(dir, 'base.yaml'), YAML.stringify({ name: 'base', defaults, variants: [{ name: 'gem', aggregation: 'gem' }, { name: 'netvlad', aggregation: 'netvlad' }], seeds: [0, 1] }));
  const file = join(dir, 'study.yaml');
  const write = (data: object) => writeFileSync(file, YAML.stringify({ name: 'study', defaults, seeds: [1], ...data }));
  write({ variants: [{ name: 'base-netvlad', from: 'base.yaml#netvlad' }, { name: 'small', aggregation: 'gem', resize: '60x80', against: 'base-netvlad' }], grid: { lr: [1e-4] } });
  const plan = readPlan(file);
  const runs = expandPlan(plan, '/runs/experiments/study', { planFile: file });
  assert.deepEqual(runs.map((r) => r.id), ['base-netvlad/seed-1', 'small,lr=0.0001/seed-1'], 'a reused variant is not crossed with the grid');
  const [reused, own] = runs;
  assert.equal(reused!.folder, '/runs/experiments/study/base-netvlad/seed-1');
  assert.equal(reused!.config.run.outputFolder, '/runs/experiments/base/netvlad/seed-1');
  assert.equal(reused!.config.model.aggregation, 'netvlad');
  assert.equal(reused!.source!.experimentDir, '/runs/experiments/base');
  assert.equal(reused!.source!.run.id, 'netvlad/seed-1');
  assert.equal(own!.folder, own!.config.run.outputFolder);
  assert.deepEqual(comparisonsOf(plan), { 'base-netvlad': [], 'small,lr=0.0001': ['base-netvlad'] });
  assert.deepEqual(planRunFolders(plan, '/x').map((r) => r.folder), ['/x/base-netvlad/seed-1', '/x/small,lr=0.0001/seed-1']);

  const bad = (data: object, re: RegExp) => {
    write(data);
    assert.throws(() => expandPlan(readPlan(file), '/e/study', { planFile: file }), (e) => e instanceof UsageError && re.test(e.message), String(re));
  };
  bad({ variants: [{ name: 'v', from: 'base.yaml#vlad' }] }, /variant v: .*base\.yaml has no variant vlad/);
  bad({ variants: [{ name: 'v', from: 'base.yaml#gem', lr: 1 }] }, /a reused variant \(from base\.yaml#gem\) takes its options from there, not lr/);
  bad({ variants: [{ name: 'v', from: 'base.yaml#gem' }], seeds: [7] }, /base has no seed 7 of gem \(its seeds: 0, 1\)/);
  bad({ variants: [{ name: 'v', from: 'none.yaml#gem' }] }, /none\.yaml: ENOENT/);
  bad({ variants: [{ name: 'v', from: 'study.yaml#v' }] }, /leads back to .*study\.yaml \(a cycle\)/);
  bad({ variants: [{ name: 'v', from: 'base.yaml' }] }, /variants\.0\.from: "<plan file>#<variant>"/);
  bad({ variants: [{ name: 'v', against: 'w' }] }, /variant v: against w: no such variant \(v\)/);
  bad({ variants: [{ name: 'v', from: 'base.yaml#gem', untrained: true }] }, /variant v: a reused variant \(from base\.yaml#gem\) is trained there; untrained does not apply/);
  bad({ evaluations: [{ name: 'e', pcaWhiten: true }] }, /evaluations\.0\.pcaWhiten: pcaWhiten needs pcaDim/);
});

test('the committed plans (experiments/*.yaml) are valid and expand to distinct runs', () => {
  const dir = fileURLToPath(new URL('../../experiments/', import.meta.url));
  const files = readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.includes('baselines.yaml'), files.join(' '));
  for (const f of files) {
    const plan = readPlan(join(dir, f));
    assert.equal(`${plan.name}.yaml`, f.split('/').at(-1), 'a plan is named after its file');
    assert.equal(plan.scale, f.startsWith('full/') ? 'full' : 'demo', `${f}: full-scale plans live in experiments/full/`);
    const runs = expandPlan(plan, '/e/x', { planFile: join(dir, f) });
    assert.ok(runs.length >= plan.seeds.length && new Set(runs.map((r) => r.id)).size === runs.length, f);
    // The quick study (make report QUICK=1, experiments/quick/) and the screens that choose a recipe
    // on val (experiments/screens/) are first looks on one seed; the study proper has three.
    if (!f.startsWith('quick/') && !f.startsWith('screens/')) assert.ok(plan.seeds.length >= 3, `${f}: every trained variant over at least 3 seeds`);
  }
});
