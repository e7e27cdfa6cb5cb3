// Aggregation heads against PyTorch: test/fixtures/heads/heads.json (made by
// scripts/fixtures/make_head_fixtures.py) holds inputs, parameters by state-dict name, outputs and the
// gradients of sum(output * weight), computed in float64. Each head is built from the registry, loaded
// by name, and must match in float64 within the float64 rounding bound (~1e-14) and in float32 within the
// float32 one (test/helpers/parity.ts). Plus shapes and dims of every registered head.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.ts';
import { Tensor } from '../../src/torch/index.ts';
import type { HostTensor } from '../../src/torch/dtype.ts';
import {
  HEADS, AGGREGATION_NAMES, buildHead, splitOwnLayerParameters, CBAM, CRN, GeM, NetVLAD, AttentionHead, ProjectedHead, type HeadOptionValues,
} from '../../src/models/aggregation/index.ts';
import { rmacRegions, netvlad, l2n } from '../../src/models/functional.ts';
import { isDataInitialised, type AggregationHead } from '../../src/models/types.ts';
import { roundingBound, maxAbsDiff, maxAbsDiffBetween, largestMagnitude, float64Host, unitNormBound, type Computation, type ParityDtype } from '../helpers/parity.ts';

interface Enc { shape: number[]; data: number[] }
interface Case {
  name: string; input: Enc; params: Record<string, Enc>; output: Enc;
  weight?: Enc; grads?: Record<string, Enc>; input_grad?: Enc; regions?: number[][] | null;
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/heads/heads.json', import.meta.url), 'utf8')) as { cases: Case[] };
const byName = (n: string): Case => {
  const c = fixture.cases.find((x) => x.name === n);
  assert.ok(c, `fixture case ${n}`);
  return c;
};

// Inputs, parameters and weights are multiples of 1/64 (exact in float32); outputs and gradients float64.
const host = (e: Enc): HostTensor => ({ dtype: 'float32', shape: e.shape, data: Float32Array.from(e.data) });
const load = (e: Enc, dtype: ParityDtype = 'float32'): Tensor => torch.fromHost(host(e)).to(dtype);

/**
 * Each head's longest path (reductions) and longest reduction, elementwise roundings on the way (pow,
 * sigmoid, the divisions of L2) counted as a few terms more. The gradients go forward and back through
 * the same reductions (twice the depth), and a parameter's gradient sums over every batch position.
 */
const HEAD_COMPUTATIONS: Record<string, { depth: number; terms: number }> = {
  gem: { depth: 4, terms: 30 + 4 }, // L2 over 8 channels, mean of cubes over 5x6, cube root, L2
  gem_raw: { depth: 2, terms: 12 + 4 }, // mean of x^p over 4x3, root
  netvlad: { depth: 6, terms: 8 * 16 + 2 }, // L2 over 16, 1x1 conv over 16, softmax over 8, sum over 20 positions, intra-L2 over 16, L2 over 8·16
  crn: { depth: 9, terms: 4 * 49 + 2 }, // L2, 3x3 avg pool, 7x7 conv over 4 channels, 1x1 over 84, bilinear, assignment, sum over 48, two L2s
  cbam: { depth: 6, terms: 2 * 49 + 4 }, // avg pool over 30, fc1 over 16, fc2 over 4, sigmoid; channel mean over 16, 7x7 conv over 2, sigmoid
  attention_gem: { depth: 10, terms: 2 * 49 + 4 }, // CBAM (6) then GeM (4)
  gem_fc: { depth: 6, terms: 12 + 4 }, // GeM over 3x4 (4), Linear over 8, L2 over 5
  mac: { depth: 1, terms: 6 + 2 }, // max (exact), L2 over 6
  spoc: { depth: 2, terms: 35 + 2 }, // mean over 5x7, L2 over 6
  // per-region max (exact), L2 over C, sum over the regions (7x10: 21, 12x6: 27, 6x6: 15), L2
  rmac_wide: { depth: 3, terms: 21 + 2 },
  rmac_tall: { depth: 3, terms: 27 + 2 },
  rmac_square: { depth: 3, terms: 15 + 2 },
};

function checkClose(got: Tensor, want: Enc, what: string, dtype: ParityDtype, c: Computation): number {
  const w = float64Host(want.shape, want.data);
  const d = maxAbsDiff(got, w);
  const bound = roundingBound(dtype, { ...c, magnitude: largestMagnitude(w) });
  assert.ok(d <= bound, `${what} in ${dtype}: max abs difference ${d} exceeds the ${dtype} rounding bound ${bound}`);
  return d / bound;
}

// The fixtures' GeM L2-normalises before and after pooling (vgl's GeM class can do both; --l2 picks one).
const gemBoth = (c: number) => new GeM(c, { normalizeInput: true, normalizeOutput: true });
type Build = () => { module: torch.nn.Module & { forward(x: Tensor): Tensor } };
const builders: Record<string, Build> = {
  gem: () => ({ module: gemBoth(8) }),
  gem_raw: () => ({ module: HEADS.gem(6, { l2: 'none' }) }),
  netvlad: () => ({ module: HEADS.netvlad(16, { netvladClusters: 8 }) }),
  crn: () => ({ module: HEADS.crn(4, { netvladClusters: 6 }) }),
  cbam: () => ({ module: new CBAM(16, { reduction: 4 }) }),
  attention_gem: () => ({ module: new AttentionHead(new CBAM(8, { reduction: 2 }), gemBoth(8)) }),
  gem_fc: () => ({ module: new ProjectedHead(gemBoth(8), 5) }),
  mac: () => ({ module: HEADS.mac(6, { l2: 'after_pool' }) }),
  spoc: () => ({ module: HEADS.spoc(6, { l2: 'after_pool' }) }),
  rmac_wide: () => ({ module: HEADS.rmac(6, { l2: 'after_pool' }) }),
  rmac_tall: () => ({ module: HEADS.rmac(5, { l2: 'after_pool' }) }),
  rmac_square: () => ({ module: HEADS.rmac(4, { l2: 'after_pool' }) }),
};

for (const c of fixture.cases) {
  test(`${c.name}: output${c.grads ? ' and gradients' : ''} match PyTorch (float64 and float32 rounding bounds)`, () => {
    const build = builders[c.name];
    assert.ok(build, `no builder for fixture case ${c.name}`);
    const shape = HEAD_COMPUTATIONS[c.name];
    assert.ok(shape, `no computation for fixture case ${c.name}`);
    const [b, , h, w] = c.input.shape;
    const forward: Computation = { ...shape, magnitude: 1 };
    const backward: Computation = { depth: 2 * shape.depth, terms: Math.max(shape.terms, b! * h! * w!), magnitude: 1 };
    const worst: Record<string, number> = {};
    for (const dtype of ['float64', 'float32'] as const) {
      const { module } = build();
      // Strict load: every parameter name of the vgl head must be one of PyTorch's, and vice versa.
      torch.loadStateDict(module, new Map(Object.entries(c.params).map(([k, v]) => [k, host(v)])), { source: c.name });
      module.to(dtype);
      torch.tidy(() => {
        const x = load(c.input, dtype).requiresGrad_(true);
        const out = module.forward(x);
        const ratios = [checkClose(out, c.output, `${c.name} output`, dtype, forward)];
        if (c.weight && c.grads) {
          out.mul(load(c.weight, dtype)).sum().backward();
          const params = new Map(module.namedParameters());
          for (const [name, want] of Object.entries(c.grads)) {
            const p = params.get(name)!;
            if (!p.requiresGrad) continue; // frozen in vgl as in the reference (CRN's acc_w)
            const g = p.grad;
            assert.ok(g, `${c.name}: ${name} has no gradient`);
            ratios.push(checkClose(g, want, `${c.name} grad ${name}`, dtype, backward));
          }
          ratios.push(checkClose(x.grad!, c.input_grad!, `${c.name} input grad`, dtype, backward));
        }
        worst[dtype] = Math.max(...ratios);
      });
      module.dispose();
    }
    console.log(`# ${c.name}: largest difference / rounding bound, float64 ${worst.float64!.toExponential(1)}, float32 ${worst.float32!.toExponential(1)}`);
  });
}

test('R-MAC regions match the reference grid (and hand-counted cases)', () => {
  for (const name of ['rmac_wide', 'rmac_tall', 'rmac_square']) {
    const c = byName(name);
    const [, , h, w] = c.input.shape;
    assert.deepEqual(rmacRegions(h, w).map((r) => [r.top, r.left, r.height, r.width]), c.regions, name);
  }
  // 6x6, 3 levels: whole map + 1 (side 6) + 4 (side 4) + 9 (side 3) regions.
  const sq = rmacRegions(6, 6);
  assert.equal(sq.length, 1 + 1 + 4 + 9);
  assert.deepEqual(sq.slice(2, 6).map((r) => [r.top, r.left, r.height]), [[0, 0, 4], [0, 2, 4], [2, 0, 4], [2, 2, 4]]);
  // every region lies inside the map
  for (const [h, w] of [[7, 10], [12, 6], [30, 40], [2, 3], [1, 1]]) {
    for (const r of rmacRegions(h, w)) {
      assert.ok(r.top >= 0 && r.left >= 0 && r.top + r.height <= h && r.left + r.width <= w, `${h}x${w}: ${JSON.stringify(r)}`);
    }
  }
});

test('every registered head: descriptor shape [B, dim], unit length (L2 after pooling), dims as documented', () => {
  const c = 12;
  const k = 4;
  const x = torch.rand([3, c, 6, 8]);
  const expected = (name: string): number => (name.endsWith('netvlad') || name.endsWith('crn') ? k * c : c);
  for (const name of AGGREGATION_NAMES) {
    for (const fcDim of [undefined, 7]) {
      const options: Partial<HeadOptionValues> = { netvladClusters: k, cbamReduction: 4, soaReduction: 4, fcOutputDim: fcDim, l2: 'after_pool' };
      const head = HEADS[name](c, options);
      const dim = fcDim ?? expected(name);
      assert.equal(head.dim, dim, `${name} fcDim=${fcDim}: dim`);
      const norms = torch.tidy(() => {
        const d = torch.noGrad(() => head.eval().forward(x));
        assert.deepEqual(d.shape, [3, dim], `${name} fcDim=${fcDim}: shape`);
        return d.norm(2, 1).toNumbers();
      });
      const bound = unitNormBound('float32', dim); // the final L2 over dim terms, and this norm
      for (const n of norms) assert.ok(Math.abs(n - 1) <= bound, `${name}: descriptor norm ${n} (bound ${bound})`);
      const wantsInit = name.endsWith('netvlad') || name.endsWith('crn');
      assert.equal(isDataInitialised(head), wantsInit, `${name} fcDim=${fcDim}: data-initialised`);
      head.dispose();
    }
  }
  x.dispose();
  assert.throws(() => buildHead('vlad', 8), /unknown aggregation "vlad".*netvlad/);
  assert.throws(() => HEADS.gem(8, {}).forward(torch.rand([1, 4, 3, 3])), /GeM: expected features \[B, 8, H, W\], got \[1,4,3,3\]/);
});

test('GeM: p is a parameter named p, initialised to 3, and receives a gradient', () => {
  const head = HEADS.gem(5, {});
  const [[name, p]] = [...head.namedParameters()];
  assert.equal(name, 'p');
  assert.deepEqual(p.toNumbers(), [3]);
  torch.tidy(() => {
    head.forward(torch.rand([2, 5, 4, 4])).mul(torch.rand([2, 5])).sum().backward();
    const g = p.grad;
    assert.ok(g && Number.isFinite(g.item()) && g.item() !== 0, `grad of p: ${g?.item()}`);
  });
  head.dispose();
});

test("--l2 as in the reference: shallow heads L2 the local features before pooling by default, the descriptor after pooling, or neither", () => {
  // Hand computation in JS numbers on a [1, C, H, W] map: per-position L2 over channels, then mean / max / power mean.
  const C = 4, H = 3, W = 2, n = H * W;
  const xs = torch.randn([1, C, H, W]);
  const v = xs.toNumbers();
  const at = (c: number, i: number) => v[c * n + i];
  const norms = Array.from({ length: n }, (_, i) => Math.hypot(...Array.from({ length: C }, (_, c) => at(c, i))));
  const unit = (c: number, i: number) => at(c, i) / norms[i];
  const l2 = (u: number[]) => u.map((e) => e / Math.hypot(...u));
  const mean = (f: (c: number, i: number) => number) => Array.from({ length: C }, (_, c) => Array.from({ length: n }, (_, i) => f(c, i)).reduce((a, b) => a + b) / n);
  const max = (f: (c: number, i: number) => number) => Array.from({ length: C }, (_, c) => Math.max(...Array.from({ length: n }, (_, i) => f(c, i))));
  const gem3 = (f: (c: number, i: number) => number) => mean((c, i) => Math.max(f(c, i), 1e-6) ** 3).map((m) => m ** (1 / 3));
  const cases: [string, HeadOptionValues['l2'], number[]][] = [
    ['avg', undefined, mean(unit)], // the student report's head: L2 of the feature map, then the average
    ['spoc', 'before_pool', mean(unit)],
    ['spoc', 'after_pool', l2(mean(at))],
    ['spoc', 'none', mean(at)],
    ['mac', undefined, max(unit)],
    ['mac', 'after_pool', l2(max(at))],
    ['gem', undefined, gem3(unit)],
    ['gem', 'after_pool', l2(gem3(at))],
    ['gem', 'none', gem3(at)],
  ];
  // The heads in float32 against the JS-number (float64) computation from the same float32 values: L2 over
  // C, a pool over n positions (power mean: pow, root), L2: 3 reductions of at most n terms, the
  // elementwise roundings counted as terms. The float64 side adds its own (far smaller) bound.
  const handComputation = (magnitude: number): Computation => ({ depth: 3, terms: Math.max(C, n) + 4, magnitude });
  for (const [name, placement, want] of cases) {
    const head = buildHead(name, C, { l2: placement });
    const got = torch.tidy(() => torch.noGrad(() => head.forward(xs).toNumbers()));
    const c = handComputation(Math.max(1, ...want.map(Math.abs)));
    const bound = roundingBound('float32', c) + roundingBound('float64', c);
    want.forEach((w, i) => assert.ok(Math.abs(got[i] - w) <= bound, `${name} l2=${placement}: [${i}] ${got[i]} vs ${w} (bound ${bound})`));
    head.dispose();
  }
  // before_pool leaves the descriptor's length free (the reference adds no L2 after pooling)
  assert.ok(Math.abs(Math.hypot(...mean(unit)) - 1) > 1e-3);
  assert.throws(() => buildHead('gem', C, { l2: 'both' as never }), /l2: "both" for gem: expected one of "before_pool"\|"after_pool"\|"none"/);
  xs.dispose();
});

test('GeM p: --gem-p sets its value; --gem-p-trainable false keeps it fixed under the same state-dict key', () => {
  const fixed = HEADS.gem(5, { gemP: 4.5, gemPTrainable: false });
  assert.deepEqual([...fixed.stateDict().keys()], ['p']);
  assert.deepEqual(fixed.stateDict().get('p')!.toNumbers(), [4.5]);
  const x = torch.rand([2, 5, 3, 3]).requiresGrad_(true);
  torch.tidy(() => fixed.forward(x).sum().backward());
  assert.equal(fixed.stateDict().get('p')!.grad, null, 'a fixed p gets no gradient');
  assert.ok(x.grad !== null, 'the features still do');
  assert.equal([...fixed.namedParameters()].filter(([, p]) => p.requiresGrad).length, 0);
  fixed.dispose();
  x.dispose();
});

test('NetVLAD parameter names follow the reference; the batched aggregation equals the per-cluster sum', () => {
  const head = HEADS.netvlad(6, { netvladClusters: 3 }) as NetVLAD;
  assert.deepEqual([...head.stateDict().keys()], ['centroids', 'conv.weight']);
  assert.deepEqual(head.conv.weight.shape, [3, 6, 1, 1]);
  // Hand-rolled loop over clusters in JS numbers, independent of bmm.
  torch.tidy(() => torch.noGrad(() => {
    const x = torch.randn([2, 6, 3, 2]);
    const got = head.forward(x).toNumbers();
    const xn = l2n(x, 1);
    const a = xn.shape && torch.F.conv2d(xn, head.conv.weight).reshape(2, 3, 6).softmax(1).toNumbers();
    const xs = xn.reshape(2, 6, 6).toNumbers();
    const cs = head.centroids.toNumbers();
    // The head in float32: L2 over 6 channels, 1x1 conv over 6, softmax over 3, sum over 6 positions,
    // intra-L2 over 6, L2 over 18: 6 reductions (descriptor values ≤ 1). The loop below reuses the
    // head's float32 L2 and assignment (within that bound of exact) and adds float64 roundings only, so
    // the two agree within twice the float32 bound.
    const bound = 2 * roundingBound('float32', { depth: 6, terms: 18 + 2, magnitude: 1 });
    for (let b = 0; b < 2; b++) {
      const v: number[] = [];
      for (let k = 0; k < 3; k++) {
        const vk = Array.from({ length: 6 }, (_, d) => {
          let s = 0;
          for (let i = 0; i < 6; i++) s += a[b * 18 + k * 6 + i] * (xs[b * 36 + d * 6 + i] - cs[k * 6 + d]);
          return s;
        });
        const n = Math.hypot(...vk);
        v.push(...vk.map((e) => e / n));
      }
      const n = Math.hypot(...v);
      v.forEach((e, i) => assert.ok(Math.abs(e / n - got[b * 18 + i]) <= bound, `b${b}[${i}]: ${got[b * 18 + i]} vs ${e / n} (bound ${bound})`));
    }
    // the functional form with the module's parameters gives the same descriptor (two float32 computations of it)
    const d = maxAbsDiffBetween(netvlad(x, head.conv.weight, head.centroids), torch.tensor(got, [2, 18]));
    assert.ok(d <= bound, `functional form differs by ${d} (bound ${bound})`);
  }));
  head.dispose();
});

test('CRN: reference parameter names, acc_w frozen at 1, CRN layers split out for their own learning rate', () => {
  const head = HEADS.crn(8, { netvladClusters: 4 }) as CRN;
  const names = [...head.stateDict().keys()];
  assert.deepEqual(names, ['centroids', 'conv.weight', 'crn.filter_3_3.weight', 'crn.filter_3_3.bias',
    'crn.filter_5_5.weight', 'crn.filter_5_5.bias', 'crn.filter_7_7.weight', 'crn.filter_7_7.bias',
    'crn.acc_w.weight', 'crn.acc_w.bias']);
  assert.ok(!head.crn.acc_w.weight.requiresGrad);
  assert.ok(head.crn.acc_w.weight.toNumbers().every((v) => v === 1));
  assert.deepEqual(head.crn.filter_7_7.weight.shape, [20, 8, 7, 7]);
  const { own: crn, rest } = splitOwnLayerParameters('crn', head);
  assert.equal(crn.length, 6);
  assert.deepEqual(rest, [head.centroids, head.conv.weight]);
  assert.deepEqual(head.crnParameters(), crn);
  // through the wrappers too
  const wrapped = HEADS['attention+crn'](8, { netvladClusters: 4, fcOutputDim: 3 });
  const split = splitOwnLayerParameters('crn', wrapped);
  assert.equal(split.own.length, 6);
  assert.equal(split.rest.length, 2 + 3 + 2); // centroids, conv; fc1, fc2, spatial conv; Linear weight, bias
  // odd map sizes: the mask is resized to the map, not just doubled
  const d = torch.tidy(() => torch.noGrad(() => head.forward(torch.rand([1, 8, 7, 9])).shape));
  assert.deepEqual(d, [1, 32]);
  head.dispose();
  wrapped.dispose();
});

test('CBAM keeps the feature-map shape; the wrappers expose their children by name', () => {
  const cbam = new CBAM(32, {});
  assert.deepEqual([...cbam.stateDict().keys()], ['channel.fc1.weight', 'channel.fc2.weight', 'spatial.conv1.weight']);
  assert.deepEqual(cbam.channel.fc1.weight.shape, [2, 32, 1, 1]);
  torch.tidy(() => assert.deepEqual(cbam.forward(torch.rand([2, 32, 5, 7])).shape, [2, 32, 5, 7]));
  const head: AggregationHead = HEADS['attention+netvlad'](32, { netvladClusters: 2, fcOutputDim: 16 });
  assert.deepEqual([...head.stateDict().keys()], [
    '0.attention.channel.fc1.weight', '0.attention.channel.fc2.weight', '0.attention.spatial.conv1.weight',
    '0.head.centroids', '0.head.conv.weight', '1.weight', '1.bias']);
  cbam.dispose();
  head.dispose();
});

test('tidy: a forward + backward leaves no tensors behind', () => {
  for (const name of AGGREGATION_NAMES) {
    const head = HEADS[name](8, { netvladClusters: 4, cbamReduction: 2, soaReduction: 2, fcOutputDim: 4 });
    const before = torch.liveTensors();
    torch.tidy(() => {
      head.forward(torch.rand([2, 8, 6, 6])).sum().backward();
    });
    head.zeroGrad();
    assert.equal(torch.liveTensors(), before, `${name}: live tensors`);
    head.dispose();
  }
});
