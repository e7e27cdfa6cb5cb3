// MobileNetV2 with the Keras ImageNet weights against an independent PyTorch interpretation of the
// Keras layer graph in model.json (scripts/fixtures/make_mobilenet_fixture.py, float64), plus the
// layout conversions, loader errors and freezing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import * as torch from '../../src/torch/index.ts';
import { F, nn, Tensor } from '../../src/torch/index.ts';
import { MobileNetV2, makeDivisible } from '../../src/models/mobilenetv2.ts';
import { depthwiseToTorch, loadKerasWeights, MOBILENETV2_035_WEIGHTS_DIR } from '../../src/models/weights/keras-mobilenetv2.ts';
import { hwioToOihw } from '../../src/models/weights/keras.ts';
import { tempDir } from '../helpers/tmp.ts';
import {
  roundingBound, maxAbsDiff, maxAbsDiffBetween, largestMagnitude, float64Host, sumBound, gamma, injectEps, type Computation, type ParityDtype,
} from '../helpers/parity.ts';

interface Tap { keras: string; features_index: number; shape: number[]; sum: number; abs_sum: number }
interface Run { output_shape: number[]; pooled: number[]; taps: Tap[] }
const REF = JSON.parse(readFileSync('test/fixtures/mobilenet/keras_reference.json', 'utf8'));
const NORDLAND = resolve('..', 'shared', 'data', 'nordland');

const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const floats = (s: string): Float32Array => {
  const b = b64(s);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

/** uint8 HWC pixels → [1, 3, H·k, W·k] in [-1, 1] (computed in dtype), nearest enlargement by k (exact copies). */
function rgbToInput(rgb: Uint8Array, h: number, w: number, k: number, dtype: ParityDtype = 'float32'): Tensor {
  return torch.tidy(() => {
    const x = torch.tensor(Float32Array.from(rgb), [1, h, w, 3]).to(dtype).permute(0, 3, 1, 2).div(127.5).sub(1);
    return F.interpolate(x, [h * k, w * k], 'nearest');
  });
}

const pretrained: Partial<Record<ParityDtype, MobileNetV2>> = {};
async function loaded(dtype: ParityDtype = 'float32'): Promise<MobileNetV2> {
  if (!pretrained[dtype]) {
    const m = new MobileNetV2();
    await loadKerasWeights(m);
    pretrained[dtype] = m.eval().to(dtype);
  }
  return pretrained[dtype]!;
}

// The reference is float64 (the Keras graph interpreted by PyTorch in float64 from the float32 weights;
// the random input is float32 values, the Nordland one x / 127.5 − 1 in float64). vgl runs in float64
// against the float64 rounding bound and in float32, the path users run, against the float32 one.
// Longest path to features.<i>: the stem conv (1), expanded_conv's depthwise and project (2), then an
// expand, a depthwise and a project per block (3 each), Conv_1 (1): 52 convolutions, the global average
// pool one reduction more. The longest reduction: a project 1x1 over 6·56 = 336 channels (read off the
// weights below), each with its BatchNorm, ReLU6 and residual add a few roundings more (and, in
// float32, the input's own rounding, x / 127.5 − 1).
const depthAt = (i: number): number => (i === 0 ? 1 : 3 * i);
const BN_ROUNDINGS = 5;
/** Folding BatchNorm into the convolutions rounds each folded weight a few times more. */
const FOLD_ROUNDINGS = 4;
function longestReduction(model: MobileNetV2): number {
  let terms = 0;
  for (const [name, t] of model.stateDict()) if (name.endsWith('weight') && t.shape.length === 4) terms = Math.max(terms, t.shape[1]! * t.shape[2]! * t.shape[3]!);
  return terms + BN_ROUNDINGS;
}
const mobilenetComputation = (model: MobileNetV2, depth: number, magnitude: number): Computation =>
  ({ depth, terms: longestReduction(model), magnitude });

/**
 * The largest |value| met on the way to each features.<i> (and the output), from the float64 run: it is
 * what the rounding errors are relative to (the reference stores only sums of the maps).
 */
function pathMagnitudes(model64: MobileNetV2, x: Tensor): number[] {
  return torch.tidy(() => torch.noGrad(() => {
    let y = x.to('float64');
    let m = 1;
    return model64.features.layers.map((layer) => {
      y = (layer.forward as (t: Tensor) => Tensor)(y);
      m = Math.max(m, largestMagnitude(y.toHost()));
      return m;
    });
  }));
}

/** Taps (sums of intermediate maps) and pooled features against the reference, in float64 and float32. */
function checkRun(models: Record<ParityDtype, MobileNetV2>, input: (dtype: ParityDtype) => Tensor, ref: Run): string {
  const magnitudes = torch.tidy(() => pathMagnitudes(models.float64, input('float64')));
  const report: string[] = [];
  for (const dtype of ['float64', 'float32'] as const) {
    const model = models[dtype];
    torch.tidy(() => torch.noGrad(() => {
      const x = input(dtype);
      let y = x;
      let worstTap = 0;
      const taps = new Map(ref.taps.map((t) => [t.features_index, t]));
      model.features.layers.forEach((layer, i) => {
        y = (layer.forward as (t: Tensor) => Tensor)(y);
        const tap = taps.get(i);
        if (!tap) return;
        assert.deepEqual(y.shape, tap.shape, `features.${i} (${tap.keras}) shape`);
        const sum = y.sum().item();
        const abs = y.abs().sum().item();
        // Each of the map's values within its rounding bound, and the sum's own rounding.
        const bound = sumBound(dtype, y.numel, roundingBound(dtype, mobilenetComputation(model, depthAt(i), magnitudes[i]!)), tap.abs_sum);
        assert.ok(Math.abs(sum - tap.sum) <= bound, `features.${i} (${tap.keras}) in ${dtype}: sum ${sum} vs ${tap.sum} (bound ${bound})`);
        assert.ok(Math.abs(abs - tap.abs_sum) <= bound, `features.${i} (${tap.keras}) in ${dtype}: |sum| ${abs} vs ${tap.abs_sum} (bound ${bound})`);
        worstTap = Math.max(worstTap, Math.abs(sum - tap.sum) / bound, Math.abs(abs - tap.abs_sum) / bound);
      });
      const out = model.forward(x);
      assert.deepEqual(out.shape, ref.output_shape);
      const worst = maxAbsDiff(out.mean([2, 3]).flatten(), float64Host([ref.pooled.length], ref.pooled));
      const bound = roundingBound(dtype, mobilenetComputation(model, depthAt(18) + 1, magnitudes[18]!));
      assert.ok(worst <= bound, `pooled features in ${dtype} differ from the reference by up to ${worst}, over the rounding bound ${bound}`);
      report.push(`${dtype} pooled ${worst.toExponential(1)} (bound ${bound.toExponential(1)}), taps up to ${worstTap.toExponential(1)} of their bounds`);
    }));
  }
  return report.join('; ');
}

test('channel widths follow Keras alpha=0.35 (_make_divisible(int(c·alpha), 8))', () => {
  assert.deepEqual([11.2, 5, 8, 11, 22, 33, 56, 112].map((v) => makeDivisible(v)), [16, 8, 8, 16, 24, 32, 56, 112]);
  const m = new MobileNetV2();
  const sd = m.stateDict();
  // Shapes read off model.json: Conv1 16 filters, project widths per block, Conv_1 1280.
  assert.deepEqual(sd.get('features.0.0.weight')!.shape, [16, 3, 3, 3]);
  assert.deepEqual(sd.get('features.1.conv.0.0.weight')!.shape, [16, 1, 3, 3]);
  assert.deepEqual(sd.get('features.1.conv.1.weight')!.shape, [8, 16, 1, 1]);
  const projects = [8, 8, 16, 16, 16, 24, 24, 24, 24, 32, 32, 32, 56, 56, 56, 112];
  projects.forEach((c, b) => assert.equal(sd.get(`features.${b + 2}.conv.2.weight`)!.shape[0], c, `block_${b + 1}_project`));
  assert.deepEqual(sd.get('features.2.conv.0.0.weight')!.shape, [48, 8, 1, 1], 'block_1_expand = 8·6');
  assert.deepEqual(sd.get('features.17.conv.1.0.weight')!.shape, [336, 1, 3, 3], 'block_16_depthwise');
  assert.deepEqual(sd.get('features.18.0.weight')!.shape, [1280, 112, 1, 1]);
  assert.equal(m.outChannels, 1280);
  assert.equal(m.inputNormalization, 'minus_one_one');
  // As the Keras manifest: 52 BatchNorms (x 4 + num_batches_tracked), 35 conv kernels (37 minus the
  // two dense ones of the head), 17 depthwise kernels
  assert.equal(sd.size, 52 * 5 + 35 + 17);
  m.dispose();
});

test('Keras kernel layouts: HWIO → OIHW, depthwise HW(C)(M) → [C·M, 1, H, W]', () => {
  // HWIO [1, 2, 2, 3]: value = 100h + 10w·... encode (w, i, o) as w*100 + i*10 + o
  const hwio = new Float32Array(1 * 2 * 2 * 3);
  for (let w = 0; w < 2; w++) for (let i = 0; i < 2; i++) for (let o = 0; o < 3; o++) hwio[(w * 2 + i) * 3 + o] = w * 100 + i * 10 + o;
  const t = hwioToOihw({ dtype: 'float32', shape: [1, 2, 2, 3], data: hwio });
  assert.deepEqual(t.shape, [3, 2, 1, 2]);
  // [o][i][0][w]
  assert.deepEqual([...t.data as Float32Array], [0, 100, 10, 110, 1, 101, 11, 111, 2, 102, 12, 112]);
  // depthwise [1, 2, C=2, M=2]: value w*100 + c*10 + m; torch channel c*2+m
  const dw = new Float32Array(8);
  for (let w = 0; w < 2; w++) for (let c = 0; c < 2; c++) for (let m = 0; m < 2; m++) dw[(w * 2 + c) * 2 + m] = w * 100 + c * 10 + m;
  const d = depthwiseToTorch({ dtype: 'float32', shape: [1, 2, 2, 2], data: dw });
  assert.deepEqual(d.shape, [4, 1, 1, 2]);
  assert.deepEqual([...d.data as Float32Array], [0, 100, 1, 101, 10, 110, 11, 111]);
});

test('pretrained MobileNetV2 matches the PyTorch Keras-graph reference on a random input (float64 and float32 rounding bounds)', async () => {
  const models = { float32: await loaded(), float64: await loaded('float64') };
  const inp = REF.runs.random.input;
  const line = checkRun(models, (dtype) => torch.tensor(floats(inp.float32), inp.shape).to(dtype), REF.runs.random);
  console.log(`# MobileNetV2 parity (random input): ${line}`);
});

test('the parity check rejects BatchNorm eps 1e-5 (torch\'s default) instead of Keras\' 1e-3', async () => {
  // The bug the Keras-graph parity exists for, injected in every BatchNorm of a float64 copy.
  const model = new MobileNetV2();
  await loadKerasWeights(model);
  model.eval().to('float64');
  const patched = injectEps(model, nn.BatchNorm2d, 1e-3, 1e-5, 'Keras\' BatchNorm eps');
  assert.equal(patched, 52);
  const inp = REF.runs.random.input;
  const x = torch.tensor(floats(inp.float32), inp.shape).to('float64');
  const reference64 = await loaded('float64');
  const magnitude = torch.tidy(() => pathMagnitudes(reference64, x).at(-1)!);
  const want = float64Host([REF.runs.random.pooled.length], REF.runs.random.pooled);
  const d = torch.tidy(() => torch.noGrad(() => maxAbsDiff(model.forward(x).mean([2, 3]).flatten(), want)));
  const c = mobilenetComputation(model, depthAt(18) + 1, magnitude);
  assert.ok(d > roundingBound('float64', c), `eps 1e-5 gave ${d}, within the float64 bound ${roundingBound('float64', c)}: the check cannot see the bug`);
  console.log(`# injected BatchNorm eps 1e-5: pooled features move by ${d.toExponential(2)} (float64 bound ${roundingBound('float64', c).toExponential(1)}, float32 ${roundingBound('float32', c).toExponential(1)})`);
  x.dispose();
  model.dispose();
});

test('pretrained MobileNetV2 matches the reference on a Nordland frame enlarged to 64x128', async () => {
  const models = { float32: await loaded(), float64: await loaded('float64') };
  const inp = REF.runs.nordland.input;
  const input = (dtype: ParityDtype) => {
    const x = rgbToInput(b64(inp.rgb_uint8), inp.height, inp.width, inp.upsample, dtype);
    assert.deepEqual(x.shape, [1, 3, 64, 128]);
    return x;
  };
  console.log(`# MobileNetV2 parity (Nordland frame): ${checkRun(models, input, REF.runs.nordland)}`);
});

test('loader reports the weights it ignored (the Teachable Machine head) and loads all model keys', async () => {
  const m = new MobileNetV2();
  const r = await loadKerasWeights(m, MOBILENETV2_035_WEIGHTS_DIR);
  assert.deepEqual(r.ignored.sort(), ['dense_Dense3/bias', 'dense_Dense3/kernel', 'dense_Dense4/kernel']);
  assert.equal(r.loaded.length, m.stateDict().size);
  m.dispose();
});

test('loader errors name model.json and list missing Keras weights / shape mismatches', async () => {
  const dir = tempDir('vgl-mnv2-');
  const json = JSON.parse(readFileSync(join(MOBILENETV2_035_WEIGHTS_DIR, 'model.json'), 'utf8'));
  for (const w of json.weightsManifest[0].weights) {
    if (w.name === 'block_5_expand/kernel') w.name = 'block_5_expand_renamed/kernel';
  }
  writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
  copyFileSync(join(MOBILENETV2_035_WEIGHTS_DIR, 'weights.bin'), join(dir, 'weights.bin'));
  const m = new MobileNetV2();
  await assert.rejects(loadKerasWeights(m, dir), (e: Error) => {
    assert.match(e.message, new RegExp(`^${join(dir, 'model.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:`));
    assert.match(e.message, /missing Keras weights \(1\): block_5_expand\/kernel/);
    return true;
  });
  // A layer graph whose strides differ from the model's (block_13 not downsampling) is refused too.
  const graph = JSON.parse(readFileSync(join(MOBILENETV2_035_WEIGHTS_DIR, 'model.json'), 'utf8'));
  const visit = (node: any): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!node || typeof node !== 'object') return;
    if (node.name === 'block_13_depthwise' && node.config) node.config.strides = [1, 1];
    Object.values(node).forEach(visit);
  };
  visit(graph.modelTopology);
  writeFileSync(join(dir, 'model.json'), JSON.stringify(graph));
  await assert.rejects(loadKerasWeights(m, dir), /layer graph differs from Keras MobileNetV2: block_13_depthwise has stride 1, features\.14\.conv\.1\.0 has 2$/);
  m.dispose();
  const wide = new MobileNetV2({ widthMultiplier: 0.5 });
  await assert.rejects(loadKerasWeights(wide), (e: Error) => {
    assert.match(e.message, /not the Keras MobileNetV2 \(alpha 0\.5\)/);
    // alpha 0.5 first differs at block_1_project: 16 filters instead of 8
    assert.match(e.message, /shape mismatches \(\d+\): block_1_project\/kernel \[1,1,48,8\] → features\.2\.conv\.2\.weight \[8,48,1,1\], model has \[16,48,1,1\]/);
    return true;
  });
  wide.dispose();
});

test('random-init shapes: 64x96 → 2x3, odd sizes follow the fixed bottom/right padding (⌊n/2⌋ per stride 2)', () => {
  torch.tidy(() => torch.noGrad(() => {
    const m = new MobileNetV2().eval();
    assert.deepEqual(m.forward(torch.randn([1, 3, 64, 96])).shape, [1, 1280, 2, 3]);
    // 33 → 16 → 8 → 4 → 2 → 1 (valid 3x3 after one extra row: ⌊(n + 1 − 3) / 2⌋ + 1)
    assert.deepEqual(m.forward(torch.randn([1, 3, 33, 47])).shape, [1, 1280, 1, 1]);
    m.dispose();
  }));
});

test('freezeReference: only block_13.. and Conv_1 (features.14-18) train; frozen BatchNorm stays in eval', () => {
  const m = new MobileNetV2();
  m.freezeReference();
  m.train();
  const trainable = [...m.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
  assert.ok(trainable.length > 0);
  assert.ok(trainable.every((n) => /^features\.(1[4-8])\./.test(n)), trainable.find((n) => !/^features\.(1[4-8])\./.test(n)));
  assert.equal(trainable.length, 4 * (3 + 3 * 2) + 1 + 2, 'blocks 13-16 (3 convs + 3 BatchNorm weight/bias each) + Conv_1 + its BN');
  const bns = [...m.namedModules()].filter(([, b]) => b instanceof nn.BatchNorm2d) as [string, nn.BatchNorm2d][];
  for (const [n, bn] of bns) {
    const idx = Number(n.split('.')[1]);
    assert.equal(bn.training, idx >= 14, `${n} training`);
  }
  // Frozen running statistics do not move in a training-mode forward; trainable ones do.
  const before = bns.map(([, bn]) => bn.runningMean.toFloat32Array().slice());
  torch.tidy(() => m.forward(torch.randn([2, 3, 64, 64])));
  bns.forEach(([n, bn], i) => {
    const moved = bn.runningMean.toFloat32Array().some((v, j) => v !== before[i]![j]);
    assert.equal(moved, Number(n.split('.')[1]) >= 14, `${n} running_mean moved`);
  });
  m.dispose();
});

test('Nordland: the same place in summer and winter is closer than different places (pooled 1280-d)', async (t) => {
  if (!existsSync(NORDLAND)) return t.skip(`${NORDLAND} is absent`);
  const ref = REF.nordland as { frames: string[]; upsample: number; mean_same: number; mean_different: number };
  const n = ref.frames.length;
  const pixels: { data: Uint8Array; height: number; width: number }[] = [];
  for (const season of ['summer', 'winter']) {
    for (const f of ref.frames) {
      const { data, info } = await sharp(join(NORDLAND, season, f)).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      pixels.push({ data: new Uint8Array(data), height: info.height, width: info.width });
    }
  }
  const figures = async (dtype: ParityDtype) => {
    const model = await loaded(dtype);
    // Both seasons in one batch: rows 0..n-1 summer (database), n..2n-1 winter (queries).
    const xs = pixels.map((p) => rgbToInput(p.data, p.height, p.width, ref.upsample, dtype));
    const { d, smallestNorm, magnitude } = torch.tidy(() => torch.inferenceMode(() => {
      const pooled = model.forward(torch.cat(xs)).mean([2, 3]);
      const desc = F.normalize(pooled);
      return {
        d: F.cdist(desc.narrow(0, n, n), desc.narrow(0, 0, n)).toNumbers(), smallestNorm: pooled.norm(2, 1).amin().item(),
        magnitude: largestMagnitude(pooled.toHost()),
      };
    }));
    torch.dispose(xs);
    let same = 0;
    let diff = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) (i === j ? (same += d[i * n + j]!) : (diff += d[i * n + j]!));
    return { same: same / n, diff: diff / (n * n - n), smallestNorm, magnitude, model };
  };
  const f32 = await figures('float32');
  console.log(`Nordland ${n} places: mean distance same place ${f32.same.toFixed(4)}, different places ${f32.diff.toFixed(4)} (reference ${ref.mean_same.toFixed(4)} / ${ref.mean_different.toFixed(4)})`);
  assert.ok(f32.same < f32.diff, `same ${f32.same} should be below different ${f32.diff}`);
  // The figures against the reference in float64. A pooled descriptor's D = 1280 values are each within
  // e of exact (the network's rounding bound), ‖Δ‖ ≤ √D·e; L2 normalisation turns that into at most
  // 2·√D·e / ‖pooled‖ on the unit vector, plus its own rounding (γ_D); a distance moves by at most the two
  // unit vectors' errors plus cdist's rounding (a D-term sum of squares of |terms| ≤ 4, halved by the
  // root); the means of n or n² − n distances (≤ 2) round by γ_{n²}·2 more. In float32 this bound would
  // exceed the figures themselves (~0.5): the float64 comparison is the one that can see a wrong figure.
  const f64 = await figures('float64');
  const D = 1280;
  const e = roundingBound('float64', mobilenetComputation(f64.model, depthAt(18) + 1, f64.magnitude));
  const unitError = (2 * Math.sqrt(D) * e) / f64.smallestNorm + Math.sqrt(D) * gamma(D + 3, 'float64');
  const bound = 2 * unitError + gamma(D + 2, 'float64') * 4 + gamma(n * n, 'float64') * 2;
  const worst = Math.max(Math.abs(f64.same - ref.mean_same), Math.abs(f64.diff - ref.mean_different));
  assert.ok(worst <= bound, `figures in float64 ${f64.same} / ${f64.diff} vs the PyTorch reference ${ref.mean_same} / ${ref.mean_different}: ${worst} > ${bound}`);
  console.log(`# Nordland figures vs reference: float64 ${worst.toExponential(1)} (bound ${bound.toExponential(1)}); float32 ${Math.max(Math.abs(f32.same - ref.mean_same), Math.abs(f32.diff - ref.mean_different)).toExponential(1)}`);
});

test('BatchNorm folding (convBnPairs): every conv paired once, folded output equals the plain one', async () => {
  const model = await loaded();
  const model64 = await loaded('float64');
  const pairs = model.convBnPairs();
  assert.equal(pairs.length, 35 + 17, 'every conv and depthwise conv has its BatchNorm');
  assert.equal(new Set(pairs.map(([c]) => c)).size, pairs.length);
  const inp = REF.runs.random.input;
  const input = (dtype: ParityDtype) => torch.tensor(floats(inp.float32), inp.shape).to(dtype);
  const magnitude = torch.tidy(() => pathMagnitudes(model64, input('float64')).at(-1)!);
  // Folded and plain: two computations of the same map, each within its rounding bound of exact (the
  // folded one with the folding's roundings more per term), so within the sum of both of each other.
  const report: string[] = [];
  for (const dtype of ['float32', 'float64'] as const) {
    const m = dtype === 'float32' ? model : model64;
    const c = mobilenetComputation(m, depthAt(18), magnitude);
    const bound = roundingBound(dtype, c) + roundingBound(dtype, { ...c, terms: c.terms + FOLD_ROUNDINGS });
    torch.tidy(() => torch.noGrad(() => {
      const x = input(dtype);
      const plain = m.forward(x);
      const unfold = nn.foldForInference(dtype === 'float32' ? pairs : m.convBnPairs(), true, dtype);
      try {
        const folded = m.forward(nn.toChannelsLast(x)).contiguous();
        const worst = maxAbsDiffBetween(plain, folded);
        assert.ok(worst <= bound, `${dtype}: folded differs by ${worst} (bound ${bound})`);
        report.push(`${dtype} ${worst.toExponential(1)} (bound ${bound.toExponential(1)})`);
      } finally {
        unfold();
      }
    }));
  }
  console.log(`# MobileNetV2 folded vs plain: ${report.join(', ')}`);
});
