// GeM head (Radenović et al. 2018): generalised mean with a learnable (or fixed) exponent p.
import { z } from 'zod';
import { nn, tidy, full, type Tensor } from '../../torch/index.ts';
import type { AggregationHead } from '../types.ts';
import { gem, l2n } from '../functional.ts';
import { checkFeatures } from './check.ts';
import { POOLING_OPTIONS, poolingNorms } from './pooling.ts';
import { defineHead } from './entry.ts';

const DEFAULT_P = 3;

/** GeM's options as configs and flags spell them (with the pooling heads' l2). */
export const GEM_OPTIONS = {
  gemP: z.number().positive().default(DEFAULT_P).describe('GeM exponent p, initial value'),
  gemPTrainable: z.boolean().default(true).describe('GeM p learns (true) or stays fixed (false)'),
};

export interface GeMOptions {
  /** Initial p (3). */
  p?: number;
  /** Clamp floor before the power (1e-6). */
  eps?: number;
  /** L2-normalise each spatial feature over channels before pooling (the benchmark's default, true). */
  normalizeInput?: boolean;
  /** L2-normalise the pooled descriptor (false, as the benchmark's default --l2 before_pool). */
  normalizeOutput?: boolean;
  /** p learns with the network (true, the benchmark's) or stays at its initial value. */
  trainableP?: boolean;
}

export class GeM extends nn.Module implements AggregationHead {
  /** Parameter `p`, shape [1]. */
  readonly p: Tensor;
  readonly dim: number;
  readonly eps: number;
  readonly normalizeInput: boolean;
  readonly normalizeOutput: boolean;
  constructor(readonly inChannels: number, options: GeMOptions = {}) {
    super();
    const p = options.p ?? DEFAULT_P;
    if (!(Number.isFinite(p) && p > 0)) throw new Error(`GeM: p must be a positive number, got ${p}`);
    // A parameter even when fixed, so the state-dict key `p` is the same either way.
    this.p = this.param('p', full([1], p));
    if (options.trainableP === false) this.p.requiresGrad_(false);
    this.eps = options.eps ?? 1e-6;
    this.normalizeInput = options.normalizeInput ?? true;
    this.normalizeOutput = options.normalizeOutput ?? false;
    this.dim = inChannels;
  }
  forward(x: Tensor): Tensor {
    checkFeatures(x, this.inChannels, 'GeM');
    return tidy(() => {
      const pooled = gem(this.normalizeInput ? l2n(x, 1) : x, this.p, this.eps);
      return this.normalizeOutput ? l2n(pooled, 1) : pooled;
    });
  }
}

export const gemHead = defineHead({
  name: 'gem', label: 'GeM', description: 'generalised mean pooling (Radenović et al. 2018)',
  options: { ...GEM_OPTIONS, ...POOLING_OPTIONS },
  create: (c, o) => new GeM(c, { p: o.gemP, trainableP: o.gemPTrainable, ...poolingNorms(o.l2) }),
});
