// PCA at evaluation: fitted on database descriptors, applied to every descriptor before search.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import * as torch from '../../src/torch/index.ts';
import { fitPca, withPca } from '../../src/eval/pca.ts';
import { loadImage } from '../../src/data/image.ts';
import { MeanColourModel, tinyDataset } from './helpers.ts';
import { commandLineMessage } from '../../src/errors.ts';

const size = { height: 12, width: 16 };

test('fitPca on database descriptors; withPca projects every descriptor and keeps it unit length', async () => {
  // colours spread mostly along red-green: the first principal direction separates them
  const colours: [number, number, number][] = [[250, 10, 40], [200, 60, 40], [150, 110, 40], [100, 160, 40], [50, 210, 40], [10, 250, 60]];
  const root = await tinyDataset(colours.map((rgb, i) => ({ east: 500000 + 100 * i, north: 4000000, rgb })), [{ east: 500000, north: 4000000, rgb: [240, 20, 40] }]);
  const dir = join(root, 'tiny', 'images', 'test', 'database');
  const paths = readdirSync(dir).sort().map((f) => join(dir, f));
  const model = new MeanColourModel();
  const pca = await fitPca(model, paths, { dim: 2, size, batchSize: 4, progress: false });
  assert.equal(pca.inputDim, 3);
  assert.equal(pca.outputDim, 2);
  const ratios = pca.explainedVarianceRatio();
  assert.ok(ratios[0] > 0.9, `the first component carries most of the variance (${ratios})`);
  const projected = withPca(model, pca);
  assert.equal(projected.dim, 2);
  const images = await Promise.all(paths.slice(0, 3).map((p) => loadImage(p, { size })));
  torch.tidy(() => {
    const batch = torch.cat(images.map((h) => torch.fromHost(h)), 0);
    const got = projected.forward(batch);
    assert.deepEqual(got.shape, [3, 2]);
    for (const n of got.norm(2, 1).toNumbers()) assert.ok(Math.abs(n - 1) < 1e-5);
    // by hand: (descriptor − mean) · components, then L2
    const d = model.forward(batch);
    const y = d.sub(pca.mean).mm(pca.components);
    const want = y.div(y.norm(2, 1, true));
    assert.ok(got.sub(want).abs().amax().item() < 1e-5);
  });
  await assert.rejects(fitPca(model, paths, { dim: 3, size }), (e: unknown) => /--pca-dim 3: must be below the descriptor dimension 3/.test(commandLineMessage(e)));
});
