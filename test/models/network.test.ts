// Network assembly: every backbone x every head gives unit descriptors of the advertised dimension,
// and ResNet-18 conv4 + GeM/NetVLAD with PyTorch's weights reproduces PyTorch's descriptors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.ts';
import { readStateDict } from '../../src/torch/serialization/index.ts';
import { BACKBONE_NAMES, BACKBONES, buildNetwork, type NetworkConfig } from '../../src/models/network.ts';
import { HEADS, AGGREGATION_NAMES } from '../../src/models/aggregation/index.ts';
import type { Backbone } from '../../src/models/types.ts';
import { roundingBound, maxAbsDiff, largestMagnitude, checkParity, float64Host, unitNormBound, type Computation, type ParityDtype } from '../helpers/parity.ts';

const fixture = JSON.parse(readFileSync(new URL('../fixtures/resnet/resnet18_narrow.json', import.meta.url), 'utf8'));
const pth = new URL('../fixtures/resnet/resnet18_narrow.pth', import.meta.url).pathname;

// Full-width backbones (real channel counts), small images.
const EXPECTED: Record<string, { channels: number; map: [number, number] }> = {
  resnet18conv4: { channels: 256, map: [4, 6] }, resnet18conv5: { channels: 512, map: [2, 3] },
  resnet50conv4: { channels: 1024, map: [4, 6] }, resnet50conv5: { channels: 2048, map: [2, 3] },
  vgg16: { channels: 512, map: [4, 6] }, mobilenetv2: { channels: 1280, map: [2, 3] },
  // transformers: the token grid (ViT: 16-pixel patches; CCT-14/7x2: two stride-2 convs, each max-pooled by 2)
  vit: { channels: 768, map: [4, 6] }, vit384: { channels: 768, map: [4, 6] },
  cct224: { channels: 384, map: [4, 6] }, cct384: { channels: 384, map: [4, 6] },
};

for (const name of BACKBONE_NAMES) {
  test(`${name}: feature map shape and every head's descriptor dimension`, () => {
    torch.manualSeed(0);
    const backbone: Backbone = BACKBONES[name].create({}, 'gem');
    backbone.eval();
    torch.tidy(() => {
      const maps = torch.noGrad(() => backbone.forward(torch.rand([2, 3, 64, 96])));
      const want = EXPECTED[name];
      assert.deepEqual(maps.shape, [2, want.channels, ...want.map]);
      for (const head of AGGREGATION_NAMES) {
        torch.tidy(() => {
          // after_pool: every head ends with L2 (before_pool, the reference's default, leaves shallow heads' length free).
          const h = HEADS[head](want.channels, { netvladClusters: 8, fcOutputDim: head === 'gem' ? 32 : undefined, l2: 'after_pool' });
          h.eval();
          const d = torch.noGrad(() => h.forward(maps));
          const dim = head === 'gem' ? 32 : head.endsWith('netvlad') || head.endsWith('crn') ? 8 * want.channels : want.channels;
          assert.equal(h.dim, dim, `${name} + ${head}: dim`);
          assert.deepEqual(d.shape, [2, dim], `${name} + ${head}: descriptor shape`);
          // The last step is an L2 normalisation over dim terms (float32): |‖d‖ − 1| within its rounding bound.
          const bound = unitNormBound('float32', dim);
          for (const n of d.norm(2, 1).toNumbers()) assert.ok(Math.abs(n - 1) <= bound, `${name} + ${head}: norm ${n} (bound ${bound})`);
          h.dispose();
        });
      }
    });
    backbone.dispose();
  });
}

test('buildNetwork reports descriptor dimension and trainable parameters after the reference freezing', () => {
  const net = buildNetwork({ backbone: 'resnet18conv4', aggregation: 'netvlad' });
  net.freezeReference();
  const s = net.summary();
  assert.equal(s.descriptorDim, 64 * 256);
  // layer3 of ResNet-18 (2 blocks, 128→256) + NetVLAD conv (64·256) + centroids (64·256)
  const layer3 = (256 * 128 * 9 + 256 * 256 * 9 + 256 * 128 + 3 * 2 * 256) + (2 * 256 * 256 * 9 + 2 * 2 * 256);
  assert.equal(s.trainableParameters, layer3 + 2 * 64 * 256);
  assert.deepEqual([...net.stateDict().keys()].slice(0, 2), ['backbone.conv1.weight', 'backbone.bn1.weight']);
  assert.ok(net.stateDict().has('aggregation.centroids'));
  net.dispose();
});

// The fixture's descriptors are float64 (PyTorch in float64 from the float32 weights and input,
// scripts/fixtures/make_resnet_fixture.py): vgl in float64 against the float64 rounding bound, its
// float32 paths (plain and fast inference) against the float32 bound. The trunk as in resnet.test.ts:
// 13 convolutions to conv4, the longest over 24·9 = 216 terms, BatchNorm, residual add and ReLU a few
// roundings more; then the heads (conv4 map: 24 channels, 3x4 = 12 positions):
//   GeM: L2 over the 24 channels, clamp and cube, mean over 12 positions, cube root, L2: 3 reductions;
//   NetVLAD (K = 4): L2 over 24, 1x1 conv over 24, softmax over 4, sum over 12 positions, intra-L2 over
//   24, L2 over 4·24 = 96: 6 reductions.
const TRUNK_TERMS = 24 * 9 + 5;
const descriptorComputation = (aggregation: 'gem' | 'netvlad', magnitude: number): Computation =>
  ({ depth: 13 + (aggregation === 'gem' ? 3 : 6), terms: TRUNK_TERMS, magnitude });
/** Folding BatchNorm into the convolutions rounds each folded weight a few times more (fast inference). */
const FOLD_ROUNDINGS = 4;

test('ResNet-18 conv4 + GeM / NetVLAD with PyTorch weights reproduce PyTorch descriptors (float64 and float32 rounding bounds)', async () => {
  const weights = await readStateDict(pth);
  for (const aggregation of ['gem', 'netvlad'] as const) {
    const net = buildNetwork({ backbone: 'resnet18conv4', aggregation, resnetWidths: fixture.widths, netvladClusters: 4 }).eval();
    const net64 = buildNetwork({ backbone: 'resnet18conv4', aggregation, resnetWidths: fixture.widths, netvladClusters: 4 }).eval();
    const values = new Map<string, torch.HostTensor>();
    for (const [k, v] of weights) if (!k.startsWith('layer4.') && !k.startsWith('fc.')) values.set(`backbone.${k}`, v);
    if (aggregation === 'gem') values.set('aggregation.p', { dtype: 'float32', shape: [1], data: Float32Array.of(3) });
    else {
      for (const k of ['conv.weight', 'centroids']) {
        values.set(`aggregation.${k}`, { dtype: 'float32', shape: fixture.netvlad[k].shape, data: Float32Array.from(fixture.netvlad[k].data) });
      }
    }
    torch.loadStateDict(net, values);
    torch.loadStateDict(net64, values);
    net64.to('float64');
    const nets = { float32: net, float64: net64 };
    const want = float64Host(fixture[aggregation].output.shape, fixture[aggregation].output.data);
    const input = (dtype: ParityDtype) => torch.tensor(Float64Array.from(fixture.input.data), fixture.input.shape, { dtype: 'float64' }).to(dtype);
    // The fixture's GeM also L2-normalises after pooling; vgl's GeM (--l2 before_pool, the reference's) does not.
    const unit = (d: torch.Tensor) => (aggregation === 'gem' ? d.div(d.norm(2, 1, true)) : d);
    const report = [
      torch.inferenceMode(() => checkParity(aggregation, (dt) => unit(nets[dt].forward(input(dt))), want, (m) => descriptorComputation(aggregation, m))),
      // Outside inference mode (the autograd-recording path) too.
      checkParity(`${aggregation} (noGrad)`, (dt) => torch.noGrad(() => unit(nets[dt].forward(input(dt)))), want, (m) => descriptorComputation(aggregation, m)),
    ];
    const fast = await net.fastInference((forward) => torch.tidy(() => maxAbsDiff(unit(forward(input('float32'))), want)));
    const computation = descriptorComputation(aggregation, largestMagnitude(want));
    const bound = roundingBound('float32', { ...computation, terms: computation.terms + FOLD_ROUNDINGS });
    assert.ok(fast <= bound, `${aggregation} (fast inference path): max abs difference ${fast} exceeds the float32 rounding bound ${bound}`);
    report.push(`${aggregation} fast inference float32 ${fast.toExponential(1)} (bound ${bound.toExponential(1)})`);
    console.log(`# ResNet-18 conv4 descriptors: ${report.join('; ')}`);
    net.dispose();
    net64.dispose();
  }
});

test('freezeBackbone: none trains everything, all only the head, reference as freezeReference', () => {
  const count = (net: ReturnType<typeof buildNetwork>, which: 'backbone' | 'aggregation', trainable: boolean) =>
    [...net.namedParameters()].filter(([n, p]) => n.startsWith(`${which}.`) && (!trainable || p.requiresGrad)).reduce((s, [, p]) => s + p.numel, 0);
  for (const aggregation of ['gem', 'netvlad'] as const) {
    const none = buildNetwork({ backbone: 'mobilenetv2', aggregation, netvladClusters: 4 });
    none.freezeBackbone('none');
    assert.equal(none.parameterCount(true), none.parameterCount());
    const all = buildNetwork({ backbone: 'mobilenetv2', aggregation, netvladClusters: 4 });
    all.freezeBackbone('all');
    assert.equal(count(all, 'backbone', true), 0);
    assert.equal(all.parameterCount(true), count(all, 'aggregation', false));
    // BatchNorm of a frozen backbone keeps its running statistics in train mode
    all.train();
    assert.ok([...all.backbone.namedModules()].every(([, m]) => !(m instanceof torch.nn.BatchNorm2d) || !m.training));
    const ref = buildNetwork({ backbone: 'mobilenetv2', aggregation, netvladClusters: 4 });
    ref.freezeBackbone('reference');
    const viaReference = buildNetwork({ backbone: 'mobilenetv2', aggregation, netvladClusters: 4 });
    viaReference.freezeReference();
    assert.equal(ref.parameterCount(true), viaReference.parameterCount(true));
    assert.ok(count(ref, 'backbone', true) > 0 && count(ref, 'backbone', true) < count(ref, 'backbone', false));
    for (const n of [none, all, ref, viaReference]) n.dispose();
  }
});

test('channels-last training: the same descriptors and gradients as NCHW; weights stay channels-last through optimizer steps and their state dict loads into an NCHW network; bf16 activations, fp32 weight gradients', async () => {
  const { optim, withPrecision } = await import('../../src/torch/index.ts');
  const spec: NetworkConfig = { backbone: 'resnet18conv4', resnetWidths: [8, 8, 16, 16], aggregation: 'netvlad', netvladClusters: 4 };
  torch.manualSeed(5);
  const plain = buildNetwork(spec);
  torch.manualSeed(5);
  const last = buildNetwork(spec);
  assert.equal(last.toChannelsLast(), true);
  const conv = [...last.namedParameters()].find(([, t]) => t.shape.length === 4)![1];
  assert.ok(conv.isContiguous(true) && !conv.isContiguous(false), 'a 4-D weight is channels-last');
  const x = torch.keep(torch.randn([3, 3, 32, 32]));
  try {
    const close = (a: Float32Array, b: Float32Array, what: string) => {
      let worst = 0, scale = 0;
      for (let i = 0; i < a.length; i++) { worst = Math.max(worst, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(a[i])); }
      assert.ok(worst <= 1e-4 * Math.max(scale, 1), `${what}: largest difference ${worst} (scale ${scale})`);
    };
    const step = (net: typeof plain, opt: InstanceType<typeof optim.SGD>) => torch.tidy(() => {
      opt.zeroGrad();
      const d = net.forward(x);
      d.pow(2).sum().backward();
      const grads = net.trainableParameters().map((p) => p.grad!.toFloat32Array());
      opt.step();
      return { d: d.toFloat32Array(), grads };
    });
    plain.train(); last.train();
    const [o1, o2] = [new optim.SGD(plain.trainableParameters(), { lr: 0.01 }), new optim.SGD(last.trainableParameters(), { lr: 0.01 })];
    for (let i = 0; i < 2; i++) {
      const [a, b] = [step(plain, o1), step(last, o2)];
      close(a.d, b.d, `step ${i} descriptors`);
      a.grads.forEach((g, j) => close(g, b.grads[j], `step ${i} gradient ${j}`));
    }
    assert.ok(conv.isContiguous(true), 'still channels-last after optimizer steps');
    // Its state dict (written in the usual order) loads into an NCHW network: the same descriptors.
    torch.manualSeed(9);
    const copy = buildNetwork(spec);
    torch.loadStateDict(copy, last.stateDict(), { source: 'the channels-last network' });
    copy.eval(); last.eval();
    close(torch.tidy(() => last.forward(x).toFloat32Array()), torch.tidy(() => copy.forward(x).toFloat32Array()), 'loaded copy');
    copy.dispose();
    // bf16: the backbone's maps in bf16, the gradients of the (fp32 master) weights in fp32.
    last.train();
    torch.tidy(() => {
      o2.zeroGrad();
      assert.equal(withPrecision('bf16', () => last.features(x)).dtype, 'bfloat16');
      withPrecision('bf16', () => last.forward(x)).sum().backward();
      assert.ok(last.trainableParameters().every((p) => p.dtype === 'float32' && p.grad!.dtype === 'float32'));
      o2.step();
    });
    // The next bf16 forward computes with the stepped weights, not a bf16 copy of the old ones: the
    // same descriptors as a network freshly given those weights.
    torch.manualSeed(11);
    const fresh = buildNetwork(spec);
    fresh.toChannelsLast();
    torch.loadStateDict(fresh, last.stateDict(), { source: 'the stepped network' });
    last.eval(); fresh.eval();
    const [after, expected] = [last, fresh].map((n) => torch.tidy(() => withPrecision('bf16', () => n.forward(x)).toFloat32Array()));
    assert.deepEqual(Array.from(after), Array.from(expected));
    fresh.dispose();
    o1.dispose(); o2.dispose();
  } finally {
    x.dispose();
    plain.dispose();
    last.dispose();
  }
});
