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

interface Tap { keras: string; features_index: number; shape: number[]; sum: number; abs_sum: number }
interface Run { output_shape: number[]; pooled: number[]; taps: Tap[] }
const REF = JSON.parse(readFileSync('test/fixtures/mobilenet/keras_reference.json', 'utf8'));
const NORDLAND = resolve('..', 'shared', 'data', 'nordland');

const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const floats = (s: string): Float32Array => {
  const b = b64(s);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

/** uint8 HWC pixels → [1, 3, H·k, W·k] in [-1, 1], nearest enlargement by k (exact copies). */
function rgbToInput(rgb: Uint8Array, h: number, w: number, k: number): Tensor {
  return torch.tidy(() => {
    const x = torch.tensor(Float32Array.from(rgb), [1, h, w, 3]).permute(0, 3, 1, 2).div(127.5).sub(1);
    return F.interpolate(x, [h * k, w * k], 'nearest');
  });
}

let pretrained: MobileNetV2 | null = null;
async function loaded(): Promise<MobileNetV2> {
  if (!pretrained) {
    pretrained = new MobileNetV2();
    await loadKerasWeights(pretrained);
    pretrained.eval();
  }
  return pretrained;
}

function checkRun(model: MobileNetV2, x: Tensor, ref: Run): void {
  torch.tidy(() => torch.noGrad(() => {
    let y = x;
    const taps = new Map(ref.taps.map((t) => [t.features_index, t]));
    model.features.layers.forEach((layer, i) => {
      y = (layer.forward as (t: Tensor) => Tensor)(y);
      const tap = taps.get(i);
      if (!tap) return;
      assert.deepEqual(y.shape, tap.shape, `features.${i} (${tap.keras}) shape`);
      const sum = y.sum().item();
      const abs = y.abs().sum().item();
      // float32 sums of up to ~10^5 values: compare relative to the total magnitude
      assert.ok(Math.abs(sum - tap.sum) <= 1e-5 * tap.abs_sum + 1e-4, `features.${i} (${tap.keras}) sum ${sum} vs ${tap.sum}`);
      assert.ok(Math.abs(abs - tap.abs_sum) <= 1e-5 * tap.abs_sum + 1e-4, `features.${i} (${tap.keras}) |sum| ${abs} vs ${tap.abs_sum}`);
    });
    const out = model.forward(x);
    assert.deepEqual(out.shape, ref.output_shape);
    const pooled = out.mean([2, 3]).toFloat32Array();
    let worst = 0;
    ref.pooled.forEach((v, i) => { worst = Math.max(worst, Math.abs(pooled[i]! - v)); });
    assert.ok(worst <= 1e-4, `pooled features differ from the reference by up to ${worst}`);
  }));
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

test('pretrained MobileNetV2 matches the PyTorch Keras-graph reference on a random input (1e-4)', async () => {
  const model = await loaded();
  const inp = REF.runs.random.input;
  const x = torch.tensor(floats(inp.float32), inp.shape);
  checkRun(model, x, REF.runs.random);
  x.dispose();
});

test('pretrained MobileNetV2 matches the reference on a Nordland frame enlarged to 64x128', async () => {
  const model = await loaded();
  const inp = REF.runs.nordland.input;
  const x = rgbToInput(b64(inp.rgb_uint8), inp.height, inp.width, inp.upsample);
  assert.deepEqual(x.shape, [1, 3, 64, 128]);
  checkRun(model, x, REF.runs.nordland);
  x.dispose();
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
  const model = await loaded();
  const ref = REF.nordland as { frames: string[]; upsample: number; mean_same: number; mean_different: number };
  // Both seasons in one batch: rows 0..n-1 summer (database), n..2n-1 winter (queries).
  const xs: Tensor[] = [];
  for (const season of ['summer', 'winter']) {
    for (const f of ref.frames) {
      const { data, info } = await sharp(join(NORDLAND, season, f)).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      xs.push(rgbToInput(new Uint8Array(data), info.height, info.width, ref.upsample));
    }
  }
  const n = ref.frames.length;
  const d = torch.tidy(() => torch.inferenceMode(() => {
    const desc = F.normalize(model.forward(torch.cat(xs)).mean([2, 3]));
    return F.cdist(desc.narrow(0, n, n), desc.narrow(0, 0, n)).toFloat32Array();
  }));
  torch.dispose(xs);
  let same = 0;
  let diff = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) (i === j ? (same += d[i * n + j]!) : (diff += d[i * n + j]!));
  same /= n;
  diff /= n * n - n;
  console.log(`Nordland ${n} places: mean distance same place ${same.toFixed(4)}, different places ${diff.toFixed(4)} (reference ${ref.mean_same.toFixed(4)} / ${ref.mean_different.toFixed(4)})`);
  assert.ok(same < diff, `same ${same} should be below different ${diff}`);
  assert.ok(Math.abs(same - ref.mean_same) < 1e-4 && Math.abs(diff - ref.mean_different) < 1e-4, 'figures match the PyTorch reference');
});

test('BatchNorm folding (convBnPairs): every conv paired once, folded output equals the plain one', async () => {
  const model = await loaded();
  const pairs = model.convBnPairs();
  assert.equal(pairs.length, 35 + 17, 'every conv and depthwise conv has its BatchNorm');
  assert.equal(new Set(pairs.map(([c]) => c)).size, pairs.length);
  const inp = REF.runs.random.input;
  torch.tidy(() => torch.noGrad(() => {
    const x = torch.tensor(floats(inp.float32), inp.shape);
    const plain = model.forward(x);
    const unfold = nn.foldForInference(pairs);
    try {
      const folded = model.forward(nn.toChannelsLast(x)).contiguous();
      const worst = plain.sub(folded).abs().amax().item();
      assert.ok(worst < 1e-3, `folded differs by ${worst}`);
    } finally {
      unfold();
    }
  }));
});
