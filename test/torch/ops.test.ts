// Every op case of test/fixtures/ops/ops.json (made by scripts/fixtures/make_op_fixtures.py with
// PyTorch, inputs and results in float64) replayed through vgl in float64: outputs and input gradients
// must match within the float64 rounding bound of each op (test/helpers/parity.ts), exactly where the op
// only moves or selects values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.ts';
import { Tensor, F } from '../../src/torch/index.ts';
import type { DType } from '../../src/torch/dtype.ts';
import { roundingBound } from '../helpers/parity.ts';

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

/**
 * Each op's rounding, for its outputs and for the gradients of sum(output * w): `terms`, the longest sum
 * in it (a convolution's in-channels x kernel area, a reduction's length, the positions a parameter's
 * gradient sums over), with an elementwise function's own roundings counted as terms (exp / log within
 * 1 ulp of exact: 2 terms; sqrt and the arithmetic ops, correctly rounded: 1); `depth`, the reductions in
 * sequence (softmax: a sum, then its backward's sum). 0 terms: the op moves, selects or scales values by
 * a power of two, exact on any CPU, so vgl must equal PyTorch bit for bit.
 */
interface Rounding { terms: number; depth: number }
const EXACT: Rounding = { terms: 0, depth: 0 };
const r = (terms: number, depth = 1): Rounding => ({ terms, depth });
const ROUNDING: Record<string, { out: Rounding; grad: Rounding }> = {
  conv2d_s2_p1: { out: r(27 + 1), grad: r(2 * 4 * 5) }, // 3 channels x 3x3 + bias; dW sums over B x 4x5 outputs
  conv2d_dil2_p2: { out: r(27), grad: r(2 * 7 * 9) },
  conv2d_groups3: { out: r(9), grad: r(2 * 7 * 9) },
  batch_norm_train: { out: r(126 + 4, 2), grad: r(126 + 4, 4) }, // mean and variance over B·H·W = 126, then (x − μ)/σ·w + b
  batch_norm_eval: { out: r(5), grad: r(126 + 5) }, // elementwise; dw, db sum over 126
  linear: { out: r(6 + 1), grad: r(5 + 1) },
  matmul: { out: r(5), grad: r(4) },
  bmm: { out: r(5), grad: r(4) },
  einsum_bij_bjk: { out: r(4), grad: r(5) },
  relu: { out: EXACT, grad: EXACT },
  relu6: { out: EXACT, grad: EXACT }, // x·8 and w·8: powers of two
  sigmoid: { out: r(2 + 2), grad: r(4 + 3) }, // 1 / (1 + exp(−x)); w·σ·(1 − σ)
  softmax_dim1: { out: r(5 + 4), grad: r(5 + 4 + 3, 2) }, // exp(x − max) / Σ over 5
  log_softmax_dim1: { out: r(5 + 5), grad: r(5 + 5 + 3, 2) },
  max_pool2d_3s2p1: { out: EXACT, grad: r(4) }, // an input is the max of up to 2x2 overlapping windows
  avg_pool2d_2: { out: r(4 + 1), grad: r(1) },
  adaptive_avg_pool2d_1: { out: r(63 + 1), grad: r(1) },
  adaptive_max_pool2d_1: { out: EXACT, grad: EXACT },
  pow_3: { out: r(3), grad: r(4) },
  pow_clamped_gem: { out: r(63 + 6, 2), grad: r(63 + 10, 2) }, // cube, mean over 7x9, cube root
  'clamp_-0.3_0.5': { out: EXACT, grad: EXACT },
  sqrt: { out: r(1), grad: r(3) },
  exp: { out: r(2), grad: r(3) },
  log: { out: r(2), grad: r(1) },
  sum_dim1_keep: { out: r(4), grad: EXACT },
  mean_dims02: { out: r(15 + 1), grad: r(1) },
  amax_dim2: { out: EXACT, grad: EXACT },
  max_dim1: { out: EXACT, grad: EXACT },
  min_dim0: { out: EXACT, grad: EXACT },
  norm_p2_dim1: { out: r(4 + 1), grad: r(4 + 3, 2) },
  normalize_dim1: { out: r(4 + 2), grad: r(4 + 5, 2) },
  cat_dim1: { out: EXACT, grad: EXACT },
  stack_dim0: { out: EXACT, grad: EXACT },
  reshape_view: { out: EXACT, grad: EXACT },
  permute_021: { out: EXACT, grad: EXACT },
  slice_step2: { out: EXACT, grad: EXACT },
  index_select_dim0: { out: EXACT, grad: r(2) }, // row 2 selected twice: two gradients added
  gather_dim1: { out: EXACT, grad: r(2) },
  masked_fill: { out: EXACT, grad: EXACT },
  where: { out: EXACT, grad: EXACT },
  topk_3: { out: EXACT, grad: EXACT },
  topk_smallest_2: { out: EXACT, grad: EXACT },
  sort_desc: { out: EXACT, grad: EXACT },
  argmax_dim1: { out: EXACT, grad: EXACT },
  cdist: { out: r(5 + 2), grad: r(6 + 4, 2) }, // √Σ over 5 squares; a's gradient sums over 6 rows of b
  broadcast_add: { out: r(1), grad: r(3 * 4) },
  broadcast_mul: { out: r(1), grad: r(3 * 4 + 1) },
  broadcast_div: { out: r(1), grad: r(3 + 3) },
  sub_alpha: { out: r(1), grad: EXACT },
  interpolate_bilinear: { out: r(4 + 3), grad: r(9 + 3) }, // 4 weighted neighbours (weights computed: a few roundings)
  interpolate_nearest: { out: EXACT, grad: r(4) },
  logsumexp_dim1: { out: r(5 + 5), grad: r(5 + 5, 2) },
  softplus: { out: r(2 + 2 + 1), grad: r(2 + 3) },
  pad_1122: { out: EXACT, grad: EXACT },
};

/**
 * The bound for one case: every term of its sums is a product of at most two factors (an input, a
 * weight, an intermediate of the size of the results), each bounded by L, the largest |value| in the
 * case (at least 1), so a sum of n terms has Σ|terms| ≤ n·L².
 */
function boundOf(c: Case, rounding: Rounding): number {
  let L = 1;
  const encs = [...c.inputs, ...c.outputs, ...(c.weight ? [c.weight] : []), ...(c.grads ?? []).filter((g): g is Enc => g !== null)];
  for (const e of encs) if (e.dtype.startsWith('float')) for (const v of e.data) L = Math.max(L, Math.abs(Number(v)));
  return roundingBound('float64', { depth: rounding.depth, terms: rounding.terms, magnitude: rounding.terms * L * L });
}

/** The largest difference, asserted within `bound` (0: bit for bit). */
function assertClose(got: Tensor, want: Enc, what: string, bound: number): number {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  const g = got.toNumbers();
  let worst = 0;
  want.data.forEach((w, i) => {
    const d = Math.abs(g[i] - Number(w));
    worst = Math.max(worst, d);
    assert.ok(d <= bound, `${what}[${i}]: got ${g[i]}, PyTorch ${w} (difference ${d}, float64 rounding bound ${bound})`);
  });
  return worst;
}

test('the fixture covers every case we replay and vice versa', () => {
  assert.deepEqual(fixture.cases.map((c) => c.name).sort(), Object.keys(cases).sort());
  assert.deepEqual(Object.keys(ROUNDING).sort(), Object.keys(cases).sort());
});

for (const c of fixture.cases) {
  test(`op ${c.name} matches PyTorch (values and gradients)`, () => {
    torch.tidy(() => {
      const inputs = c.inputs.map((e, k) => {
        const t = load(e);
        if (c.grads?.[k]) t.requiresGrad_(true);
        return t;
      });
      const result = cases[c.name](inputs);
      const outs = Array.isArray(result) ? result : [result];
      const rounding = ROUNDING[c.name]!;
      const outBound = boundOf(c, rounding.out);
      const report = [`output ${Math.max(...outs.map((o, k) => assertClose(o, c.outputs[k], `${c.name} output ${k}`, outBound))).toExponential(1)} (bound ${outBound.toExponential(1)})`];
      if (c.weight && c.grads) {
        outs[0].mul(load(c.weight)).sum().backward();
        const gradBound = boundOf(c, rounding.grad);
        let worst = 0;
        c.grads.forEach((want, k) => {
          if (want === null) return;
          const g = inputs[k].grad;
          assert.ok(g !== null, `${c.name}: input ${k} has no gradient`);
          worst = Math.max(worst, assertClose(g, want, `${c.name} grad ${k}`, gradBound));
        });
        report.push(`gradients ${worst.toExponential(1)} (bound ${gradBound.toExponential(1)})`);
      }
      console.log(`# ${c.name}: ${report.join(', ')}`);
    });
  });
}
