// Parameter initialisation (torch.nn.init), drawing from the engine's seeded generator.
import { Tensor } from '../tensor.ts';
import { rand, randn, noGrad } from '../factory.ts';
import { tidy } from '../scope.ts';

/** fan_in and fan_out of a Linear ([out, in]) or conv ([out, in/groups, kh, kw]) weight. */
export function fans(shape: number[]): { fanIn: number; fanOut: number } {
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

export function uniform_(t: Tensor, low: number, high: number): Tensor {
  tidy(() => noGrad(() => t.copy_(rand(t.shape).mul(high - low).add(low))));
  return t;
}
export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  tidy(() => noGrad(() => t.copy_(randn(t.shape).mul(std).add(mean))));
  return t;
}
export function constant_(t: Tensor, v: number): Tensor {
  noGrad(() => t.fill_(v));
  return t;
}
/** He normal for ReLU nets, mode fan_out (torchvision's ResNet conv init). */
export function kaimingNormalFanOut_(t: Tensor): Tensor {
  return normal_(t, 0, Math.sqrt(2 / fans(t.shape).fanOut));
}
/** He normal, mode fan_in (torch.nn.init.kaiming_normal_'s default). */
export function kaimingNormalFanIn_(t: Tensor): Tensor {
  return normal_(t, 0, Math.sqrt(2 / fans(t.shape).fanIn));
}
/** PyTorch's default for Conv2d/Linear: kaiming_uniform(a=√5) = U(±1/√fan_in); bias U(±1/√fan_in) too. */
export function defaultUniform_(t: Tensor, fanIn: number): Tensor {
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return uniform_(t, -bound, bound);
}
