// CBAM-style attention (Woo et al. 2018) as a feature-map → feature-map module, usable in front of any
// head, and the `<block>+<head>` wrapper (CBAM, the non-local block, second-order attention). CBAM's
// names: `channel.fc1.weight`, `channel.fc2.weight`, `spatial.conv1.weight` (the common PyTorch
// layout with 1x1 convolutions and no biases).
import { z } from 'zod';
import { nn, type Tensor } from '../../torch/index.ts';
import type { AggregationHead, DataInitialisedHead } from '../types.ts';
import { isDataInitialised } from '../types.ts';
import { channelAttention, spatialAttention } from '../functional.ts';
import { checkFeatures, checkPositiveInt } from './check.ts';
import { defineBlock } from './entry.ts';

const DEFAULT_REDUCTION = 16;
const DEFAULT_KERNEL = 7;

export class ChannelAttention extends nn.Module {
  readonly fc1: nn.Conv2d;
  readonly fc2: nn.Conv2d;
  constructor(channels: number, reduction = DEFAULT_REDUCTION) {
    super();
    const hidden = Math.max(1, Math.floor(channels / checkPositiveInt(reduction, 'attention reduction')));
    this.fc1 = this.module('fc1', new nn.Conv2d(channels, hidden, 1, { bias: false }));
    this.fc2 = this.module('fc2', new nn.Conv2d(hidden, channels, 1, { bias: false }));
  }
  forward(x: Tensor): Tensor {
    return channelAttention(x, this.fc1.weight, this.fc2.weight);
  }
}

export class SpatialAttention extends nn.Module {
  readonly conv1: nn.Conv2d;
  constructor(kernel = DEFAULT_KERNEL) {
    super();
    if (kernel % 2 !== 1) throw new Error(`spatial attention kernel must be odd, got ${kernel}`);
    this.conv1 = this.module('conv1', new nn.Conv2d(2, 1, kernel, { padding: (kernel - 1) / 2, bias: false }));
  }
  forward(x: Tensor): Tensor {
    return spatialAttention(x, this.conv1.weight);
  }
}

export interface CBAMOptions {
  /** Channel MLP reduction ratio r (16): hidden width max(1, floor(C / r)). */
  reduction?: number;
  /** Spatial attention kernel (7). */
  spatialKernel?: number;
}

/** Channel attention then spatial attention: [B, C, H, W] → [B, C, H, W]. */
export class CBAM extends nn.Module {
  readonly channel: ChannelAttention;
  readonly spatial: SpatialAttention;
  constructor(readonly channels: number, options: CBAMOptions = {}) {
    super();
    this.channel = this.module('channel', new ChannelAttention(channels, options.reduction ?? DEFAULT_REDUCTION));
    this.spatial = this.module('spatial', new SpatialAttention(options.spatialKernel ?? DEFAULT_KERNEL));
  }
  forward(x: Tensor): Tensor {
    checkFeatures(x, this.channels, 'CBAM');
    const c = this.channel.forward(x);
    const out = this.spatial.forward(c);
    c.dispose();
    return out;
  }
}

/** A feature map → feature map block in front of a head (CBAM, non-local, second-order attention). */
export type AttentionBlock = nn.Module & { forward(x: Tensor): Tensor };

/**
 * `<block>+<head>`: an attention block on the feature map, then the head. Children `attention` and
 * `head`. When the inner head is data-initialised, so is the wrapper: its initFromDescriptors forwards
 * the descriptors unchanged (take them from `attention.forward(features)` for an exact match).
 */
export class AttentionHead extends nn.Module implements AggregationHead {
  readonly attention: AttentionBlock;
  readonly head: AggregationHead;
  readonly dim: number;
  declare initFromDescriptors?: (descriptors: Tensor, seed: number) => void;
  constructor(block: AttentionBlock, head: AggregationHead) {
    super();
    this.attention = this.module('attention', block);
    this.head = this.module('head', head);
    this.dim = head.dim;
    forwardInit(this, head);
  }
  forward(x: Tensor): Tensor {
    const attended = this.attention.forward(x);
    const out = this.head.forward(attended);
    attended.dispose();
    return out;
  }
}

/** Gives a wrapper the inner head's initFromDescriptors only when the inner head has one. */
export function forwardInit(wrapper: { initFromDescriptors?: (d: Tensor, s: number) => void }, inner: AggregationHead): void {
  if (isDataInitialised(inner)) {
    const target: DataInitialisedHead = inner;
    wrapper.initFromDescriptors = (d, s) => target.initFromDescriptors(d, s);
  }
}

/** `attention+<head>` is CBAM (the name checkpoints have carried). */
export const cbamBlock = defineBlock({
  name: 'attention', label: 'CBAM', description: 'channel then spatial attention (Woo et al. 2018)',
  options: {
    cbamReduction: z.number().int().positive().default(DEFAULT_REDUCTION).describe("attention+*: CBAM's channel-MLP reduction ratio"),
    cbamKernel: z.number().int().positive().refine((k) => k % 2 === 1, 'must be odd').default(DEFAULT_KERNEL).describe("attention+*: CBAM's spatial attention kernel (odd)"),
  },
  create: (c, o) => new CBAM(c, { reduction: o.cbamReduction, spatialKernel: o.cbamKernel }),
});
