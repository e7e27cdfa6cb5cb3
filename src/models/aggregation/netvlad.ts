// NetVLAD head (Arandjelović et al. 2016) with the reference's parameter names: `centroids` [K, C]
// and `conv.weight` [K, C, 1, 1] (1x1 convolution without bias giving the soft assignment).
import { z } from 'zod';
import { nn, tidy, noGrad, rand, type Tensor } from '../../torch/index.ts';
import type { DataInitialisedHead } from '../types.ts';
import { netvlad, l2n } from '../functional.ts';
import { kmeans } from '../kmeans.ts';
import { checkFeatures, checkPositiveInt } from './check.ts';
import { defineHead } from './entry.ts';

const DEFAULT_CLUSTERS = 64;

/** NetVLAD's (and CRN's) options as configs and flags spell them. */
export const NETVLAD_OPTIONS = {
  netvladClusters: z.number().int().positive().default(DEFAULT_CLUSTERS).describe('NetVLAD/CRN clusters'),
};

export interface NetVLADOptions {
  /** Number of clusters K (64). */
  clusters?: number;
  /** L2-normalise each local feature over channels first (true). */
  normalizeInput?: boolean;
  /** k-means iterations in initFromDescriptors (100). */
  kmeansIterations?: number;
}

export class NetVLAD extends nn.Module implements DataInitialisedHead {
  readonly centroids: Tensor;
  readonly conv: nn.Conv2d;
  readonly clusters: number;
  readonly dim: number;
  readonly normalizeInput: boolean;
  readonly kmeansIterations: number;
  /** Sharpness of the assignment set by initFromDescriptors (null before; not part of the state dict). */
  alpha: number | null = null;
  constructor(readonly inChannels: number, options: NetVLADOptions = {}) {
    super();
    this.clusters = checkPositiveInt(options.clusters ?? DEFAULT_CLUSTERS, 'NetVLAD clusters');
    this.normalizeInput = options.normalizeInput ?? true;
    this.kmeansIterations = options.kmeansIterations ?? 100;
    // The reference starts from uniform random centroids and PyTorch's default conv init; real runs
    // replace both with initFromDescriptors.
    this.centroids = this.param('centroids', rand([this.clusters, inChannels]));
    this.conv = this.module('conv', new nn.Conv2d(inChannels, this.clusters, 1, { bias: false }));
    this.dim = this.clusters * inChannels;
  }

  forward(x: Tensor): Tensor {
    checkFeatures(x, this.inChannels, 'NetVLAD');
    return netvlad(x, this.conv.weight, this.centroids, this.normalizeInput);
  }

  /**
   * k-means on the (L2-normalised) local descriptors [N, C]; centroids = cluster centres;
   * alpha = −ln(0.01) / mean over descriptors of (largest − second largest dot product with the
   * normalised centres); conv weight = alpha · normalised centres.
   */
  initFromDescriptors(descriptors: Tensor, seed: number): void {
    const s = descriptors.shape;
    if (s.length !== 2 || s[1] !== this.inChannels) {
      throw new Error(`NetVLAD.initFromDescriptors: expected descriptors [N, ${this.inChannels}], got [${s}]`);
    }
    if (s[0] < this.clusters) {
      throw new Error(`NetVLAD.initFromDescriptors: ${s[0]} descriptors cannot make ${this.clusters} clusters`);
    }
    const alpha = noGrad(() => tidy(() => {
      const descs = l2n(descriptors.detach().float(), 1);
      const { centroids } = kmeans(descs, this.clusters, { seed, iterations: this.kmeansIterations });
      const unit = l2n(centroids, 1);
      const alpha = assignmentSharpness(descs, unit);
      this.centroids.copy_(centroids);
      this.conv.weight.copy_(unit.mul(alpha).reshape(this.clusters, this.inChannels, 1, 1));
      return alpha;
    }));
    this.alpha = alpha;
  }
}

/**
 * −ln(0.01) / mean(top1 − top2) of the dot products between unit descriptors [N, C] and unit centres
 * [K, C]: the scale that gives the nearest centre about 100x the weight of the second on average.
 * Computed in chunks of descriptors to bound memory.
 */
export function assignmentSharpness(descs: Tensor, unitCentres: Tensor, chunk = 8192): number {
  if (unitCentres.shape[0] < 2) return 1; // a single cluster: the assignment is constant anyway
  let gapSum = 0;
  const n = descs.shape[0];
  for (let start = 0; start < n; start += chunk) {
    gapSum += tidy(() => {
      const [top] = descs.narrow(0, start, Math.min(chunk, n - start)).mm(unitCentres.t()).topk(2, 1);
      return top.select(1, 0).sub(top.select(1, 1)).sum().item();
    });
  }
  const meanGap = gapSum / n;
  if (!(meanGap > 0)) throw new Error(`NetVLAD init: descriptors do not separate the clusters (mean top1-top2 gap ${meanGap})`);
  return -Math.log(0.01) / meanGap;
}

export const netvladHead = defineHead({
  name: 'netvlad', label: 'NetVLAD', description: 'soft-assignment residual aggregation (Arandjelović et al. 2016)',
  options: NETVLAD_OPTIONS,
  create: (c, o) => new NetVLAD(c, { clusters: o.netvladClusters }),
});
