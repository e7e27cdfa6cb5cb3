// Training on a real train split raises recall on the real val split over the ImageNet network it
// starts from (the issue: trained must beat untrained on real photographs, not only on the synthetic
// city). Nordland's route split: summer database, winter queries, 1,991 training places and 291
// validation places 100 m away from them. MobileNetV2 (ImageNet) + GeM (--l2 before_pool) at the
// demo's 120x160, two epochs of 200 queries of triplet training at lr 1e-4 with full mining and no
// augmentation (camera augmentation is for night; on Nordland alone it cost recall: 10.7 → 9.3 after
// one epoch at 64x128). These are the exploration splits; what a recipe does on places no choice has
// seen is measured once on the sealed final split (vgl demo --split final, docs/real-places.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import { loadWeights } from '../../src/torch/checkpoint.ts';
import { ensureRealDatasets } from '../../src/data/real.ts';
import { openDataset, type GeoDataset } from '../../src/data/dataset.ts';
import { train, recallsOn } from '../../src/train/train.ts';
import { buildModel } from '../../src/models/assemble.ts';
import { demoConfig, untrainedNetwork } from '../../src/experiments/demo.ts';
import { withOptions, type TrainConfig } from '../../src/train/config.ts';
import type { Recalls } from '../../src/eval/recall.ts';

/** Recall on `ds` of the untrained network as train() starts it, and of `weights` (in the run folder) after train(config). */
async function recallBeforeAndAfterTraining(config: TrainConfig, ds: GeoDataset, weights: string): Promise<{ before: Recalls; after: Recalls }> {
  const untrained = await untrainedNetwork(config, () => {});
  const before = await recallsOn(untrained, ds, config, false);
  untrained.dispose();

  await train(config, { progress: false, log: () => {}, test: false });
  const trained = buildModel(config.model);
  await loadWeights(trained, join(config.run.outputFolder, weights));
  const after = await recallsOn(trained, ds, config, false);
  trained.dispose();
  return { before, after };
}

test('a short training on the real Nordland train split raises real val recall@5 (what the reference validates on) over ImageNet', { timeout: 600_000 }, async (t) => {
  const dir = tempDir('vgl-real-train-');
  const datasets = join(dir, 'datasets');
  await ensureRealDatasets(datasets);
  const config = withOptions(demoConfig({ datasetsFolder: datasets, outputFolder: join(dir, 'runs'), epochs: 2, queriesPerEpoch: 200, seed: 0 }, 'gem'), {
    datasetName: 'nordland', augment: {},
    // triplet tuples with full mining (the demo itself trains the invariance term: test/experiments)
    criterion: 'triplet', invarianceWeight: 0, averageWeights: false, freezeBackbone: 'reference', lr: 1e-4, mining: 'full', negSamplesNum: 300,
  });
  const val = await openDataset(datasets, 'nordland', 'val');
  const { before, after } = await recallBeforeAndAfterTraining(config, val, 'last.pth');
  t.diagnostic(`Nordland val (${val.queriesPaths.length} winter queries, ${val.databasePaths.length} summer database): ` +
    `R@1 ${before[1].toFixed(1)} → ${after[1].toFixed(1)}, R@5 ${before[5].toFixed(1)} → ${after[5].toFixed(1)}`);
  // One query is 0.34 points. R@5 is what the reference validates and stops early on. Measured (seed 0,
  // 2 threads): on the old split (val 21100-24000) R@1 12.0 → 14.1, R@5 33.0 → 36.4; on this one
  // (26100-29000) R@1 11.3 → 10.7, R@5 27.8 → 30.9. R@1 moved by 6 and by −2 queries: noise either way,
  // so only R@5 is asserted.
  assert.ok(after[5] >= before[5] + 1.5, `val R@5 ImageNet ${before[5].toFixed(1)} → trained ${after[5].toFixed(1)} (5 queries or more)`);
});

test("the demo's recipe (camera-invariance distillation) raises Gardens Point day→night recall@1 over ImageNet", { timeout: 900_000 }, async (t) => {
  const dir = tempDir('vgl-real-invariance-');
  const datasets = join(dir, 'datasets');
  await ensureRealDatasets(datasets);
  const config = demoConfig({ datasetsFolder: datasets, outputFolder: join(dir, 'runs'), epochs: 2, queriesPerEpoch: 200, seed: 0 }, 'gem');
  const night = await openDataset(datasets, 'gardens_point_night', 'test');
  const { before, after } = await recallBeforeAndAfterTraining(config, night, 'average.pth');
  t.diagnostic(`Gardens Point day→night test (${night.queriesPaths.length} night queries): R@1 ${before[1].toFixed(1)} → ${after[1].toFixed(1)}, R@5 ${before[5].toFixed(1)} → ${after[5].toFixed(1)}`);
  // One query is 5.6 points (18 test places): at least two more night queries found. Measured (seed 0):
  // 44.4 → 61.1. On the sealed final split the recipe, 4 epochs over three seeds, loses night recall.
  const query = 100 / night.queriesPaths.length;
  assert.ok(after[1] >= before[1] + 2 * query - 1e-9, `day→night R@1 ImageNet ${before[1].toFixed(1)} → trained ${after[1].toFixed(1)}`);
});
