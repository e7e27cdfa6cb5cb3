// Training losses: hand-worked 2-D examples, PyTorch reference values (scripts/fixtures/make_loss_fixtures.py)
// and gradients where hinges are active or not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.ts';
import type { Tensor } from '../../src/torch/index.ts';
import { tripletLoss, sareIndLoss, sareJointLoss, solarLoss, secondOrderSimilarity, computeLoss, featureInvarianceLoss, splitTuples, type LossName } from '../../src/train/losses.ts';
import { roundingBound, type Computation, type ParityDtype } from '../helpers/parity.ts';

const f64 = { dtype: 'float64' as const };
const EPS = 1e-6;
const close = (got: number, want: number, tol: number, what: string): void =>
  assert.ok(Math.abs(got - want) <= tol, `${what}: got ${got}, want ${want} (|diff| ${Math.abs(got - want)} > ${tol})`);
const closeAll = (got: number[], want: number[], tol: number, what: string): void => {
  assert.equal(got.length, want.length, `${what}: length`);
  got.forEach((g, i) => close(g, want[i], tol, `${what}[${i}]`));
};

/**
 * Tolerances from rounding bounds (test/helpers/parity.ts). A loss is a squared (or plain) distance per
 * pair, a D-term sum; then the hinges or the softplus / logsumexp over K, summed over B·K and divided
 * (3 reductions; the gradients go back through them: 6). Elementwise roundings on the way (eps, the
 * differences, exp / log within 1 ulp, sqrt) are counted as 8 terms more. Every squared distance's
 * terms add up to at most d2 (4 between unit vectors); SOLAR adds λ times the second-order term
 * √(Σ_k gap²), whose error is at most √K times a gap's (≤ d2).
 */
const lossComputation = (o: { d: number; k: number; bk: number; sosWeight?: number; d2?: number }): Computation => ({
  depth: 3, terms: Math.max(o.d, o.k, o.bk) + 8, magnitude: (o.d2 ?? 4) * (1 + (o.sosWeight ?? 0) * Math.sqrt(o.k)),
});
const gradComputation = (c: Computation): Computation => ({ ...c, depth: 2 * c.depth });
/**
 * The hand-worked 2-D examples (D = 2, K = 2): vgl in float64 and the JS-number formula are each within
 * the float64 rounding bound of exact, so within twice it of each other (~1e-14: a CPU with or without
 * FMA may round a D = 2 norm differently, so a bound of one ulp or two would not hold everywhere).
 */
const hand = (o: { sosWeight?: number; d2?: number } = {}): number =>
  2 * roundingBound('float64', lossComputation({ d: 2, k: 2, bk: 2, ...o }));
/** SOS alone: gaps of squared distances (≤ 4 here), squared (≤ 16) and summed over K = 2, then the root. */
const HAND_SOS = 2 * roundingBound('float64', { depth: 3, terms: 2 + 8, magnitude: 2 * 16 });

// One query q = (1, 0) with positive p = (0, 1) and two negatives:
//   n0 = (-1, 0): ‖q−n0‖ = 2, hinge √2 − 2 + 0.1 < 0 (inactive)
//   n1 = (0, -1): ‖q−n1‖ = √2, hinge 0.1 (active)
// With torch's eps: ‖q − p + eps‖ = √((1+e)² + (−1+e)²) = √(2 + 2e²) and ‖q − n1 + eps‖ = √2·(1 + e).
const Q = [[1, 0]];
const P = [[0, 1]];
const N = [[[-1, 0], [0, -1]]];
const dPos = Math.sqrt(2 + 2 * EPS * EPS);
const dN1 = Math.SQRT2 * (1 + EPS);

function inputs(grad = true): [Tensor, Tensor, Tensor] {
  const q = torch.tensor(Q, undefined, f64);
  const p = torch.tensor(P, undefined, f64);
  const n = torch.tensor(N, undefined, f64);
  if (grad) for (const t of [q, p, n]) t.requiresGrad_();
  return [q, p, n];
}

test('triplet: hand-worked 2-D example (one active, one inactive hinge; eps as in torch)', () => {
  torch.tidy(() => {
    const [q, p, n] = inputs();
    const loss = tripletLoss(q, p, n);
    assert.deepEqual(loss.shape, []);
    const active = dPos - dN1 + 0.1;
    close(loss.item(), active / 2, hand(), 'loss (sum / (B·K) = active / 2)');
    loss.backward();
    // d/dq of the active term: (q−p+e)/‖q−p+e‖ − (q−n1+e)/‖q−n1+e‖, over B·K = 2.
    const gq = [((1 + EPS) / dPos - (1 + EPS) / dN1) / 2, ((-1 + EPS) / dPos - (1 + EPS) / dN1) / 2];
    closeAll(q.grad!.toNumbers(), gq, hand(), 'dL/dq');
    closeAll(p.grad!.toNumbers(), [-(1 + EPS) / dPos / 2, -(-1 + EPS) / dPos / 2], hand(), 'dL/dp');
    // The inactive negative n0 gets exactly zero gradient; the active one gets +(q−n1+e)/‖·‖ / 2.
    closeAll(n.grad!.toNumbers(), [0, 0, (1 + EPS) / dN1 / 2, (1 + EPS) / dN1 / 2], hand(), 'dL/dn');
    assert.equal(n.grad!.toNumbers()[0], 0);
    assert.equal(n.grad!.toNumbers()[1], 0);
  });
});

test('SOLAR: the second-order term by hand, added to the triplet terms with weight λ', () => {
  torch.tidy(() => {
    const [q, p, n] = inputs();
    // ‖q−n0‖² = 4, ‖p−n0‖² = 2; ‖q−n1‖² = 2, ‖p−n1‖² = 4: gaps +2 and −2, SOS = √8.
    close(secondOrderSimilarity(q, p, n).item(), Math.sqrt(8), HAND_SOS, 'SOS');
    const active = dPos - dN1 + 0.1;
    close(solarLoss(q, p, n).item(), (active + 5 * Math.sqrt(8)) / 2, hand() + 5 * HAND_SOS, 'λ = 5 (default), sum / (B·K)');
    close(solarLoss(q, p, n, { sosWeight: 0 }).item(), tripletLoss(q, p, n).item(), hand(), 'λ = 0 is the triplet loss');
    // The positive standing where the query stands has the same neighbourhood: SOS ≈ 0, finite gradient.
    const same = secondOrderSimilarity(q, q.detach().clone().requiresGrad_(), n);
    // Identical neighbourhoods: the gaps are exactly 0, leaving only the root's guard, √1e-12.
    assert.ok(same.item() <= Math.sqrt(1e-12), `SOS ${same.item()}`);
    same.sum().backward();
    assert.ok(q.grad!.toNumbers().every(Number.isFinite));
    assert.throws(() => solarLoss(q, p, n, { sosWeight: -1 }), /sosWeight must be a number >= 0, got -1/);
  });
});

test('triplet: every hinge inactive gives zero loss and all-zero gradients', () => {
  torch.tidy(() => {
    const [q, p, n] = inputs();
    const loss = tripletLoss(q, p, n, { margin: -0.5 });
    assert.equal(loss.item(), 0);
    loss.backward();
    for (const t of [q, p, n]) assert.ok(t.grad!.toNumbers().every((g) => g === 0));
  });
});

test('triplet: margin, reduction and eps options', () => {
  torch.tidy(() => {
    const [q, p, n] = inputs(false);
    // margin 1: both hinges active. n0: √(2+2e²) − ‖(2+e, e)‖ + 1.
    const dN0 = Math.hypot(2 + EPS, EPS);
    const both = (dPos - dN0 + 1) + (dPos - dN1 + 1);
    close(tripletLoss(q, p, n, { margin: 1 }).item(), both / 2, hand(), 'per-triplet');
    close(tripletLoss(q, p, n, { margin: 1, reduction: 'per-query' }).item(), both, hand(), 'per-query');
    assert.deepEqual(tripletLoss(q, p, n, { margin: 1, reduction: 'none' }).shape, [1]);
    close(tripletLoss(q, p, n, { eps: 0 }).item(), 0.05, hand(), 'eps 0: exactly margin / 2');
    assert.throws(() => tripletLoss(q, p, n, { margin: NaN }), /margin must be a finite number/);
  });
});

const perQuery = { reduction: 'per-query' } as const;

test('SARE-ind and SARE-joint: hand-worked 2-D example and gradients', () => {
  torch.tidy(() => {
    // Squared distances: d_p = 2, d_n0 = 4, d_n1 = 2 → gaps x = [−2, 0].
    const [q, p, n] = inputs();
    const ind = sareIndLoss(q, p, n, perQuery);
    close(ind.item(), Math.log1p(Math.exp(-2)) + Math.log(2), hand(), 'SARE-ind');
    ind.backward();
    // dL/dx_k = σ(x_k); dx_k/dq = 2(q−p) − 2(q−n_k) = 2(n_k − p).
    const s0 = 1 / (1 + Math.exp(2)), s1 = 0.5;
    const gq = [2 * (s0 * (-1 - 0) + s1 * (0 - 0)), 2 * (s0 * (0 - 1) + s1 * (-1 - 1))];
    closeAll(q.grad!.toNumbers(), gq, hand(), 'SARE-ind dL/dq');

    const [q2, p2, n2] = inputs();
    const joint = sareJointLoss(q2, p2, n2, perQuery);
    close(joint.item(), Math.log(1 + Math.exp(-2) + 1), hand(), 'SARE-joint');
    joint.backward();
    // dL/dx_k = exp(x_k) / (1 + Σ exp(x_j)).
    const z = 2 + Math.exp(-2);
    const w0 = Math.exp(-2) / z, w1 = 1 / z;
    closeAll(q2.grad!.toNumbers(), [2 * (w0 * -1), 2 * (w0 * -1 + w1 * -2)], hand(), 'SARE-joint dL/dq');
  });
});

test('SARE: reductions over a batch of two queries', () => {
  torch.tidy(() => {
    // Query 2 = query 1 rotated by 90°: same distances, same loss.
    const rot = (v: number[]): number[] => [-v[1], v[0]];
    const q = torch.tensor([Q[0], rot(Q[0])], undefined, f64);
    const p = torch.tensor([P[0], rot(P[0])], undefined, f64);
    const n = torch.tensor([N[0], N[0].map(rot)], undefined, f64);
    const one = Math.log1p(Math.exp(-2)) + Math.log(2);
    close(sareIndLoss(q, p, n, perQuery).item(), one, hand(), 'per-query (mean over batch)');
    close(sareIndLoss(q, p, n, { reduction: 'per-triplet' }).item(), (2 * one) / 4, hand(), 'per-triplet (sum / B·K)');
    // The default is the benchmark's: sum over the batch / (B·K), for SARE-joint too.
    close(sareIndLoss(q, p, n).item(), (2 * one) / 4, hand(), 'default = per-triplet');
    const joint = Math.log(1 + Math.exp(-2) + 1);
    close(sareJointLoss(q, p, n).item(), (2 * joint) / 4, hand(), 'SARE-joint default = per-triplet');
    closeAll(sareIndLoss(q, p, n, { reduction: 'none' }).toNumbers(), [one, one], hand(), 'none');
  });
});

test('SARE stays finite for extreme gaps (no overflow in exp)', () => {
  torch.tidy(() => {
    // Non-unit vectors far apart make d_p − d_n ≈ ±1e6.
    const q = torch.tensor([[0, 0]], undefined, f64);
    const p = torch.tensor([[1000, 0]], undefined, f64);
    const n = torch.tensor([[[1, 0], [0, 2000]]], undefined, f64);
    const gapNear = 1e6 - 1; // the other gap, 1e6 − 4e6, contributes exp(−3e6) = 0
    // Squared distances up to 2000² = 4e6: rounding relative to those.
    const bound = hand({ d2: 4e6 });
    close(sareIndLoss(q, p, n, perQuery).item(), gapNear, bound, 'SARE-ind ≈ softplus(1e6 − 1) + 0');
    close(sareJointLoss(q, p, n, perQuery).item(), gapNear, bound, 'SARE-joint ≈ log(1 + e^(1e6−1) + e^(−3e6))');
  });
});

interface Encoded { shape: number[]; data: number[] }
interface FixtureCase {
  label: string;
  loss: LossName;
  margin: number;
  sosWeight: number;
  query: Encoded;
  positive: Encoded;
  negatives: Encoded;
  value: number;
  grads: Encoded[];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/losses/losses.json', import.meta.url), 'utf8')) as { cases: FixtureCase[] };

/** The fixture cases' computation: unit vectors (squared distances ≤ 4), D components, K negatives per query. */
const fixtureComputation = (c: FixtureCase): Computation => {
  const [b, k, d] = c.negatives.shape as [number, number, number];
  return lossComputation({ d, k, bk: b * k, sosWeight: c.loss === 'solar' ? c.sosWeight : 0 });
};

/**
 * vgl's SOS is √(S + 1e-12) (a guard for the root's gradient at S = 0), SOLAR's √S: a deliberate
 * difference, not rounding, of λ/(B·K)·Σ_b (√(S_b + g) − √S_b) on the value and, as |∇SOS| ≤ 4√K for
 * unit vectors, at most λ/(B·K)·4√K·max_b (1 − √(S_b / (S_b + g))) on a gradient.
 */
function sosGuard(c: FixtureCase): { value: number; grad: number } {
  if (c.loss !== 'solar') return { value: 0, grad: 0 };
  const [b, k] = c.negatives.shape as [number, number];
  const sos = torch.tidy(() => secondOrderSimilarity(...([c.query, c.positive, c.negatives].map((e) => torch.tensor(Float64Array.from(e.data), e.shape)) as [Tensor, Tensor, Tensor])).toNumbers());
  const g = 1e-12;
  const scale = c.sosWeight / (b * k);
  const roots = sos.map((v) => Math.sqrt(Math.max(0, v * v - g)));
  return {
    value: scale * sos.reduce((t, v, i) => t + v - roots[i]!, 0),
    grad: scale * 4 * Math.sqrt(k) * Math.max(...sos.map((v, i) => 1 - roots[i]! / v)),
  };
}

for (const c of fixture.cases) {
  test(`PyTorch reference: ${c.label}`, () => {
    torch.tidy(() => {
      const ins = [c.query, c.positive, c.negatives].map((e) => torch.tensor(Float64Array.from(e.data), e.shape).requiresGrad_());
      const loss = computeLoss(c.loss, ins[0], ins[1], ins[2], { margin: c.margin, sosWeight: c.sosWeight, reduction: 'per-triplet' });
      const guard = sosGuard(c);
      const bound = roundingBound('float64', fixtureComputation(c)) + guard.value;
      close(loss.item(), c.value, bound, 'value');
      loss.backward();
      const gradBound = roundingBound('float64', gradComputation(fixtureComputation(c))) + guard.grad;
      let worst = 0;
      ins.forEach((t, i) => {
        const g = t.grad!.toNumbers();
        closeAll(g, c.grads[i].data, gradBound, `grad of input ${i}`);
        g.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - c.grads[i].data[j])); });
      });
      console.log(`# ${c.label}: value ${Math.abs(loss.item() - c.value).toExponential(1)} (bound ${bound.toExponential(1)}), gradients ${worst.toExponential(1)} (bound ${gradBound.toExponential(1)})`);
    });
  });
}

test('PyTorch reference holds in float32 too (within the float32 rounding bound)', () => {
  torch.tidy(() => {
    const report: string[] = [];
    for (const c of fixture.cases) {
      const ins = [c.query, c.positive, c.negatives].map((e) => torch.tensor(Float32Array.from(e.data), e.shape));
      const loss = computeLoss(c.loss, ins[0], ins[1], ins[2], { margin: c.margin, sosWeight: c.sosWeight, reduction: 'per-triplet' });
      // The float64 inputs rounded to float32: one rounding more per term.
      const computation = fixtureComputation(c);
      const bound = roundingBound('float32', { ...computation, terms: computation.terms + 1 }) + sosGuard(c).value;
      close(loss.item(), c.value, bound, c.label);
      report.push(`${(Math.abs(loss.item() - c.value) / bound).toExponential(1)}`);
    }
    console.log(`# float32 losses: difference / float32 rounding bound per case ${report.join(' ')}`);
  });
});

test('shape errors name the offending input', () => {
  torch.tidy(() => {
    const [q, p, n] = inputs(false);
    assert.throws(() => tripletLoss(q, p, q), /negative descriptors must be \[B, K, D\] = \[1, K, 2\], got \[1, 2\]/);
    assert.throws(() => sareIndLoss(q, torch.zeros([2, 2], f64), n), /positive descriptors must be \[B, D\]/);
    assert.throws(() => sareJointLoss(n, p, n), /query descriptors must be \[B, D\]/);
    assert.throws(() => computeLoss('contrastive' as LossName, q, p, n), /unknown loss 'contrastive'/);
  });
});

test('splitTuples: tuple layout [q, p, n1..nK] per query, gradients reach the features', () => {
  torch.tidy(() => {
    // B = 2 tuples of 1 + 1 + 2 rows, D = 2; row r holds [r, −r].
    const features = torch.tensor(Float64Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? i / 2 : -(i - 1) / 2)), [8, 2]).requiresGrad_();
    const { query, positive, negatives } = splitTuples(features, 2);
    assert.deepEqual(query.toNumbers(), [0, -0, 4, -4]);
    assert.deepEqual(positive.toNumbers(), [1, -1, 5, -5]);
    assert.deepEqual(negatives.shape, [2, 2, 2]);
    assert.deepEqual(negatives.toNumbers(), [2, -2, 3, -3, 6, -6, 7, -7]);
    query.sum().backward();
    assert.deepEqual(features.grad!.toNumbers(), [1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]);
    assert.throws(() => splitTuples(features, 3), /8 rows do not split into 3 tuples/);
  });
});

test('losses release their intermediate tensors', () => {
  const before = torch.liveTensors();
  torch.tidy(() => {
    const [q, p, n] = inputs();
    for (const name of ['triplet', 'sare_ind', 'sare_joint', 'solar'] as const) computeLoss(name, q, p, n).backward();
  });
  assert.equal(torch.liveTensors(), before);
});

test('featureInvarianceLoss: squared difference over squared teacher, both averaged (hand-computed), gradient to the student only', () => {
  torch.tidy(() => {
    // teacher [1, 2, 1, 2] = [1, 2, 3, 4] → mean square 7.5; student = teacher + [1, 0, -1, 2] → mean square diff 1.5
    const teacher = torch.tensor([1, 2, 3, 4], [1, 2, 1, 2], f64);
    const student = torch.tensor([2, 2, 2, 6], [1, 2, 1, 2], f64).requiresGrad_(true);
    const l = featureInvarianceLoss(student, teacher);
    // Two means of 4 terms (squares ≤ 16, summing to ≤ 30) and a division, against one JS division.
    const bound = 2 * roundingBound('float64', { depth: 3, terms: 4 + 4, magnitude: 30 });
    close(l.item(), 1.5 / 7.5, bound, 'value');
    l.backward();
    // d/ds mean((s - t)^2) / 7.5 = 2 (s - t) / (4 · 7.5)
    closeAll(student.grad!.toNumbers(), [1, 0, -1, 2].map((d) => (2 * d) / 30), bound, 'gradient');
    close(featureInvarianceLoss(teacher, teacher).item(), 0, 0, 'zero when the student matches');
    assert.throws(() => featureInvarianceLoss(student, torch.zeros([1, 2, 2, 1], f64)), /student \[1, 2, 1, 2\] and teacher \[1, 2, 2, 1\]/);
  });
});

test('losses compute in fp32 from bf16 descriptors or feature maps, also under autocast, with fp32 gradients', () => {
  torch.manualSeed(5);
  torch.tidy(() => {
    const q = torch.randn([2, 8]).to('bfloat16').requiresGrad_(true);
    const p = torch.randn([2, 8]).to('bfloat16');
    const n = torch.randn([2, 3, 8]).to('bfloat16');
    // The same float32 computation twice on the same values (bf16 → fp32 is exact): each within the
    // float32 rounding bound of exact, so within twice it of each other. These vectors are not unit:
    // every squared distance's terms add up to at most d2 = 4·max‖x‖².
    const d2 = 4 * torch.cat([q.float(), p.float(), n.float().flatten(0, 1)]).pow(2).sum(1).amax().item();
    for (const name of ['triplet', 'sare_ind', 'sare_joint', 'solar'] as const) {
      const want = computeLoss(name, q.float(), p.float(), n.float()).item();
      const l = torch.autocast('bfloat16', () => computeLoss(name, q, p, n));
      assert.equal(l.dtype, 'float32', name);
      const bound = 2 * roundingBound('float32', lossComputation({ d: 8, k: 3, bk: 6, d2, sosWeight: name === 'solar' ? 5 : 0 }));
      close(l.item(), want, bound, `${name} on bf16 inputs`);
    }
    const maps = torch.randn([2, 4, 3, 3]);
    const inv = torch.autocast('bfloat16', () => featureInvarianceLoss(maps.to('bfloat16'), maps.mul(1.1).to('bfloat16')));
    assert.equal(inv.dtype, 'float32');
    computeLoss('triplet', q, p, n).backward();
    assert.equal(q.grad?.dtype, 'bfloat16', 'the gradient flows back through the cast to the input dtype');
  });
});
