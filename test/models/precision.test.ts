// Networks in bf16: under autocast the backbone computes in bf16 and the head in fp32, descriptors are
// fp32 and close to the fp32 ones, weights, BatchNorm statistics and gradients stay fp32 (training
// mode, every backbone family); the fast inference path in bf16 likewise. MobileNetV2's precision policy
// keeps its declared modules in fp32 under autocast, and gradients flow through them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.ts';
import { buildNetwork, type NetworkConfig } from '../../src/models/network.ts';
import { MobileNetV2, InvertedResidual, MOBILENETV2_BF16_BLOCKS } from '../../src/models/mobilenetv2.ts';

/** Smallest cosine similarity between matching rows. */
function minCosine(a: torch.Tensor, b: torch.Tensor): number {
  return torch.tidy(() => a.mul(b).sum(1).div(a.norm(2, 1).mul(b.norm(2, 1))).amin().item());
}

const CONFIGS: NetworkConfig[] = [
  { backbone: 'resnet18conv4', aggregation: 'netvlad', resnetWidths: [8, 8, 16, 16], netvladClusters: 4 },
  { backbone: 'resnet18conv4', aggregation: 'gem', resnetWidths: [8, 8, 16, 16] },
  { backbone: 'mobilenetv2', aggregation: 'netvlad', netvladClusters: 4 },
  { backbone: 'vgg16', aggregation: 'gem' },
  { backbone: 'vit', aggregation: 'gem', transformerDims: [2, 32, 4] },
  { backbone: 'cct224', aggregation: 'netvlad', netvladClusters: 4, transformerDims: [2, 32, 4] },
];

for (const config of CONFIGS) {
  test(`${config.backbone} + ${config.aggregation} in bf16: fp32 descriptors near fp32's, fp32 weights and gradients`, async () => {
    torch.manualSeed(3);
    const net = buildNetwork(config);
    const x = torch.keep(torch.randn([3, 3, 64, 96]));
    net.freezeBackbone('none');
    net.train(); // BatchNorm on batch statistics: bf16 maps, fp32 running statistics
    torch.tidy(() => {
      const want = net.forward(x);
      const got = torch.autocast('bfloat16', () => net.forward(x));
      assert.equal(got.dtype, 'float32', 'the head computes and returns fp32');
      const cos = minCosine(got, want);
      assert.ok(cos > 0.99, `cosine to fp32 ${cos}`);
      got.sum().backward();
    });
    for (const [name, p] of net.namedParameters()) {
      assert.equal(p.dtype, 'float32', `${name} stays fp32`);
      if (p.grad) assert.equal(p.grad.dtype, 'float32', `${name}: fp32 gradient`);
    }
    assert.ok(net.parameters().some((p) => p.grad !== null), 'gradients reached the weights');
    net.eval();
    const [fp32, bf16] = [
      await net.fastInference((forward) => forward(x), { precision: 'fp32' }),
      await net.fastInference((forward) => forward(x), { precision: 'bf16' }),
    ];
    assert.equal(bf16.dtype, 'float32');
    assert.ok(minCosine(bf16, fp32) > 0.99, `fast path: cosine to fp32 ${minCosine(bf16, fp32)}`);
    for (const [name, t] of net.stateDict()) assert.ok(t.dtype === 'float32' || t.dtype === 'int64', `${name}: ${t.dtype} after fastInference`);
    torch.dispose(x, fp32, bf16);
    net.dispose();
  });
}

test("MobileNetV2's precision policy: under autocast the blocks it declares compute their 1x1 convolutions in bf16 (Conv_1), the others and every depthwise convolution output fp32; ResNet and VGG keep none in fp32", async () => {
  torch.manualSeed(4);
  const net = buildNetwork({ backbone: 'mobilenetv2', aggregation: 'gem' });
  const features = (net.backbone as MobileNetV2).features.layers;
  assert.deepEqual(MOBILENETV2_BF16_BLOCKS, [18]);
  const dtypes = new Map<string, string>();
  const watch = (name: string, m: torch.nn.Module) => {
    const forward = m.forward.bind(m) as (x: torch.Tensor) => torch.Tensor;
    Object.defineProperty(m, 'forward', { value: (x: torch.Tensor) => { const y = forward(x); dtypes.set(name, y.dtype); return y; }, configurable: true });
  };
  features.forEach((block, i) => {
    watch(`features.${i}`, block);
    if (block instanceof InvertedResidual) block.conv.layers.forEach((m, j) => watch(`features.${i}.conv.${j}`, m));
  });
  const x = torch.keep(torch.randn([2, 3, 64, 96]));
  for (const mode of ['train', 'eval'] as const) {
    net.train(mode === 'train');
    dtypes.clear();
    torch.tidy(() => { torch.autocast('bfloat16', () => net.forward(x)); });
    const expected = new Map<string, string>();
    features.forEach((block, i) => {
      const bf16 = MOBILENETV2_BF16_BLOCKS.includes(i);
      // A declared residual block would add its bf16 branch to its fp32 input: fp32 out.
      expected.set(`features.${i}`, !bf16 || (block instanceof InvertedResidual && block.useResidual) ? 'float32' : 'bfloat16');
      if (block instanceof InvertedResidual) {
        block.conv.layers.forEach((m, j) => expected.set(`features.${i}.conv.${j}`, !bf16 || m === block.depthwise ? 'float32' : 'bfloat16'));
      }
    });
    assert.deepEqual(Object.fromEntries(dtypes), Object.fromEntries(expected), mode);
  }
  assert.ok(features.filter((_, i) => !MOBILENETV2_BF16_BLOCKS.includes(i)).every((m) => m.keepsFloat32));
  x.dispose();
  net.dispose();
  for (const config of CONFIGS.filter((c) => c.backbone === 'resnet18conv4' || c.backbone === 'vgg16')) {
    const other = buildNetwork(config);
    assert.equal(other.backbone.float32Modules, undefined, `${config.backbone} declares no policy`);
    assert.ok([...other.namedModules()].every(([, m]) => !m.keepsFloat32), `${config.backbone}: every module autocasts`);
    other.dispose();
  }
});

test('MobileNetV2 under autocast: gradients flow through its fp32 blocks to the stem, near the fp32 ones', () => {
  torch.manualSeed(6);
  const net = buildNetwork({ backbone: 'mobilenetv2', aggregation: 'gem' });
  net.freezeBackbone('none');
  net.train();
  const features = (net.backbone as MobileNetV2).features.layers;
  const watched = {
    stem: (features[0] as torch.nn.Sequential).layers[0] as torch.nn.Conv2d, // fp32, below every block
    'features.12 project (fp32)': (features[12] as InvertedResidual).conv.layers[2] as torch.nn.Conv2d,
    'Conv_1 (bf16)': (features[18] as torch.nn.Sequential).layers[0] as torch.nn.Conv2d,
  };
  const x = torch.keep(torch.randn([3, 3, 64, 96]));
  const direction = torch.keep(torch.randn([3, net.dim])); // descriptors are unit length: a fixed projection, not their norm
  const grads = (precision: torch.Precision) => {
    net.zeroGrad();
    torch.tidy(() => { torch.withPrecision(precision, () => net.forward(x)).mul(direction).sum().backward(); });
    return Object.fromEntries(Object.entries(watched).map(([k, conv]) => [k, torch.keep(conv.weight.grad!.clone())]));
  };
  const want = grads('fp32');
  const got = grads('bf16');
  for (const name of Object.keys(watched)) {
    const [g, w] = [got[name], want[name]];
    assert.equal(g.dtype, 'float32', name);
    const cos = torch.tidy(() => g.mul(w).sum().div(g.norm().mul(w.norm())).item());
    // Random weights under batch statistics, 3 images: measured 0.9999+ (ImageNet weights 0.999); all
    // in bf16, without the policy, 0.38-0.78.
    assert.ok(cos > 0.99, `${name}: gradient's cosine to fp32 ${cos}`);
  }
  torch.dispose(x, direction, ...Object.values(want), ...Object.values(got));
  net.dispose();
});
