// Every op case of test/fixtures/ops/ops.json (made by scripts/fixtures/make_op_fixtures.py with
// PyTorch) replayed through vgl in float64: outputs and input gradients must match.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.ts';
import { Tensor, F } from '../../src/torch/index.ts';
import type { DType } from '../../src/torch/dtype.ts';

interface Enc { shape: number[]; dtype: string; data: (number | boolean)[] }
interface Case { name: string; inputs: Enc[]; outputs: Enc[]; weight?: Enc; grads?: (Enc | null)[] }
const fixture = JSON.parse(readFileSync(new URL('../fixtures/ops/ops.json', import.meta.url), 'utf8')) as { cases: Case[] };

const dtypeOf = (s: string): DType => (s === 'bool' ? 'bool' : s === 'int64' ? 'int64' : 'float64');
const load = (e: Enc): Tensor => torch.tensor(e.data.map(Number), e.shape, { dtype: dtypeOf(e.dtype) });

type Fn = (x: Tensor[]) => Tensor | [Tensor, Tensor];
const cases: Record<string, Fn> = {
  conv2d_s2_p1: ([x, w, b]) => F.conv2d(x, w, b, { stride: 2, padding: 1 }),
  conv2d_dil2_p2: ([x, w]) => F.conv2d(x, w, null, { padding: 2, dilation: 2 }),
  conv2d_groups3: ([x, w]) => F.conv2d(x, w, null, { padding: 1, groups: 3 }),
  batch_norm_train: ([x, w, b]) => F.batchNorm(x, torch.zeros([3], { dtype: 'float64' }), torch.ones([3], { dtype: 'float64' }), { weight: w, bias: b, training: true }),
  batch_norm_eval: ([x, w, b, m, v]) => F.batchNorm(x, m, v, { weight: w, bias: b, training: false }),
  linear: ([x, w, b]) => F.linear(x, w, b),
  matmul: ([a, b]) => a.matmul(b),
  bmm: ([a, b]) => a.bmm(b),
  einsum_bij_bjk: ([a, b]) => torch.einsum('bij,bjk->bik', a, b),
  relu: ([x]) => x.relu(),
  relu6: ([x]) => x.mul(8).relu6(),
  sigmoid: ([x]) => x.sigmoid(),
  softmax_dim1: ([x]) => x.softmax(1),
  log_softmax_dim1: ([x]) => x.logSoftmax(1),
  max_pool2d_3s2p1: ([x]) => F.maxPool2d(x, 3, { stride: 2, padding: 1 }),
  avg_pool2d_2: ([x]) => F.avgPool2d(x, 2),
  adaptive_avg_pool2d_1: ([x]) => F.adaptiveAvgPool2d(x, 1),
  adaptive_max_pool2d_1: ([x]) => F.adaptiveMaxPool2d(x, 1),
  pow_3: ([x]) => x.pow(3),
  pow_clamped_gem: ([x]) => x.clamp(1e-6).pow(3).mean([-2, -1]).pow(1 / 3),
  'clamp_-0.3_0.5': ([x]) => x.clamp(-0.3, 0.5),
  sqrt: ([x]) => x.sqrt(),
  exp: ([x]) => x.exp(),
  log: ([x]) => x.log(),
  sum_dim1_keep: ([x]) => x.sum(1, true),
  mean_dims02: ([x]) => x.mean([0, 2]),
  amax_dim2: ([x]) => x.amax(2),
  max_dim1: ([x]) => x.max(1),
  min_dim0: ([x]) => x.min(0),
  norm_p2_dim1: ([x]) => x.norm(2, 1),
  normalize_dim1: ([x]) => F.normalize(x, 2, 1),
  cat_dim1: ([a, b]) => torch.cat([a, b], 1),
  stack_dim0: ([a, b]) => torch.stack([a, b], 0),
  reshape_view: ([x]) => x.reshape(4, 6).transpose(0, 1).contiguous().view(3, 8),
  permute_021: ([x]) => x.permute(0, 2, 1),
  slice_step2: ([x]) => x.slice(1, 1, 5, 2),
  index_select_dim0: ([x, i]) => x.indexSelect(0, i),
  gather_dim1: ([x, i]) => x.gather(1, i),
  masked_fill: ([x, m]) => x.maskedFill(m, -2.5),
  where: ([m, a, b]) => torch.where(m, a, b),
  topk_3: ([x]) => x.topk(3, 1),
  topk_smallest_2: ([x]) => x.topk(2, 1, false),
  sort_desc: ([x]) => x.sort(1, true),
  argmax_dim1: ([x]) => x.argmax(1),
  cdist: ([a, b]) => F.cdist(a, b),
  broadcast_add: ([a, b]) => a.add(b),
  broadcast_mul: ([a, b]) => a.mul(b),
  broadcast_div: ([a, b]) => a.div(b),
  sub_alpha: ([a, b]) => a.sub(b, 2),
  interpolate_bilinear: ([x]) => F.interpolate(x, [5, 4], 'bilinear', false),
  interpolate_nearest: ([x]) => F.interpolate(x, [6, 5], 'nearest'),
  logsumexp_dim1: ([x]) => x.logsumexp(1),
  softplus: ([x]) => x.softplus(),
  pad_1122: ([x]) => F.pad(x, [1, 1, 2, 2], 0.5),
};

function assertClose(got: Tensor, want: Enc, what: string, tol = 1e-9): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  const g = got.toNumbers();
  want.data.forEach((w, i) => {
    const d = Math.abs(g[i] - Number(w));
    assert.ok(d <= tol * (1 + Math.abs(Number(w))), `${what}[${i}]: got ${g[i]}, PyTorch ${w}`);
  });
}

test('the fixture covers every case we replay and vice versa', () => {
  assert.deepEqual(fixture.cases.map((c) => c.name).sort(), Object.keys(cases).sort());
});

for (const c of fixture.cases) {
  test(`op ${c.name} matches PyTorch (values and gradients)`, () => {
    torch.tidy(() => {
      const inputs = c.inputs.map((e, k) => {
        const t = load(e);
        if (c.grads?.[k]) t.requiresGrad_(true);
        return t;
      });
      const r = cases[c.name](inputs);
      const outs = Array.isArray(r) ? r : [r];
      outs.forEach((o, k) => assertClose(o, c.outputs[k], `${c.name} output ${k}`));
      if (c.weight && c.grads) {
        outs[0].mul(load(c.weight)).sum().backward();
        c.grads.forEach((want, k) => {
          if (want === null) return;
          const g = inputs[k].grad;
          assert.ok(g !== null, `${c.name}: input ${k} has no gradient`);
          assertClose(g, want, `${c.name} grad ${k}`);
        });
      }
    });
  });
}
