// ResNet trunk against PyTorch: a torchvision-layout state dict written by PyTorch
// (scripts/fixtures/make_resnet_fixture.py, make_resnet50_fixture.py) loads by name and gives the same
// conv4 feature map and conv5 sums.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.ts';
import { readStateDict } from '../../src/torch/serialization/index.ts';
import { ResNetTrunk, loadResNetWeights } from '../../src/models/resnet.ts';
import {
  roundingBound, maxAbsDiff, maxAbsDiffBetween, largestMagnitude, checkParity, float64Host, sumBound, injectEps, type Computation, type ParityDtype,
} from '../helpers/parity.ts';

const dir = new URL('../fixtures/resnet/', import.meta.url);
const fixture = JSON.parse(readFileSync(new URL('resnet18_narrow.json', dir), 'utf8')) as {
  widths: number[]; input: { shape: number[]; data: number[] }; conv4: { shape: number[]; data: number[] };
  conv5: { shape: number[]; sum: number; abs_sum: number }; keys: string[];
};
const pth = new URL('resnet18_narrow.pth', dir).pathname;

// The fixtures' expected outputs are float64 (PyTorch in float64 from the float32 weights and input).
// Each parity check runs vgl in float64, against the float64 rounding bound (~1e-13: any CPU's kernels
// agree far within it, and a BatchNorm eps of 1e-3 instead of torchvision's 1e-5 is far outside: the
// injected-bug test below), and in float32, the path users run, against the float32 bound.
/** BatchNorm in eval mode ((x − mean)·rsqrt(var + eps)·weight + bias), the residual add and ReLU: a few roundings per convolution, counted as terms. */
const BN_ROUNDINGS = 5;
/** Folding BatchNorm into the convolution rounds each folded weight and bias a few times more (rsqrt, two products). */
const FOLD_ROUNDINGS = 4;
type Cut = 'conv4' | 'conv5';
/**
 * ResNet-18 (BasicBlock): the 7x7 stem (3·49 = 147 terms), then two 3x3 convolutions per block, two
 * blocks per stage (3 stages to conv4, 4 to conv5); the longest reduction is the last stage's 3x3 over
 * its width (conv4: 24·9 = 216 terms).
 */
const resnet18Computation = (widths: number[], cut: Cut, magnitude: number): Computation => {
  const stages = cut === 'conv4' ? 3 : 4;
  return { depth: 1 + 2 * 2 * stages, terms: Math.max(3 * 49, 9 * widths[stages - 1]!) + BN_ROUNDINGS, magnitude };
};
/** ResNet-50 (Bottleneck: 1x1, 3x3, 1x1), blocks [3, 4, 6, 3]; the longest reduction is the stem's 147 terms at these widths. */
const resnet50Computation = (widths: number[], cut: Cut, magnitude: number): Computation => {
  const stages = cut === 'conv4' ? 3 : 4;
  const blocks = [3, 4, 6, 3].slice(0, stages).reduce((a, b) => a + b, 0);
  // Per stage of planes w: the 1x1s over 4·w (4·w_prev, or the stem's w, entering), the 3x3 over 9·w.
  const terms = Math.max(3 * 49, ...widths.slice(0, stages).map((w, i) => Math.max(9 * w, 4 * w, 4 * (i === 0 ? w : widths[i - 1]!))));
  return { depth: 1 + 3 * blocks, terms: terms + BN_ROUNDINGS, magnitude };
};

async function trunkOf(arch: 'resnet18' | 'resnet50', cut: Cut, widths: number[], file: string, dtype: ParityDtype = 'float32'): Promise<ResNetTrunk> {
  const trunk = new ResNetTrunk(arch, cut, { widths }).eval();
  loadResNetWeights(trunk, await readStateDict(file), file);
  return dtype === 'float64' ? trunk.to('float64') : trunk;
}
const inputOf = (f: typeof fixture, dtype: ParityDtype) => torch.tensor(Float64Array.from(f.input.data), f.input.shape, { dtype: 'float64' }).to(dtype);

/**
 * The conv5 map's sum and |sum| in both precisions: each of its N values is within the map's rounding
 * bound of exact, and the N-term sum rounds by γ_N·Σ|v| more.
 */
function checkConv5Sums(what: string, run: (dtype: ParityDtype) => torch.Tensor, want: typeof fixture.conv5,
  computation: (magnitude: number) => Computation): string {
  const report: string[] = [];
  let magnitude = 1;
  for (const dtype of ['float64', 'float32'] as const) {
    torch.tidy(() => {
      const y = torch.inferenceMode(() => run(dtype));
      assert.deepEqual(y.shape, want.shape);
      // The map's largest |value|, from the float64 run (within ~1e-13 of PyTorch's).
      if (dtype === 'float64') magnitude = largestMagnitude(y.toHost());
      const each = roundingBound(dtype, computation(magnitude));
      const n = y.numel;
      const dSum = Math.abs(y.sum().item() - want.sum);
      const dAbs = Math.abs(y.abs().sum().item() - want.abs_sum);
      const bound = sumBound(dtype, n, each, want.abs_sum);
      assert.ok(dSum <= bound, `${what} in ${dtype}: sum ${y.sum().item()} vs ${want.sum}, difference ${dSum} > bound ${bound}`);
      assert.ok(dAbs <= bound, `${what} in ${dtype}: |sum| ${y.abs().sum().item()} vs ${want.abs_sum}, difference ${dAbs} > bound ${bound}`);
      report.push(`${dtype} ${Math.max(dSum, dAbs).toExponential(1)} (bound ${bound.toExponential(1)})`);
    });
  }
  return `${what} ${report.join(', ')}`;
}

test('ResNet-18 parameter names equal torchvision\'s (trunk keys are a prefix-filtered subset)', () => {
  const trunk = new ResNetTrunk('resnet18', 'conv5', { widths: fixture.widths });
  const expected = fixture.keys.filter((k) => !k.startsWith('fc.'));
  assert.deepEqual([...trunk.stateDict().keys()], expected);
  trunk.dispose();
});

test('ResNet-18 conv4 with PyTorch weights reproduces PyTorch\'s feature map (float64 and float32 rounding bounds)', async () => {
  const trunk = new ResNetTrunk('resnet18', 'conv4', { widths: fixture.widths }).eval();
  const report = loadResNetWeights(trunk, await readStateDict(pth), pth);
  assert.equal(report.loaded.length, trunk.stateDict().size);
  const trunks = { float32: trunk, float64: await trunkOf('resnet18', 'conv4', fixture.widths, pth, 'float64') };
  const want = float64Host(fixture.conv4.shape, fixture.conv4.data);
  const line = torch.inferenceMode(() => checkParity('conv4', (dt) => trunks[dt].forward(inputOf(fixture, dt)), want,
    (m) => resnet18Computation(fixture.widths, 'conv4', m)));
  console.log(`# ResNet-18 parity: ${line}`);
  trunks.float32.dispose();
  trunks.float64.dispose();
});

test('a parity check in float64 rejects BatchNorm eps 1e-3 instead of torchvision\'s 1e-5', async () => {
  // The bug the parity test exists for (Keras' eps in a torchvision network), injected in every BatchNorm.
  const trunk = await trunkOf('resnet18', 'conv4', fixture.widths, pth, 'float64');
  const patched = injectEps(trunk, torch.nn.BatchNorm2d, 1e-5, 1e-3, 'torchvision\'s BatchNorm eps');
  assert.ok(patched > 10, `${patched} BatchNorms`);
  const want = float64Host(fixture.conv4.shape, fixture.conv4.data);
  const d = torch.tidy(() => torch.inferenceMode(() => maxAbsDiff(trunk.forward(inputOf(fixture, 'float64')), want)));
  const computation = resnet18Computation(fixture.widths, 'conv4', largestMagnitude(want));
  assert.ok(d > roundingBound('float64', computation), `eps 1e-3 gave ${d}, within the float64 bound ${roundingBound('float64', computation)}: the check cannot see the bug`);
  console.log(`# injected BatchNorm eps 1e-3: ${d.toExponential(2)} (float64 bound ${roundingBound('float64', computation).toExponential(1)}, float32 ${roundingBound('float32', computation).toExponential(1)})`);
  trunk.dispose();
});

test('ResNet-18 conv5 cut matches PyTorch too (sums of the map)', async () => {
  const trunks = {
    float32: await trunkOf('resnet18', 'conv5', fixture.widths, pth), float64: await trunkOf('resnet18', 'conv5', fixture.widths, pth, 'float64'),
  };
  const line = checkConv5Sums('conv5 sums', (dt) => trunks[dt].forward(inputOf(fixture, dt)), fixture.conv5,
    (m) => resnet18Computation(fixture.widths, 'conv5', m));
  console.log(`# ResNet-18 parity: ${line}`);
  trunks.float32.dispose();
  trunks.float64.dispose();
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
  // Folded and plain are two computations of the same map, each within its rounding bound of exact
  // (the folded one with the folding's roundings more per term): they agree within the sum of both.
  const report: string[] = [];
  for (const dtype of ['float32', 'float64'] as const) {
    const trunk = await trunkOf('resnet18', 'conv4', fixture.widths, pth, dtype);
    torch.tidy(() => {
      const x = inputOf(fixture, dtype);
      const plain = torch.inferenceMode(() => trunk.forward(x));
      const unfold = torch.nn.foldForInference(trunk.convBnPairs(), true, dtype);
      const folded = torch.inferenceMode(() => trunk.forward(torch.nn.toChannelsLast(x)).contiguous());
      unfold();
      const again = torch.inferenceMode(() => trunk.forward(x));
      const diff = maxAbsDiffBetween(folded, plain);
      const computation = resnet18Computation(fixture.widths, 'conv4', largestMagnitude(plain.toHost()));
      const bound = roundingBound(dtype, computation) + roundingBound(dtype, { ...computation, terms: computation.terms + FOLD_ROUNDINGS });
      assert.ok(diff <= bound, `${dtype}: folded differs by ${diff} > ${bound}`);
      assert.ok(again.equal(plain), 'unfolding restores the exact original path');
      report.push(`${dtype} ${diff.toExponential(1)} (bound ${bound.toExponential(1)})`);
    });
    trunk.dispose();
  }
  console.log(`# ResNet-18 folded vs plain: ${report.join(', ')}`);
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

test('ResNet-50 (Bottleneck) against PyTorch: torchvision key names, conv4 map and conv5 sums (float64 and float32 rounding bounds)', async () => {
  const f50 = JSON.parse(readFileSync(new URL('resnet50_narrow.json', dir), 'utf8')) as typeof fixture;
  const pth50 = new URL('resnet50_narrow.pth', dir).pathname;
  const full = await trunkOf('resnet50', 'conv5', f50.widths, pth50);
  assert.deepEqual([...full.stateDict().keys()], f50.keys.filter((k) => !k.startsWith('fc.')));
  const conv4 = { float32: await trunkOf('resnet50', 'conv4', f50.widths, pth50), float64: await trunkOf('resnet50', 'conv4', f50.widths, pth50, 'float64') };
  const conv5 = { float32: full, float64: await trunkOf('resnet50', 'conv5', f50.widths, pth50, 'float64') };
  const lines = [
    torch.inferenceMode(() => checkParity('conv4', (dt) => conv4[dt].forward(inputOf(f50, dt)), float64Host(f50.conv4.shape, f50.conv4.data),
      (m) => resnet50Computation(f50.widths, 'conv4', m))),
    checkConv5Sums('conv5 sums', (dt) => conv5[dt].forward(inputOf(f50, dt)), f50.conv5, (m) => resnet50Computation(f50.widths, 'conv5', m)),
  ];
  console.log(`# ResNet-50 parity: ${lines.join('; ')}`);
  for (const m of [conv4.float32, conv4.float64, conv5.float32, conv5.float64]) m.dispose();
});
