// Parameter-free global pooling heads: MAC (max), SPoC (average), R-MAC (regional max), with L2
// normalisation where the reference's --l2 puts it: of each local feature before pooling
// ('before_pool', its default), of the pooled descriptor ('after_pool'), or nowhere ('none').
import { z } from 'zod';
import { nn, tidy, type Tensor } from '../../torch/index.ts';
import type { AggregationHead } from '../types.ts';
import { l2n, mac, rmac, spoc } from '../functional.ts';
import { checkFeatures, checkPositiveInt } from './check.ts';
import { defineHead } from './entry.ts';

export const L2_PLACEMENTS = ['before_pool', 'after_pool', 'none'] as const;
export type L2Placement = (typeof L2_PLACEMENTS)[number];

/** The option of every pooling head (GeM, MAC, SPoC/avg, R-MAC, cls), as configs and flags spell it. */
export const POOLING_OPTIONS = {
  l2: z.enum(L2_PLACEMENTS).default('before_pool')
    .describe('GeM/MAC/SPoC/avg/R-MAC: L2 of the local features before pooling (the reference), of the pooled descriptor, or none'),
};

/** Where a shallow head L2-normalises. Default: the reference's 'before_pool'. */
export interface PoolingNorms {
  /** L2 each local feature over channels before pooling. */
  normalizeInput?: boolean;
  /** L2 the pooled descriptor. */
  normalizeOutput?: boolean;
}

/** The normalisations of an --l2 placement (undefined = the reference's default, before_pool). */
export function poolingNorms(l2: L2Placement | undefined): Required<PoolingNorms> {
  const placement = l2 ?? 'before_pool';
  if (!L2_PLACEMENTS.includes(placement)) throw new Error(`l2 must be one of ${L2_PLACEMENTS.join(', ')}, got '${String(l2)}'`);
  return { normalizeInput: placement === 'before_pool', normalizeOutput: placement === 'after_pool' };
}

abstract class PoolingHead extends nn.Module implements AggregationHead {
  readonly dim: number;
  readonly normalizeInput: boolean;
  readonly normalizeOutput: boolean;
  constructor(readonly inChannels: number, private readonly label: string, norms: PoolingNorms) {
    super();
    this.dim = inChannels;
    const defaults = poolingNorms(undefined);
    this.normalizeInput = norms.normalizeInput ?? defaults.normalizeInput;
    this.normalizeOutput = norms.normalizeOutput ?? defaults.normalizeOutput;
  }
  protected abstract pool(x: Tensor): Tensor;
  forward(x: Tensor): Tensor {
    checkFeatures(x, this.inChannels, this.label);
    return tidy(() => {
      const pooled = this.pool(this.normalizeInput ? l2n(x, 1) : x);
      return this.normalizeOutput ? l2n(pooled, 1) : pooled;
    });
  }
}

export class MAC extends PoolingHead {
  constructor(inChannels: number, norms: PoolingNorms = {}) {
    super(inChannels, 'MAC', norms);
  }
  protected pool(x: Tensor): Tensor {
    return mac(x);
  }
}

/** Average pooling. With the default before_pool L2 it is the student report's plain average-pooling head. */
export class SPoC extends PoolingHead {
  constructor(inChannels: number, norms: PoolingNorms = {}, label = 'SPoC') {
    super(inChannels, label, norms);
  }
  protected pool(x: Tensor): Tensor {
    return spoc(x);
  }
}

export interface RMACOptions {
  /** Grid levels (3). */
  levels?: number;
}
export class RMAC extends PoolingHead {
  readonly levels: number;
  constructor(inChannels: number, options: RMACOptions & PoolingNorms = {}) {
    super(inChannels, 'R-MAC', options);
    this.levels = checkPositiveInt(options.levels ?? 3, 'R-MAC levels');
  }
  protected pool(x: Tensor): Tensor {
    return rmac(x, this.levels);
  }
}

export const macHead = defineHead({
  name: 'mac', label: 'MAC', description: 'global max pooling', options: POOLING_OPTIONS,
  create: (c, o) => new MAC(c, poolingNorms(o.l2)),
});
export const spocHead = defineHead({
  name: 'spoc', label: 'SPoC', description: 'global average pooling', options: POOLING_OPTIONS,
  create: (c, o) => new SPoC(c, poolingNorms(o.l2)),
});
export const avgHead = defineHead({
  name: 'avg', label: 'avg', description: "the student report's average pooling (= spoc)", options: POOLING_OPTIONS,
  create: (c, o) => new SPoC(c, poolingNorms(o.l2), 'avg'),
});
export const rmacHead = defineHead({
  name: 'rmac', label: 'R-MAC', description: 'regional max pooling over a 3-level grid (Tolias et al. 2016)', options: POOLING_OPTIONS,
  create: (c, o) => new RMAC(c, poolingNorms(o.l2)),
});
