// VGG-16 trunk: torchvision names, the features[:-2] cut, torchvision's init, .pth loading (with
// classifier keys ignored) and parity with PyTorch (scripts/fixtures/make_mobilenet_fixture.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.ts';
import { stateDictToHost, type HostTensor } from '../../src/torch/index.ts';
import { savePth } from '../../src/torch/serialization/index.ts';
import { Vgg16, loadVggStateDict, loadVggWeights } from '../../src/models/vgg.ts';
import { tempDir } from '../helpers/tmp.ts';
import { checkParity, type Computation, type ParityDtype } from '../helpers/parity.ts';

const FIXTURE = JSON.parse(readFileSync('test/fixtures/vgg/vgg16_tiny.json', 'utf8'));
const TINY_PTH = 'test/fixtures/vgg/vgg16_tiny.pth';
const floats = (s: string): Float32Array => {
  const b = Buffer.from(s, 'base64');
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const doubles = (s: string): Float64Array => {
  const b = Buffer.from(s, 'base64');
  return Float64Array.from(new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
};

// The fixture's output is float64 (PyTorch in float64 from the float32 weights and input): vgl in float64
// against the float64 rounding bound, in float32 against the float32 one. features[:-2]: 13 3x3
// convolutions (each with its bias and ReLU: 2 roundings more), the longest over the widest stage's
// 9·10 = 90 terms; max pools are exact.
const vggComputation = (widths: number[], magnitude: number): Computation =>
  ({ depth: 13, terms: 9 * Math.max(3, ...widths) + 2, magnitude });

// torchvision vgg16().features: conv at 0, 2 | pool 4 | 5, 7 | pool 9 | 10, 12, 14 | pool 16 |
// 17, 19, 21 | pool 23 | 24, 26, 28 | ReLU 29, pool 30 (the last two are cut).
const TORCHVISION_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
const TORCHVISION_KEYS = TORCHVISION_CONVS.flatMap((i) => [`features.${i}.weight`, `features.${i}.bias`]);

test('parameter names are torchvision\'s VGG-16 features.* list; shapes at full width', () => {
  const m = new Vgg16();
  const sd = m.stateDict();
  assert.deepEqual([...sd.keys()], TORCHVISION_KEYS);
  assert.deepEqual(sd.get('features.0.weight')!.shape, [64, 3, 3, 3]);
  assert.deepEqual(sd.get('features.10.weight')!.shape, [256, 128, 3, 3]);
  assert.deepEqual(sd.get('features.28.weight')!.shape, [512, 512, 3, 3]);
  assert.equal(m.features.length, 29, 'features[:-2] of 31 layers');
  assert.equal(m.parameterCount(), 14_714_688, 'torchvision vgg16 features parameter count');
  assert.equal(m.outChannels, 512);
  assert.equal(m.inputNormalization, 'imagenet');
  // PyTorch's own state dict of the same layout (fixture) has the same features keys
  assert.deepEqual(FIXTURE.keys.filter((k: string) => !k.startsWith('classifier.')), TORCHVISION_KEYS);

  // 1x3x64x96 → four 2x2 pools → 1x512x4x6; the cut leaves conv5_3 without ReLU (negatives remain).
  // (Narrow early stages keep this fast; the output width is the real 512.)
  torch.tidy(() => torch.noGrad(() => {
    const narrow = new Vgg16({ widths: [4, 4, 8, 8, 512] });
    const y = narrow.forward(torch.randn([1, 3, 64, 96]));
    narrow.dispose();
    assert.deepEqual(y.shape, [1, 512, 4, 6]);
    assert.ok(y.lt(0).any(), 'output is pre-ReLU');
  }));

  // torchvision init: N(0, √(2 / fan_out)) weights, zero biases
  const w = sd.get('features.26.weight')!;
  const std = Math.sqrt(torch.tidy(() => w.var([0, 1, 2, 3]).item()));
  const expected = Math.sqrt(2 / (512 * 9));
  assert.ok(Math.abs(std / expected - 1) < 0.01, `std ${std} vs ${expected}`);
  assert.ok(torch.tidy(() => sd.get('features.26.bias')!.abs().sum().item()) === 0);
  m.dispose();
});

test('matches PyTorch on a narrow VGG-16 loaded from its torch.save .pth (classifier.* ignored)', async () => {
  const m = new Vgg16({ widths: FIXTURE.widths });
  const report = await loadVggWeights(m, TINY_PTH);
  assert.deepEqual(report.ignored, ['classifier.0.weight', 'classifier.0.bias', 'classifier.3.weight', 'classifier.3.bias', 'classifier.6.weight', 'classifier.6.bias']);
  assert.deepEqual(report.loaded, TORCHVISION_KEYS);
  const m64 = new Vgg16({ widths: FIXTURE.widths });
  await loadVggWeights(m64, TINY_PTH);
  const models = { float32: m, float64: m64.to('float64') };
  const want: HostTensor = { dtype: 'float64', shape: FIXTURE.output.shape, data: doubles(FIXTURE.output.float64) };
  const input = (dtype: ParityDtype) => torch.tensor(floats(FIXTURE.input.float32), FIXTURE.input.shape).to(dtype);
  const line = torch.noGrad(() => checkParity('features[:-2]', (dt) => {
    const y = models[dt].forward(input(dt));
    assert.deepEqual(y.shape, FIXTURE.output.shape);
    return y;
  }, want, (magnitude) => vggComputation(FIXTURE.widths, magnitude)));
  console.log(`# VGG-16 parity: ${line}`);
  m.dispose();
  m64.dispose();
});

test('.pth round trip through savePth keeps every value; extra classifier keys are reported', async () => {
  torch.manualSeed(3);
  const a = new Vgg16({ widths: [2, 3, 4, 4, 5] });
  const b = new Vgg16({ widths: [2, 3, 4, 4, 5] });
  const saved = new Map<string, HostTensor>(stateDictToHost(a));
  saved.set('classifier.6.weight', { dtype: 'float32', shape: [2, 3], data: new Float32Array(6) });
  const path = join(tempDir('vgl-vgg-'), 'vgg.pth');
  await savePth(path, saved);
  const r = await loadVggWeights(b, path);
  assert.deepEqual(r.ignored, ['classifier.6.weight']);
  for (const [k, t] of a.stateDict()) assert.ok(t.equal(b.stateDict().get(k)!), k);
  a.dispose();
  b.dispose();
});

test('load errors name the file and the missing / unexpected / mis-shaped keys', () => {
  const m = new Vgg16({ widths: [2, 3, 4, 4, 5] });
  const host = stateDictToHost(m);
  const missing = new Map(host);
  missing.delete('features.28.bias');
  assert.throws(() => loadVggStateDict(m, missing, 'w.pth'), /'w\.pth'[\s\S]*missing keys \(1\): features\.28\.bias/);
  const extra = new Map(host).set('features.30.weight', host.get('features.28.bias')!);
  assert.throws(() => loadVggStateDict(m, extra, 'w.pth'), /unexpected keys \(1\): features\.30\.weight/);
  const wide = stateDictToHost(new Vgg16({ widths: [2, 3, 4, 4, 6] }));
  assert.throws(() => loadVggStateDict(m, wide, 'w.pth'), /features\.28\.weight: model \[5,5,3,3\] vs file \[6,6,3,3\]/);
  m.dispose();
});

test('freezeReference trains only conv5_x (features.24, 26, 28)', () => {
  const m = new Vgg16({ widths: [2, 3, 4, 4, 5] });
  m.freezeReference();
  const trainable = [...m.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
  assert.deepEqual(trainable, ['features.24.weight', 'features.24.bias', 'features.26.weight', 'features.26.bias', 'features.28.weight', 'features.28.bias']);
  // gradients reach conv5 only
  torch.tidy(() => m.forward(torch.randn([1, 3, 32, 32])).sum().backward());
  torch.tidy(() => {
    for (const [n, p] of m.namedParameters()) assert.equal(p.grad !== null, trainable.includes(n), n);
  });
  m.dispose();
});
