import { Tensor } from '../tensor.ts';
import { Optimizer, type ParamsInput } from './optimizer.ts';

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

/** SGD as torch.optim.SGD: d = g + wd·p; b = μ·b + (1−τ)·d (b = d at the first step); p −= lr·(nesterov ? d + μ·b : b). */
export class SGD extends Optimizer<SGDOptions> {
  readonly kind = 'sgd';
  constructor(params: ParamsInput<SGDOptions>, options: Partial<SGDOptions> & { lr: number }) {
    super(params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...options });
  }
  protected update(p: Tensor, grad: Tensor, s: { step: number; tensors: Record<string, Tensor> }, o: SGDOptions): void {
    let d = o.weightDecay !== 0 ? grad.add(p, o.weightDecay) : grad;
    if (o.momentum !== 0) {
      const first = s.tensors.momentum_buffer === undefined;
      const buf = this.stateTensor(s, 'momentum_buffer', () => d.clone());
      if (!first) buf.mul_(o.momentum).add_(d, 1 - o.dampening);
      d = o.nesterov ? d.add(buf, o.momentum) : buf;
    }
    p.add_(d, -o.lr);
  }
}
