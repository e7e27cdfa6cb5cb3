// PCA of global descriptors, fitted on database descriptors after training (dimension reduction and
// optional whitening). Large products run on the engine (BLAS); the engine has no eigen-solver, so the
// small symmetric eigenproblems are solved here in float64 (Householder tridiagonalisation + implicit
// QL), on the smaller side of the data:
//  - 'exact': the covariance [D, D] when D ≤ N, else the Gram matrix [N, N] (same non-zero spectrum,
//    components recovered as Xcᵀu/√(λ(N−1))). Cost O(min(N, D)³) in JS: ~10 s at 1,000.
//  - 'randomized': subspace iteration (Halko, Martinsson & Tropp 2011) on a block of dim + 10 vectors;
//    engine matmuls O(N·D·k) plus JS eigenproblems of size k. For 16k-dim NetVLAD descriptors.
// A native `eigh` (torch::linalg_eigh) would make both exact and fast; until then this is the way.
import { tidy, noGrad, fromHost, tensor, F, type Tensor, type HostTensor } from '../torch/index.ts';
import { Rng } from '../data/random.ts';

export interface PcaOptions {
  /** Output dimension d (≤ min(N − 1, D)). */
  dim: number;
  /** Divide each projected coordinate by its standard deviation (false). */
  whiten?: boolean;
  /** 'auto' (default): exact when min(N, D) ≤ exactLimit, else randomized. */
  method?: 'auto' | 'exact' | 'randomized';
  exactLimit?: number;
  /** Randomized method: power iterations (4), oversampling (10), seed (0). */
  powerIterations?: number;
  oversample?: number;
  seed?: number;
}

export class Pca {
  /**
   * mean [D]; components [D, d] (columns = principal directions, by decreasing variance, sign chosen so
   * that each column's largest-magnitude entry is positive); explainedVariance [d] (unbiased).
   */
  constructor(
    readonly mean: Tensor,
    readonly components: Tensor,
    readonly explainedVariance: Tensor,
    readonly totalVariance: number,
    readonly whiten: boolean,
  ) {}

  get inputDim(): number {
    return this.components.shape[0];
  }
  get outputDim(): number {
    return this.components.shape[1];
  }
  /** Share of the total variance kept by each component. */
  explainedVarianceRatio(): number[] {
    return this.explainedVariance.toNumbers().map((v) => v / this.totalVariance);
  }

  static fit(x: Tensor, options: PcaOptions): Pca {
    if (x.ndim !== 2) throw new Error(`PCA: expected descriptors [N, D], got [${x.shape}]`);
    const [n, d] = x.shape;
    const k = options.dim;
    if (!Number.isInteger(k) || k < 1 || k > Math.min(n - 1, d)) {
      throw new Error(`PCA: dim must be an integer in 1..${Math.min(n - 1, d)} (min(N − 1, D) for ${n} descriptors of ${d} dims), got ${k}`);
    }
    const method = options.method ?? 'auto';
    const exact = method === 'exact' || (method === 'auto' && Math.min(n, d) <= (options.exactLimit ?? 1000));
    // tidy keeps tensors found in plain objects, so build the Pca after the scope closes
    const fitted = noGrad(() => tidy(() => {
      if (exact) {
        const xs = x.detach().to('float64');
        const mean = xs.mean(0);
        const centred = xs.sub(mean);
        const total = centred.pow(2).sum().item() / (n - 1);
        const { vectors, values } = exactPca(centred, k);
        return { mean: mean.float(), components: fixSigns(vectors).float(), variance: tensor(Float32Array.from(values), [k]), total };
      }
      // float32 and never centred in memory: the data may be large (10,000 x 16,384 descriptors)
      const xs = x.detach().float();
      const mean = xs.mean(0);
      const total = xs.var(0).sum().item();
      const { vectors, values } = randomizedPca(xs, mean, k, options);
      return { mean, components: fixSigns(vectors).float(), variance: tensor(Float32Array.from(values), [k]), total };
    }));
    return new Pca(fitted.mean, fitted.components, fitted.variance, fitted.total, options.whiten ?? false);
  }

  /** Centred coordinates in the principal basis [M, d] (whitened if asked); no normalisation. */
  project(x: Tensor): Tensor {
    if (x.ndim !== 2 || x.shape[1] !== this.inputDim) {
      throw new Error(`PCA: expected descriptors [M, ${this.inputDim}], got [${x.shape}]`);
    }
    return tidy(() => {
      const y = x.sub(this.mean).mm(this.components);
      return this.whiten ? y.div(this.explainedVariance.clampMin(1e-12).sqrt()) : y;
    });
  }

  /** project, then L2 normalisation: descriptors ready for nearest-neighbour search. */
  transform(x: Tensor): Tensor {
    return tidy(() => F.normalize(this.project(x), 2, 1));
  }

  /** Plain named tensors (for savePth / a checkpoint). */
  stateDict(): Map<string, HostTensor> {
    return new Map<string, HostTensor>([
      ['mean', this.mean.toHost()],
      ['components', this.components.toHost()],
      ['explained_variance', this.explainedVariance.toHost()],
      ['total_variance', { dtype: 'float64', shape: [], data: Float64Array.of(this.totalVariance) }],
      ['whiten', { dtype: 'bool', shape: [], data: Uint8Array.of(this.whiten ? 1 : 0) }],
    ]);
  }

  static fromStateDict(state: Map<string, HostTensor | Tensor>, source = 'PCA state'): Pca {
    const get = (key: string): HostTensor => {
      const v = state.get(key);
      if (v === undefined) throw new Error(`${source}: missing "${key}" (expected mean, components, explained_variance, total_variance, whiten)`);
      return 'toHost' in v ? v.toHost() : v;
    };
    const mean = get('mean');
    const comps = get('components');
    const variance = get('explained_variance');
    if (comps.shape.length !== 2 || mean.shape.length !== 1 || mean.shape[0] !== comps.shape[0] || variance.shape[0] !== comps.shape[1]) {
      throw new Error(`${source}: inconsistent shapes mean [${mean.shape}], components [${comps.shape}], explained_variance [${variance.shape}]`);
    }
    const f32 = (h: HostTensor): Tensor => tidy(() => fromHost(h).float());
    return new Pca(f32(mean), f32(comps), f32(variance), Number(get('total_variance').data[0]), Number(get('whiten').data[0]) !== 0);
  }

  dispose(): void {
    this.mean.dispose();
    this.components.dispose();
    this.explainedVariance.dispose();
  }
}

// ---- the two fitting methods (float64 tensors in, float64 components out) ------------------------

function toF64(t: Tensor): Float64Array {
  return t.to('float64').contiguous().data() as Float64Array;
}

/** Top-k eigenpairs of the covariance, via whichever of covariance / Gram matrix is smaller. */
function exactPca(centred: Tensor, k: number): { vectors: Tensor; values: number[] } {
  const [n, d] = centred.shape;
  const small = d <= n ? centred.t().mm(centred) : centred.mm(centred.t());
  const m = small.shape[0];
  const { values, vectors } = symmetricEigen(toF64(small), m);
  const top = Array.from({ length: k }, (_, i) => i);
  const basis = tensor(pickColumns(vectors, m, top), [m, k], { dtype: 'float64' });
  const lambdas = top.map((i) => Math.max(values[i], 0));
  if (d <= n) return { vectors: basis, values: lambdas.map((l) => l / (n - 1)) };
  // Gram route: v = Xcᵀu / √λ (unit length since ‖Xcᵀu‖² = uᵀ Xc Xcᵀ u = λ)
  const scale = tensor(Float64Array.from(lambdas, (l) => (l > 0 ? 1 / Math.sqrt(l) : 0)), [1, k], { dtype: 'float64' });
  return { vectors: centred.t().mm(basis).mul(scale), values: lambdas.map((l) => l / (n - 1)) };
}

/** Orthonormal basis of the columns of y [R, k] (columns of negligible weight are dropped to 0). */
function orthonormalise(y: Tensor): Tensor {
  const k = y.shape[1];
  const { values, vectors } = symmetricEigen(toF64(y.t().mm(y)), k);
  const floor = Math.max(values[0], 0) * 1e-12;
  const scale = Float64Array.from({ length: k * k }, (_, idx) => {
    const j = idx % k;
    return values[j] > floor ? vectors[idx] / Math.sqrt(values[j]) : 0;
  });
  return y.mm(tensor(scale, [k, k], { dtype: y.dtype }));
}

/**
 * Subspace iteration on Xc = x − mean without forming Xc: Xc·B = x·B − 1(meanᵀB) and
 * Xcᵀ·Q = xᵀ·Q − mean(1ᵀQ).
 */
function randomizedPca(x: Tensor, mean: Tensor, k: number, options: PcaOptions): { vectors: Tensor; values: number[] } {
  const [n, d] = x.shape;
  const width = Math.min(k + (options.oversample ?? 10), Math.min(n, d));
  const rng = new Rng(options.seed ?? 0);
  const m = mean.unsqueeze(0); // [1, D]
  const times = (b: Tensor): Tensor => tidy(() => x.mm(b).sub(m.mm(b)));
  const timesT = (q: Tensor): Tensor => tidy(() => x.t().mm(q).sub(m.t().mm(q.sum(0, true))));
  const omega = tensor(Float32Array.from({ length: d * width }, () => rng.normal()), [d, width]);
  let q = orthonormalise(times(omega));
  for (let i = 0; i < (options.powerIterations ?? 4); i++) {
    const z = orthonormalise(timesT(q));
    q = orthonormalise(times(z));
  }
  // Rayleigh–Ritz: Bᵀ = Xcᵀ Q [D, w]; eigenpairs of B Bᵀ give the top singular values and, through
  // Bᵀu/σ, the right singular vectors (the principal directions).
  const bt = timesT(q);
  const { values, vectors } = symmetricEigen(toF64(bt.t().mm(bt)), width);
  const top = Array.from({ length: k }, (_, i) => i);
  const u = tensor(Float32Array.from(pickColumns(vectors, width, top)), [width, k]);
  const lambdas = top.map((i) => Math.max(values[i], 0));
  const scale = tensor(Float32Array.from(lambdas, (l) => (l > 0 ? 1 / Math.sqrt(l) : 0)), [1, k]);
  return { vectors: bt.mm(u).mul(scale), values: lambdas.map((l) => l / (n - 1)) };
}

/** Flips each column so that its largest-magnitude entry is positive (a reproducible sign). */
function fixSigns(v: Tensor): Tensor {
  return tidy(() => {
    const idx = v.abs().argmax(0, true);
    const signs = v.gather(0, idx).sign();
    return v.mul(signs.add(signs.eq(0).to(v.dtype)));
  });
}

function pickColumns(vectors: Float64Array, n: number, cols: number[]): Float64Array {
  const out = new Float64Array(n * cols.length);
  for (let r = 0; r < n; r++) for (let c = 0; c < cols.length; c++) out[r * cols.length + c] = vectors[r * n + cols[c]];
  return out;
}

// ---- symmetric eigen-decomposition in float64 -----------------------------------------------------

/**
 * Eigenvalues (descending) and eigenvectors of a symmetric n x n matrix (row-major; only symmetry is
 * assumed, the input is not modified). vectors is row-major with eigenvector j in column j.
 * Householder reduction to tridiagonal form, then QL iterations with implicit Wilkinson shifts; the
 * transforms are accumulated on the rows of Qᵀ so that every update walks contiguous memory.
 */
export function symmetricEigen(matrix: Float64Array | number[], n: number): { values: number[]; vectors: Float64Array } {
  if (matrix.length !== n * n) throw new Error(`symmetricEigen: ${matrix.length} values for a ${n}x${n} matrix`);
  const a = Float64Array.from(matrix);
  const qt = new Float64Array(n * n); // rows = columns of Q
  for (let i = 0; i < n; i++) qt[i * n + i] = 1;
  const diag = new Float64Array(n);
  const off = new Float64Array(n); // off[i] couples i and i + 1
  tridiagonalise(a, qt, n, diag, off);
  implicitQL(diag, off, qt, n);
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => diag[y] - diag[x]);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    for (let r = 0; r < n; r++) vectors[r * n + dst] = qt[src * n + r];
  });
  return { values: order.map((i) => diag[i]), vectors };
}

/** A ← H A H for Householder reflections H zeroing below the sub-diagonal, column by column; Qᵀ ← H Qᵀ. */
function tridiagonalise(a: Float64Array, qt: Float64Array, n: number, diag: Float64Array, off: Float64Array): void {
  const v = new Float64Array(n);
  const w = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    const s = k + 1; // the reflection acts on indices s..n-1
    let norm2 = 0;
    for (let i = s; i < n; i++) norm2 += a[i * n + k] ** 2;
    const x0 = a[s * n + k];
    const alpha = x0 >= 0 ? -Math.sqrt(norm2) : Math.sqrt(norm2);
    let vnorm2 = norm2 - x0 * x0 + (x0 - alpha) ** 2;
    if (norm2 === 0 || vnorm2 <= norm2 * 1e-30) continue; // column already reduced
    for (let i = s; i < n; i++) v[i] = a[i * n + k];
    v[s] = x0 - alpha;
    const inv = 1 / Math.sqrt(vnorm2);
    for (let i = s; i < n; i++) v[i] *= inv;
    vnorm2 = 1;
    // p = A v on the trailing block, then w = p − (vᵀp) v; A ← A − 2 v wᵀ − 2 w vᵀ
    let vp = 0;
    for (let i = s; i < n; i++) {
      let acc = 0;
      const row = i * n;
      for (let j = s; j < n; j++) acc += a[row + j] * v[j];
      w[i] = acc;
      vp += acc * v[i];
    }
    for (let i = s; i < n; i++) w[i] -= vp * v[i];
    for (let i = s; i < n; i++) {
      const row = i * n;
      const vi = 2 * v[i];
      const wi = 2 * w[i];
      for (let j = s; j < n; j++) a[row + j] -= vi * w[j] + wi * v[j];
    }
    a[s * n + k] = alpha;
    a[k * n + s] = alpha;
    for (let i = s + 1; i < n; i++) {
      a[i * n + k] = 0;
      a[k * n + i] = 0;
    }
    // Qᵀ ← H Qᵀ: rows s..n-1 of Qᵀ minus 2 v (vᵀ Qᵀ)
    const t = new Float64Array(n);
    for (let i = s; i < n; i++) {
      const vi = v[i];
      const row = i * n;
      for (let j = 0; j < n; j++) t[j] += vi * qt[row + j];
    }
    for (let i = s; i < n; i++) {
      const vi = 2 * v[i];
      const row = i * n;
      for (let j = 0; j < n; j++) qt[row + j] -= vi * t[j];
    }
  }
  for (let i = 0; i < n; i++) diag[i] = a[i * n + i];
  for (let i = 0; i < n - 1; i++) off[i] = a[(i + 1) * n + i];
  off[n - 1] = 0;
}

/**
 * Diagonalises the symmetric tridiagonal (diag, off) by QL sweeps with an implicit shift taken from
 * the leading 2x2 block, chasing the bulge with Givens rotations that are also applied to Qᵀ's rows.
 */
function implicitQL(d: Float64Array, e: Float64Array, qt: Float64Array, n: number): void {
  for (let l = 0; l < n; l++) {
    for (let sweep = 0; ; sweep++) {
      // find the first negligible off-diagonal element at or after l
      let m = l;
      for (; m < n - 1; m++) {
        if (Math.abs(e[m]) <= Number.EPSILON * (Math.abs(d[m]) + Math.abs(d[m + 1]))) break;
      }
      if (m === l) break;
      if (sweep === 100) throw new Error(`symmetricEigen: no convergence for eigenvalue ${l} after 100 sweeps`);
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = m - 1;
      let deflated = false;
      for (; i >= l; i--) {
        const f = s * e[i];
        const b = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          // underflow: the matrix splits here; undo the partial shift and restart
          d[i + 1] -= p;
          e[m] = 0;
          deflated = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        // rotate rows i and i+1 of Qᵀ
        const ri = i * n;
        const rj = (i + 1) * n;
        for (let k = 0; k < n; k++) {
          const qi = qt[ri + k];
          const qj = qt[rj + k];
          qt[rj + k] = s * qi + c * qj;
          qt[ri + k] = c * qi - s * qj;
        }
      }
      if (deflated) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0;
    }
  }
}
