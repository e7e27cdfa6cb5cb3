// ResNet trunk against PyTorch: a torchvision-layout state dict written by PyTorch
// (scripts/fixtures/make_resnet_fixture.py) loads by name and gives the same conv4 feature map.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.ts';
import { loadStateDict as readStateDict } from '../../src/torch/serialization/index.ts';
import { ResNetTrunk, loadResNetWeights } from '../../src/models/resnet.ts';

const dir = new URL('../fixtures/resnet/', import.meta.url);
const fixture = JSON.parse(readFileSync(new URL('resnet18_narrow.json', dir), 'utf8')) as {
  widths: number[]; input: { shape: number[]; data: number[] }; conv4: { shape: number[]; data: number[] };
  conv5: { shape: number[]; sum: number; abs_sum: number }; keys: string[];
};
const pth = new URL('resnet18_narrow.pth', dir).pathname;

test('ResNet-18 parameter names equal torchvision\'s (trunk keys are a prefix-filtered subset)', () => {
  const trunk = new ResNetTrunk('resnet18', 'conv5', { widths: fixture.widths });
  const expected = fixture.keys.filter((k) => !k.startsWith('fc.'));
  assert.deepEqual([...trunk.stateDict().keys()], expected);
  trunk.dispose();
});

test('ResNet-18 conv4 with PyTorch weights reproduces PyTorch\'s feature map (1e-4)', async () => {
  const trunk = new ResNetTrunk('resnet18', 'conv4', { widths: fixture.widths }).eval();
  const report = loadResNetWeights(trunk, await readStateDict(pth), pth);
  assert.equal(report.loaded.length, trunk.stateDict().size);
  torch.tidy(() => {
    const x = torch.tensor(Float32Array.from(fixture.input.data), fixture.input.shape);
    const y = torch.inferenceMode(() => trunk.forward(x));
    assert.deepEqual(y.shape, fixture.conv4.shape);
    const got = y.toFloat32Array();
    let worst = 0;
    fixture.conv4.data.forEach((v, i) => { worst = Math.max(worst, Math.abs(got[i] - v)); });
    assert.ok(worst < 1e-4, `max abs difference ${worst}`);
  });
  trunk.dispose();
});

test('ResNet-18 conv5 cut matches PyTorch too', async () => {
  const trunk = new ResNetTrunk('resnet18', 'conv5', { widths: fixture.widths }).eval();
  loadResNetWeights(trunk, await readStateDict(pth), pth);
  torch.tidy(() => {
    const y = torch.noGrad(() => trunk.forward(torch.tensor(Float32Array.from(fixture.input.data), fixture.input.shape)));
    assert.deepEqual(y.shape, fixture.conv5.shape);
    assert.ok(Math.abs(y.sum().item() - fixture.conv5.sum) < 1e-3);
    assert.ok(Math.abs(y.abs().sum().item() - fixture.conv5.abs_sum) < 1e-3);
  });
  trunk.dispose();
});

test('a state dict for another width is refused with the file and the mismatched keys', async () => {
  const trunk = new ResNetTrunk('resnet18', 'conv4', { widths: [8, 16, 32, 64] });
  const weights = await readStateDict(pth);
  assert.throws(() => loadResNetWeights(trunk, weights, pth), (e: Error) => {
    assert.ok(e.message.includes('resnet18_narrow.pth'));
    assert.match(e.message, /layer3\.0\.conv1\.weight: model \[32,16,3,3\] vs file \[24,16,3,3\]/);
    return true;
  });
  trunk.dispose();
});

test('ResNet-50 conv4 has 1024 channels and the bottleneck names', () => {
  const trunk = new ResNetTrunk('resnet50', 'conv4', { widths: [4, 8, 16, 32] });
  assert.equal(trunk.outChannels, 64);
  const keys = [...trunk.stateDict().keys()];
  assert.ok(keys.includes('layer3.5.conv3.weight') && keys.includes('layer1.0.downsample.1.running_var'));
  assert.ok(!keys.some((k) => k.startsWith('layer4')));
  torch.tidy(() => assert.deepEqual(torch.noGrad(() => trunk.eval().forward(torch.rand([1, 3, 64, 64]))).shape, [1, 64, 4, 4]));
  trunk.dispose();
  const full = new ResNetTrunk('resnet50', 'conv4');
  assert.equal(full.outChannels, 1024);
  full.dispose();
});

test('BatchNorm folding + channels-last gives the same conv4 features and is undone cleanly', async () => {
  const trunk = new ResNetTrunk('resnet18', 'conv4', { widths: fixture.widths }).eval();
  loadResNetWeights(trunk, await readStateDict(pth), pth);
  torch.tidy(() => {
    const x = torch.tensor(Float32Array.from(fixture.input.data), fixture.input.shape);
    const plain = torch.inferenceMode(() => trunk.forward(x));
    const unfold = torch.nn.foldForInference(trunk.convBnPairs());
    const folded = torch.inferenceMode(() => trunk.forward(torch.nn.toChannelsLast(x)).contiguous());
    unfold();
    const again = torch.inferenceMode(() => trunk.forward(x));
    const diff = folded.sub(plain).abs().amax().item();
    assert.ok(diff < 1e-4, `folded differs by ${diff}`);
    assert.ok(again.equal(plain), 'unfolding restores the exact original path');
  });
  trunk.dispose();
});

test('gradcheck: BasicBlock and Bottleneck in training mode (in-place ReLU and residual add) against finite differences', async () => {
  const { gradcheck } = await import('../../src/torch/gradcheck.ts');
  const { BasicBlock, Bottleneck } = await import('../../src/models/resnet.ts');
  torch.manualSeed(4);
  for (const block of [new BasicBlock(3, 4, 2), new Bottleneck(4, 2, 1), new BasicBlock(4, 4, 1)]) {
    block.to('float64').train();
    torch.tidy(() => {
      const cin = block instanceof Bottleneck ? 4 : (block.conv1.weight.shape[1]);
      const r = gradcheck(([x]) => block.forward(x), [torch.rand([2, cin, 5, 5], { dtype: 'float64' }).sub(0.5)]);
      assert.ok(r.maxAbsError < 1e-5, `${block.constructor.name}: max error ${r.maxAbsError} at ${JSON.stringify(r.worst)}`);
    });
    block.dispose();
  }
});

test('ResNet-50 (Bottleneck) against PyTorch: torchvision key names, conv4 map (1e-4) and conv5 sums', async () => {
  const f50 = JSON.parse(readFileSync(new URL('resnet50_narrow.json', dir), 'utf8')) as typeof fixture;
  const pth50 = new URL('resnet50_narrow.pth', dir).pathname;
  const weights = await readStateDict(pth50);
  const full = new ResNetTrunk('resnet50', 'conv5', { widths: f50.widths }).eval();
  assert.deepEqual([...full.stateDict().keys()], f50.keys.filter((k) => !k.startsWith('fc.')));
  loadResNetWeights(full, weights, pth50);
  const conv4 = new ResNetTrunk('resnet50', 'conv4', { widths: f50.widths }).eval();
  loadResNetWeights(conv4, weights, pth50);
  torch.tidy(() => {
    const x = torch.tensor(Float32Array.from(f50.input.data), f50.input.shape);
    const y4 = torch.inferenceMode(() => conv4.forward(x));
    assert.deepEqual(y4.shape, f50.conv4.shape);
    const got = y4.toFloat32Array();
    let worst = 0;
    f50.conv4.data.forEach((v, i) => { worst = Math.max(worst, Math.abs(got[i] - v)); });
    assert.ok(worst < 1e-4, `conv4 max abs difference ${worst}`);
    const y5 = torch.inferenceMode(() => full.forward(x));
    assert.deepEqual(y5.shape, f50.conv5.shape);
    assert.ok(Math.abs(y5.sum().item() - f50.conv5.sum) < 1e-3 * (1 + Math.abs(f50.conv5.sum)), `conv5 sum ${y5.sum().item()} vs ${f50.conv5.sum}`);
    assert.ok(Math.abs(y5.abs().sum().item() - f50.conv5.abs_sum) < 1e-3 * f50.conv5.abs_sum);
  });
  full.dispose();
  conv4.dispose();
});
