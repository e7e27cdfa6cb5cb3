// PCA of global descriptors, fitted on database descriptors after training (dimension reduction and
// optional whitening). Products and the symmetric eigenproblems (torch.linalg.eigh) run on the engine,
// in float64 for the exact method, on the smaller side of the data:
//  - 'exact': the covariance [D, D] when D ≤ N, else the Gram matrix [N, N] (same non-zero spectrum,
//    components recovered as Xcᵀu/√(λ(N−1))). Cost O(N·D·min(N, D)) + O(min(N, D)³).
//  - 'randomized': subspace iteration (Halko, Martinsson & Tropp 2011) on a block of dim + 10 vectors,
//    float32 matmuls O(N·D·k) and eigenproblems of size k: for large N and D (10,000 x 16,384 NetVLAD
//    descriptors), where the exact route's products no longer pay.
import { tidy, noGrad, fromHost, tensor, F, type Tensor, type HostTensor } from '../torch/index.ts';
import { Rng } from '../data/random.ts';

export interface PcaOptions {
  /** Output dimension d (≤ min(N − 1, D)). */
  dim: number;
  /** Divide each projected coordinate by its standard deviation (false). */
  whiten?: boolean;
  /** 'auto' (default): exact when min(N, D) ≤ exactLimit (4096), else randomized. */
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
    const exact = method === 'exact' || (method === 'auto' && Math.min(n, d) <= (options.exactLimit ?? 4096));
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

  /** The first `dim` components (the PCA of that dimension of the same data: principal components nest), whitened or not. */
  leading(dim: number, whiten = this.whiten): Pca {
    if (!Number.isInteger(dim) || dim < 1 || dim > this.outputDim) throw new Error(`PCA: leading dim must be in 1..${this.outputDim}, got ${dim}`);
    const t = tidy(() => ({
      mean: this.mean.clone(), components: this.components.narrow(1, 0, dim).contiguous(), variance: this.explainedVariance.narrow(0, 0, dim).contiguous(),
    }));
    return new Pca(t.mean, t.components, t.variance, this.totalVariance, whiten);
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

/** Eigenpairs of a symmetric matrix by decreasing eigenvalue: the values, and the vectors as columns. */
function eigenDescending(m: Tensor): { values: number[]; vectors: Tensor } {
  const [values, vectors] = m.eigh(); // ascending
  return { values: values.toNumbers().reverse(), vectors: vectors.flip(1) };
}

/** Top-k eigenpairs of the covariance, via whichever of covariance / Gram matrix is smaller. */
function exactPca(centred: Tensor, k: number): { vectors: Tensor; values: number[] } {
  const [n, d] = centred.shape;
  const small = d <= n ? centred.t().mm(centred) : centred.mm(centred.t());
  const { values, vectors } = eigenDescending(small);
  const basis = vectors.narrow(1, 0, k);
  const lambdas = values.slice(0, k).map((l) => Math.max(l, 0));
  if (d <= n) return { vectors: basis, values: lambdas.map((l) => l / (n - 1)) };
  // Gram route: v = Xcᵀu / √λ (unit length since ‖Xcᵀu‖² = uᵀ Xc Xcᵀ u = λ)
  const scale = tensor(Float64Array.from(lambdas, (l) => (l > 0 ? 1 / Math.sqrt(l) : 0)), [1, k], { dtype: 'float64' });
  return { vectors: centred.t().mm(basis).mul(scale), values: lambdas.map((l) => l / (n - 1)) };
}

/** Orthonormal basis of the columns of y [R, k] (columns of negligible weight are dropped to 0). */
function orthonormalise(y: Tensor): Tensor {
  const k = y.shape[1];
  const { values, vectors } = eigenDescending(y.t().mm(y).to('float64'));
  const floor = Math.max(values[0], 0) * 1e-12;
  const scale = tensor(Float64Array.from(values, (v) => (v > floor ? 1 / Math.sqrt(v) : 0)), [1, k], { dtype: 'float64' });
  return y.mm(vectors.mul(scale).to(y.dtype));
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
  const { values, vectors } = eigenDescending(bt.t().mm(bt).to('float64'));
  const u = vectors.narrow(1, 0, k).float();
  const lambdas = values.slice(0, k).map((l) => Math.max(l, 0));
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

/**
 * Eigenvalues (descending) and eigenvectors of a symmetric n x n matrix (row-major; the lower triangle
 * is read), by the engine's eigh in float64. vectors is row-major with eigenvector j in column j.
 */
export function symmetricEigen(matrix: Float64Array | number[], n: number): { values: number[]; vectors: Float64Array } {
  if (matrix.length !== n * n) throw new Error(`symmetricEigen: ${matrix.length} values for a ${n}x${n} matrix`);
  return tidy(() => {
    const { values, vectors } = eigenDescending(tensor(Float64Array.from(matrix), [n, n], { dtype: 'float64' }));
    return { values, vectors: vectors.contiguous().data() as Float64Array };
  });
}
