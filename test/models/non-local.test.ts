// The non-local block and SOLAR's second-order attention against PyTorch (test/fixtures/attention/
// blocks.json, made by scripts/fixtures/make_attention_fixtures.py): parameters loaded by name,
// output and gradients (input and every parameter, float64 in the fixture) within the float64 rounding
// bound in float64 and the float32 one in float32 (test/helpers/parity.ts); and both blocks start as
// the identity, so inserting one does not change a pretrained network until it learns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.ts';
import type { Tensor, HostTensor } from '../../src/torch/index.ts';
import { NonLocalBlock, SecondOrderAttention } from '../../src/models/aggregation/non-local.ts';
import { roundingBound, maxAbsDiff, largestMagnitude, float64Host, type Computation, type ParityDtype } from '../helpers/parity.ts';

interface Enc { shape: number[]; data: number[] }
interface Case {
  name: string;
  options: { block: 'nonlocal' | 'soa'; channels: number; subSample?: boolean; reduction?: number };
  input: Enc; state: Record<string, Enc>; output: Enc; weight: Enc; grads: Record<string, Enc>;
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/attention/blocks.json', import.meta.url), 'utf8')) as { cases: Case[] };
const host = (e: Enc): HostTensor => ({ dtype: 'float32', shape: e.shape, data: Float32Array.from(e.data) });

/** Largest difference over its rounding bound (asserted ≤ 1), the magnitude the expected values' largest. */
function checkClose(got: Tensor, want: Enc, what: string, dtype: ParityDtype, c: Omit<Computation, 'magnitude'>): number {
  const w = float64Host(want.shape, want.data);
  const d = maxAbsDiff(got, w);
  const bound = roundingBound(dtype, { ...c, magnitude: largestMagnitude(w) });
  assert.ok(d <= bound, `${what} in ${dtype}: max abs difference ${d} exceeds the ${dtype} rounding bound ${bound}`);
  return d / bound;
}

/**
 * The blocks' longest path: the 1x1 projections over C channels (+ bias), the affinity over the inner
 * width, the softmax and the weighted sum over the key positions N' (non-local: 2x2-pooled when
 * sub-sampled), the output 1x1 conv (+ BatchNorm, non-local) and the residual add: 5 reductions
 * (SOA: BatchNorm and ReLU on f and g, a scale on the affinity), of at most max(C, N') terms, elementwise
 * roundings counted as a few terms more. Gradients go forward and back (twice the depth), and a
 * parameter's gradient sums over every batch position (B·H·W terms).
 */
function computations(c: Case): { forward: Omit<Computation, 'magnitude'>; backward: Omit<Computation, 'magnitude'> } {
  const [b, ch, h, w] = c.input.shape as [number, number, number, number];
  const keys = c.options.subSample ? Math.floor(h / 2) * Math.floor(w / 2) : h * w;
  const terms = Math.max(ch + 1, keys) + 4;
  return { forward: { depth: 5, terms }, backward: { depth: 10, terms: Math.max(terms, b * h * w + 1) } };
}

const build = (o: Case['options']) => (o.block === 'nonlocal'
  ? new NonLocalBlock(o.channels, { subSample: o.subSample })
  : new SecondOrderAttention(o.channels, { reduction: o.reduction }));

for (const c of fixture.cases) {
  test(`${c.name}: output and gradients match PyTorch (float64 and float32 rounding bounds)`, () => {
    const { forward, backward } = computations(c);
    const worst: Record<string, number> = {};
    for (const dtype of ['float64', 'float32'] as const) {
      const block = build(c.options);
      const state = new Map(Object.entries(c.state).map(([k, v]) => [k, host(v)]));
      torch.loadStateDict(block, state, { source: c.name }); // strict: the same names both ways
      block.eval().to(dtype);
      torch.tidy(() => {
        const x = torch.fromHost(host(c.input)).to(dtype).requiresGrad_(true);
        const out = block.forward(x);
        const ratios = [checkClose(out, c.output, 'output', dtype, forward)];
        out.mul(torch.fromHost(host(c.weight)).to(dtype)).sum().backward();
        ratios.push(checkClose(x.grad!, c.grads.input!, 'input grad', dtype, backward));
        const params = new Map(block.namedParameters());
        assert.deepEqual([...params.keys()].sort(), Object.keys(c.grads).filter((k) => k !== 'input').sort(), 'the same parameters by name');
        for (const [name, p] of params) ratios.push(checkClose(p.grad!, c.grads[name]!, `grad ${name}`, dtype, backward));
        worst[dtype] = Math.max(...ratios);
      });
      block.dispose();
    }
    console.log(`# ${c.name}: largest difference / rounding bound, float64 ${worst.float64!.toExponential(1)}, float32 ${worst.float32!.toExponential(1)}`);
  });
}

test('both blocks start as the identity (zero-initialised output path) and keep the shape', () => {
  torch.manualSeed(0);
  torch.tidy(() => {
    const x = torch.randn([2, 12, 7, 9]);
    for (const block of [new NonLocalBlock(12), new SecondOrderAttention(12, { reduction: 4 })]) {
      block.eval();
      const y = block.forward(x);
      assert.deepEqual(y.shape, x.shape);
      assert.equal(y.sub(x).abs().sum().item(), 0);
      block.dispose();
    }
    assert.throws(() => new NonLocalBlock(12).forward(torch.randn([1, 8, 4, 4])), /non-local block: expected features \[B, 12, H, W\], got \[1,8,4,4\]/);
  });
});

test('the spec\'s attention kind picks the block in front of the head (state-dict names under aggregation.attention)', async () => {
  const { buildModel, ModelSpecSchema } = await import('../../src/models/assemble.ts');
  const spec = (attention: unknown) => ModelSpecSchema.parse({ backbone: 'resnet18conv4', resnetWidths: [4, 4, 8, 8], aggregation: 'gem', attention });
  const keysOf = (attention: unknown) => {
    const net = buildModel(spec(attention));
    const keys = [...net.stateDict().keys()].filter((k) => k.startsWith('aggregation.attention.'));
    net.dispose();
    return keys;
  };
  assert.deepEqual(keysOf('none'), []);
  assert.ok(keysOf('soa').includes('aggregation.attention.f.0.weight') && keysOf('soa').includes('aggregation.attention.v.bias'));
  assert.ok(keysOf('nonlocal').includes('aggregation.attention.theta.weight') && keysOf('nonlocal').includes('aggregation.attention.W.1.running_var'));
  assert.ok(keysOf(true).includes('aggregation.attention.channel.fc1.weight'), 'true is CBAM, as before');
  assert.deepEqual(keysOf(true), keysOf('cbam'));
});
