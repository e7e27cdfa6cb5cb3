// Gradients of the ops training relies on, checked against central finite differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.ts';
import { F, nn, Tensor } from '../../src/torch/index.ts';
import { gradcheck } from '../../src/torch/gradcheck.ts';

const f64 = { dtype: 'float64' as const };
const uniform = (shape: number[], lo = -1, hi = 1): Tensor => torch.rand(shape, f64).mul(hi - lo).add(lo);

function check(name: string, fn: (x: Tensor[]) => Tensor, inputs: () => Tensor[], tol = 1e-6): void {
  test(`gradcheck: ${name}`, () => {
    torch.manualSeed(7);
    torch.tidy(() => {
      const r = gradcheck(fn, inputs());
      assert.ok(r.maxAbsError < tol, `${name}: max |analytic - numeric| = ${r.maxAbsError} at ${JSON.stringify(r.worst)}`);
    });
  });
}

check('conv2d stride 2 padding 1 (input, weight, bias)',
  ([x, w, b]) => F.conv2d(x, w, b, { stride: 2, padding: 1 }),
  () => [uniform([2, 3, 6, 5]), uniform([4, 3, 3, 3]), uniform([4])]);
check('conv2d stride 1 padding 2 dilation 2',
  ([x, w]) => F.conv2d(x, w, null, { padding: 2, dilation: 2 }),
  () => [uniform([1, 2, 5, 5]), uniform([3, 2, 3, 3])]);
check('batch_norm (training statistics)',
  ([x, w, b]) => F.batchNorm(x, null, null, { weight: w, bias: b, training: true }),
  () => [uniform([3, 2, 3, 3]), uniform([2]), uniform([2])]);
check('batch_norm (eval, running statistics)',
  ([x, w, b]) => torch.tidy(() => F.batchNorm(x, torch.tensor([0.1, -0.2], [2], f64), torch.tensor([0.5, 2], [2], f64), { weight: w, bias: b })),
  () => [uniform([2, 2, 3, 3]), uniform([2]), uniform([2])]);
check('pow with a tensor exponent, clamp',
  ([x, p]) => x.clamp(1e-6).pow(p),
  () => [uniform([3, 4], 0.2, 2), uniform([1], 1.5, 3.5)]);
check('clamp (both bounds)', ([x]) => x.clamp(-0.5, 0.5), () => [uniform([4, 5])]);
check('softmax over dim 1', ([x]) => x.softmax(1), () => [uniform([3, 5], -2, 2)]);
check('normalize (L2 over channels)', ([x]) => F.normalize(x, 2, 1), () => [uniform([2, 4, 3])]);
check('GeM pooling composite', ([x, p]) => F.adaptiveAvgPool2d(x.clamp(1e-6).pow(p.reshape(1, 1, 1, 1)), 1).pow(p.reciprocal().reshape(1, 1, 1, 1)),
  () => [uniform([2, 3, 4, 4], 0.1, 1), torch.tensor([3], [1], f64)]);

test('gradcheck: a small composite network (conv, BN, ReLU, pool, linear, normalize)', () => {
  torch.manualSeed(3);
  torch.tidy(() => {
    const conv = new nn.Conv2d(2, 3, 3, { padding: 1 });
    const lin = new nn.Linear(3, 4);
    const params = [conv.weight, conv.bias!, lin.weight, lin.bias!].map((p) => p.to('float64').detach());
    const net = ([x, cw, cb, lw, lb]: Tensor[]): Tensor => {
      const h = F.batchNorm(F.conv2d(x, cw, cb, { padding: 1 }), null, null, { training: true }).relu();
      return F.normalize(F.linear(F.adaptiveAvgPool2d(h, 1).flatten(1), lw, lb), 2, 1);
    };
    const r = gradcheck(net, [uniform([3, 2, 4, 4]), ...params]);
    assert.ok(r.maxAbsError < 1e-6, `max error ${r.maxAbsError} at ${JSON.stringify(r.worst)}`);
    conv.dispose();
    lin.dispose();
  });
});

test('gradcheck detects a wrong gradient (the checker can fail)', () => {
  torch.tidy(() => {
    // x·detach(x): autograd sees only one factor (gradient x), finite differences see 2x.
    const r = gradcheck(([x]) => x.mul(x.detach()), [uniform([3])]);
    assert.ok(r.maxAbsError > 1e-3, `expected a mismatch, got ${r.maxAbsError}`);
  });
});
