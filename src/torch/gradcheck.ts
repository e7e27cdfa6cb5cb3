// Finite-difference gradient checking (like torch.autograd.gradcheck): compares the gradients
// autograd computes with central differences of L = Σ f(x)·w for a fixed random w.
import { Tensor } from './tensor.ts';
import { tensor, rand, noGrad } from './factory.ts';
import { tidy } from './scope.ts';

export interface GradcheckResult {
  maxAbsError: number;
  worst: { input: number; index: number; analytic: number; numeric: number } | null;
}

/** Inputs must be float64. Returns the largest |analytic − numeric| over every input element. */
export function gradcheck(fn: (inputs: Tensor[]) => Tensor, inputs: Tensor[], eps = 1e-6): GradcheckResult {
  return tidy(() => {
    const leaves = inputs.map((x) => x.detach().clone().requiresGrad_(true));
    const out = fn(leaves);
    const w = rand(out.shape, { dtype: 'float64' });
    out.mul(w).sum().backward();
    const analytic = leaves.map((x) => x.grad?.toNumbers() ?? new Array<number>(x.numel).fill(0));

    const loss = (xs: Tensor[]): number => tidy(() => noGrad(() => fn(xs).mul(w).sum().item()));
    let maxAbsError = 0;
    let worst: GradcheckResult['worst'] = null;
    inputs.forEach((x, k) => {
      const base = x.toNumbers();
      for (let i = 0; i < base.length; i++) {
        const at = (delta: number): number => tidy(() => {
          const v = base.slice();
          v[i] += delta;
          const xs = inputs.map((y, j) => (j === k ? tensor(Float64Array.from(v), x.shape) : y));
          return loss(xs);
        });
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        const err = Math.abs(numeric - analytic[k][i]);
        if (err > maxAbsError) {
          maxAbsError = err;
          worst = { input: k, index: i, analytic: analytic[k][i], numeric };
        }
      }
    });
    return { maxAbsError, worst };
  });
}
