// The CUDA path, run where a GPU is (scripts/device-check.sh runs this file on a device machine; here it
// skips): the same network on cuda and on the CPU computes the same descriptors, the same training step
// and the same fast-inference extraction, within the tolerance of the GPU's arithmetic (cuDNN may use
// TF32 for convolutions: ~1e-3 relative); bf16 autocast on CUDA computes the backbone in bf16.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.ts';
import { optim, withPrecision, type Tensor } from '../../src/torch/index.ts';
import { buildNetwork, type NetworkConfig } from '../../src/models/network.ts';
import { splitTuples, tripletLoss } from '../../src/train/losses.ts';

// VGL_TEST_DEVICE=cpu runs the same comparisons CPU against CPU: how this file is checked without a GPU.
const DEVICE = (process.env.VGL_TEST_DEVICE ?? 'cuda') as torch.Device;
const skip = DEVICE === 'cpu' || torch.cudaAvailable() ? false : 'no CUDA device (or a libtorch without CUDA)';
const SPEC: NetworkConfig = { backbone: 'resnet18conv4', resnetWidths: [8, 8, 16, 16], aggregation: 'netvlad', netvladClusters: 8 };

/** Two copies of one network (same seed), one moved to cuda. */
function pair() {
  torch.manualSeed(3);
  const cpu = buildNetwork(SPEC);
  torch.manualSeed(3);
  const gpu = buildNetwork(SPEC);
  if (DEVICE !== 'cpu') gpu.to(DEVICE);
  return { cpu, gpu };
}

const host = (t: Tensor) => torch.tidy(() => t.to('cpu').float().toFloat32Array());

function largestRelative(a: Float32Array, b: Float32Array): number {
  let scale = 0, worst = 0;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(a[i]));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst / Math.max(scale, 1e-12);
}

test('cuda: the descriptors of the CPU network, within TF32 rounding', { skip }, () => {
  const { cpu, gpu } = pair();
  try {
    const x = torch.keep(torch.randn([4, 3, 48, 64]));
    cpu.eval(); gpu.eval();
    const a = torch.tidy(() => host(cpu.forward(x)));
    const b = torch.tidy(() => host(gpu.forward(x.to(DEVICE))));
    assert.equal(b.length, a.length);
    assert.ok(largestRelative(a, b) < 5e-3, `largest difference ${largestRelative(a, b)}`);
    x.dispose();
  } finally {
    cpu.dispose(); gpu.dispose();
  }
});

test('cuda: one triplet training step (SGD) gives the CPU step\'s loss and weights', { skip }, () => {
  const { cpu, gpu } = pair();
  try {
    const x = torch.keep(torch.randn([6, 3, 48, 64])); // query, positive, 4 negatives
    const step = (net: typeof cpu, images: Tensor): number => torch.tidy(() => {
      net.train();
      const opt = new optim.SGD(net.trainableParameters(), { lr: 0.1 });
      opt.zeroGrad();
      const { query, positive, negatives } = splitTuples(net.forward(images), 1);
      const loss = tripletLoss(query, positive, negatives, { margin: 0.1 });
      const value = loss.item();
      loss.backward();
      opt.step();
      opt.dispose();
      return value;
    });
    const [la, lb] = [step(cpu, x), torch.tidy(() => step(gpu, x.to(DEVICE)))];
    assert.ok(Math.abs(la - lb) <= 1e-2 * Math.max(1e-3, Math.abs(la)), `loss ${lb} on cuda vs ${la}`);
    for (const [name, t] of cpu.stateDict()) {
      if (!t.dtype.startsWith('float')) continue;
      const u = gpu.stateDict().get(name)!;
      assert.equal(u.device.split(':')[0], DEVICE.split(':')[0], `${name} stays on the device`);
      const d = largestRelative(host(t), host(u));
      assert.ok(d < 1e-2, `${name}: largest difference ${d}`);
    }
    x.dispose();
  } finally {
    cpu.dispose(); gpu.dispose();
  }
});

test('cuda: fast-inference extraction (folded BatchNorm, channels-last) equals the CPU\'s; bf16 autocast runs the backbone in bf16', { skip }, async () => {
  const { cpu, gpu } = pair();
  try {
    const x = torch.keep(torch.randn([4, 3, 48, 64]));
    const a = await cpu.fastInference((forward) => torch.tidy(() => host(forward(x))));
    const b = await gpu.fastInference((forward) => torch.tidy(() => host(forward(x.to(DEVICE)))));
    assert.ok(largestRelative(a, b) < 5e-3, `fp32: largest difference ${largestRelative(a, b)}`);
    const dtype = torch.tidy(() => { gpu.eval(); return withPrecision('bf16', () => gpu.features(x.to(DEVICE)), DEVICE).dtype; });
    assert.equal(dtype, 'bfloat16');
    const c = await gpu.fastInference((forward) => torch.tidy(() => host(forward(x.to(DEVICE)))), { precision: 'bf16' });
    assert.ok(largestRelative(a, c) < 5e-2, `bf16: largest difference ${largestRelative(a, c)}`);
    x.dispose();
  } finally {
    cpu.dispose(); gpu.dispose();
  }
});
