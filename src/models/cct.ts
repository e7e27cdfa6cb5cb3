// Compact Convolutional Transformer (Hassani et al. 2021, "Escaping the Big Data Paradigm with Compact
// Transformers"): a convolutional tokenizer instead of patches, an encoder without class token, and
// sequence pooling (an attention-weighted mean of the tokens) instead of it; made to train from
// scratch on small data. The layout and names follow the authors' implementation (SHI-Labs/
// Compact-Transformers: src/cct.py, src/utils/tokenizer.py, src/utils/transformers.py), which the
// geo-localization benchmark's cct384 uses, so its checkpoints (cct_14_7x2_384_imagenet.pth) load:
//   tokenizer.conv_layers.<i>.0                 conv (no bias) → ReLU (.1) → max-pool 3/2/1 (.2)
//   classifier.positional_emb [1, h·w, C]       learnable, trunc_normal(0.2)
//   classifier.attention_pool                   Linear(C, 1): sequence pooling (built for the cls head only)
//   classifier.blocks.<i>.{pre_norm, self_attn.qkv (no bias), self_attn.proj, linear1, norm1, linear2}
//   classifier.norm                             (classifier.fc, the ImageNet classifier, is not built)
// The authors' block is not timm's: after the attention residual the stream itself is normalised
// (norm1), and the MLP residual is added to that normalised stream.
import { nn, F, tidy, zeros, fromHost, type Tensor, type HostTensor, loadStateDict, type LoadReport } from '../torch/index.ts';
import { readStateDict } from '../torch/serialization/index.ts';
import type { Backbone } from './types.ts';
import {
  Attention, dropPath, resamplePositions, tokensToMap, freezeUpToBlock, checkTruncation, applyDims, truncNormal_, initLinear,
  squareSide, blockIndex, type TransformerOptions, type TokenOutput, type Regularisation,
} from './transformer.ts';

export interface CCTShape {
  depth: number;
  width: number;
  heads: number;
  mlpRatio: number;
  /** Tokenizer convolution kernel (7 in CCT-14/7x2) and their count (2). */
  kernel: number;
  convLayers: number;
  /** Channels of the tokenizer's inner convolutions (the authors' in_planes, 64). */
  tokenizerPlanes: number;
  /** The (square) image side the position embeddings are learned for. */
  imageSize: number;
}

/** CCT-14/7x2 (22M parameters) at 384 (the benchmark's cct384) and, with 224, the ImageNet one. */
export const CCT_14_7X2: CCTShape = { depth: 14, width: 384, heads: 6, mlpRatio: 3, kernel: 7, convLayers: 2, tokenizerPlanes: 64, imageSize: 384 };

/** The authors' regularisation for these models: attention dropout 0.1, stochastic depth 0.1, no dropout. */
export const CCT_REGULARISATION: Required<Regularisation> = { dropout: 0, attentionDropout: 0.1, dropPath: 0.1 };

/** The authors' _cct: stride max(1, ⌊k/2⌋ − 1), padding max(1, ⌊k/2⌋); max-pool 3, stride 2, padding 1. */
function convGeometry(kernel: number): { stride: number; padding: number } {
  return { stride: Math.max(1, Math.floor(kernel / 2) - 1), padding: Math.max(1, Math.floor(kernel / 2)) };
}

/** The side after one conv + max-pool stage. */
function stageSide(side: number, kernel: number): number {
  const { stride, padding } = convGeometry(kernel);
  const conv = Math.floor((side + 2 * padding - kernel) / stride) + 1;
  return Math.floor((conv + 2 - 3) / 2) + 1;
}

/** Convolutional tokenizer: images → the token map [B, C, h, w] (the authors flatten it right after). */
export class Tokenizer extends nn.Module {
  readonly conv_layers: nn.Sequential;
  constructor(readonly shape: CCTShape) {
    super();
    const { stride, padding } = convGeometry(shape.kernel);
    const widths = [3, ...new Array<number>(shape.convLayers - 1).fill(shape.tokenizerPlanes), shape.width];
    const stages: nn.Module[] = [];
    for (let i = 0; i < shape.convLayers; i++) {
      const conv = new nn.Conv2d(widths[i], widths[i + 1], shape.kernel, { stride, padding, bias: false });
      // The authors' init: kaiming_normal_ (fan_in, ReLU gain).
      nn.init.normal_(conv.weight, 0, Math.sqrt(2 / nn.init.fans(conv.weight.shape).fanIn));
      stages.push(new nn.Sequential(conv, new nn.ReLU(), new nn.MaxPool2d(3, { stride: 2, padding: 1 })));
    }
    this.conv_layers = this.module('conv_layers', new nn.Sequential(...stages));
  }
  forward(images: Tensor): Tensor {
    return this.conv_layers.forward(images);
  }
  /** The token grid of an H x W image. */
  grid(height: number, width: number): [number, number] {
    let [h, w] = [height, width];
    for (let i = 0; i < this.shape.convLayers; i++) [h, w] = [stageSide(h, this.shape.kernel), stageSide(w, this.shape.kernel)];
    return [h, w];
  }
}

/** The authors' TransformerEncoderLayer (names pre_norm, self_attn, linear1, norm1, linear2). */
export class CCTEncoderLayer extends nn.Module {
  readonly pre_norm: nn.LayerNorm;
  readonly self_attn: Attention;
  readonly linear1: nn.Linear;
  readonly norm1: nn.LayerNorm;
  readonly linear2: nn.Linear;
  readonly activation: nn.GELU;
  constructor(width: number, heads: number, hidden: number, readonly dropPathRate: number, readonly dropout: number, attentionDropout: number) {
    super();
    this.pre_norm = this.module('pre_norm', new nn.LayerNorm(width));
    this.self_attn = this.module('self_attn', new Attention(width, heads, { qkvBias: false, attentionDropout, dropout }));
    this.linear1 = this.module('linear1', new nn.Linear(width, hidden));
    this.norm1 = this.module('norm1', new nn.LayerNorm(width));
    this.linear2 = this.module('linear2', new nn.Linear(hidden, width));
    this.activation = this.module('activation', new nn.GELU());
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const attended = this.self_attn.forward(this.pre_norm.forward(x));
      const y = x.add(dropPath(attended, this.dropPathRate, this.training));
      const normed = this.norm1.forward(y);
      const hidden = this.activation.forward(this.linear1.forward(normed));
      const out = this.linear2.forward(dropout(hidden, this.dropout, this.training));
      return normed.add(dropPath(dropout(out, this.dropout, this.training), this.dropPathRate, this.training));
    });
  }
}

function dropout(x: Tensor, p: number, training: boolean): Tensor {
  return p > 0 ? F.dropout(x, p, training) : x;
}

/** The authors' TransformerClassifier without its `fc`: position embeddings, blocks, final norm, pooling. */
export class TransformerClassifier extends nn.Module {
  readonly positional_emb: Tensor;
  readonly attention_pool: nn.Linear | null;
  readonly blocks: nn.Sequential;
  readonly norm: nn.LayerNorm;
  constructor(shape: CCTShape, tokens: number, kept: number, seqPool: boolean, r: Required<Regularisation>) {
    super();
    const { depth, width, heads, mlpRatio } = shape;
    this.positional_emb = this.param('positional_emb', truncNormal_(zeros([1, tokens, width]), 0.2));
    this.attention_pool = seqPool ? this.module('attention_pool', new nn.Linear(width, 1)) : null;
    const blocks: CCTEncoderLayer[] = [];
    for (let i = 0; i < kept; i++) {
      // torch.linspace(0, stochastic_depth, depth)[i]: rates for the full depth, whatever a truncation keeps.
      const rate = depth > 1 ? (r.dropPath * i) / (depth - 1) : 0;
      blocks.push(new CCTEncoderLayer(width, heads, Math.trunc(width * mlpRatio), rate, r.dropout, r.attentionDropout));
    }
    this.blocks = this.module('blocks', new nn.Sequential(...blocks));
    this.norm = this.module('norm', new nn.LayerNorm(width));
    for (const [, m] of this.namedModules()) if (m instanceof nn.Linear) initLinear(m);
  }
  forward(tokens: Tensor): Tensor {
    return tidy(() => this.norm.forward(this.blocks.forward(tokens)));
  }
}

/** Sequence pooling: softmax over tokens of a learned score, the weighted mean of the tokens. [B, N, C] → [B, C]. */
export function seqPool(tokens: Tensor, pool: nn.Linear): Tensor {
  return tidy(() => {
    const weights = pool.forward(tokens).softmax(1); // [B, N, 1]
    const pooled = weights.transpose(1, 2).matmul(tokens); // [B, 1, C]
    return pooled.squeeze(1);
  });
}

export interface CCTOptions extends TransformerOptions, Regularisation {}

export class CCT extends nn.Module implements Backbone {
  readonly inputNormalization = 'imagenet' as const;
  readonly shape: CCTShape;
  readonly tokenizer: Tokenizer;
  readonly classifier: TransformerClassifier;
  readonly outChannels: number;
  readonly output: TokenOutput;
  /** The token grid the position embeddings are stored for. */
  readonly grid: readonly [number, number];
  readonly freezeBlock: number | undefined;
  /** Dropout after the position embeddings (the authors' classifier.dropout; 0 in their models). */
  readonly dropout: number;
  constructor(shape: CCTShape = CCT_14_7X2, options: CCTOptions = {}) {
    super();
    this.shape = applyDims(shape, options.dims, 'CCT');
    const kept = checkTruncation(this.shape.depth, options, 'CCT');
    this.output = options.output ?? 'grid';
    this.freezeBlock = options.freeze;
    this.outChannels = this.shape.width;
    this.tokenizer = this.module('tokenizer', new Tokenizer(this.shape));
    this.grid = this.tokenizer.grid(this.shape.imageSize, this.shape.imageSize);
    const r: Required<Regularisation> = {
      dropout: options.dropout ?? CCT_REGULARISATION.dropout,
      attentionDropout: options.attentionDropout ?? CCT_REGULARISATION.attentionDropout,
      dropPath: options.dropPath ?? CCT_REGULARISATION.dropPath,
    };
    this.dropout = r.dropout;
    this.classifier = this.module('classifier', new TransformerClassifier(this.shape, this.grid[0] * this.grid[1], kept, this.output === 'token', r));
  }

  /** Position embeddings for an h x w token grid: the parameter itself at its own grid (not to be disposed), else resampled bilinearly (the authors' resize_pos_embed). */
  positionEmbedding(h: number, w: number): Tensor {
    if (h === this.grid[0] && w === this.grid[1]) return this.classifier.positional_emb;
    return resamplePositions(this.classifier.positional_emb, this.grid, [h, w], 'bilinear');
  }

  /** Images → the final-norm tokens [B, h·w, C], row-major over the token grid (tokenizer.grid). */
  tokens(images: Tensor): Tensor {
    return tidy(() => {
      const map = this.tokenizer.forward(images); // [B, C, h, w]
      const [, , h, w] = map.shape;
      const sequence = map.flatten(2).transpose(1, 2);
      const embedded = sequence.add(this.positionEmbedding(h, w));
      return this.classifier.forward(dropout(embedded, this.dropout, this.training));
    });
  }

  /** Images [B, 3, H, W] → tokens as a map [B, C, h, w], or the sequence-pooled token [B, C, 1, 1]. */
  forward(images: Tensor): Tensor {
    const [, , height, width] = images.shape;
    const [h, w] = this.tokenizer.grid(height, width);
    if (h < 1 || w < 1) throw new Error(`CCT: a ${height}x${width} image leaves no tokens`);
    return tidy(() => {
      const tokens = this.tokens(images);
      const [b, , c] = tokens.shape;
      if (this.output === 'token') return seqPool(tokens, this.classifier.attention_pool!).reshape(b, c, 1, 1);
      return tokensToMap(tokens, h, w);
    });
  }

  /** With --freeze-te N, the reference's freezing (tokenizer, embeddings, blocks 0..N, final norm, pooling). */
  freezeReference(): void {
    if (this.freezeBlock !== undefined) freezeUpToBlock(this, this.classifier.blocks, this.freezeBlock);
  }
}

/**
 * Loads a state dict in the authors' layout. `classifier.fc.*` (their classifier), the blocks a
 * truncation removed and, unless this model pools the sequence, `classifier.attention_pool.*` are
 * skipped; `classifier.positional_emb` learned for another square grid is resampled bilinearly to this
 * model's (their pe_check). Anything else missing, unexpected or misshapen is an error naming the file.
 */
export function loadCCTWeights(cct: CCT, weights: Map<string, HostTensor>, source: string): LoadReport {
  const kept = new Map<string, HostTensor>();
  for (const [k, v] of weights) {
    if (k.startsWith('classifier.fc.')) continue;
    if (k.startsWith('classifier.attention_pool.') && cct.classifier.attention_pool === null) continue;
    const block = blockIndex(k, 'classifier.blocks.');
    if (block !== null && block >= cct.classifier.blocks.length) continue;
    kept.set(k, v);
  }
  const key = 'classifier.positional_emb';
  const pos = kept.get(key);
  const [gh, gw] = cct.grid;
  if (pos && pos.shape.length === 3 && pos.shape[1] !== gh * gw && pos.shape[2] === cct.outChannels) {
    const side = squareSide(pos.shape[1]);
    if (side !== null) kept.set(key, tidy(() => resamplePositions(fromHost(pos).float(), [side, side], [gh, gw], 'bilinear').toHost()));
  }
  return loadStateDict(cct, kept, { source });
}

/** Reads a `.pth` file (state dict at the top level or under state_dict/model_state_dict/model) and loads it. */
export async function loadCCTWeightsFile(model: CCT, path: string): Promise<LoadReport> {
  return loadCCTWeights(model, await readStateDict(path), path);
}
