// Aggregation heads against PyTorch: test/fixtures/heads/heads.json (made by
// scripts/fixtures/make_head_fixtures.py) holds inputs, parameters by state-dict name, outputs and the
// gradients of sum(output * weight). Each head is built from the registry, loaded by name, and must
// match in float32 within 1e-5. Plus shapes and dims of every registered head.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.ts';
import { Tensor } from '../../src/torch/index.ts';
import type { HostTensor } from '../../src/torch/dtype.ts';
import {
  HEADS, AGGREGATION_NAMES, buildHead, splitCrnParameters, CBAM, CRN, GeM, NetVLAD, AttentionHead, ProjectedHead, type HeadOptions,
} from '../../src/models/aggregation/index.ts';
import { rmacRegions, netvlad, l2n } from '../../src/models/functional.ts';
import { isDataInitialised, type AggregationHead } from '../../src/models/types.ts';

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

const host = (e: Enc): HostTensor => ({ dtype: 'float32', shape: e.shape, data: Float32Array.from(e.data) });
const load = (e: Enc): Tensor => torch.fromHost(host(e));

function assertClose(got: Tensor, want: Enc, what: string, tol = 1e-5): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  const g = got.toFloat32Array();
  let worst = 0;
  want.data.forEach((w, i) => {
    worst = Math.max(worst, Math.abs(g[i] - w) / (1 + Math.abs(w)));
  });
  assert.ok(worst <= tol, `${what}: max relative difference ${worst} > ${tol}`);
}

// The fixtures' GeM L2-normalises before and after pooling (vgl's GeM class can do both; --l2 picks one).
const gemBoth = (c: number) => new GeM(c, { normalizeInput: true, normalizeOutput: true });
type Build = () => { module: torch.nn.Module & { forward(x: Tensor): Tensor } };
const builders: Record<string, Build> = {
  gem: () => ({ module: gemBoth(8) }),
  gem_raw: () => ({ module: HEADS.gem(6, { l2: 'none' }) }),
  netvlad: () => ({ module: HEADS.netvlad(16, { clusters: 8 }) }),
  crn: () => ({ module: HEADS.crn(4, { clusters: 6 }) }),
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
  test(`${c.name}: output${c.grads ? ' and gradients' : ''} match PyTorch`, () => {
    const build = builders[c.name];
    assert.ok(build, `no builder for fixture case ${c.name}`);
    const { module } = build();
    // Strict load: every parameter name of the vgl head must be one of PyTorch's, and vice versa.
    torch.loadStateDict(module, new Map(Object.entries(c.params).map(([k, v]) => [k, host(v)])), { source: c.name });
    torch.tidy(() => {
      const x = load(c.input).requiresGrad_(true);
      const out = module.forward(x);
      assertClose(out, c.output, `${c.name} output`);
      if (!c.weight || !c.grads) return;
      out.mul(load(c.weight)).sum().backward();
      const params = new Map(module.namedParameters());
      for (const [name, want] of Object.entries(c.grads)) {
        const p = params.get(name)!;
        if (!p.requiresGrad) continue; // frozen in vgl as in the reference (CRN's acc_w)
        const g = p.grad;
        assert.ok(g, `${c.name}: ${name} has no gradient`);
        assertClose(g, want, `${c.name} grad ${name}`, 2e-5);
      }
      assertClose(x.grad!, c.input_grad!, `${c.name} input grad`, 2e-5);
    });
    module.dispose();
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
      const options: HeadOptions = { clusters: k, attentionReduction: 4, fcDim, l2: 'after_pool' };
      const head = HEADS[name](c, options);
      const dim = fcDim ?? expected(name);
      assert.equal(head.dim, dim, `${name} fcDim=${fcDim}: dim`);
      const norms = torch.tidy(() => {
        const d = torch.noGrad(() => head.eval().forward(x));
        assert.deepEqual(d.shape, [3, dim], `${name} fcDim=${fcDim}: shape`);
        return d.norm(2, 1).toNumbers();
      });
      for (const n of norms) assert.ok(Math.abs(n - 1) < 1e-5, `${name}: descriptor norm ${n}`);
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
  const cases: [string, HeadOptions['l2'], number[]][] = [
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
  for (const [name, placement, want] of cases) {
    const head = buildHead(name, C, { l2: placement });
    const got = torch.tidy(() => torch.noGrad(() => head.forward(xs).toNumbers()));
    want.forEach((w, c) => assert.ok(Math.abs(got[c] - w) < 1e-5, `${name} l2=${placement}: [${c}] ${got[c]} vs ${w}`));
    head.dispose();
  }
  // before_pool leaves the descriptor's length free (the reference adds no L2 after pooling)
  assert.ok(Math.abs(Math.hypot(...mean(unit)) - 1) > 1e-3);
  assert.throws(() => buildHead('gem', C, { l2: 'both' as never }), /l2 must be one of before_pool, after_pool, none, got 'both'/);
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
  const head = HEADS.netvlad(6, { clusters: 3 }) as NetVLAD;
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
      v.forEach((e, i) => assert.ok(Math.abs(e / n - got[b * 18 + i]) < 1e-5, `b${b}[${i}]`));
    }
    // the functional form with the module's parameters gives the same descriptor
    assert.ok(netvlad(x, head.conv.weight, head.centroids).allclose(torch.tensor(got, [2, 18]), 1e-5, 1e-6));
  }));
  head.dispose();
});

test('CRN: reference parameter names, acc_w frozen at 1, CRN layers split out for their own learning rate', () => {
  const head = HEADS.crn(8, { clusters: 4 }) as CRN;
  const names = [...head.stateDict().keys()];
  assert.deepEqual(names, ['centroids', 'conv.weight', 'crn.filter_3_3.weight', 'crn.filter_3_3.bias',
    'crn.filter_5_5.weight', 'crn.filter_5_5.bias', 'crn.filter_7_7.weight', 'crn.filter_7_7.bias',
    'crn.acc_w.weight', 'crn.acc_w.bias']);
  assert.ok(!head.crn.acc_w.weight.requiresGrad);
  assert.ok(head.crn.acc_w.weight.toNumbers().every((v) => v === 1));
  assert.deepEqual(head.crn.filter_7_7.weight.shape, [20, 8, 7, 7]);
  const { crn, rest } = splitCrnParameters(head);
  assert.equal(crn.length, 6);
  assert.deepEqual(rest, [head.centroids, head.conv.weight]);
  assert.deepEqual(head.crnParameters(), crn);
  // through the wrappers too
  const wrapped = HEADS['attention+crn'](8, { clusters: 4, fcDim: 3 });
  const split = splitCrnParameters(wrapped);
  assert.equal(split.crn.length, 6);
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
  const head: AggregationHead = HEADS['attention+netvlad'](32, { clusters: 2, fcDim: 16 });
  assert.deepEqual([...head.stateDict().keys()], [
    '0.attention.channel.fc1.weight', '0.attention.channel.fc2.weight', '0.attention.spatial.conv1.weight',
    '0.head.centroids', '0.head.conv.weight', '1.weight', '1.bias']);
  cbam.dispose();
  head.dispose();
});

test('tidy: a forward + backward leaves no tensors behind', () => {
  for (const name of AGGREGATION_NAMES) {
    const head = HEADS[name](8, { clusters: 4, attentionReduction: 2, fcDim: 4 });
    const before = torch.liveTensors();
    torch.tidy(() => {
      head.forward(torch.rand([2, 8, 6, 6])).sum().backward();
    });
    head.zeroGrad();
    assert.equal(torch.liveTensors(), before, `${name}: live tensors`);
    head.dispose();
  }
});
