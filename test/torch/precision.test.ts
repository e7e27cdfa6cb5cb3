// bfloat16 tensors end to end, the autocast scope, and which precision 'auto' picks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.ts';
import { F, nn, Tensor } from '../../src/torch/index.ts';
import { bf16Support, resolvePrecision } from '../../src/torch/precision.ts';

/** bfloat16 keeps 8 significant bits: one rounding is off by at most 2⁻⁸ relative. */
const BF16_EPS = 2 ** -8;

/** Largest |a − b| relative to the largest |b|: results compared as a whole, as accumulation spreads the rounding. */
function relativeError(a: Tensor, b: Tensor): number {
  return torch.tidy(() => a.float().sub(b.float()).abs().amax().item() / Math.max(b.float().abs().amax().item(), 1e-30));
}

test('bfloat16 tensors: created from numbers or raw bits, converted both ways, read back as numbers', () => {
  torch.tidy(() => {
    const t = torch.tensor([1.5, -2.25, 3.1, 0.1], undefined, { dtype: 'bfloat16' });
    assert.equal(t.dtype, 'bfloat16');
    // 3.1 rounds to 3.09375 and 0.1 to 0.10009765625 (8 significant bits); the others are exact.
    assert.deepEqual(t.toNumbers(), [1.5, -2.25, 3.09375, 0.10009765625]);
    const bits = t.data();
    assert.ok(bits instanceof Uint16Array, 'raw 16-bit patterns');
    assert.equal(bits[0], 0x3fc0, 'bf16(1.5) is the top half of float32 1.5 (0x3fc00000)');
    const fromBits = torch.tensor(Uint16Array.from(bits), [4], { dtype: 'bfloat16' });
    assert.ok(fromBits.equal(t));
    assert.equal(torch.zeros([2, 3], { dtype: 'bfloat16' }).dtype, 'bfloat16');
    assert.equal(torch.randn([4], { dtype: 'bfloat16' }).dtype, 'bfloat16');
    const x = torch.randn([1000]);
    const back = x.to('bfloat16').float();
    assert.equal(back.dtype, 'float32');
    assert.ok(x.sub(back).abs().sub(x.abs().mul(BF16_EPS)).amax().item() <= 0, 'each value within 2^-8 relative');
    const host = x.to('bfloat16').toHost();
    assert.deepEqual([host.dtype, host.shape], ['bfloat16', [1000]]);
    assert.ok(torch.fromHost(host).float().equal(back));
  });
});

test('bf16 ops the models use agree with fp32 on the same (bf16-rounded) inputs within bf16 tolerance', () => {
  torch.manualSeed(1);
  torch.tidy(() => {
    // Inputs rounded to bf16 first: the comparison measures the op's own rounding, not the inputs'.
    const r = (shape: number[]) => torch.randn(shape).to('bfloat16').float();
    const x = r([2, 8, 12, 10]), w = r([16, 8, 3, 3]), b = r([16]);
    const dw = r([8, 1, 3, 3]);
    const a = r([6, 40]), m = r([40, 7]), ba = r([3, 5, 40]), bb = r([3, 40, 4]);
    const lw = r([7, 40]), lb = r([7]);
    const gamma = r([8]), beta = r([8]), mean = r([8]).mul(0.1), variance = r([8]).abs().add(0.5);
    // Where the CPU has bf16 units, oneDNN sums a convolution's products in fp32. Elsewhere (AVX2 only)
    // libtorch's NCHW bf16 convolution is its im2col + GEMM fallback, which rounds partial sums to bf16:
    // the error of such a sum of n products grows like sqrt(n) ulps (n = 8 x 3 x 3; measured 6 ulps on an
    // AVX2 AMD EPYC, PyTorch's own bf16 conv2d there runs the same kernel).
    const convUlps = torch.bf16Support('cpu', {}).available ? 4 : Math.sqrt(8 * 3 * 3);
    const cases: [string, (t: (v: Tensor) => Tensor) => Tensor, number][] = [
      ['conv2d', (t) => F.conv2d(t(x), t(w), t(b), { padding: 1 }), convUlps],
      ['conv2d stride 2 channels-last', (t) => F.conv2d(t(x).contiguous(true), t(w), t(b), { stride: 2, padding: 1 }), 4],
      ['depthwise conv2d', (t) => F.conv2d(t(x), t(dw), null, { padding: 1, groups: 8 }), 4],
      ['batch_norm eval', (t) => F.batchNorm(t(x), mean, variance, { weight: gamma, bias: beta }), 4],
      ['batch_norm train (fp32 statistics)', (t) => F.batchNorm(t(x), mean.clone(), variance.clone(), { weight: gamma, bias: beta, training: true }), 4],
      ['relu', (t) => t(x).relu(), 1],
      ['relu6', (t) => t(x).mul(4).relu6(), 1],
      ['max_pool2d', (t) => F.maxPool2d(t(x), 3, { stride: 2, padding: 1 }), 1],
      ['avg_pool2d', (t) => F.avgPool2d(t(x), 2), 2],
      ['adaptive_avg_pool2d', (t) => F.adaptiveAvgPool2d(t(x), 1), 2],
      // Not here: bilinear upsampling, off by ~4% in bf16 in libtorch 1.13 (as in its PyTorch); the models
      // use it only in fp32 (CRN's mask in the fp32 head, position embeddings resampled as fp32 parameters).
      ['add', (t) => t(x).add(t(x).mul(0.5)), 2],
      ['mul', (t) => t(x).mul(t(x)), 2],
      ['sum', (t) => t(x).sum([2, 3]), 4],
      ['mean', (t) => t(x).mean([2, 3]), 4],
      ['norm', (t) => t(x).norm(2, 1), 4],
      ['softmax', (t) => t(x).softmax(1), 4],
      ['matmul', (t) => t(a).matmul(t(m)), 4],
      ['mm', (t) => t(a).mm(t(m)), 4],
      ['bmm', (t) => t(ba).bmm(t(bb)), 4],
      ['linear', (t) => F.linear(t(a), t(lw), t(lb)), 4],
      ['layer_norm', (t) => F.layerNorm(t(a), [40], t(a.narrow(0, 0, 1).reshape(40)), t(a.narrow(0, 1, 1).reshape(40))), 4],
      ['gelu', (t) => F.gelu(t(a)), 2],
      ['sigmoid', (t) => t(a).sigmoid(), 2],
      ['cat', (t) => torch.cat([t(a), t(a)], 0), 1],
    ];
    for (const [name, op, ulps] of cases) {
      const want = op((v) => v);
      const got = op((v) => v.to('bfloat16'));
      assert.equal(got.dtype, 'bfloat16', `${name}: computes in bf16`);
      const err = relativeError(got, want);
      assert.ok(err <= ulps * BF16_EPS, `${name}: relative error ${err.toExponential(2)} > ${ulps.toFixed(1)} x 2^-8`);
    }
  });
});

test('autocast: convolutions and matrix products compute in bf16, fp32 weights stay fp32 and get fp32 gradients; the scope restores the state', () => {
  torch.manualSeed(2);
  torch.tidy(() => {
    const conv = new nn.Conv2d(3, 4, 3, { padding: 1 });
    const lin = new nn.Linear(16, 5);
    const x = torch.randn([2, 3, 4, 4]);
    assert.deepEqual(torch.autocastState(), { enabled: false, dtype: 'bfloat16' });
    const [y, z, island] = torch.autocast('bfloat16', () => {
      assert.equal(torch.autocastState().enabled, true);
      const y = conv.forward(x);
      const z = lin.forward(y.flatten(1).float().narrow(1, 0, 16));
      // An fp32 island inside: autocast off, inputs cast to fp32.
      const island = torch.inFloat32(() => F.conv2d(x.to("bfloat16").float(), conv.weight));
      assert.equal(torch.autocastState().enabled, true, 'inFloat32 restores autocast');
      return [y, z, island];
    });
    assert.deepEqual([y.dtype, z.dtype, island.dtype], ['bfloat16', 'bfloat16', 'float32']);
    assert.equal(torch.autocastState().enabled, false, 'restored after the scope');
    for (const p of [...conv.parameters(), ...lin.parameters()]) assert.equal(p.dtype, 'float32', 'parameters stay fp32');
    z.float().sum().backward();
    for (const p of [...conv.parameters(), ...lin.parameters()]) assert.equal(p.grad?.dtype, 'float32', 'fp32 gradients');
    // The bf16 result is the fp32 one up to bf16 rounding.
    assert.ok(relativeError(y, conv.forward(x)) < 4 * BF16_EPS);
    // An exception leaves the state as it was.
    assert.throws(() => torch.autocast('bfloat16', () => { throw new Error('boom'); }), /boom/);
    assert.equal(torch.autocastState().enabled, false);
    assert.throws(() => torch.autocast('float16', () => 0), /the CPU computes in bfloat16 only/);
  });
});

test('autocast: weights updated between scopes are seen (the cast cache ends with the outermost scope)', () => {
  torch.tidy(() => {
    const w = torch.ones([1, 1, 1, 1]).requiresGrad_(true);
    const x = torch.ones([1, 1, 2, 2]);
    const run = () => torch.autocast('bfloat16', () => torch.autocast('bfloat16', () => F.conv2d(x, w)).sum().item());
    assert.equal(run(), 4);
    torch.noGrad(() => w.mul_(3));
    assert.equal(run(), 12, 'the second scope casts the updated weight');
  });
});

test('keepFloat32: under autocast the kept module computes in fp32 on its widened input (the fp32 result), its neighbours in bf16; gradients reach its weights; its folded weights stay fp32', () => {
  torch.manualSeed(5);
  const first = new nn.Conv2d(3, 8, 3, { padding: 1 });
  const kept = new nn.Sequential(new nn.Conv2d(8, 8, 1), new nn.BatchNorm2d(8), new nn.ReLU6());
  const last = new nn.Conv2d(8, 4, 1);
  const net = new nn.Sequential(first, kept, last);
  assert.equal(nn.keepFloat32(kept), kept);
  assert.deepEqual(net.layers.map((m) => m.keepsFloat32), [false, true, false]);
  assert.ok(kept.layers.every((m) => m.keepsFloat32), 'the modules inside are marked too');
  const x = torch.keep(torch.randn([2, 3, 6, 6]));
  torch.tidy(() => {
    const [a, b, c] = torch.autocast('bfloat16', () => {
      const a = first.forward(x);
      const b = kept.forward(a);
      return [a, b, last.forward(b)];
    });
    assert.deepEqual([a.dtype, b.dtype, c.dtype], ['bfloat16', 'float32', 'bfloat16']);
    assert.ok(b.equal(kept.forward(a.float())), "its output is its fp32 forward on the widened input");
    assert.equal(torch.autocastState().enabled, false);
    // Outside autocast nothing changes: fp32 throughout.
    assert.equal(kept.forward(first.forward(x)).dtype, 'float32');
  });
  torch.tidy(() => {
    const gradOf = (run: () => torch.Tensor) => {
      net.zeroGrad();
      run().float().pow(2).sum().backward();
      return (kept.layers[0] as nn.Conv2d).weight.grad!.clone();
    };
    const want = gradOf(() => net.forward(x));
    const got = gradOf(() => torch.autocast('bfloat16', () => net.forward(x)));
    assert.equal(got.dtype, 'float32');
    assert.ok(got.abs().amax().item() > 0, 'a gradient reached the kept module');
    assert.ok(relativeError(got, want) < 16 * BF16_EPS, `its gradient is the fp32 one up to the neighbours' bf16 (${relativeError(got, want)})`);
    net.zeroGrad();
  });
  net.eval();
  const unfold = nn.foldForInference([[first, null], [kept.layers[0] as nn.Conv2d, kept.layers[1] as nn.BatchNorm2d], [last, null]], true, 'bfloat16');
  assert.deepEqual([first, kept.layers[0] as nn.Conv2d, last].map((conv) => conv.inference?.weight.dtype), ['bfloat16', 'float32', 'bfloat16']);
  unfold();
  x.dispose();
  net.dispose();
});

test('Module.to("bfloat16") casts floating parameters and buffers, not integer counters', () => {
  torch.tidy(() => {
    const bn = new nn.BatchNorm2d(4);
    bn.to('bfloat16');
    const dtypes = Object.fromEntries([...bn.stateDict()].map(([k, t]) => [k, t.dtype]));
    assert.deepEqual(dtypes, { weight: 'bfloat16', bias: 'bfloat16', running_mean: 'bfloat16', running_var: 'bfloat16', num_batches_tracked: 'int64' });
    bn.dispose();
  });
});

test("precision 'auto': bf16 where the CPU reports AMX-BF16 or AVX512-BF16, fp32 elsewhere or under VGL_BF16=0; every choice says why", () => {
  const amx = () => new Set(['avx512f', 'amx_bf16', 'amx_tile']);
  const avx = () => new Set(['avx512f', 'avx512_bf16']);
  const none = () => new Set(['avx2', 'avx512f']);
  assert.deepEqual(resolvePrecision('auto', { device: 'cpu', env: {}, cpuFlags: amx }), { precision: 'bf16', requested: 'auto', reason: 'auto: the CPU reports amx_bf16' });
  assert.deepEqual(resolvePrecision('auto', { device: 'cpu', env: {}, cpuFlags: avx }), { precision: 'bf16', requested: 'auto', reason: 'auto: the CPU reports avx512_bf16' });
  assert.deepEqual(resolvePrecision('auto', { device: 'cpu', env: {}, cpuFlags: none }), { precision: 'fp32', requested: 'auto', reason: 'auto: the CPU reports neither amx_bf16 nor avx512_bf16' });
  assert.deepEqual(resolvePrecision('auto', { device: 'cpu', env: { VGL_BF16: '0' }, cpuFlags: amx }), { precision: 'fp32', requested: 'auto', reason: 'auto: VGL_BF16=0 treats bf16 as unavailable' });
  assert.equal(resolvePrecision('auto', { device: 'cpu', env: { VGL_BF16: '1' }, cpuFlags: none }).precision, 'bf16');
  assert.equal(resolvePrecision('auto', { device: 'cpu', env: {}, cpuFlags: () => null }).precision, 'fp32', 'no /proc/cpuinfo');
  // Training: the same candidates (a training run then times bf16 against fp32, see choosePrecision).
  assert.deepEqual(resolvePrecision('auto', { device: 'cpu', env: {}, cpuFlags: amx, workload: 'train' }), { precision: 'bf16', requested: 'auto', reason: 'auto: the CPU reports amx_bf16' });
  assert.deepEqual(resolvePrecision('auto', { device: 'cpu', env: {}, cpuFlags: avx, workload: 'train' }), { precision: 'bf16', requested: 'auto', reason: 'auto: the CPU reports avx512_bf16' });
  assert.equal(resolvePrecision('auto', { device: 'cpu', env: {}, cpuFlags: none, workload: 'train' }).precision, 'fp32');
  assert.equal(resolvePrecision('auto', { device: 'cpu', env: { VGL_BF16: '1' }, cpuFlags: avx, workload: 'train' }).precision, 'bf16', 'VGL_BF16=1 says bf16 pays here');
  assert.equal(resolvePrecision('bf16', { device: 'cpu', env: {}, cpuFlags: avx, workload: 'train' }).precision, 'bf16', 'asked for, bf16 trains as asked');
  // Asked for explicitly, each runs as asked; bf16 without units warns that it is emulated.
  assert.equal(resolvePrecision('fp32', { device: 'cpu', env: {}, cpuFlags: amx }).precision, 'fp32');
  const forced = resolvePrecision('bf16', { device: 'cpu', env: { VGL_BF16: '0' }, cpuFlags: amx });
  assert.equal(forced.precision, 'bf16');
  assert.match(forced.reason, /emulated there and likely slower/);
  assert.throws(() => bf16Support('cpu', { VGL_BF16: 'yes' }), /VGL_BF16 "yes": expected 0 .* or 1/);
  assert.throws(() => resolvePrecision('half' as 'fp32'), /precision "half": expected fp32 \| bf16 \| auto/);
  // This machine: the CPU flags decide (the brief's machines have AMX-BF16 or AVX512-BF16), and VGL_BF16=0 overrides them.
  assert.equal(resolvePrecision('auto', { device: 'cpu', env: { VGL_BF16: '0' } }).precision, 'fp32');
});
