// Parameter-free global pooling heads: MAC (max), SPoC (average), R-MAC (regional max). Each ends
// with L2 normalisation.
import { nn, tidy, type Tensor } from '../../torch/index.ts';
import type { AggregationHead } from '../types.ts';
import { l2n, mac, rmac, spoc } from '../functional.ts';
import { checkFeatures, checkPositiveInt } from './check.ts';

abstract class PoolingHead extends nn.Module implements AggregationHead {
  readonly dim: number;
  constructor(readonly inChannels: number, private readonly label: string) {
    super();
    this.dim = inChannels;
  }
  protected abstract pool(x: Tensor): Tensor;
  forward(x: Tensor): Tensor {
    checkFeatures(x, this.inChannels, this.label);
    return tidy(() => l2n(this.pool(x), 1));
  }
}

export class MAC extends PoolingHead {
  constructor(inChannels: number) {
    super(inChannels, 'MAC');
  }
  protected pool(x: Tensor): Tensor {
    return mac(x);
  }
}

export class SPoC extends PoolingHead {
  constructor(inChannels: number) {
    super(inChannels, 'SPoC');
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
  constructor(inChannels: number, options: RMACOptions = {}) {
    super(inChannels, 'R-MAC');
    this.levels = checkPositiveInt(options.levels ?? 3, 'R-MAC levels');
  }
  protected pool(x: Tensor): Tensor {
    return rmac(x, this.levels);
  }
}
