// Neural-network functions of tensors (the torch.nn.functional of vgl). Modules own parameters and
// call these; tests call them directly.
import { call, OP } from './native.ts';
import { Tensor, wrap } from './tensor.ts';

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  return wrap(call(OP.conv2d, x.h, weight.h, bias?.h ?? null, pair(o.stride ?? 1), pair(o.padding ?? 0),
    pair(o.dilation ?? 1), o.groups ?? 1));
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}
/** Batch norm over dim 1. In training mode the running statistics are updated in place. */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, o: BatchNormOptions = {}): Tensor {
  return wrap(call(OP.batch_norm, x.h, o.weight?.h ?? null, o.bias?.h ?? null, runningMean?.h ?? null,
    runningVar?.h ?? null, o.training ?? false, o.momentum ?? 0.1, o.eps ?? 1e-5));
}

export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return wrap(call(OP.linear, x.h, weight.h, bias?.h ?? null));
}

export interface PoolOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
  countIncludePad?: boolean;
}
export function maxPool2d(x: Tensor, kernel: Pair, o: PoolOptions = {}): Tensor {
  return wrap(call(OP.max_pool2d, x.h, pair(kernel), pair(o.stride ?? kernel), pair(o.padding ?? 0),
    pair(o.dilation ?? 1), o.ceilMode ?? false));
}
export function avgPool2d(x: Tensor, kernel: Pair, o: PoolOptions = {}): Tensor {
  return wrap(call(OP.avg_pool2d, x.h, pair(kernel), pair(o.stride ?? kernel), pair(o.padding ?? 0),
    o.ceilMode ?? false, o.countIncludePad ?? true));
}
export function adaptiveAvgPool2d(x: Tensor, size: Pair): Tensor {
  return wrap(call(OP.adaptive_avg_pool2d, x.h, pair(size)));
}
export function adaptiveMaxPool2d(x: Tensor, size: Pair): Tensor {
  return wrap(call(OP.adaptive_max_pool2d, x.h, pair(size)));
}

/**
 * Resize NCHW maps to size [H, W]: bilinear or bicubic (align_corners as given), or nearest.
 * `antialias` (bicubic only) is torch's antialiased path: PIL's kernel (a = -0.5 instead of -0.75),
 * widened when shrinking; timm resamples ViT position embeddings with it.
 */
export function interpolate(x: Tensor, size: [number, number], mode: 'bilinear' | 'bicubic' | 'nearest' = 'bilinear', alignCorners = false, antialias = false): Tensor {
  if (antialias && mode !== 'bicubic') throw new Error(`interpolate: antialias is implemented for bicubic only, not ${mode}`);
  if (mode === 'nearest') return wrap(call(OP.upsample_nearest2d, x.h, size));
  if (mode === 'bicubic') return wrap(call(OP.upsample_bicubic2d, x.h, size, alignCorners, antialias));
  return wrap(call(OP.upsample_bilinear2d, x.h, size, alignCorners));
}

/** Layer normalisation over the last dims (their sizes in `shape`), with optional affine weight and bias. */
export function layerNorm(x: Tensor, shape: number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return wrap(call(OP.layer_norm, x.h, shape, weight?.h ?? null, bias?.h ?? null, eps));
}

/** GELU: exact x·Φ(x) ('none', torch's default) or its tanh approximation. */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return wrap(call(OP.gelu, x.h, approximate));
}

export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  return wrap(call(OP.dropout, x.h, p, training));
}

/** Constant padding; pads as in torch: [left, right, top, bottom, ...] from the last dim backwards. */
export function pad(x: Tensor, pads: number[], value = 0): Tensor {
  return wrap(call(OP.constant_pad_nd, x.h, pads, value));
}

export const relu = (x: Tensor): Tensor => x.relu();
export const relu6 = (x: Tensor): Tensor => x.relu6();
export const sigmoid = (x: Tensor): Tensor => x.sigmoid();
export const softmax = (x: Tensor, dim: number): Tensor => x.softmax(dim);
export const logSoftmax = (x: Tensor, dim: number): Tensor => x.logSoftmax(dim);

/** x / max(‖x‖_p, eps) along dim (torch.nn.functional.normalize). */
export function normalize(x: Tensor, p = 2, dim = 1, eps = 1e-12): Tensor {
  const n = x.norm(p, dim, true);
  const d = n.clampMin(eps);
  const out = x.div(d);
  n.dispose();
  d.dispose();
  return out;
}

/** Pairwise p-norm distances between the rows of a [.., P, M] and b [.., R, M]. */
export function cdist(a: Tensor, b: Tensor, p = 2): Tensor {
  return wrap(call(OP.cdist, a.h, b.h, p));
}
