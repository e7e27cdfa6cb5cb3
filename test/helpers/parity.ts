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
import type { Tensor } from '../../src/torch/index.ts';
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
