// Pieces shared by the transformer backbones (vit.ts, cct.ts): multi-head self-attention with a fused
// qkv projection, the MLP, stochastic depth, position embeddings resampled to the input's token grid,
// tokens ↔ feature maps, and the reference's --trunc_te / --freeze_te.
//
// A transformer backbone honours the Backbone contract (images → [B, C, h, w]) in one of two ways,
// chosen at construction: the patch tokens as a map (`grid`, so GeM, NetVLAD and the other heads apply
// unchanged), or the image's global token as a [B, C, 1, 1] map (`token`: ViT's class token, CCT's
// sequence pooling), which the `cls` head turns into the descriptor.
import { nn, F, tidy, rand, noGrad, type Tensor } from '../torch/index.ts';
import { freezeModules } from './types.ts';
import { OptionError } from '../errors.ts';

export const TOKEN_OUTPUTS = ['grid', 'token'] as const;
export type TokenOutput = (typeof TOKEN_OUTPUTS)[number];

/** The transformer part of a network config (the model spec's truncTe, freezeTe, transformerDims). */
export interface TransformerConfig {
  /** Keep encoder blocks 0..N-1 only (the reference's --trunc_te); the others are never built. */
  truncate?: number;
  /**
   * The reference's --freeze_te N, applied by freezeReference: every backbone parameter frozen, then
   * the blocks after N train again (so embeddings, blocks 0..N, the final norm and CCT's pooling stay fixed).
   */
  freeze?: number;
  /** [depth, width, heads] replacing the named shape's (tests and tiny experiments). */
  dims?: readonly number[];
}

export interface TransformerOptions extends TransformerConfig {
  /** The patch-token map or the global token (default 'grid'). */
  output?: TokenOutput;
}

/** Dropout rates of an encoder (timm's and the CCT authors' names in brackets). */
export interface Regularisation {
  /** After the embeddings, the attention projection and the MLP (drop_rate / dropout). */
  dropout?: number;
  /** On the attention weights (attn_drop_rate / attention_dropout). */
  attentionDropout?: number;
  /** Stochastic depth, rising linearly from 0 at the first block to this at the last (drop_path_rate / stochastic_depth). */
  dropPath?: number;
}

/** The depth/width/heads override of `dims`, checked. */
export function applyDims<S extends { depth: number; width: number; heads: number }>(shape: S, dims: readonly number[] | undefined, name: string): S {
  if (dims === undefined) return shape;
  if (dims.length !== 3 || !dims.every((d) => Number.isInteger(d) && d > 0)) {
    throw new Error(`${name}: transformer dims must be 3 positive integers depth,width,heads, got [${dims.join(', ')}]`);
  }
  const [depth, width, heads] = dims;
  return { ...shape, depth, width, heads };
}

/** How many blocks a truncation keeps, and the freeze point checked against them. */
export function checkTruncation(depth: number, config: TransformerConfig, name: string): number {
  const { truncate, freeze } = config;
  if (truncate !== undefined && !(Number.isInteger(truncate) && truncate >= 1 && truncate <= depth)) {
    throw new OptionError('truncTe', `must keep between 1 and the ${depth} encoder blocks of ${name}`, truncate);
  }
  const kept = truncate ?? depth;
  if (freeze !== undefined && !(Number.isInteger(freeze) && freeze >= 0)) throw new OptionError('freezeTe', `must be an integer >= 0 (${name})`, freeze);
  if (freeze !== undefined && freeze >= kept - 1) {
    throw new OptionError('freezeTe', `freezes blocks 0..${freeze}, i.e. all ${kept} encoder blocks of ${name}; use freezeBackbone all to train the head alone`, freeze);
  }
  return kept;
}

/** timm's trunc_normal_(std), truncated at ±2 (absolute, as timm): clamped, since at σ ≤ 0.2 nothing gets there. */
export function truncNormal_(t: Tensor, std: number): Tensor {
  nn.init.normal_(t, 0, std);
  noGrad(() => t.clamp_(-2, 2));
  return t;
}

/** timm's and the CCT authors' Linear init: weight trunc_normal(0.02), bias 0. */
export function initLinear(l: nn.Linear): void {
  truncNormal_(l.weight, 0.02);
  if (l.bias) nn.init.constant_(l.bias, 0);
}

/** Stochastic depth (Huang et al. 2016): drops the whole residual branch of a sample with probability p. */
export function dropPath(x: Tensor, p: number, training: boolean): Tensor {
  if (!training || p === 0) return x;
  const keep = 1 - p;
  return tidy(() => {
    // One draw per sample, broadcast over tokens and channels; kept samples scaled by 1/keep.
    const shape = x.shape.map((s, i) => (i === 0 ? s : 1));
    const mask = rand(shape, { dtype: x.dtype }).add(keep).floor();
    return x.div(keep).mul(mask);
  });
}

/**
 * softmax(q·kᵀ/√d) over keys, then attention dropout: [B, h, N, d] x 2 → [B, h, N, N]. A leaf module of
 * its own so the memory probe sees the N x N weights autograd keeps, and knows they grow with the
 * square of the token count (memory.ts reads `activationGrowth`).
 */
export class AttentionWeights extends nn.Module {
  readonly activationGrowth = 'quadratic' as const;
  constructor(readonly scale: number, readonly dropout = 0) {
    super();
  }
  forward(q: Tensor, k: Tensor): Tensor {
    return tidy(() => {
      const scores = q.matmul(k.transpose(-2, -1)).mul(this.scale);
      const weights = scores.softmax(-1);
      return this.dropout > 0 ? F.dropout(weights, this.dropout, this.training) : weights;
    });
  }
}

/** Multi-head self-attention with one fused `qkv` Linear and an output `proj` (timm's and CCT's names). */
export class Attention extends nn.Module {
  readonly qkv: nn.Linear;
  readonly weights: AttentionWeights;
  readonly proj: nn.Linear;
  readonly headDim: number;
  /** Dropout after the output projection. */
  readonly dropout: number;
  constructor(readonly dim: number, readonly heads: number, options: { qkvBias?: boolean; attentionDropout?: number; dropout?: number } = {}) {
    super();
    if (!Number.isInteger(dim / heads)) throw new Error(`Attention: width ${dim} is not divisible by ${heads} heads`);
    this.headDim = dim / heads;
    this.qkv = this.module('qkv', new nn.Linear(dim, 3 * dim, options.qkvBias ?? true));
    this.weights = this.module('weights', new AttentionWeights(this.headDim ** -0.5, options.attentionDropout ?? 0));
    this.proj = this.module('proj', new nn.Linear(dim, dim));
    this.dropout = options.dropout ?? 0;
  }
  /** Tokens [B, N, C] → [B, N, C]. */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [b, n, c] = x.shape;
      // One projection gives q, k and v for every head: [B, N, 3·C] → [3, B, heads, N, C/heads].
      const qkv = this.qkv.forward(x).reshape(b, n, 3, this.heads, this.headDim).permute(2, 0, 3, 1, 4);
      const q = qkv.select(0, 0);
      const k = qkv.select(0, 1);
      const v = qkv.select(0, 2);
      const weights = this.weights.forward(q, k);
      const mixed = weights.matmul(v); // [B, heads, N, C/heads]
      const merged = mixed.transpose(1, 2).reshape(b, n, c);
      const out = this.proj.forward(merged);
      return this.dropout > 0 ? F.dropout(out, this.dropout, this.training) : out;
    });
  }
}

/** timm's Mlp: `fc1` → GELU → `fc2` (dropout after each when set). */
export class Mlp extends nn.Module {
  readonly fc1: nn.Linear;
  readonly act: nn.GELU;
  readonly fc2: nn.Linear;
  constructor(dim: number, hidden: number, readonly dropout = 0) {
    super();
    this.fc1 = this.module('fc1', new nn.Linear(dim, hidden));
    this.act = this.module('act', new nn.GELU());
    this.fc2 = this.module('fc2', new nn.Linear(hidden, dim));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.act.forward(this.fc1.forward(x));
      const hd = this.dropout > 0 ? F.dropout(h, this.dropout, this.training) : h;
      const out = this.fc2.forward(hd);
      return this.dropout > 0 ? F.dropout(out, this.dropout, this.training) : out;
    });
  }
}

export type PositionResampling = 'bicubic' | 'bilinear';

/**
 * Position embeddings of a `from` grid [1, fh·fw, C] resampled to a `to` grid → [1, th·tw, C], as a
 * map [1, C, fh, fw]. 'bicubic' is timm's (resample_abs_pos_embed: bicubic with antialias, i.e. PIL's
 * kernel); 'bilinear' the CCT authors' (resize_pos_embed, align_corners false). Differentiable: the
 * embedding keeps learning at any input size.
 */
export function resamplePositions(grid: Tensor, from: readonly [number, number], to: readonly [number, number], mode: PositionResampling): Tensor {
  return tidy(() => {
    const c = grid.shape[2];
    const map = grid.reshape(1, from[0], from[1], c).permute(0, 3, 1, 2);
    const resized = mode === 'bicubic'
      ? F.interpolate(map, [to[0], to[1]], 'bicubic', false, true)
      : F.interpolate(map, [to[0], to[1]], 'bilinear', false);
    return resized.permute(0, 2, 3, 1).reshape(1, to[0] * to[1], c);
  });
}

/** Tokens [B, h·w, C] in row-major grid order → a feature map [B, C, h, w] (channels-last in memory). */
export function tokensToMap(tokens: Tensor, h: number, w: number): Tensor {
  return tidy(() => {
    const [b, n, c] = tokens.shape;
    if (n !== h * w) throw new Error(`tokensToMap: ${n} tokens do not form a ${h}x${w} grid`);
    return tokens.reshape(b, h, w, c).permute(0, 3, 1, 2);
  });
}

/** The side of a square grid of n tokens, or null. */
export function squareSide(n: number): number | null {
  const s = Math.round(Math.sqrt(n));
  return s * s === n ? s : null;
}

/** The reference's freezing: every parameter of the backbone frozen, then blocks after `last` train again. */
export function freezeUpToBlock(backbone: nn.Module, blocks: nn.Sequential, last: number): void {
  freezeModules([backbone]);
  for (const block of blocks.layers.slice(last + 1)) block.requiresGrad_(true);
}

/** The block index of a state-dict key under prefix (`blocks.3.attn.qkv.weight` → 3 for 'blocks.'), or null. */
export function blockIndex(key: string, prefix: string): number | null {
  if (!key.startsWith(prefix)) return null;
  const i = Number.parseInt(key.slice(prefix.length), 10);
  return Number.isInteger(i) ? i : null;
}
