// Training on a real train split raises recall@1 on the real val split over the ImageNet network it
// starts from (the issue: trained must beat untrained on real photographs, not only on the synthetic
// city). Nordland's route split: summer database, winter queries, 2,100 training places and 291
// validation places 100 m away from them. MobileNetV2 (ImageNet) + GeM at the demo's 120x160, two
// epochs of 200 queries at lr 1e-4 with full mining and no augmentation (the demo's camera
// augmentation is for night; on Nordland alone it cost recall: 10.7 → 9.3 after one epoch at 64x128).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import * as torch from '../../src/torch/index.ts';
import { loadWeights } from '../../src/torch/checkpoint.ts';
import { ensureRealDatasets } from '../../src/data/real.ts';
import { openDataset } from '../../src/data/dataset.ts';
import { train, recallsOn, initOptions } from '../../src/train/train.ts';
import { buildModel, initialiseHeadFromData } from '../../src/models/assemble.ts';
import { demoConfig } from '../../src/experiments/demo.ts';
import { TrainConfigSchema } from '../../src/train/config.ts';

test('a short training on the real Nordland train split raises real val recall@1 over ImageNet', { timeout: 600_000 }, async (t) => {
  const dir = tempDir('vgl-real-train-');
  const datasets = join(dir, 'datasets');
  await ensureRealDatasets(datasets);
  const config = TrainConfigSchema.parse({
    ...demoConfig({ datasetsFolder: datasets, outputFolder: join(dir, 'runs'), epochs: 2, queriesPerEpoch: 200, seed: 0 }, 'gem'),
    datasetName: 'nordland', augment: {},
  });
  const val = await openDataset(datasets, 'nordland', 'val');
  torch.manualSeed(config.seed);
  const untrained = buildModel(config);
  await untrained.loadPretrained(config.weights!);
  await initialiseHeadFromData(untrained, await openDataset(datasets, 'nordland', 'train'), initOptions(config));
  const before = await recallsOn(untrained, val, config, false);
  untrained.dispose();

  await train(config, { progress: false, log: () => {}, test: false });
  const trained = buildModel(config);
  await loadWeights(trained, join(config.outputFolder, 'last.pth'));
  const after = await recallsOn(trained, val, config, false);
  trained.dispose();
  t.diagnostic(`Nordland val (${val.queriesPaths.length} winter queries, ${val.databasePaths.length} summer database): ` +
    `R@1 ${before[1].toFixed(1)} → ${after[1].toFixed(1)}, R@5 ${before[5].toFixed(1)} → ${after[5].toFixed(1)}`);
  // One query is 0.34 points. Measured here (seed 0, 2 threads): R@1 12.7 → 13.4, R@5 33.3 → 36.1 —
  // a small gain at rank 1 after two short epochs (more in docs/real-places.md), a clear one at rank 5.
  assert.ok(after[1] > before[1], `val R@1 ImageNet ${before[1].toFixed(1)} → trained ${after[1].toFixed(1)}`);
  assert.ok(after[5] >= before[5] + 1.5, `val R@5 ImageNet ${before[5].toFixed(1)} → trained ${after[5].toFixed(1)} (5 queries or more)`);
});
