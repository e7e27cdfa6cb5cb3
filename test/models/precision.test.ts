// Networks in bf16: under autocast the backbone computes in bf16 and the head in fp32, descriptors are
// fp32 and close to the fp32 ones, weights, BatchNorm statistics and gradients stay fp32 (training
// mode, every backbone family); the fast inference path in bf16 likewise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.ts';
import { buildNetwork, type NetworkConfig } from '../../src/models/network.ts';

/** Smallest cosine similarity between matching rows. */
function minCosine(a: torch.Tensor, b: torch.Tensor): number {
  return torch.tidy(() => a.mul(b).sum(1).div(a.norm(2, 1).mul(b.norm(2, 1))).amin().item());
}

const CONFIGS: NetworkConfig[] = [
  { backbone: 'resnet18conv4', aggregation: 'netvlad', resnetWidths: [8, 8, 16, 16], head: { clusters: 4 } },
  { backbone: 'resnet18conv4', aggregation: 'gem', resnetWidths: [8, 8, 16, 16] },
  { backbone: 'mobilenetv2', aggregation: 'netvlad', head: { clusters: 4 } },
  { backbone: 'vgg16', aggregation: 'gem' },
  { backbone: 'vit', aggregation: 'gem', transformer: { dims: [2, 32, 4] } },
  { backbone: 'cct224', aggregation: 'netvlad', head: { clusters: 4 }, transformer: { dims: [2, 32, 4] } },
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
