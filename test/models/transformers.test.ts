// Transformer backbones against PyTorch and in use: a tiny ViT (timm's names) and a tiny CCT (the
// authors' names) written by PyTorch (scripts/fixtures/make_transformer_fixtures.py) load by name and
// reproduce PyTorch's tokens, at the stored grid and at a non-square one (position embeddings
// resampled); every transformer x gem / netvlad / cls gives descriptors of the advertised size;
// attention and the resampling pass gradient checks; --trunc-te and --freeze-te act as the reference's;
// the memory probe sees attention's quadratic growth; a resumed tiny CCT run equals an uninterrupted one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.ts';
import type { HostTensor } from '../../src/torch/dtype.ts';
import { roundingBound, maxAbsDiff, largestMagnitude, checkParity, injectEps, type Computation, type ParityDtype } from '../helpers/parity.ts';
import { readStateDict } from '../../src/torch/serialization/index.ts';
import { gradcheck } from '../../src/torch/gradcheck.ts';
import { VisionTransformer, ViTBlock, loadViTWeights, type ViTShape } from '../../src/models/vit.ts';
import { CCT, CCTEncoderLayer, loadCCTWeights, type CCTShape } from '../../src/models/cct.ts';
import { Attention, resamplePositions } from '../../src/models/transformer.ts';
import { buildNetwork, BACKBONES, type BackboneName } from '../../src/models/network.ts';
import { HEADS } from '../../src/models/aggregation/index.ts';
import { activationBytesPerImage } from '../../src/models/memory.ts';
import { buildModel, initialiseHeadFromData, ModelSpecSchema } from '../../src/models/assemble.ts';
import { openDataset } from '../../src/data/dataset.ts';
import { TrainConfigSchema, trainOptionsFromMapping } from '../../src/train/config.ts';
import { train } from '../../src/train/train.ts';
import { loadCheckpoint } from '../../src/torch/checkpoint.ts';
import { useTinyCity, quiet, stepLosses, assertSameTensors } from '../helpers/tiny-city.ts';
import { commandLineMessage } from '../../src/errors.ts';

const dir = new URL('../fixtures/transformers/', import.meta.url);
const shapes = JSON.parse(readFileSync(new URL('shapes.json', dir), 'utf8')) as {
  vit: ViTShape; cct: CCTShape; vitKeys: string[]; cctKeys: string[]; cctGrid: [number, number];
};
const path = (name: string) => new URL(name, dir).pathname;

// The fixtures' expected outputs are float64 (PyTorch in float64 from the float32 weights and inputs).
// Each parity check runs vgl in float64, against the float64 rounding bound (~1e-12: any CPU's kernels
// agree far within it, and a LayerNorm eps of 1e-5 instead of timm's 1e-6, 8e-5 away, is far outside:
// the injected-bug test below), and in float32, the path users run, against the float32 bound.
const PATCH_TERMS = 3 * shapes.vit.patch * shapes.vit.patch;
/** Reductions of one pre-norm block: LayerNorm (mean, variance), qkv, q·k, softmax, weights·v, proj, LayerNorm, fc1, fc2. */
const BLOCK_REDUCTIONS = 10;
const vitComputation = (blocks: number, magnitude: number): Computation =>
  ({ depth: 1 + BLOCK_REDUCTIONS * blocks + 2, terms: Math.max(PATCH_TERMS, 1 + 16), magnitude });
// CCT: two 7x7 tokenizer convolutions (3 and 8 input planes), the blocks, the final norm, sequence pooling (linear, softmax, sum).
const CCT_TERMS = shapes.cct.tokenizerPlanes * shapes.cct.kernel * shapes.cct.kernel;
const cctComputation = (magnitude: number): Computation =>
  ({ depth: shapes.cct.convLayers + BLOCK_REDUCTIONS * shapes.cct.depth + 2 + 3, terms: CCT_TERMS, magnitude });

/** A fixture input in `dtype`. */
const inputOf = (h: HostTensor, dtype: ParityDtype) => torch.fromHost(h).to(dtype);

async function tinyViT(options: ConstructorParameters<typeof VisionTransformer>[1] = {}): Promise<VisionTransformer> {
  const vit = new VisionTransformer(shapes.vit, options).eval();
  loadViTWeights(vit, await readStateDict(path('vit_tiny.pth')), 'vit_tiny.pth');
  return vit;
}

async function tinyCCT(options: ConstructorParameters<typeof CCT>[1] = {}): Promise<CCT> {
  const cct = new CCT(shapes.cct, options).eval();
  loadCCTWeights(cct, await readStateDict(path('cct_tiny.pth')), 'cct_tiny.pth');
  return cct;
}

// ---------------------------------------------------------------------------------------------
// Parity with PyTorch

test("ViT parameter names are timm's (without the classifier head), in timm's order", () => {
  const vit = new VisionTransformer(shapes.vit);
  assert.deepEqual([...vit.stateDict().keys()], shapes.vitKeys.filter((k) => !k.startsWith('head.')));
  vit.dispose();
});

test('tiny ViT with PyTorch weights: tokens, class-token and GeM descriptors equal PyTorch\'s at the stored 4x4 grid', async () => {
  const io = await readStateDict(path('vit_tiny_io.pth'));
  const vit = { float32: await tinyViT(), float64: (await tinyViT()).to('float64') };
  const cls = { float32: await tinyViT({ output: 'token' }), float64: (await tinyViT({ output: 'token' })).to('float64') };
  const gem = { float32: HEADS.gem(16, {}), float64: HEADS.gem(16, {}).to('float64') };
  const x = io.get('square.input')!;
  const report = torch.inferenceMode(() => [
    checkParity('tokens', (dt) => vit[dt].tokens(inputOf(x, dt)), io.get('square.tokens')!, (m) => vitComputation(2, m)),
    // The patch-token map under the standard GeM head (L2 per token, then GeM p=3): an L2 and a GeM more.
    checkParity('GeM', (dt) => {
      const map = vit[dt].forward(inputOf(x, dt));
      assert.deepEqual(map.shape, [2, 16, 4, 4]);
      return gem[dt].forward(map);
    }, io.get('square.gem')!, (m) => ({ ...vitComputation(2, m), depth: vitComputation(2, m).depth + 2 })),
    checkParity('cls', (dt) => {
      const token = cls[dt].forward(inputOf(x, dt));
      assert.deepEqual(token.shape, [2, 16, 1, 1]);
      return HEADS.cls(16, {}).forward(token);
    }, io.get('square.cls')!, (m) => ({ ...vitComputation(2, m), depth: vitComputation(2, m).depth + 1 })),
  ]);
  console.log(`# ViT parity: ${report.join('; ')}`);
  for (const m of [vit.float32, vit.float64, cls.float32, cls.float64, gem.float32, gem.float64]) m.dispose();
});

test('a parity check in float64 rejects LayerNorm eps 1e-5 instead of timm\'s 1e-6, which float32 cannot see', async () => {
  // The bug the ViT parity test exists for, injected: every LayerNorm of the tiny ViT with eps 1e-5.
  const io = await readStateDict(path('vit_tiny_io.pth'));
  const vit = (await tinyViT()).to('float64');
  const patched = injectEps(vit, torch.nn.LayerNorm, 1e-6, 1e-5, 'timm\'s ViT LayerNorm eps');
  assert.equal(patched, 2 * shapes.vit.depth + 1);
  const want = io.get('square.tokens')!;
  const d = torch.tidy(() => torch.inferenceMode(() => maxAbsDiff(vit.tokens(inputOf(io.get('square.input')!, 'float64')), want)));
  const computation = vitComputation(2, largestMagnitude(want));
  assert.ok(d > roundingBound('float64', computation), `eps 1e-5 gave ${d}, within the float64 bound ${roundingBound('float64', computation)}: the check cannot see the bug`);
  // float32 alone could not tell the bug from rounding: its bound is above the bug's effect.
  assert.ok(d < roundingBound('float32', computation), `eps 1e-5 moved the tokens by ${d}`);
  console.log(`# injected LayerNorm eps 1e-5: ${d.toExponential(2)} (float64 bound ${roundingBound('float64', computation).toExponential(1)}, float32 ${roundingBound('float32', computation).toExponential(1)})`);
  vit.dispose();
});

test('tiny ViT on a non-square 40x28 input: 5x3 patch grid (remainder cropped), position embeddings resampled bicubic with antialias as timm', async () => {
  const io = await readStateDict(path('vit_tiny_io.pth'));
  const vit = { float32: await tinyViT(), float64: (await tinyViT()).to('float64') };
  assert.deepEqual(vit.float32.patchGrid(40, 28), [5, 3]);
  // The resampling (bicubic over the 4x4 grid, 16 terms) adds one reduction.
  const report = torch.inferenceMode(() => checkParity('tokens at 5x3', (dt) => vit[dt].tokens(inputOf(io.get('wide.input')!, dt)),
    io.get('wide.tokens')!, (m) => ({ ...vitComputation(2, m), depth: vitComputation(2, m).depth + 1 })));
  console.log(`# ViT parity: ${report}`);
  torch.tidy(() => torch.inferenceMode(() => {
    assert.deepEqual(vit.float32.forward(torch.fromHost(io.get('wide.input')!)).shape, [1, 16, 5, 3]);
    // At the stored grid the parameter itself is used; elsewhere a resampled copy of the right length.
    assert.equal(vit.float32.positionEmbedding(4, 4), vit.float32.pos_embed);
    assert.deepEqual(vit.float32.positionEmbedding(5, 3).shape, [1, 16, 16]);
  }));
  vit.float32.dispose();
  vit.float64.dispose();
});

test('tiny CCT with PyTorch weights (the authors\' names): tokens and sequence pooling equal PyTorch\'s, at 4x4 and at a non-square 5x3 grid (bilinear resampling)', async () => {
  const cct = new CCT(shapes.cct);
  assert.deepEqual([...cct.stateDict().keys()], shapes.cctKeys.filter((k) => !k.startsWith('classifier.fc.') && !k.startsWith('classifier.attention_pool.')));
  cct.dispose();
  const pooled = new CCT(shapes.cct, { output: 'token' });
  assert.deepEqual([...pooled.stateDict().keys()], shapes.cctKeys.filter((k) => !k.startsWith('classifier.fc.')));
  assert.deepEqual(pooled.grid, shapes.cctGrid);
  pooled.dispose();

  const io = await readStateDict(path('cct_tiny_io.pth'));
  const grid = { float32: await tinyCCT(), float64: (await tinyCCT()).to('float64') };
  const token = { float32: await tinyCCT({ output: 'token' }), float64: (await tinyCCT({ output: 'token' })).to('float64') };
  const report: string[] = [];
  for (const [name, hw] of [['square', [4, 4]], ['wide', [5, 3]]] as const) {
    const x = io.get(`${name}.input`)!;
    assert.deepEqual(grid.float32.tokenizer.grid(x.shape[2], x.shape[3]), hw);
    // Resampled position embeddings at 5x3: one reduction more (bilinear, 4 terms).
    const extra = name === 'wide' ? 1 : 0;
    torch.inferenceMode(() => {
      report.push(checkParity(`${name} tokens`, (dt) => grid[dt].tokens(inputOf(x, dt)), io.get(`${name}.tokens`)!,
        (m) => ({ ...cctComputation(m), depth: cctComputation(m).depth - 3 + extra })));
      report.push(checkParity(`${name} seqpool`, (dt) => token[dt].forward(inputOf(x, dt)).flatten(1), io.get(`${name}.seqpool`)!,
        (m) => ({ ...cctComputation(m), depth: cctComputation(m).depth + extra })));
    });
    torch.tidy(() => assert.deepEqual(grid.float32.forward(torch.fromHost(x)).shape, [1, 16, ...hw]));
  }
  console.log(`# CCT parity: ${report.join('; ')}`);
  for (const m of [grid.float32, grid.float64, token.float32, token.float64]) m.dispose();
});

test('a checkpoint learned for another grid loads resampled (timm / pe_check), giving what runtime resampling gives', async () => {
  const at32 = await tinyViT();
  const at48 = new VisionTransformer({ ...shapes.vit, imageSize: 48 }).eval(); // stores a 6x6 grid
  loadViTWeights(at48, await readStateDict(path('vit_tiny.pth')), 'vit_tiny.pth');
  assert.deepEqual(at48.pos_embed.shape, [1, 37, 16]);
  const cct32 = new CCT({ ...shapes.cct, imageSize: 32 }).eval(); // stores a 2x2 grid
  loadCCTWeights(cct32, await readStateDict(path('cct_tiny.pth')), 'cct_tiny.pth');
  const cct64 = await tinyCCT();
  // Both resample the same float32 embeddings with the same op, once at load, once per forward: each
  // forward is within the float32 bound of exact, so the two within twice that.
  torch.tidy(() => torch.inferenceMode(() => {
    const x = torch.rand([1, 3, 48, 48]);
    const a = at48.tokens(x);
    const dv = a.sub(at32.tokens(x)).abs().amax().item();
    assert.ok(dv <= 2 * roundingBound('float32', { ...vitComputation(2, Math.max(1, a.abs().amax().item())), depth: vitComputation(2, 1).depth + 1 }), `ViT: ${dv}`);
    const y = torch.rand([1, 3, 32, 32]);
    const c = cct32.tokens(y);
    const dc = c.sub(cct64.tokens(y)).abs().amax().item();
    assert.ok(dc <= 2 * roundingBound('float32', { ...cctComputation(Math.max(1, c.abs().amax().item())), depth: cctComputation(1).depth + 1 }), `CCT: ${dc}`);
    console.log(`# resampled at load vs per forward: ViT ${dv.toExponential(1)}, CCT ${dc.toExponential(1)}`);
  }));
  for (const m of [at32, at48, cct32, cct64]) m.dispose();
});

// ---------------------------------------------------------------------------------------------
// Every transformer x head

const TRANSFORMERS: BackboneName[] = ['vit', 'vit384', 'cct224', 'cct384'];

test('every transformer backbone x gem / netvlad / cls: feature map, descriptor dimension, unit descriptors', () => {
  torch.manualSeed(0);
  for (const backbone of TRANSFORMERS) {
    assert.equal(BACKBONES[backbone].transformer, true);
    for (const aggregation of ['gem', 'netvlad', 'cls'] as const) {
      const net = buildNetwork({ backbone, aggregation, netvladClusters: 4, l2: 'after_pool', transformerDims: [2, 32, 4] }).eval();
      torch.tidy(() => torch.noGrad(() => {
        // 64x96: ViT 16-pixel patches and CCT's two conv + pool stages (stride 16) both give 4x6 tokens.
        const x = torch.rand([2, 3, 64, 96]);
        const maps = net.features(x);
        assert.deepEqual(maps.shape, aggregation === 'cls' ? [2, 32, 1, 1] : [2, 32, 4, 6], `${backbone} + ${aggregation}: map`);
        const d = net.forward(x);
        const dim = aggregation === 'netvlad' ? 4 * 32 : 32;
        assert.equal(net.dim, dim);
        assert.deepEqual(d.shape, [2, dim], `${backbone} + ${aggregation}: descriptor`);
        for (const n of d.norm(2, 1).toNumbers()) assert.ok(Math.abs(n - 1) < 1e-4, `${backbone} + ${aggregation}: norm ${n}`);
      }));
      net.dispose();
    }
  }
});

test('the fast inference path (channels-last input) gives the plain forward\'s descriptors; a training step leaves no tensors behind', async () => {
  torch.manualSeed(2);
  for (const backbone of ['vit', 'cct224'] as const) {
    for (const aggregation of ['netvlad', 'cls'] as const) {
      const net = buildNetwork({ backbone, aggregation, netvladClusters: 4, transformerDims: [2, 16, 2] });
      const x = torch.rand([2, 3, 48, 80]);
      const plain = torch.tidy(() => torch.inferenceMode(() => net.eval().forward(x)).clone());
      const fast = await net.fastInference((forward) => torch.tidy(() => forward(x).clone()));
      assert.ok(fast.sub(plain).abs().amax().item() < 1e-5, `${backbone} + ${aggregation}`);
      net.train();
      const live = torch.liveTensors();
      torch.tidy(() => net.forward(x).pow(2).sum().backward());
      net.zeroGrad();
      assert.equal(torch.liveTensors(), live, `${backbone} + ${aggregation}: live tensors after a step`);
      torch.dispose([x, plain, fast]);
      net.dispose();
    }
  }
});

test('the named shapes: ViT-B/16 has timm\'s 85.8M parameters without the head, CCT-14/7x2 the authors\' 22.1M without fc', () => {
  const vit = new VisionTransformer();
  assert.equal(vit.parameterCount(), 85_798_656);
  assert.deepEqual(vit.pos_embed.shape, [1, 197, 768]);
  vit.dispose();
  const cct = new CCT(undefined, { output: 'token' });
  // 384 input → 24x24 = 576 tokens; 22,128,193 + fc (384·1000 + 1000) = the authors' 22.5M.
  assert.deepEqual(cct.classifier.positional_emb.shape, [1, 576, 384]);
  assert.equal(cct.parameterCount(), 22_128_193);
  cct.dispose();
});

test('cls needs a transformer; transformer options on a CNN are refused, naming the flags', () => {
  assert.throws(() => buildNetwork({ backbone: 'resnet18conv4', aggregation: 'cls', resnetWidths: [4, 4, 8, 8] }),
    /aggregation 'cls' uses a transformer's global token, which resnet18conv4 does not have; choose a transformer backbone \(vit, vit384, cct224, cct384\)/);
  assert.throws(() => buildModel(ModelSpecSchema.parse({ backbone: 'vgg16', aggregation: 'gem', truncTe: 3 })), /truncTe: applies to vit, vit384, cct224, cct384 only, not vgg16/);
  assert.throws(() => buildModel(ModelSpecSchema.parse({ backbone: 'vit', aggregation: 'gem', truncTe: 13 })), (e: unknown) => /--trunc-te 13: must keep between 1 and the 12 encoder blocks of ViT/.test(commandLineMessage(e)));
  assert.throws(() => buildModel(ModelSpecSchema.parse({ backbone: 'cct384', aggregation: 'gem', transformerDims: [2, 30, 4] })), /width 30 is not divisible by 4 heads/);
});

// ---------------------------------------------------------------------------------------------
// Gradients

test('gradcheck (float64): multi-head attention, a ViT block, a CCT layer and both position resamplings against finite differences', () => {
  torch.manualSeed(5);
  const blocks = [
    new Attention(4, 2, { qkvBias: true }),
    new ViTBlock(4, 2, 2),
    new CCTEncoderLayer(4, 2, 8, 0, 0, 0),
  ];
  for (const block of blocks) {
    block.to('float64').train();
    torch.tidy(() => {
      const x = torch.randn([2, 3, 4], { dtype: 'float64' });
      const r = gradcheck(([t]) => block.forward(t), [x]);
      assert.ok(r.maxAbsError < 1e-6, `${block.constructor.name}: max error ${r.maxAbsError} at ${JSON.stringify(r.worst)}`);
    });
    block.dispose();
  }
  torch.tidy(() => {
    const grid = torch.randn([1, 9, 2], { dtype: 'float64' });
    for (const [mode, to] of [['bicubic', [4, 2]], ['bilinear', [2, 5]]] as const) {
      const r = gradcheck(([g]) => resamplePositions(g, [3, 3], to, mode), [grid]);
      assert.ok(r.maxAbsError < 1e-6, `${mode}: max error ${r.maxAbsError}`);
    }
  });
});

test('the position embeddings learn at any input size: a backward at a non-square size reaches pos_embed and positional_emb', () => {
  torch.manualSeed(1);
  const vit = new VisionTransformer(shapes.vit);
  const cct = new CCT(shapes.cct, { output: 'token' });
  torch.tidy(() => {
    vit.forward(torch.rand([1, 3, 40, 24])).sum().backward();
    cct.forward(torch.rand([1, 3, 72, 40])).sum().backward();
    assert.ok(vit.pos_embed.grad!.abs().sum().item() > 0);
    assert.ok(cct.classifier.positional_emb.grad!.abs().sum().item() > 0);
  });
  vit.dispose();
  cct.dispose();
});

// ---------------------------------------------------------------------------------------------
// --trunc-te and --freeze-te

test('--trunc-te keeps blocks 0..N-1 (the others are not in the state dict, and a full checkpoint loads into it)', async () => {
  const io = await readStateDict(path('vit_tiny_io.pth'));
  const vit = await tinyViT({ truncate: 1 });
  const keys = [...vit.stateDict().keys()];
  assert.ok(keys.some((k) => k.startsWith('blocks.0.')) && !keys.some((k) => k.startsWith('blocks.1.')));
  vit.to('float64');
  const want = io.get('truncated.tokens')!;
  const d = torch.tidy(() => torch.inferenceMode(() => maxAbsDiff(vit.tokens(inputOf(io.get('square.input')!, 'float64')), want)));
  const bound = roundingBound('float64', vitComputation(1, largestMagnitude(want)));
  assert.ok(d <= bound, `truncated tokens: ${d} (float64 bound ${bound})`);
  vit.dispose();
  const cct = await tinyCCT({ truncate: 1 });
  assert.ok(![...cct.stateDict().keys()].some((k) => k.startsWith('classifier.blocks.1.')));
  cct.dispose();
});

test("--freeze-te N freezes as the reference: everything but the blocks after N (embeddings, blocks 0..N, final norm, CCT's pooling)", () => {
  for (const backbone of ['vit', 'cct384'] as const) {
    const spec = ModelSpecSchema.parse({ backbone, aggregation: 'cls', transformerDims: [4, 16, 2], truncTe: 3, freezeTe: 1 });
    const net = buildModel(spec);
    const names = [...net.stateDict().keys()];
    const blocks = backbone === 'vit' ? 'backbone.blocks.' : 'backbone.classifier.blocks.';
    assert.ok(names.some((k) => k.startsWith(`${blocks}2.`)) && !names.some((k) => k.startsWith(`${blocks}3.`)), `${backbone}: truncated at 3`);
    net.freezeBackbone('reference');
    for (const [name, p] of net.namedParameters()) {
      const trains = name.startsWith(`${blocks}2.`) || name.startsWith('aggregation.');
      assert.equal(p.requiresGrad, trains, `${backbone}: ${name}`);
    }
    net.dispose();
    // --freeze-backbone none: everything trains, --freeze-te or not.
    const free = buildModel(spec);
    free.freezeBackbone('none');
    assert.equal(free.parameterCount(true), free.parameterCount());
    free.dispose();
  }
  assert.throws(() => buildModel(ModelSpecSchema.parse({ backbone: 'vit', aggregation: 'gem', transformerDims: [3, 16, 2], freezeTe: 2 })),
    (e: unknown) => /--freeze-te 2: freezes blocks 0..2, i.e. all 3 encoder blocks of ViT; use freezeBackbone all/.test(commandLineMessage(e)));
  // vgl train takes them (its flags and config keys come from the model spec), in the reference's spelling too.
  const parsed = TrainConfigSchema.parse(trainOptionsFromMapping({ datasets_folder: '/d', dataset_name: 'x', output_folder: '/o', backbone: 'cct384', aggregation: 'cls', trunc_te: 8, freeze_te: 2 }));
  assert.deepEqual([parsed.model.truncTe, parsed.model.freezeTe], [8, 2]);
});

// ---------------------------------------------------------------------------------------------
// Memory guard

test('memory probe: attention weights scale with the square of the token count, other activations linearly', () => {
  const net = buildNetwork({ backbone: 'vit', aggregation: 'gem', transformerDims: [2, 16, 4] });
  const small = activationBytesPerImage(net, 128, 160);
  const large = activationBytesPerImage(net, 512, 640); // 16x the pixels
  // 2 blocks x 4 heads x 81² (8x10 patches + the class token) x 4 bytes of attention weights at the probe size grow 256x; the rest 16x.
  const quadratic = 2 * 4 * 81 ** 2 * 4;
  const linear = small.training - quadratic;
  assert.ok(linear > 0);
  assert.ok(Math.abs(large.training - (16 * linear + 256 * quadratic)) < 1e-6 * large.training, `${large.training} vs ${16 * linear + 256 * quadratic}`);
  assert.ok(large.inference >= 3 * 256 * 4 * 81 ** 2 * 4);
  net.dispose();
  for (const backbone of ['cct384', 'vit384'] as const) {
    const tokenNet = buildNetwork({ backbone, aggregation: 'cls', transformerDims: [1, 16, 2] });
    assert.ok(activationBytesPerImage(tokenNet, 480, 640).training > 0);
    tokenNet.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Training

// As test/train/train.test.ts, with a tiny transformer.
const city = useTinyCity('vgl-transformers-test-', { backbone: 'cct224', transformerDims: [2, 16, 2], aggregation: 'cls' });
const tinyConfig = city.config;

test('a tiny CCT (cls: sequence pooling; attention dropout and stochastic depth on) resumed mid-epoch and at an epoch boundary equals an uninterrupted run', async () => {
  const a = tinyConfig();
  await train(a, quiet);
  const b = tinyConfig();
  const stoppedAt: [number, number][] = [];
  for (const k of [2, 1]) {
    await train(b, { ...quiet, maxLoops: k });
    const ck = await loadCheckpoint<{ epoch: number; loop: number }>(join(b.run.outputFolder, 'last.pth'));
    stoppedAt.push([ck.meta.epoch, ck.meta.loop]);
  }
  await train(b, quiet);
  assert.deepEqual(stoppedAt, [[0, 2], [0, 3]]);
  const lastA = await loadCheckpoint(join(a.run.outputFolder, 'last.pth'));
  const lastB = await loadCheckpoint(join(b.run.outputFolder, 'last.pth'));
  assert.ok([...lastA.stateDict.keys()].includes('backbone.classifier.attention_pool.weight'));
  assertSameTensors(lastA.stateDict, lastB.stateDict, 'last.pth');
  lastA.optimizer!.state.forEach((p, i) => {
    assert.equal(lastB.optimizer!.state[i].step, p.step);
    assertSameTensors(new Map(Object.entries(p.tensors)), new Map(Object.entries(lastB.optimizer!.state[i].tensors)), `optimizer parameter ${i}`);
  });
  const losses = stepLosses(a.run.outputFolder);
  assert.equal(losses.length, 2 * 3 * 2);
  assert.deepEqual(stepLosses(b.run.outputFolder), losses);
});

test('a tiny ViT + NetVLAD initialises its clusters from patch tokens and trains an epoch', async () => {
  const config = tinyConfig({ backbone: 'vit', aggregation: 'netvlad', netvladClusters: 4, epochs: 1 });
  torch.manualSeed(0);
  const net = buildModel(config.model);
  const ds = await openDataset(config.data.datasetsFolder, config.data.datasetName, 'train');
  await initialiseHeadFromData(net, ds, { size: { height: 48, width: 64 }, batchSize: 8, seed: 1 });
  const alpha = (net.aggregation as unknown as { alpha: number | null }).alpha;
  assert.ok(alpha !== null && alpha > 0, `alpha ${alpha}`);
  net.dispose();
  const result = await train(config, quiet);
  assert.equal(result.history.length, 1);
  assert.ok(Number.isFinite(result.history[0].meanLoss));
});
