// Inference speed-ups that leave the trained parameters untouched: BatchNorm folded into the
// preceding convolution (w' = w·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β), weights in channels-last
// memory order (faster oneDNN convolutions on CPU) and, for bf16 inference, in bfloat16 (folded in
// fp32 first; convolutions that keep fp32 under autocast, float32.ts, stay fp32). Valid only in eval
// mode, for the current weights.
import { Tensor } from '../tensor.ts';
import type { DType } from '../dtype.ts';
import { noGrad } from '../factory.ts';
import { keep, tidy } from '../scope.ts';
import { Conv2d, BatchNorm2d } from './layers.ts';

export type ConvBn = readonly [Conv2d, BatchNorm2d | null];

/**
 * Installs folded inference weights on each pair, in `dtype` (convolutions that keep fp32 under
 * autocast, keepsFloat32, are not narrowed to a 16-bit `dtype`); returns a function that removes them.
 */
export function foldForInference(pairs: readonly ConvBn[], channelsLast = true, dtype: DType = 'float32'): () => void {
  noGrad(() => {
    for (const [conv, bn] of pairs) {
      const { weight, bias } = tidy(() => {
        let w = conv.weight;
        let b = conv.bias ?? conv.weight.mul(0).sum([1, 2, 3]);
        if (bn) {
          const scale = bn.runningVar.add(bn.eps).rsqrt().mul(bn.weight);
          w = w.mul(scale.reshape(-1, 1, 1, 1));
          b = b.sub(bn.runningMean).mul(scale).add(bn.bias);
        }
        const to = conv.keepsFloat32 && (dtype === 'bfloat16' || dtype === 'float16') ? 'float32' : dtype;
        if (to !== w.dtype) {
          w = w.to(to);
          b = b.to(to);
        }
        return { weight: w.contiguous(channelsLast), bias: b.contiguous() };
      });
      conv.inference = { weight: keep(weight), bias: keep(bias) };
      if (bn) bn.folded = true;
    }
  });
  return () => {
    for (const [conv, bn] of pairs) {
      conv.inference?.weight.dispose();
      conv.inference?.bias.dispose();
      conv.inference = null;
      if (bn) bn.folded = false;
    }
  };
}

/** The input in the memory order the folded weights expect. */
export function toChannelsLast(x: Tensor): Tensor {
  return x.contiguous(true);
}
