// k-means (Lloyd's algorithm) on the engine, for NetVLAD's cluster initialisation. Distances are one
// matmul per iteration (‖x‖² − 2x·cᵀ + ‖c‖²); cluster sums are a one-hot matmul. Seeding choices
// use a JS generator under the given seed, so the engine's global generator is left untouched.
import { tidy, noGrad, zeros, ones, tensor, type Tensor } from '../torch/index.ts';
import { Rng } from '../data/random.ts';

export interface KMeansOptions {
  /** Seed of the initial centres. */
  seed: number;
  /** Maximum Lloyd iterations (100, as faiss in the reference); stops early once no point moves. */
  iterations?: number;
  /** 'kmeans++' (D² sampling, default) or 'random' (k distinct points). */
  init?: 'kmeans++' | 'random';
}

export interface KMeansResult {
  /** Cluster centres [K, C] (float32, caller owns). */
  centroids: Tensor;
  /** Cluster index of every point. */
  assignments: Int32Array;
  /** Sum of squared distances of the points to their centres. */
  inertia: number;
  /** Lloyd iterations run. */
  iterations: number;
}

function initialCentres(x: Tensor, k: number, rng: Rng, init: 'kmeans++' | 'random'): number[] {
  const n = x.shape[0];
  if (init === 'random') return rng.sample(n, k);
  const chosen = [rng.int(0, n)];
  let nearest: Float32Array | null = null;
  while (chosen.length < k) {
    const last = chosen[chosen.length - 1];
    const d = tidy(() => x.sub(x.narrow(0, last, 1)).pow(2).sum(1).toFloat32Array());
    if (nearest === null) nearest = d;
    else for (let i = 0; i < n; i++) nearest[i] = Math.min(nearest[i], d[i]);
    let total = 0;
    for (let i = 0; i < n; i++) total += nearest[i];
    let pick: number;
    if (total <= 0) {
      pick = rng.int(0, n); // every point sits on a centre already (duplicates): any point will do
    } else {
      let r = rng.next() * total;
      pick = n - 1;
      for (let i = 0; i < n; i++) {
        r -= nearest[i];
        if (r < 0) {
          pick = i;
          break;
        }
      }
    }
    chosen.push(pick);
  }
  return chosen;
}

/** Clusters the rows of x [N, C] (N ≥ k) into k groups. */
export function kmeans(x: Tensor, k: number, options: KMeansOptions): KMeansResult {
  if (x.ndim !== 2) throw new Error(`kmeans: expected points [N, C], got [${x.shape}]`);
  const n = x.shape[0];
  if (!Number.isInteger(k) || k < 1 || k > n) throw new Error(`kmeans: k must be an integer in 1..${n} (number of points), got ${k}`);
  const maxIter = options.iterations ?? 100;
  const rng = new Rng(options.seed);
  return noGrad(() => tidy(() => {
    const pts = x.dtype === 'float32' ? x.detach() : x.float();
    const start = initialCentres(pts, k, rng, options.init ?? 'kmeans++');
    let centres = pts.indexSelect(0, tensorInt64(start));
    let assign: Int32Array = new Int32Array(n).fill(-1);
    let iterations = 0;
    const xx = pts.pow(2).sum(1); // ‖x‖², once: the argmin needs only ‖c‖² − 2x·c
    const nearest = (): { dist: Float32Array; idx: Int32Array } => tidy(() => {
      const [partial, idx] = centres.pow(2).sum(1).unsqueeze(0).sub(pts.mm(centres.t()), 2).min(1);
      return { dist: partial.add(xx).clampMin(0).toFloat32Array(), idx: Int32Array.from(idx.toNumbers()) };
    });
    let current = nearest();
    for (; iterations < maxIter; iterations++) {
      const moved = current.idx.some((v, i) => v !== assign[i]);
      assign = current.idx;
      if (!moved) break;
      const updated = updateCentres(pts, assign, k, current.dist);
      centres.dispose();
      centres = updated;
      current = nearest();
    }
    assign = current.idx; // the memberships of the returned centres
    let inertia = 0;
    for (const d of current.dist) inertia += d;
    return { centroids: centres, assignments: assign, inertia, iterations };
  }));
}

function tensorInt64(v: number[]): Tensor {
  return tensor(v, [v.length], { dtype: 'int64' });
}

/**
 * Means of the points of each cluster (one-hot matmul). An empty cluster is moved onto the point
 * farthest from its own centre (not already used), the usual repair that keeps k clusters.
 */
function updateCentres(pts: Tensor, assign: Int32Array, k: number, dist: Float32Array): Tensor {
  return tidy(() => {
    const n = assign.length;
    const counts = new Int32Array(k);
    for (const a of assign) counts[a]++;
    const idx = tensorInt64(Array.from(assign)).unsqueeze(1);
    const onehot = zeros([n, k]).scatter(1, idx, ones([n, 1]));
    const sums = pts.t().mm(onehot).t(); // [K, C]; this order is the faster product here
    const denom = tensor(Float32Array.from(counts, (c) => Math.max(c, 1)), [k, 1]);
    let centres = sums.div(denom);
    const empty = [...counts.keys()].filter((c) => counts[c] === 0);
    if (empty.length > 0) {
      const order = Array.from(dist.keys()).sort((a, b) => dist[b] - dist[a] || a - b);
      const donors = order.slice(0, empty.length); // n ≥ k, so there are enough distinct points
      centres = centres.indexCopy_(0, tensorInt64(empty), pts.indexSelect(0, tensorInt64(donors)));
    }
    return centres.contiguous();
  });
}
