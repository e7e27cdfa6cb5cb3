// Memory guard: estimate what a run's largest step will hold before any image is read, and refuse a
// size or batch that cannot fit (with the estimate and the largest size that would), instead of
// swapping for minutes and dying mid-epoch.
//
// Activations grow with the pixel count (convolutions, NetVLAD's soft assignment and residuals), so one
// forward of one image at a small probe size, with each layer's output counted, scales to any size.
// Self-attention weights (N x N for N tokens) grow with the square of the pixel count: modules that say so
// (`activationGrowth = 'quadratic'`, transformer.ts) are scaled by the squared ratio.
import * as torch from '../torch/index.ts';
import { Tensor, availableMemory } from '../torch/index.ts';
import type { GeoLocalizationNet } from './network.ts';
import { OptionError } from '../errors.ts';

export { availableMemory };

/**
 * Backward adds gradients to the saved tensors. With it, the estimate of a step measured against the
 * peak resident memory of real steps at 240x320 (ResNet-18/50, MobileNetV2, VGG-16; GeM, NetVLAD) is
 * 0.8x to 1.8x: rarely under, never by much. Transformers (12 images a step, one thread): CCT-14/7x2 at
 * 192x256 0.95x, ViT-B/16 at 224x224 1.3x.
 */
export const BACKWARD_FACTOR = 1.5;
/** Inference holds a layer's input, its output and a workspace: three of the largest outputs. */
const INFERENCE_LIVE_OUTPUTS = 3;
/** The probe's pixel count: small enough to be instant, large enough that borders do not dominate. */
const PROBE_PIXELS = 128 * 160;
/** Sizes the refusal suggests are multiples of this (the backbones' strides). */
const SIZE_STEP = 16;
const GIB = 1024 ** 3;

/**
 * Bytes one image of height x width needs, from a probe: with gradients, the outputs of every leaf
 * module (what autograd saves for backward, as torchsummary counts it); in inference, which frees
 * each layer's input once its output exists, a few of the largest outputs.
 */
export function activationBytesPerImage(net: GeoLocalizationNet, height: number, width: number): { training: number; inference: number } {
  const scale = Math.min(1, Math.sqrt(PROBE_PIXELS / (height * width)));
  const h = Math.max(32, Math.round(height * scale));
  const w = Math.max(32, Math.round(width * scale));
  let bytes = 0;
  let largest = 0;
  let quadraticBytes = 0;
  let largestQuadratic = 0;
  const restore: (() => void)[] = [];
  for (const [, m] of net.namedModules()) {
    if (m.children().next().done !== true) continue;
    const forward = m.forward;
    const leaf = m as unknown as { forward: (...a: unknown[]) => unknown };
    const quadratic = (m as { activationGrowth?: string }).activationGrowth === 'quadratic';
    leaf.forward = (...inputs: unknown[]) => {
      const out = (forward as (...a: unknown[]) => unknown).apply(m, inputs);
      if (out instanceof Tensor && quadratic) {
        quadraticBytes += out.numel * 4;
        largestQuadratic = Math.max(largestQuadratic, out.numel * 4);
      } else if (out instanceof Tensor) {
        bytes += out.numel * 4;
        largest = Math.max(largest, out.numel * 4);
      }
      return out;
    };
    restore.push(() => { leaf.forward = forward as never; });
  }
  const wasTraining = net.training;
  net.eval(); // the same outputs as training, without touching BatchNorm's running statistics
  try {
    torch.noGrad(() => torch.tidy(() => { net.forward(torch.zeros([1, 3, h, w])); }));
  } finally {
    for (const r of restore) r();
    net.train(wasTraining);
  }
  const ratio = (height * width) / (h * w);
  return {
    training: bytes * ratio + quadraticBytes * ratio ** 2,
    inference: INFERENCE_LIVE_OUTPUTS * Math.max(largest * ratio, largestQuadratic * ratio ** 2),
  };
}

export interface MemoryEstimate {
  /** The largest step's bytes: a training step (forward + backward) or an inference batch. */
  bytes: number;
  what: string;
  /** Memory available to this process (MemAvailable, or VGL_MEMORY_AVAILABLE_MB). */
  available: number;
}

/** The memory of describing images in batches (evaluation, caches, k-means). */
export function inferenceMemory(net: GeoLocalizationNet, height: number, width: number, batchSize: number, available = availableMemory()): MemoryEstimate {
  const { inference } = activationBytesPerImage(net, height, width);
  return { bytes: inference * batchSize, what: `an inference batch of ${batchSize} images (inferBatchSize)`, available };
}

/** The largest HxW with this aspect ratio (multiples of 16) whose estimate fits in budget bytes. */
export function largestFittingSize(estimate: number, budget: number, height: number, width: number): [number, number] | null {
  const scale = Math.sqrt(budget / estimate); // bytes grow with the pixel count
  const h = Math.floor((height * scale) / SIZE_STEP) * SIZE_STEP;
  const w = Math.floor((width * scale) / SIZE_STEP) * SIZE_STEP;
  return h >= 32 && w >= 32 ? [h, w] : null;
}

const gib = (b: number) => `${(b / GIB).toFixed(b < GIB ? 2 : 1)} GiB`;

/**
 * Refuses work whose largest step would not fit in the available memory (an OptionError: the options ask
 * for it), naming the size flag, the estimate and the largest size that fits; warns above half.
 */
export function checkMemory(e: MemoryEstimate, size: [number, number], log: (line: string) => void, sizeOption = 'resize'): MemoryEstimate {
  const [height, width] = size;
  if (e.bytes > e.available) {
    const fits = largestFittingSize(e.bytes, e.available * 0.8, height, width);
    throw new OptionError(sizeOption, `${e.what} needs about ${gib(e.bytes)} of activation memory, ` +
      `and ${gib(e.available)} are available. ` +
      (fits ? `The largest size that fits with these batches is about ${fits[0]}x${fits[1]}; ` : 'No size fits with these batches; ') +
      'or lower the batch sizes.', `${height}x${width}`);
  }
  if (e.bytes > e.available / 2) log(`WARNING: ${e.what} needs about ${gib(e.bytes)} of activation memory, more than half of the ${gib(e.available)} available`);
  return e;
}
