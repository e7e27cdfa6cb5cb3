// k-means and NetVLAD's data initialisation on synthetic clusters with known centres.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.ts';
import { Tensor } from '../../src/torch/index.ts';
import { kmeans } from '../../src/models/kmeans.ts';
import { HEADS, NetVLAD } from '../../src/models/aggregation/index.ts';
import { isDataInitialised } from '../../src/models/types.ts';
import { Rng } from '../../src/data/random.ts';

/** k clusters in dim dims: centre j = scale·(unit vector j, plus a shared offset), points = centre + N(0, noise²). */
function blobs(k: number, perCluster: number, dim: number, noise: number, seed: number) {
  const rng = new Rng(seed);
  const centres = Array.from({ length: k }, (_, j) => Array.from({ length: dim }, (_, d) => (d === j ? 10 : 0) + (d === dim - 1 ? 1 : 0)));
  const order = rng.permutation(k * perCluster);
  const labels = new Int32Array(k * perCluster);
  const data = new Float32Array(k * perCluster * dim);
  order.forEach((slot, i) => {
    const j = i % k;
    labels[slot] = j;
    for (let d = 0; d < dim; d++) data[slot * dim + d] = centres[j][d] + rng.normal(0, noise);
  });
  return { x: torch.tensor(data, [k * perCluster, dim]), labels, centres };
}

function rows(t: Tensor): number[][] {
  const [n, d] = t.shape;
  const v = t.toNumbers();
  return Array.from({ length: n }, (_, i) => v.slice(i * d, (i + 1) * d));
}
const dist = (a: number[], b: number[]): number => Math.hypot(...a.map((v, i) => v - b[i]));

test('k-means recovers well-separated clusters (centres and memberships)', () => {
  const { x, labels, centres } = blobs(5, 120, 8, 0.2, 3);
  for (const init of ['kmeans++', 'random'] as const) {
    const r = kmeans(x, 5, { seed: 11, init });
    const found = rows(r.centroids);
    // each true centre has exactly one found centre within 0.1 (the noise of a mean of 120 points is ~0.02)
    const match = centres.map((c) => found.findIndex((f) => dist(f, c) < 0.1));
    assert.ok(match.every((m) => m >= 0), `${init}: unmatched centres ${JSON.stringify(match)}`);
    assert.equal(new Set(match).size, 5, `${init}: two true centres matched one found centre`);
    // memberships agree with the labels up to the renaming
    labels.forEach((l, i) => assert.equal(r.assignments[i], match[l], `${init}: point ${i}`));
    // inertia ≈ N·dim·noise²
    assert.ok(Math.abs(r.inertia / (600 * 8 * 0.04) - 1) < 0.15, `${init}: inertia ${r.inertia}`);
    assert.ok(r.iterations < 100, `${init}: converged early (${r.iterations} iterations)`);
    r.centroids.dispose();
  }
  x.dispose();
});

test('k-means is deterministic under a seed and does not touch the engine generator', () => {
  const { x } = blobs(6, 50, 5, 3, 4); // overlapping netvladClusters: the result depends on the start
  torch.manualSeed(123);
  const a = kmeans(x, 6, { seed: 5 });
  const afterA = torch.rand([3]).toNumbers();
  torch.manualSeed(123);
  const b = kmeans(x, 6, { seed: 5 });
  const afterB = torch.rand([3]).toNumbers();
  assert.ok(a.centroids.equal(b.centroids));
  assert.deepEqual(a.assignments, b.assignments);
  assert.deepEqual(afterA, afterB);
  const seeds = [6, 7, 8, 9].map((s) => kmeans(x, 6, { seed: s }));
  assert.ok(seeds.some((r) => !r.centroids.equal(a.centroids)), 'different seeds give different starts');
  torch.dispose(a.centroids, b.centroids, seeds.map((r) => r.centroids), x);
});

test('k-means keeps k clusters when the data has fewer distinct points, and rejects bad k', () => {
  const x = torch.tensor([[0, 0], [0, 0], [5, 5], [5, 5]]);
  const r = kmeans(x, 3, { seed: 1 });
  assert.equal(r.inertia, 0);
  assert.ok(r.centroids.isfinite().all());
  assert.throws(() => kmeans(x, 5, { seed: 1 }), /k must be an integer in 1\.\.4/);
  assert.throws(() => kmeans(torch.rand([4]), 2, { seed: 1 }), /expected points \[N, C\]/);
  torch.dispose(r.centroids, x);
});

test('NetVLAD.initFromDescriptors: centres from k-means, alpha from the top-2 gap, conv = alpha·unit centres', () => {
  const { x, labels } = blobs(4, 100, 6, 0.5, 9);
  const head = HEADS.netvlad(6, { netvladClusters: 4 }) as NetVLAD;
  head.initFromDescriptors(x, 21);
  const alpha = head.alpha!;
  assert.ok(alpha > 0);
  // alpha recomputed by brute force from the L2-normalised descriptors and the stored centroids
  const unit = (v: number[]): number[] => v.map((e) => e / Math.hypot(...v));
  const cs = rows(head.centroids).map(unit);
  let gap = 0;
  const descs = rows(x).map(unit);
  for (const d of descs) {
    const dots = cs.map((c) => c.reduce((s, e, i) => s + e * d[i], 0)).sort((p, q) => q - p);
    gap += dots[0] - dots[1];
  }
  const want = -Math.log(0.01) / (gap / descs.length);
  assert.ok(Math.abs(alpha / want - 1) < 1e-4, `alpha ${alpha} vs ${want}`);
  const w = head.conv.weight.reshape(4, 6).toNumbers();
  cs.flat().forEach((e, i) => assert.ok(Math.abs(w[i] - alpha * e) < 1e-4, `conv weight ${i}`));
  // the centroids are the means of the normalised descriptors of each found cluster
  const member = kmeans(torch.tensor(Float32Array.from(descs.flat()), [400, 6]), 4, { seed: 21 });
  const found = rows(member.centroids);
  rows(head.centroids).forEach((c, j) => assert.ok(dist(c, found[j]) < 1e-5, `centroid ${j}`));
  // the soft assignment of each descriptor peaks at its own cluster
  const assign = torch.tidy(() => torch.F.conv2d(torch.tensor(Float32Array.from(descs.flat()), [400, 6, 1, 1]), head.conv.weight)
    .reshape(400, 4).argmax(1).toNumbers());
  const map = new Map<number, number>();
  labels.forEach((l, i) => {
    if (!map.has(l)) map.set(l, assign[i]);
    assert.equal(assign[i], map.get(l), `descriptor ${i}`);
  });
  assert.equal(new Set(map.values()).size, 4);
  // determinism under the seed
  const again = HEADS.netvlad(6, { netvladClusters: 4 }) as NetVLAD;
  again.initFromDescriptors(x, 21);
  assert.ok(again.centroids.equal(head.centroids) && again.conv.weight.equal(head.conv.weight));
  assert.throws(() => again.initFromDescriptors(torch.rand([3, 6]), 1), /3 descriptors cannot make 4 clusters/);
  assert.throws(() => again.initFromDescriptors(torch.rand([30, 5]), 1), /expected descriptors \[N, 6\]/);
  torch.dispose(member.centroids, x);
  head.dispose();
  again.dispose();
});

test('wrapped NetVLAD/CRN heads forward initFromDescriptors; GeM heads have none', () => {
  const { x } = blobs(3, 20, 8, 0.3, 2);
  const wrapped = HEADS['attention+crn'](8, { netvladClusters: 3, fcOutputDim: 4 });
  assert.ok(isDataInitialised(wrapped));
  const centroids = [...wrapped.namedParameters()].find(([n]) => n === '0.head.centroids')![1];
  const before = centroids.toNumbers();
  wrapped.initFromDescriptors(x, 1);
  assert.notDeepEqual(centroids.toNumbers(), before);
  assert.ok(!isDataInitialised(HEADS['attention+gem'](8, { fcOutputDim: 4 })));
  x.dispose();
  wrapped.dispose();
});
