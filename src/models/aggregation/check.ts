// Input checks shared by the heads: a wrong feature map should fail with the head's name and the
// shapes involved, not deep inside a convolution.
import type { Tensor } from '../../torch/index.ts';

export function checkFeatures(x: Tensor, inChannels: number, head: string): void {
  const s = x.shape;
  if (s.length !== 4 || s[1] !== inChannels) {
    throw new Error(`${head}: expected features [B, ${inChannels}, H, W], got [${s}]`);
  }
}

export function checkPositiveInt(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${what} must be a positive integer, got ${value}`);
  return value;
}
