// `cls` head: the descriptor is the image's global token, the transformers' own summary of the image
// (ViT's class token, CCT's sequence pooling). A transformer backbone built for this head hands the
// token over as a [B, C, 1, 1] map (network.ts asks for it; CNN backbones have none and are refused
// there); the head flattens it and L2-normalises it (unless --l2 none).
//
// Like every head it accepts any map [B, C, H, W], as the registry promises: a larger map is averaged
// over its positions (SPoC), which for the 1x1 token map is the token itself.
import { nn, tidy, type Tensor } from '../../torch/index.ts';
import type { AggregationHead } from '../types.ts';
import { l2n } from '../functional.ts';
import { checkFeatures } from './check.ts';
import { POOLING_OPTIONS, poolingNorms, type PoolingNorms } from './pooling.ts';
import { defineHead } from './entry.ts';

export class ClsToken extends nn.Module implements AggregationHead {
  readonly dim: number;
  readonly normalizeInput: boolean;
  readonly normalizeOutput: boolean;
  constructor(readonly inChannels: number, norms: PoolingNorms = {}) {
    super();
    this.dim = inChannels;
    // On a single token, L2 before or after "pooling" is the same: unit descriptors unless --l2 none.
    this.normalizeInput = norms.normalizeInput ?? true;
    this.normalizeOutput = norms.normalizeOutput ?? false;
  }
  forward(x: Tensor): Tensor {
    checkFeatures(x, this.inChannels, 'cls');
    return tidy(() => {
      const tokens = this.normalizeInput ? l2n(x, 1) : x;
      const token = tokens.mean([2, 3]);
      return this.normalizeOutput ? l2n(token, 1) : token;
    });
  }
}

export const clsHead = defineHead({
  name: 'cls', label: 'cls', description: "a transformer backbone's global token (class token, or CCT's sequence pooling)",
  options: POOLING_OPTIONS, takesGlobalToken: true,
  create: (c, o) => new ClsToken(c, poolingNorms(o.l2)),
});
