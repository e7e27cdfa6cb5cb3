// `vgl train` option parsing: config files in the reference's spelling (snake_case, its names for
// batch size, epochs and optimizer, augmentation at the top level), switches with optional values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { readConfigFile, register, configFromFlags } from '../../src/cli/commands/train.ts';
import { TrainConfigSchema } from '../../src/train/config.ts';
import { tempDir } from '../helpers/tmp.ts';

test('a config file written with the reference\'s parser names parses to the same options', () => {
  const dir = tempDir('vgl-train-cli-');
  const yaml = join(dir, 'reference.yaml');
  writeFileSync(yaml, [
    'datasets_folder: /data', 'dataset_name: pitts30k', 'train_batch_size: 8', 'epochs_num: 20', 'optim: sgd',
    'lr_crn_layer: 0.004', 'lr_crn_net: 0.0004', 'queries_per_epoch: 4000', 'cache_refresh_rate: 1000',
    'train_positives_dist_threshold: 50', 'val_positive_dist_threshold: 25', 'l2: after_pool', 'aggregation: gem',
    'horizontal_flip: true', 'brightness: 0.2', 'random_resized_crop: 0.3', 'test_method: five_crops', 'output_folder: runs/x',
  ].join('\n'));
  const c = TrainConfigSchema.parse(readConfigFile(yaml));
  assert.equal(c.optim.batchSize, 8);
  assert.equal(c.optim.epochs, 20);
  assert.equal(c.optim.optimizer, 'sgd');
  assert.equal(c.optim.lrCrnLayer, 0.004);
  assert.equal(c.optim.lrCrnNet, 0.0004);
  assert.equal(c.mining.queriesPerEpoch, 4000);
  assert.equal(c.data.trainPositivesDistThreshold, 50, 'a train threshold above the val radius is accepted (ablation 3)');
  assert.equal(c.model.l2, 'after_pool');
  assert.equal(c.data.horizontalFlip, true);
  assert.deepEqual(c.data.augment, { brightness: 0.2, randomResizedCrop: 0.3 });
  assert.equal(c.eval.testMethod, 'five_crops');

  const twice = join(dir, 'twice.json');
  writeFileSync(twice, JSON.stringify({ batch_size: 4, train_batch_size: 8 }));
  assert.throws(() => readConfigFile(twice), /twice\.json: option batchSize is given twice/);
  const unknown = join(dir, 'unknown.json');
  writeFileSync(unknown, JSON.stringify({ datasets_folder: '/d', dataset_name: 'x', output_folder: 'o', pretrain: 'gldv2' }));
  assert.equal(TrainConfigSchema.safeParse(readConfigFile(unknown)).success, false, 'an option vgl does not have is refused, not ignored');
});

test('vgl train flags come from the schema: help shows its defaults and choices; switches take true/false; augmentations nest', () => {
  const program = new Command().exitOverride();
  register(program);
  const train = program.commands.find((c) => c.name() === 'train')!;
  const help = train.helpInformation();
  assert.match(help, /--lr <value>\s+learning rate \[default: 0\.00001\]/);
  assert.match(help, /--l2 <value>.*\(before_pool \| after_pool \| none\) \[default: before_pool\]/);
  assert.match(help, /--resize <value>.*\[default: 480x640\]/);
  assert.match(help, /--noise <value>\s+augmentation: sensor noise/);
  const c = configFromFlags({ datasetsFolder: '/d', datasetName: 'x', outputFolder: 'o', gemPTrainable: 'false', horizontalFlip: true, resize: '120x160', noise: '0.1', recallValues: '1,5' });
  assert.equal(c.model.gemPTrainable, false);
  assert.equal(c.data.horizontalFlip, true);
  assert.deepEqual(c.data.resize, [120, 160]);
  assert.deepEqual(c.data.augment, { noise: 0.1 });
  assert.deepEqual(c.eval.recallValues, [1, 5]);
  assert.match(help, /--invariance-sizes <value>.*\[default: none\]/);
  assert.deepEqual(configFromFlags({ datasetsFolder: '/d', datasetName: 'x', outputFolder: 'o', invarianceSizes: '120x160,240x320' }).loss.invarianceSizes, [[120, 160], [240, 320]]);
  assert.throws(() => configFromFlags({ datasetsFolder: '/d', datasetName: 'x', outputFolder: 'o', invarianceSizes: '120x160,big' }), /--invariance-sizes "big": expected HxW/);
  assert.throws(() => configFromFlags({ datasetsFolder: '/d', datasetName: 'x', outputFolder: 'o', attention: 'maybe' }), /--attention "maybe"/);
  // --attention names the block; true / false still mean CBAM / none (the switch it was)
  const attention = (v: string) => configFromFlags({ datasetsFolder: '/d', datasetName: 'x', outputFolder: 'o', attention: v }).model.attention;
  assert.deepEqual(['soa', 'nonlocal', 'cbam', 'true', 'false', 'none'].map(attention), ['soa', 'nonlocal', 'cbam', 'cbam', 'none', 'none']);
  assert.throws(() => configFromFlags({ datasetsFolder: '/d', datasetName: 'x', outputFolder: 'o', l2: 'sideways' }), /--l2 "sideways"/);
  // --precision: fp32 by default (what runs before it existed), bf16 or auto on request
  assert.match(help, /--precision <value>.*\(fp32 \| bf16 \| auto\) \[default: fp32\]/);
  assert.equal(configFromFlags({ datasetsFolder: '/d', datasetName: 'x', outputFolder: 'o' }).run.precision, 'fp32');
  assert.equal(configFromFlags({ datasetsFolder: '/d', datasetName: 'x', outputFolder: 'o', precision: 'bf16' }).run.precision, 'bf16');
  assert.throws(() => configFromFlags({ datasetsFolder: '/d', datasetName: 'x', outputFolder: 'o', precision: 'half' }), /--precision "half"/);
});
