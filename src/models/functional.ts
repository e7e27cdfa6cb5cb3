// The math of the aggregation heads as pure functions of tensors (feature maps [B, C, H, W] in,
// descriptors [B, D] or maps out). Modules in ./aggregation own the parameters and call these, and
// tests call them directly. Every function frees its intermediates (tidy).
import { F, tidy, cat, type Tensor } from '../torch/index.ts';

/** L2-normalises along dim (F.normalize with PyTorch's eps 1e-12). */
export function l2n(x: Tensor, dim = 1): Tensor {
  return F.normalize(x, 2, dim);
}

/**
 * Generalised mean pooling over H, W: (mean(clamp(x, eps)^p))^(1/p) → [B, C].
 * p is a number or a learnable 1-element tensor (it then receives a gradient).
 */
export function gem(x: Tensor, p: Tensor | number, eps = 1e-6): Tensor {
  return tidy(() => {
    const pooled = x.clampMin(eps).pow(p).mean([2, 3]);
    return pooled.pow(typeof p === 'number' ? 1 / p : p.reciprocal());
  });
}

/** Global max pooling → [B, C] (not normalised). */
export function mac(x: Tensor): Tensor {
  return x.amax([2, 3]);
}

/** Global average pooling ("sum pooling" up to scale) → [B, C] (not normalised). */
export function spoc(x: Tensor): Tensor {
  return x.mean([2, 3]);
}

export interface Region {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * The multi-scale R-MAC grid of Tolias et al. (2016) for an H x W map: the whole map, then at level l
 * (1..levels) square regions of side floor(2·min(H, W)/(l+1)), l per short side and l + extra per long
 * side, spread evenly edge to edge. `extra` (0..5) is chosen so that consecutive regions along the long
 * side overlap by as close to 40% as possible (the convention of the public implementations).
 */
export function rmacRegions(height: number, width: number, levels = 3): Region[] {
  const side = Math.min(height, width);
  const long = Math.max(height, width);
  let extra = 0;
  if (height !== width) {
    let best = Infinity;
    for (let steps = 2; steps <= 7; steps++) {
      const stride = (long - side) / (steps - 1);
      const err = Math.abs((side * side - side * stride) / (side * side) - 0.4);
      if (err < best) {
        best = err;
        extra = steps - 1;
      }
    }
  }
  const extraW = width > height ? extra : 0;
  const extraH = height > width ? extra : 0;
  const regions: Region[] = [{ top: 0, left: 0, height, width }];
  for (let l = 1; l <= levels; l++) {
    const size = Math.floor((2 * side) / (l + 1));
    if (size === 0) continue;
    const half = Math.floor(size / 2 - 1);
    const starts = (n: number, extent: number): number[] => {
      const stride = n === 1 ? 0 : (extent - size) / (n - 1);
      return Array.from({ length: n }, (_, i) => Math.floor(half + i * stride) - half);
    };
    for (const top of starts(l + extraH, height)) {
      for (const left of starts(l + extraW, width)) regions.push({ top, left, height: size, width: size });
    }
  }
  return regions;
}

/**
 * R-MAC: max over each region of rmacRegions, each regional vector L2-normalised (eps 1e-6 added to
 * the norm, as the public implementations do), summed → [B, C] (not normalised).
 */
export function rmac(x: Tensor, levels = 3): Tensor {
  return tidy(() => {
    const [, , h, w] = x.shape;
    let sum: Tensor | null = null;
    for (const r of rmacRegions(h, w, levels)) {
      const v = x.narrow(2, r.top, r.height).narrow(3, r.left, r.width).amax([2, 3]);
      const vn = v.div(v.norm(2, 1, true).add(1e-6));
      sum = sum === null ? vn : sum.add(vn);
    }
    return sum!;
  });
}

/**
 * NetVLAD soft assignment: softmax over K clusters of a 1x1 convolution of the (normalised) features,
 * [B, K, H·W]. `mask` ([B, 1, H, W], CRN's reweighting) multiplies the assignment.
 */
export function softAssign(x: Tensor, convWeight: Tensor, mask: Tensor | null = null): Tensor {
  return tidy(() => {
    const [b, , h, w] = x.shape;
    const k = convWeight.shape[0];
    const a = F.conv2d(x, convWeight).reshape(b, k, h * w).softmax(1);
    return mask === null ? a : a.mul(mask.reshape(b, 1, h * w));
  });
}

/**
 * VLAD aggregation of features x [B, C, H, W] with assignment a [B, K, H·W] and centroids c [K, C]:
 * V_k = Σ_i a_k(x_i)(x_i − c_k) = (a · xᵀ)_k − (Σ_i a_k(x_i)) c_k, as one batched matmul;
 * then intra-normalisation of each V_k, flatten, L2 → [B, K·C].
 */
export function vlad(x: Tensor, assignment: Tensor, centroids: Tensor): Tensor {
  return tidy(() => {
    const [b, c, h, w] = x.shape;
    const k = centroids.shape[0];
    const weighted = assignment.bmm(x.reshape(b, c, h * w).transpose(1, 2)); // [B, K, C]
    const mass = assignment.sum(2, true); // [B, K, 1]
    const residuals = weighted.sub(centroids.unsqueeze(0).mul(mass));
    return l2n(l2n(residuals, 2).reshape(b, k * c), 1);
  });
}

/** NetVLAD (Arandjelović et al. 2016): optional input L2 over channels, soft assignment, VLAD. */
export function netvlad(x: Tensor, convWeight: Tensor, centroids: Tensor, normalizeInput = true, mask: Tensor | null = null): Tensor {
  return tidy(() => {
    const xn = normalizeInput ? l2n(x, 1) : x;
    return vlad(xn, softAssign(xn, convWeight, mask), centroids);
  });
}

/**
 * CBAM channel attention (Woo et al. 2018): a shared two-layer MLP (1x1 convs fc1, fc2, no bias) on the
 * average- and max-pooled channel vectors, summed, sigmoid; returns x scaled per channel.
 */
export function channelAttention(x: Tensor, fc1: Tensor, fc2: Tensor): Tensor {
  return tidy(() => {
    const mlp = (v: Tensor): Tensor => F.conv2d(F.conv2d(v, fc1).relu(), fc2);
    const gate = mlp(F.adaptiveAvgPool2d(x, 1)).add(mlp(F.adaptiveMaxPool2d(x, 1))).sigmoid();
    return x.mul(gate);
  });
}

/**
 * CBAM spatial attention: a k x k convolution (weight [1, 2, k, k], "same" padding) of the channel
 * mean and channel max maps, sigmoid; returns x scaled per position.
 */
export function spatialAttention(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return tidy(() => {
    const pooled = cat([x.mean(1, true), x.amax(1, true)], 1);
    const pad = Math.floor(weight.shape[2] / 2);
    return x.mul(F.conv2d(pooled, weight, bias, { padding: pad }).sigmoid());
  });
}
