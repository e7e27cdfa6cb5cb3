// PCA and its float64 symmetric eigen-solver, on hand-made data whose principal directions and
// variances are known exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.ts';
import { Tensor } from '../../src/torch/index.ts';
import { Pca, symmetricEigen } from '../../src/models/pca.ts';
import { Rng } from '../../src/data/random.ts';

const close = (a: number, b: number, tol: number, what: string): void =>
  assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${what}: ${a} vs ${b}`);

function checkEigen(m: number[], n: number, what: string): void {
  const { values, vectors } = symmetricEigen(m, n);
  for (let j = 1; j < n; j++) assert.ok(values[j] <= values[j - 1], `${what}: sorted`);
  let trace = 0;
  for (let i = 0; i < n; i++) trace += m[i * n + i];
  close(values.reduce((s, v) => s + v, 0), trace, 1e-10, `${what}: trace`);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < n; i++) {
      let av = 0;
      for (let k = 0; k < n; k++) av += m[i * n + k] * vectors[k * n + j];
      assert.ok(Math.abs(av - values[j] * vectors[i * n + j]) < 1e-9, `${what}: A v = λ v, pair ${j} row ${i}`);
    }
    for (let l = 0; l <= j; l++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += vectors[i * n + j] * vectors[i * n + l];
      assert.ok(Math.abs(dot - (l === j ? 1 : 0)) < 1e-10, `${what}: orthonormal ${j},${l}`);
    }
  }
}

test('symmetricEigen: hand-worked cases and random symmetric matrices', () => {
  const two = symmetricEigen([2, 1, 1, 2], 2);
  assert.deepEqual(two.values.map((v) => +v.toFixed(12)), [3, 1]);
  close(Math.abs(two.vectors[0]), Math.SQRT1_2, 1e-12, 'first vector');
  close(two.vectors[0] * two.vectors[2], 0.5, 1e-12, 'first vector is (1, 1)/√2');
  assert.deepEqual(symmetricEigen([5], 1).values, [5]);
  assert.deepEqual(symmetricEigen([1, 0, 0, 0, -2, 0, 0, 0, 7], 3).values, [7, 1, -2]);
  checkEigen([4, 1, -2, 2, 1, 2, 0, 1, -2, 0, 3, -2, 2, 1, -2, -1], 4, '4x4');
  const rng = new Rng(5);
  for (const n of [3, 10, 31]) {
    const m = new Array<number>(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) m[i * n + j] = m[j * n + i] = rng.normal();
    checkEigen(m, n, `random ${n}x${n}`);
  }
  // repeated eigenvalues (identity plus a rank-one term) still give an orthonormal basis
  const n = 6;
  const u = [1, 2, 0, -1, 3, 1];
  checkEigen(Array.from({ length: n * n }, (_, k) => (k % (n + 1) === 0 ? 2 : 0) + u[Math.floor(k / n)] * u[k % n]), n, 'I + uuᵀ');
  assert.throws(() => symmetricEigen([1, 2, 3], 2), /3 values for a 2x2/);
});

/**
 * Points ±a_i·u_i (each pair `repeat` times) around `offset`: mean = offset and covariance exactly
 * Σ_i 2·repeat·a_i² u_i u_iᵀ / (N − 1), so the principal directions are the u_i.
 */
function crossData(u: number[][], a: number[], offset: number[], repeat: number): Tensor {
  const rows: number[][] = [];
  for (let r = 0; r < repeat; r++) {
    u.forEach((ui, i) => {
      for (const s of [1, -1]) rows.push(offset.map((o, d) => o + s * a[i] * ui[d]));
    });
  }
  return torch.tensor(rows, undefined, { dtype: 'float64' });
}
const HADAMARD = [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]].map((r) => r.map((v) => v / 2));
const AMPLITUDES = [3, 2, 1, 0.5];

function checkFit(pca: Pca, u: number[][], n: number, repeat: number, offset: number[], what: string): void {
  const comps = pca.components.toNumbers();
  const [d, k] = pca.components.shape;
  for (let j = 0; j < k; j++) {
    let dot = 0;
    for (let r = 0; r < d; r++) dot += comps[r * k + j] * u[j][r];
    close(Math.abs(dot), 1, 1e-6, `${what}: component ${j} vs the known direction (±)`);
  }
  const want = AMPLITUDES.map((a) => (2 * repeat * a * a) / (n - 1));
  pca.explainedVariance.toNumbers().forEach((v, j) => close(v, want[j], 1e-5, `${what}: variance ${j}`));
  close(pca.totalVariance, want.reduce((s, v) => s + v, 0), 1e-6, `${what}: total variance`);
  pca.mean.toNumbers().forEach((m, i) => close(m, offset[i], 1e-6, `${what}: mean ${i}`));
}

test('PCA (covariance route): known directions ±sign, variances, mean', () => {
  const offset = [1, -2, 3, 0.5];
  const x = crossData(HADAMARD, AMPLITUDES, offset, 5);
  const pca = Pca.fit(x, { dim: 3 });
  checkFit(pca, HADAMARD, 40, 5, offset, 'covariance');
  const ratio = pca.explainedVarianceRatio();
  close(ratio[0], 9 / (9 + 4 + 1 + 0.25), 1e-6, 'ratio');
  pca.dispose();
  x.dispose();
});

test('PCA (Gram route, N < D) and randomized subspace iteration find the same components', () => {
  // the four Hadamard directions placed on coordinates 3..6 of a 20-dim space, plus one rotated pair
  const d = 20;
  const u = HADAMARD.map((h) => Array.from({ length: d }, (_, i) => (i >= 3 && i < 7 ? h[i - 3] : 0)));
  const offset = Array.from({ length: d }, (_, i) => i / 10);
  const small = crossData(u, AMPLITUDES, offset, 1); // 8 points in 20 dims
  const gram = Pca.fit(small, { dim: 4, method: 'exact' });
  checkFit(gram, u, 8, 1, offset, 'gram');
  const big = crossData(u, AMPLITUDES, offset, 4); // 32 points
  const randomized = Pca.fit(big, { dim: 3, method: 'randomized', seed: 3 });
  checkFit(randomized, u, 32, 4, offset, 'randomized');
  torch.dispose(small, big);
  gram.dispose();
  randomized.dispose();
});

test('leading(k) of a PCA is the PCA of dimension k of the same data (components nest), whitened as asked', () => {
  const d = 20;
  const u = HADAMARD.map((h) => Array.from({ length: d }, (_, i) => (i >= 3 && i < 7 ? h[i - 3] : 0)));
  const offset = Array.from({ length: d }, (_, i) => i / 10);
  const x = crossData(u, AMPLITUDES, offset, 2);
  const four = Pca.fit(x, { dim: 4 });
  const two = Pca.fit(x, { dim: 2, whiten: true });
  const lead = four.leading(2, true);
  assert.equal(lead.whiten, true);
  assert.deepEqual(lead.components.shape, [d, 2]);
  lead.components.toNumbers().forEach((v, i) => close(v, two.components.toNumbers()[i]!, 1e-6, `components[${i}]`));
  lead.explainedVariance.toNumbers().forEach((v, i) => close(v, two.explainedVariance.toNumbers()[i]!, 1e-6, `variance[${i}]`));
  torch.tidy(() => close(lead.transform(x.float()).sub(two.transform(x.float())).abs().sum().item(), 0, 1e-5, 'the same descriptors'));
  four.dispose();
  lead.dispose();
  assert.ok(two.components.toNumbers().length > 0, 'the original survives disposing a leading copy');
  two.dispose();
  x.dispose();
  assert.throws(() => Pca.fit(crossData(u, AMPLITUDES, offset, 1), { dim: 3 }).leading(4), /leading dim must be in 1\.\.3, got 4/);
});

test("PCA sign convention: each component's largest-magnitude entry is positive", () => {
  const u = [[0.6, -0.8], [0.8, 0.6]];
  const x = crossData(u, [2, 1], [0, 0], 1);
  const pca = Pca.fit(x, { dim: 2 });
  pca.components.toNumbers().forEach((v, i) => close(v, [-0.6, 0.8, 0.8, 0.6][i], 1e-6, `components[${i}]`));
  pca.dispose();
  x.dispose();
});

test('PCA projection of the fit data has decorrelated columns (variances = explained, or 1 when whitened)', () => {
  const rng = new Rng(8);
  const n = 400;
  const d = 10;
  const mix = Array.from({ length: d * d }, () => rng.normal());
  const z = torch.tensor(Float64Array.from({ length: n * d }, () => rng.normal()), [n, d], { dtype: 'float64' });
  const x = z.mm(torch.tensor(Float64Array.from(mix), [d, d], { dtype: 'float64' })).float();
  for (const whiten of [false, true]) {
    const pca = Pca.fit(x, { dim: 5, whiten });
    const cov = torch.tidy(() => {
      const y = pca.project(x).to('float64');
      const yc = y.sub(y.mean(0));
      return yc.t().mm(yc).div(n - 1).toNumbers();
    });
    const variances = pca.explainedVariance.toNumbers();
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 5; j++) {
        const want = i !== j ? 0 : whiten ? 1 : variances[i];
        assert.ok(Math.abs(cov[i * 5 + j] - want) < 1e-4 * (1 + variances[0]), `whiten=${whiten} cov[${i},${j}] = ${cov[i * 5 + j]}, want ${want}`);
      }
    }
    const norms = torch.tidy(() => pca.transform(x).norm(2, 1).toNumbers());
    for (const v of norms) close(v, 1, 1e-5, 'transform gives unit rows');
    pca.dispose();
  }
  torch.dispose(z, x);
});

test('PCA state round trip as plain tensors, and clear errors', () => {
  const x = crossData(HADAMARD, AMPLITUDES, [0, 0, 0, 0], 2);
  const pca = Pca.fit(x, { dim: 2, whiten: true });
  const state = pca.stateDict();
  assert.deepEqual([...state.keys()], ['mean', 'components', 'explained_variance', 'total_variance', 'whiten']);
  const back = Pca.fromStateDict(state);
  assert.equal(back.whiten, true);
  assert.equal(back.totalVariance, pca.totalVariance);
  torch.tidy(() => {
    const q = x.float();
    assert.ok(back.transform(q).allclose(pca.transform(q), 1e-6, 1e-7));
  });
  state.delete('components');
  assert.throws(() => Pca.fromStateDict(state, 'pca.pth'), /pca\.pth: missing "components"/);
  assert.throws(() => Pca.fit(x, { dim: 5 }), /dim must be an integer in 1\.\.4/);
  assert.throws(() => pca.transform(torch.rand([2, 3])), /expected descriptors \[M, 4\], got \[2,3\]/);
  torch.dispose(x);
  pca.dispose();
  back.dispose();
});
