// Each head's options are declared once, beside the head (src/models/aggregation/): the model spec and
// the training config spread them, and vgl train, vgl eval and vgl index build make their flags of
// them — the same flag, help and default everywhere; a value given to vgl eval reaches the head.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { HEAD_OPTIONS, HEAD_OPTION_KEYS, HEAD_TRAINING, BASE_HEADS } from '../../src/models/aggregation/index.ts';
import type { GeM } from '../../src/models/aggregation/gem.ts';
import { ModelSpecShape } from '../../src/models/assemble.ts';
import { TrainConfigSchema, TRAIN_SLICES } from '../../src/train/config.ts';
import { register as registerTrain } from '../../src/cli/commands/train.ts';
import { register as registerEval, EvalFlags } from '../../src/cli/commands/eval.ts';
import { register as registerIndex, IndexBuildFlags } from '../../src/cli/commands/index.ts';
import { requestedModel } from '../../src/eval/run.ts';
import { flagName, parseFlags } from '../../src/cli/flags.ts';

/** A command's options by long flag: their help texts. */
function helpOf(cmd: Command): Map<string, string> {
  return new Map(cmd.options.map((o) => [o.long!, o.description]));
}

test('head options: one declaration each, spread into the spec and the config, a flag with the same help in train, eval and index build', () => {
  assert.deepEqual(HEAD_OPTION_KEYS, ['gemP', 'gemPTrainable', 'l2', 'netvladClusters', 'cbamReduction', 'cbamKernel', 'soaReduction', 'fcOutputDim']);
  for (const key of HEAD_OPTION_KEYS) {
    assert.equal((ModelSpecShape as Record<string, unknown>)[key], HEAD_OPTIONS[key], `${key}: the spec's field is the head's declaration`);
    assert.equal((TRAIN_SLICES.model as Record<string, unknown>)[key], HEAD_OPTIONS[key], `${key}: the config's model slice too`);
  }
  const program = new Command('vgl');
  registerTrain(program);
  registerEval(program);
  registerIndex(program);
  const sub = (name: string) => program.commands.find((c) => c.name() === name)!;
  const train = helpOf(sub('train'));
  const evaluate = helpOf(sub('eval'));
  const build = helpOf(sub('index').commands.find((c) => c.name() === 'build')!);
  for (const key of HEAD_OPTION_KEYS) {
    const flag = flagName(key);
    const help = train.get(flag);
    assert.ok(help?.startsWith(HEAD_OPTIONS[key].description!), `vgl train ${flag}: ${help}`);
    assert.equal(evaluate.get(flag), `with --backbone: ${help}`, `vgl eval ${flag}`);
    assert.equal(build.get(flag), `with --backbone: ${help}`, `vgl index build ${flag}`);
  }
  assert.match(train.get('--gem-p')!, /\[default: 3\]$/);
});

test('head options given to vgl eval are parsed by their declaration and reach the head; a bad value names its flag', async () => {
  const flags = EvalFlags.parse({ backbone: 'resnet18conv4', aggregation: 'gem', gemP: '4.5', gemPTrainable: 'false', resnetWidths: [8, 8, 16, 16] });
  assert.equal(flags.gemP, 4.5);
  assert.equal(flags.gemPTrainable, false);
  assert.equal(EvalFlags.parse({}).gemP, undefined, 'absent stays absent: the run\'s config or the default applies');
  assert.equal(IndexBuildFlags.parse({ out: 'x', netvladClusters: '8' }).netvladClusters, 8);
  assert.throws(() => parseFlags(EvalFlags, { gemP: '-1' }), /--gem-p "-1": .*0/);
  assert.throws(() => parseFlags(EvalFlags, { l2: 'both' }), /--l2 "both": .*before_pool/);
  const { net } = await requestedModel(flags, 'cpu', () => undefined);
  try {
    const gem = net.aggregation as GeM;
    assert.equal(gem.p.item(), 4.5);
    assert.equal(gem.p.requiresGrad, false);
  } finally {
    net.dispose();
  }
});

test("heads' training hooks name what exists: the head a run starts from, training options for their learning rates", () => {
  const hooked = Object.entries(HEAD_TRAINING);
  assert.deepEqual(hooked.map(([name]) => name), ['crn']);
  for (const [name, h] of hooked) {
    if (h!.startsFrom) assert.ok((BASE_HEADS as readonly string[]).includes(h!.startsFrom.head), `${name} starts from ${h!.startsFrom.head}`);
    for (const key of Object.values(h!.learningRates ?? {})) assert.ok(key in TRAIN_SLICES.optim, `${name}: ${key} is an optimizer option`);
  }
  // The rule the hook states: a CRN run without --resume is refused, naming the flag and the head it needs.
  assert.throws(() => TrainConfigSchema.parse({ datasetsFolder: 'd', datasetName: 'n', outputFolder: 'o', aggregation: 'crn' }), /resume[\s\S]*CRN starts from a trained NetVLAD checkpoint/);
});
