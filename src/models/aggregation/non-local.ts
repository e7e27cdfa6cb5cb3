// Attention by affinity between all positions of the feature map, feature map → feature map with a
// residual, usable in front of any head as CBAM is:
//  - NonLocalBlock (Wang et al. 2018, embedded Gaussian): θ, φ, g 1x1 convs to C/2 channels, φ and g
//    max-pooled 2x2 (the paper's sub-sampling), y = softmax(θᵀφ)·gᵀ, z = BN(W y) + x with the BN's
//    weight and bias zero, so the block starts as the identity. Names: theta, phi, g, W.0 (conv), W.1 (BN).
//  - SecondOrderAttention (SOLAR, Ng et al. 2020): f, g = 1x1 conv + BN + ReLU and h = 1x1 conv to
//    C/k channels, z = softmax(f ᵀg / √(C/k))·hᵀ, out = v(z) + x with v zero-initialised. Names as in
//    SOLAR's SOABlock: f.0, f.1, g.0, g.1, h, v.
import { z } from 'zod';
import { nn, tidy, F, type Tensor } from '../../torch/index.ts';
import { AttentionWeights } from '../transformer.ts';
import { checkFeatures, checkPositiveInt } from './check.ts';
import { defineBlock } from './entry.ts';

const DEFAULT_SOA_REDUCTION = 2;

/**
 * softmax(queries ᵀ keys · scale) · values ᵀ over positions: [B, c, N] x3 → [B, c, N]. The N x N'
 * weights come from an AttentionWeights module, so the memory probe counts them as growing with the
 * square of the pixel count.
 */
function attend(weights: AttentionWeights, queries: Tensor, keys: Tensor, values: Tensor): Tensor {
  const w = weights.forward(queries.transpose(1, 2).unsqueeze(1), keys.transpose(1, 2).unsqueeze(1)).squeeze(1); // [B, N, N']
  return values.bmm(w.transpose(1, 2));
}

export interface NonLocalOptions {
  /** Inner channels (default max(1, C / 2)). */
  inner?: number;
  /** Max-pool φ and g by 2 (default true; needs H and W >= 2). */
  subSample?: boolean;
}

export class NonLocalBlock extends nn.Module {
  readonly theta: nn.Conv2d;
  readonly phi: nn.Conv2d;
  readonly g: nn.Conv2d;
  readonly W: nn.Sequential;
  readonly weights: AttentionWeights;
  readonly inner: number;
  readonly subSample: boolean;
  constructor(readonly channels: number, options: NonLocalOptions = {}) {
    super();
    this.inner = checkPositiveInt(options.inner ?? Math.max(1, Math.floor(channels / 2)), 'non-local inner channels');
    this.subSample = options.subSample ?? true;
    this.theta = this.module('theta', new nn.Conv2d(channels, this.inner, 1));
    this.phi = this.module('phi', new nn.Conv2d(channels, this.inner, 1));
    this.g = this.module('g', new nn.Conv2d(channels, this.inner, 1));
    const bn = new nn.BatchNorm2d(channels);
    nn.init.constant_(bn.weight, 0);
    this.W = this.module('W', new nn.Sequential(new nn.Conv2d(this.inner, channels, 1), bn));
    this.weights = this.module('weights', new AttentionWeights(1));
  }
  forward(x: Tensor): Tensor {
    checkFeatures(x, this.channels, 'non-local block');
    return tidy(() => {
      const [b, , h, w] = x.shape;
      const pool = (t: Tensor) => (this.subSample && h >= 2 && w >= 2 ? F.maxPool2d(t, 2) : t);
      const theta = this.theta.forward(x).view(b, this.inner, h * w);
      const phi = pool(this.phi.forward(x)).flatten(2);
      const g = pool(this.g.forward(x)).flatten(2);
      const y = attend(this.weights, theta, phi, g).view(b, this.inner, h, w);
      return this.W.forward(y).add_(x);
    });
  }
}

export interface SecondOrderAttentionOptions {
  /** Channel reduction k: inner channels C / k (SOLAR: 2 at conv5, 4 at conv4; default 2). */
  reduction?: number;
}

const convBnRelu = (cin: number, cout: number): nn.Sequential =>
  new nn.Sequential(new nn.Conv2d(cin, cout, 1), new nn.BatchNorm2d(cout), new nn.ReLU());

export class SecondOrderAttention extends nn.Module {
  readonly f: nn.Sequential;
  readonly g: nn.Sequential;
  readonly h: nn.Conv2d;
  readonly v: nn.Conv2d;
  readonly weights: AttentionWeights;
  readonly inner: number;
  constructor(readonly channels: number, options: SecondOrderAttentionOptions = {}) {
    super();
    const k = checkPositiveInt(options.reduction ?? DEFAULT_SOA_REDUCTION, 'SOA reduction');
    this.inner = Math.max(1, Math.floor(channels / k));
    this.f = this.module('f', convBnRelu(channels, this.inner));
    this.g = this.module('g', convBnRelu(channels, this.inner));
    this.h = this.module('h', new nn.Conv2d(channels, this.inner, 1));
    this.v = this.module('v', new nn.Conv2d(this.inner, channels, 1));
    this.weights = this.module('weights', new AttentionWeights(this.inner ** -0.5));
    // SOLAR: Kaiming-normal f, g, h with zero biases; v all zeros, so the block starts as the identity.
    for (const conv of [this.f.at(0) as nn.Conv2d, this.g.at(0) as nn.Conv2d, this.h]) {
      nn.init.kaimingNormalFanIn_(conv.weight);
      nn.init.constant_(conv.bias!, 0);
    }
    nn.init.constant_(this.v.weight, 0);
    nn.init.constant_(this.v.bias!, 0);
  }
  forward(x: Tensor): Tensor {
    checkFeatures(x, this.channels, 'second-order attention');
    return tidy(() => {
      const [b, , h, w] = x.shape;
      const flat = (t: Tensor) => t.view(b, this.inner, h * w);
      const z = attend(this.weights, flat(this.f.forward(x)), flat(this.g.forward(x)), flat(this.h.forward(x)));
      return this.v.forward(z.view(b, this.inner, h, w)).add_(x);
    });
  }
}

export const nonLocalBlock = defineBlock({
  name: 'nonlocal', label: 'non-local', description: 'the non-local block (Wang et al. 2018)', options: {},
  create: (c) => new NonLocalBlock(c),
});
export const soaBlock = defineBlock({
  name: 'soa', label: 'SOA', description: "SOLAR's second-order attention (Ng et al. 2020)",
  options: {
    soaReduction: z.number().int().positive().default(DEFAULT_SOA_REDUCTION).describe("soa+*: channel reduction k, inner channels C / k (SOLAR: 2 at conv5, 4 at conv4)"),
  },
  create: (c, o) => new SecondOrderAttention(c, { reduction: o.soaReduction }),
});
