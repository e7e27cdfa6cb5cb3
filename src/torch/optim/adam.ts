import { Tensor } from '../tensor.ts';
import { Optimizer, type ParamsInput } from './optimizer.ts';

export interface AdamOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Decoupled weight decay (AdamW) instead of L2 added to the gradient (Adam). */
  decoupled: boolean;
}

/**
 * Adam as torch.optim.Adam: g += wd·p; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
 * p −= lr/(1−β1^t) · m / (√v/√(1−β2^t) + eps). With `decoupled`, AdamW: p *= 1 − lr·wd instead.
 */
export class Adam extends Optimizer<AdamOptions> {
  readonly kind = 'adam';
  constructor(params: ParamsInput<AdamOptions>, options: Partial<AdamOptions> & { lr: number }) {
    super(params, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false, ...options });
  }
  protected update(p: Tensor, grad: Tensor, s: { step: number; tensors: Record<string, Tensor> }, o: AdamOptions): void {
    let g = grad;
    if (o.weightDecay !== 0) {
      if (o.decoupled) p.mul_(1 - o.lr * o.weightDecay);
      else g = grad.add(p, o.weightDecay);
    }
    const m = this.stateTensor(s, 'exp_avg', () => p.mul(0));
    const v = this.stateTensor(s, 'exp_avg_sq', () => p.mul(0));
    // The same in-place sequence as torch.optim.Adam (one temporary: denom).
    m.lerp_(g, 1 - o.beta1);
    v.mul_(o.beta2).addcmul_(g, g, 1 - o.beta2);
    const bc1 = 1 - o.beta1 ** s.step;
    const bc2 = 1 - o.beta2 ** s.step;
    const denom = v.sqrt().div_(Math.sqrt(bc2)).add_(o.eps);
    p.addcdiv_(m, denom, -o.lr / bc1);
  }
}
