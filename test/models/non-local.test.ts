// The non-local block and SOLAR's second-order attention against PyTorch (test/fixtures/attention/
// blocks.json, made by scripts/fixtures/make_attention_fixtures.py): parameters loaded by name,
// output and gradients (input and every parameter) within float32 tolerance; and both blocks start as
// the identity, so inserting one does not change a pretrained network until it learns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.ts';
import type { Tensor, HostTensor } from '../../src/torch/index.ts';
import { NonLocalBlock, SecondOrderAttention } from '../../src/models/aggregation/non-local.ts';

interface Enc { shape: number[]; data: number[] }
interface Case {
  name: string;
  options: { block: 'nonlocal' | 'soa'; channels: number; subSample?: boolean; reduction?: number };
  input: Enc; state: Record<string, Enc>; output: Enc; weight: Enc; grads: Record<string, Enc>;
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/attention/blocks.json', import.meta.url), 'utf8')) as { cases: Case[] };
const host = (e: Enc): HostTensor => ({ dtype: 'float32', shape: e.shape, data: Float32Array.from(e.data) });

function assertClose(got: Tensor, want: Enc, what: string, tol: number): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  const g = got.toFloat32Array();
  const worst = want.data.reduce((m, w, i) => Math.max(m, Math.abs(g[i]! - w) / (1 + Math.abs(w))), 0);
  assert.ok(worst <= tol, `${what}: max relative difference ${worst} > ${tol}`);
}

const build = (o: Case['options']) => (o.block === 'nonlocal'
  ? new NonLocalBlock(o.channels, { subSample: o.subSample })
  : new SecondOrderAttention(o.channels, { reduction: o.reduction }));

for (const c of fixture.cases) {
  test(`${c.name}: output and gradients match PyTorch`, () => {
    const block = build(c.options);
    const state = new Map(Object.entries(c.state).map(([k, v]) => [k, host(v)]));
    torch.loadStateDict(block, state, { source: c.name }); // strict: the same names both ways
    block.eval();
    torch.tidy(() => {
      const x = torch.fromHost(host(c.input)).requiresGrad_(true);
      const out = block.forward(x);
      assertClose(out, c.output, 'output', 1e-5);
      out.mul(torch.fromHost(host(c.weight))).sum().backward();
      assertClose(x.grad!, c.grads.input!, 'input grad', 2e-5);
      const params = new Map(block.namedParameters());
      assert.deepEqual([...params.keys()].sort(), Object.keys(c.grads).filter((k) => k !== 'input').sort(), 'the same parameters by name');
      for (const [name, p] of params) assertClose(p.grad!, c.grads[name]!, `grad ${name}`, 2e-5);
    });
    block.dispose();
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
