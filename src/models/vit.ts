// Vision Transformer (Dosovitskiy et al. 2021) with timm's VisionTransformer names, so a timm `.pth`
// (vit_base_patch16_224 and the like) loads by name:
//   cls_token [1, 1, C], pos_embed [1, 1 + h·w, C], patch_embed.proj (conv, kernel = stride = patch),
//   blocks.<i>.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm        (head.* is not built)
// Pre-norm blocks, LayerNorm eps 1e-6 and exact GELU as timm. Any input size works: the patch grid is
// ⌊H/p⌋ x ⌊W/p⌋ and the position embeddings, learned for `imageSize`, are resampled to it (bicubic with
// antialias, timm's resample_abs_pos_embed), since place recognition runs at sizes other than 224.
import { nn, tidy, cat, zeros, fromHost, type Tensor, type HostTensor, loadStateDict, type LoadReport } from '../torch/index.ts';
import { readStateDict } from '../torch/serialization/index.ts';
import type { Backbone } from './types.ts';
import {
  Attention, Mlp, dropPath, resamplePositions, tokensToMap, freezeUpToBlock, checkTruncation, applyDims, truncNormal_, initLinear,
  squareSide, blockIndex, type TransformerOptions, type TokenOutput, type Regularisation,
} from './transformer.ts';

export interface ViTShape {
  depth: number;
  /** Embedding width C. */
  width: number;
  heads: number;
  /** Patch side in pixels. */
  patch: number;
  /** The (square) image side the position embeddings are learned for. */
  imageSize: number;
  /** MLP hidden width = mlpRatio · C. */
  mlpRatio: number;
}

/** ViT-B/16 (86M parameters): timm's vit_base_patch16_224 and, with 384, vit_base_patch16_384. */
export const VIT_B16: ViTShape = { depth: 12, width: 768, heads: 12, patch: 16, imageSize: 224, mlpRatio: 4 };

/** timm's LayerNorm for ViT (partial(nn.LayerNorm, eps=1e-6)). */
const VIT_NORM = { eps: 1e-6 };

/** Patch embedding: a conv with kernel = stride = patch (`patch_embed.proj`); returns the map [B, C, h, w]. */
export class PatchEmbed extends nn.Module {
  readonly proj: nn.Conv2d;
  constructor(readonly patch: number, width: number) {
    super();
    this.proj = this.module('proj', new nn.Conv2d(3, width, patch, { stride: patch }));
  }
  forward(images: Tensor): Tensor {
    const [, , h, w] = images.shape;
    if (h < this.patch || w < this.patch) throw new Error(`ViT: a ${h}x${w} image is smaller than one ${this.patch}x${this.patch} patch`);
    return this.proj.forward(images);
  }
}

/** timm's Block: x + attn(norm1(x)), then + mlp(norm2(x)), each branch under stochastic depth. */
export class ViTBlock extends nn.Module {
  readonly norm1: nn.LayerNorm;
  readonly attn: Attention;
  readonly norm2: nn.LayerNorm;
  readonly mlp: Mlp;
  constructor(width: number, heads: number, mlpRatio: number, readonly dropPathRate = 0, r: Regularisation = {}) {
    super();
    this.norm1 = this.module('norm1', new nn.LayerNorm(width, VIT_NORM));
    this.attn = this.module('attn', new Attention(width, heads, { qkvBias: true, attentionDropout: r.attentionDropout, dropout: r.dropout }));
    this.norm2 = this.module('norm2', new nn.LayerNorm(width, VIT_NORM));
    this.mlp = this.module('mlp', new Mlp(width, Math.round(width * mlpRatio), r.dropout));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const attended = this.attn.forward(this.norm1.forward(x));
      const y = x.add(dropPath(attended, this.dropPathRate, this.training));
      const transformed = this.mlp.forward(this.norm2.forward(y));
      return y.add(dropPath(transformed, this.dropPathRate, this.training));
    });
  }
}

export interface ViTOptions extends TransformerOptions, Regularisation {}

export class VisionTransformer extends nn.Module implements Backbone {
  readonly inputNormalization = 'imagenet' as const;
  readonly shape: ViTShape;
  readonly cls_token: Tensor;
  readonly pos_embed: Tensor;
  readonly patch_embed: PatchEmbed;
  readonly blocks: nn.Sequential;
  readonly norm: nn.LayerNorm;
  readonly outChannels: number;
  readonly output: TokenOutput;
  /** The patch grid the position embeddings are stored for. */
  readonly grid: readonly [number, number];
  readonly freezeBlock: number | undefined;
  constructor(shape: ViTShape = VIT_B16, options: ViTOptions = {}) {
    super();
    this.shape = applyDims(shape, options.dims, 'ViT');
    const { depth, width, heads, patch, imageSize, mlpRatio } = this.shape;
    const kept = checkTruncation(depth, options, 'ViT');
    this.output = options.output ?? 'grid';
    this.freezeBlock = options.freeze;
    this.outChannels = width;
    const side = Math.floor(imageSize / patch);
    this.grid = [side, side];
    // timm's init: cls_token normal(1e-6), pos_embed trunc_normal(0.02), Linear trunc_normal(0.02) + zero
    // bias, patch conv PyTorch's default, LayerNorm 1/0.
    this.cls_token = this.param('cls_token', nn.init.normal_(zeros([1, 1, width]), 0, 1e-6));
    this.pos_embed = this.param('pos_embed', truncNormal_(zeros([1, 1 + side * side, width]), 0.02));
    this.patch_embed = this.module('patch_embed', new PatchEmbed(patch, width));
    const blocks: ViTBlock[] = [];
    for (let i = 0; i < kept; i++) {
      // Stochastic depth rises linearly over the full depth, as if no block were cut.
      const rate = depth > 1 ? ((options.dropPath ?? 0) * i) / (depth - 1) : 0;
      blocks.push(new ViTBlock(width, heads, mlpRatio, rate, options));
    }
    this.blocks = this.module('blocks', new nn.Sequential(...blocks));
    this.norm = this.module('norm', new nn.LayerNorm(width, VIT_NORM));
    for (const [, m] of this.namedModules()) if (m instanceof nn.Linear) initLinear(m);
  }

  /** Position embeddings for an h x w patch grid: the parameter itself at its own grid (not to be disposed), else resampled. */
  positionEmbedding(h: number, w: number): Tensor {
    if (h === this.grid[0] && w === this.grid[1]) return this.pos_embed;
    return tidy(() => {
      const n = this.grid[0] * this.grid[1];
      const cls = this.pos_embed.narrow(1, 0, 1);
      const patches = resamplePositions(this.pos_embed.narrow(1, 1, n), this.grid, [h, w], 'bicubic');
      return cat([cls, patches], 1);
    });
  }

  /** The patch grid of an H x W image: ⌊H/p⌋ x ⌊W/p⌋ (a remainder is cropped, as the conv does). */
  patchGrid(height: number, width: number): [number, number] {
    return [Math.floor(height / this.shape.patch), Math.floor(width / this.shape.patch)];
  }

  /** Images → the final-norm tokens [B, 1 + h·w, C], the class token first, then the patches row by row. */
  tokens(images: Tensor): Tensor {
    return tidy(() => {
      const map = this.patch_embed.forward(images); // [B, C, h, w]
      const [b, , h, w] = map.shape;
      const patches = map.flatten(2).transpose(1, 2); // [B, h·w, C]
      const cls = this.cls_token.expand(b, -1, -1);
      const sequence = cat([cls, patches], 1);
      const embedded = sequence.add(this.positionEmbedding(h, w));
      const encoded = this.blocks.forward(embedded);
      return this.norm.forward(encoded);
    });
  }

  /** Images [B, 3, H, W] → patch tokens as a map [B, C, ⌊H/p⌋, ⌊W/p⌋], or the class token [B, C, 1, 1]. */
  forward(images: Tensor): Tensor {
    return tidy(() => {
      const tokens = this.tokens(images);
      const [b, n, c] = tokens.shape;
      if (this.output === 'token') return tokens.select(1, 0).reshape(b, c, 1, 1);
      const [h, w] = this.patchGrid(images.shape[2], images.shape[3]);
      return tokensToMap(tokens.narrow(1, 1, n - 1), h, w);
    });
  }

  /** With --freeze-te N, the reference's freezing (embeddings, blocks 0..N, final norm); otherwise all trains. */
  freezeReference(): void {
    if (this.freezeBlock !== undefined) freezeUpToBlock(this, this.blocks, this.freezeBlock);
  }
}

/**
 * Loads a timm VisionTransformer state dict. `head.*` (the classifier) and the blocks a truncation
 * removed are skipped; a `pos_embed` learned for another square grid is resampled to this model's (as
 * timm's checkpoint_filter_fn does). Anything else missing, unexpected or misshapen is an error naming
 * the file.
 */
export function loadViTWeights(vit: VisionTransformer, weights: Map<string, HostTensor>, source: string): LoadReport {
  const kept = new Map<string, HostTensor>();
  for (const [k, v] of weights) {
    if (k.startsWith('head.')) continue;
    const block = blockIndex(k, 'blocks.');
    if (block !== null && block >= vit.blocks.length) continue;
    kept.set(k, v);
  }
  const pos = kept.get('pos_embed');
  const [gh, gw] = vit.grid;
  if (pos && pos.shape.length === 3 && pos.shape[1] !== 1 + gh * gw && pos.shape[2] === vit.outChannels) {
    const side = squareSide(pos.shape[1] - 1);
    if (side !== null) {
      kept.set('pos_embed', tidy(() => {
        const stored = fromHost(pos).float();
        const patches = resamplePositions(stored.narrow(1, 1, side * side), [side, side], [gh, gw], 'bicubic');
        return cat([stored.narrow(1, 0, 1), patches], 1).toHost();
      }));
    }
  }
  return loadStateDict(vit, kept, { source });
}

/** Reads a `.pth` file (state dict at the top level or under state_dict/model_state_dict/model) and loads it. */
export async function loadViTWeightsFile(model: VisionTransformer, path: string): Promise<LoadReport> {
  return loadViTWeights(model, await readStateDict(path), path);
}
