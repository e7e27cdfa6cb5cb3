// Learned whitening: a Linear layer + L2 after any head (the benchmark's `fc_output_dim`). Children are
// named as in the benchmark's nn.Sequential(head, Linear, L2Norm): `0.*` for the head, `1.weight` and
// `1.bias` for the Linear, so its checkpoints keep their keys.
import { z } from 'zod';
import { nn, tidy, type Tensor } from '../../torch/index.ts';
import type { AggregationHead } from '../types.ts';
import { l2n } from '../functional.ts';
import { forwardInit } from './attention.ts';
import { checkPositiveInt } from './check.ts';

/** The learned whitening's option (after any head) as configs and flags spell it. */
export const PROJECTION_OPTIONS = {
  fcOutputDim: z.number().int().positive().optional().describe('learned whitening: Linear to this dimension + L2 after the head'),
};

export class ProjectedHead extends nn.Module implements AggregationHead {
  readonly head: AggregationHead;
  readonly fc: nn.Linear;
  readonly dim: number;
  declare initFromDescriptors?: (descriptors: Tensor, seed: number) => void;
  constructor(head: AggregationHead, fcDim: number) {
    super();
    this.dim = checkPositiveInt(fcDim, 'fcDim');
    this.head = this.module('0', head);
    this.fc = this.module('1', new nn.Linear(head.dim, fcDim));
    forwardInit(this, head);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => l2n(this.fc.forward(this.head.forward(x)), 1));
  }
}
