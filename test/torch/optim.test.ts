// SGD and Adam steps against their formulas, worked by hand on a two-element parameter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.ts';
import { optim, Tensor } from '../../src/torch/index.ts';

const close = (got: number[], want: number[], tol = 1e-6): void => {
  got.forEach((g, i) => assert.ok(Math.abs(g - want[i]) < tol, `[${i}] got ${g}, want ${want[i]}`));
};

/** A parameter p and a loss whose gradient is known: L = Σ c·p  ⇒  ∂L/∂p = c. */
function param(values: number[]): Tensor {
  return torch.keep(torch.tensor(values).requiresGrad_(true));
}
function lossStep(p: Tensor, c: number[], opt: optim.Optimizer<object>): void {
  torch.tidy(() => {
    opt.zeroGrad();
    p.mul(torch.tensor(c)).sum().backward();
    opt.step();
  });
}

test('SGD with momentum and weight decay follows torch.optim.SGD', () => {
  const p = param([1, -2]);
  const opt = new optim.SGD([p], { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
  // step 1: d = c + 0.01 p = [0.5+0.01, 0.5-0.02] = [0.51, 0.48]; buf = d; p -= 0.1 d
  lossStep(p, [0.5, 0.5], opt);
  close(p.toNumbers(), [1 - 0.051, -2 - 0.048]);
  // step 2: p = [0.949, -2.048]; d = [0.5+0.00949, 0.5-0.02048] = [0.50949, 0.47952]
  // buf = 0.9*[0.51, 0.48] + d = [0.96849, 0.91152]; p -= 0.1 buf
  lossStep(p, [0.5, 0.5], opt);
  close(p.toNumbers(), [0.949 - 0.096849, -2.048 - 0.091152]);
  opt.dispose();
  p.dispose();
});

test('Adam follows torch.optim.Adam (bias correction, L2 weight decay)', () => {
  const p = param([1, 2]);
  const opt = new optim.Adam([p], { lr: 0.01, weightDecay: 0.1 });
  // step 1: g = c + 0.1 p = [0.3+0.1, -0.2+0.2] = [0.4, 0]
  // m = 0.1 g, v = 0.001 g²; m̂ = g, v̂ = g²  ⇒  p -= 0.01 · g / (|g| + 1e-8)
  lossStep(p, [0.3, -0.2], opt);
  close(p.toNumbers(), [1 - 0.01 * 0.4 / (0.4 + 1e-8), 2]);
  // step 2: p = [0.99, 2]; g = [0.3 + 0.099, -0.2 + 0.2] = [0.399, 0]
  const g1 = 0.4, g2 = 0.399;
  const m = 0.9 * 0.1 * g1 + 0.1 * g2;
  const v = 0.999 * 0.001 * g1 * g1 + 0.001 * g2 * g2;
  const mhat = m / (1 - 0.9 ** 2);
  const denom = Math.sqrt(v) / Math.sqrt(1 - 0.999 ** 2) + 1e-8;
  lossStep(p, [0.3, -0.2], opt);
  close(p.toNumbers(), [0.99 - 0.01 * mhat / denom, 2]);
  opt.dispose();
  p.dispose();
});

test('AdamW decays the weights directly', () => {
  const p = param([1]);
  const opt = new optim.Adam([p], { lr: 0.1, weightDecay: 0.5, decoupled: true });
  lossStep(p, [2], opt); // p = 1·(1 − 0.05) − 0.1·sign(2)
  close(p.toNumbers(), [0.95 - 0.1]);
  opt.dispose();
  p.dispose();
});

test('per-group learning rates apply to their own parameters', () => {
  const a = param([1]);
  const b = param([1]);
  const opt = new optim.SGD([{ params: [a] }, { params: [b], options: { lr: 0.5 } }], { lr: 0.1 });
  lossStep(a, [1], opt);
  torch.tidy(() => b.mul(torch.tensor([1])).sum().backward());
  opt.step();
  close(a.toNumbers(), [0.9 - 0.1]); // a had a grad in both steps (not zeroed in between): 1 − 0.1 − 0.1
  close(b.toNumbers(), [0.5]);
  opt.setLearningRate(0.01, 1);
  assert.equal((opt.groups[1].options as { lr: number }).lr, 0.01);
  opt.dispose();
  a.dispose();
  b.dispose();
});

test('optimizer state round-trips through stateDict and continues identically', () => {
  const run = (resumeAt: number | null): number[] => {
    const p = param([0.5, -1.5]);
    let opt = new optim.Adam([p], { lr: 0.05 });
    for (let s = 0; s < 4; s++) {
      if (s === resumeAt) {
        const saved = opt.stateDict();
        opt.dispose();
        opt = new optim.Adam([p], { lr: 0.05 });
        opt.loadStateDict(JSON.parse(JSON.stringify(saved, (_k, v) => (v instanceof Float32Array ? Array.from(v) : v)), (_k, v) =>
          v && typeof v === 'object' && v.dtype === 'float32' ? { ...v, data: Float32Array.from(v.data) } : v));
      }
      lossStep(p, [1, s], opt);
    }
    const out = p.toNumbers();
    opt.dispose();
    p.dispose();
    return out;
  };
  assert.deepEqual(run(2), run(null));
});
