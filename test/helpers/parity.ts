// Tolerances for parity with PyTorch fixtures, derived from the computation instead of read off one
// machine. A floating-point sum of n terms is exact up to γ_n = n·u / (1 − n·u) times the sum of the
// terms' magnitudes, in any order of summation, with or without fused multiply-adds (Higham, Accuracy
// and Stability of Numerical Algorithms, 2nd ed., §3.1, §3.5). That bound holds for whatever kernel
// libtorch picks on this CPU (SIMD width, blocking, oneDNN's choice), which is why a tolerance built
// from it holds on every x86 CPU, where a tolerance read off one machine's difference does not.
//
// Two uses: (1) in float64 (u = 2^-53) the bound is ~1e-12 for the small networks of the fixtures,
// orders of magnitude below the bugs a parity test exists for (a LayerNorm eps of 1e-5 instead of
// timm's 1e-6 moves a tiny ViT's tokens by 8e-5), so parity is checked in float64 against float64 fixtures; (2) in
// float32 (u = 2^-24) the same bound is ~1e-3: a float32 run compared with those fixtures checks the
// path users run, within what float32 itself allows, but cannot see that bug.
import assert from 'node:assert/strict';
import { tidy, type Tensor, type nn } from '../../src/torch/index.ts';
import type { HostTensor } from '../../src/torch/dtype.ts';

/** Unit roundoff: half the distance from 1 to the next float. */
export const UNIT_ROUNDOFF = { float64: 2 ** -53, float32: 2 ** -24 } as const;
export type ParityDtype = keyof typeof UNIT_ROUNDOFF;

/** γ_n = n·u / (1 − n·u): relative error bound of an n-term sum or dot product. */
export function gamma(n: number, dtype: ParityDtype): number {
  const nu = n * UNIT_ROUNDOFF[dtype];
  if (nu >= 1) throw new Error(`gamma: ${n} terms exceed what ${dtype} can bound (n·u = ${nu})`);
  return nu / (1 - nu);
}

/** What a rounding bound needs to know of a computation. */
export interface Computation {
  /** Reductions on the longest path from input to output (each matrix product, convolution, normalisation, softmax, pooling). */
  depth: number;
  /** Most terms in one reduction (a dot product's length: input channels x kernel area, a token count, a LayerNorm width). */
  terms: number;
  /**
   * Largest sum of |terms| of a reduction along the way, relative to which errors are bounded (taken from
   * the float64 reference's largest |value| times `headroom`).
   */
  magnitude: number;
  /**
   * How much one layer may amplify an error it receives (its Lipschitz constant); errors then add up as
   * Σ_k gain^k over the depth. Default 1, errors adding up layer by layer without compounding: the
   * fixtures' networks are normalised (LayerNorm, BatchNorm, L2) with weights of scale 1/√fan-in, and
   * the differences each test prints stay far below the bound (float64: ~1e-15 against ~1e-12).
   */
  gain?: number;
}

/** Worst-case absolute rounding error of the output: γ_terms · magnitude · Σ_{k<depth} gain^k. */
export function roundingBound(dtype: ParityDtype, c: Computation): number {
  const gain = c.gain ?? 1;
  let amplification = 0;
  for (let k = 0; k < c.depth; k++) amplification += gain ** k;
  return gamma(c.terms, dtype) * c.magnitude * amplification;
}

/** Largest |a − b| between a tensor and an expected host tensor of the same shape (in float64). */
export function maxAbsDiff(got: Tensor, want: HostTensor): number {
  assert.deepEqual(got.shape, want.shape);
  const g = got.toNumbers();
  const w = want.data as ArrayLike<number>;
  let worst = 0;
  for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(g[i]! - w[i]!));
  return worst;
}

/** Largest |value| of a host tensor (at least 1: a bound relative to tiny outputs would be no bound). */
export function largestMagnitude(...ts: HostTensor[]): number {
  let m = 1;
  for (const t of ts) for (const v of Array.from(t.data as ArrayLike<number>)) m = Math.max(m, Math.abs(v));
  return m;
}

/** Largest |a − b| between two vgl tensors of the same shape (in float64). */
export function maxAbsDiffBetween(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  const x = a.toNumbers();
  const y = b.toNumbers();
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  return worst;
}

/** Fixture numbers (float64 values from JSON or a decoded buffer) as a float64 host tensor. */
export function float64Host(shape: number[], data: ArrayLike<number>): HostTensor {
  return { dtype: 'float64', shape, data: Float64Array.from(data) };
}

/**
 * One output in both precisions against a float64 reference: `run(dtype)` computes it with the model and
 * input cast to dtype; the largest difference must lie within that dtype's rounding bound of
 * `computation(magnitude)`, magnitude the reference's largest |value| (at least 1). Returns a line
 * "what float64 d (bound b), float32 d (bound b)" for the test to print.
 */
export function checkParity(what: string, run: (dtype: ParityDtype) => Tensor, want: HostTensor,
  computation: (magnitude: number) => Computation, dtypes: readonly ParityDtype[] = ['float64', 'float32']): string {
  const magnitude = largestMagnitude(want);
  const report: string[] = [];
  for (const dtype of dtypes) {
    const d = tidy(() => maxAbsDiff(run(dtype), want));
    const bound = roundingBound(dtype, computation(magnitude));
    assert.ok(d <= bound, `${what} in ${dtype}: max abs difference ${d} exceeds the ${dtype} rounding bound ${bound}`);
    report.push(`${dtype} ${d.toExponential(1)} (bound ${bound.toExponential(1)})`);
  }
  return `${what} ${report.join(', ')}`;
}

/**
 * Bound on the error of a sum of n values computed in dtype, each value within `each` of exact and the
 * values' |sum| (Σ|v|) `absSum`: the values' errors add up (n·each), and the n-term sum rounds by at most
 * γ_n·Σ|v| in any order.
 */
export function sumBound(dtype: ParityDtype, n: number, each: number, absSum: number): number {
  return n * each + gamma(n, dtype) * absSum;
}

/**
 * Bound on |‖v‖ − 1| for a vector v of `terms` components L2-normalised in dtype and its norm measured
 * in dtype: each is a sum of `terms` squares (relative error γ_terms, halved by the square root) plus a
 * square root and a division, so |‖v‖ − 1| ≤ γ_terms + 3u ≤ 2·γ_terms (terms ≥ 3).
 */
export function unitNormBound(dtype: ParityDtype, terms: number): number {
  return roundingBound(dtype, { depth: 2, terms: Math.max(terms, 3), magnitude: 1 });
}

/**
 * Injects the bug a parity test exists for: every `kind` module in `net` (checked to have the eps the
 * reference uses, `expected`) gets eps `injected`. Returns how many were patched.
 */
export function injectEps(net: nn.Module, kind: abstract new (...args: never[]) => { eps: number }, expected: number, injected: number, what: string): number {
  let patched = 0;
  for (const [, m] of net.namedModules()) {
    if (m instanceof kind) {
      assert.equal((m as { eps: number }).eps, expected, what);
      Object.defineProperty(m, 'eps', { value: injected });
      patched++;
    }
  }
  return patched;
}
