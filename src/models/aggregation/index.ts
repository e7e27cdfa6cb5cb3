// The registry of aggregation heads: the trainer, the evaluator and the CLI pick a head by name here
// and never need to know the heads themselves.
import type { AggregationHead } from '../types.ts';
import { GeM } from './gem.ts';
import { NetVLAD } from './netvlad.ts';
import { CRN, isCrnParameterName } from './crn.ts';
import { MAC, SPoC, RMAC, poolingNorms, type L2Placement } from './pooling.ts';
import { AttentionHead } from './attention.ts';
import { ProjectedHead } from './projection.ts';
import type { Tensor } from '../../torch/index.ts';

export { GeM, type GeMOptions } from './gem.ts';
export { NetVLAD, assignmentSharpness, type NetVLADOptions } from './netvlad.ts';
export { CRN, CRNModule, isCrnParameterName } from './crn.ts';
export { MAC, SPoC, RMAC, L2_PLACEMENTS, poolingNorms, type RMACOptions, type L2Placement, type PoolingNorms } from './pooling.ts';
export { CBAM, ChannelAttention, SpatialAttention, AttentionHead, type CBAMOptions } from './attention.ts';
export { ProjectedHead } from './projection.ts';

export const BASE_HEADS = ['gem', 'netvlad', 'crn', 'mac', 'spoc', 'avg', 'rmac'] as const;
export type BaseHeadName = (typeof BASE_HEADS)[number];
export type AggregationName = BaseHeadName | `attention+${BaseHeadName}`;
export const AGGREGATION_NAMES: readonly AggregationName[] = [...BASE_HEADS, ...BASE_HEADS.map((n) => `attention+${n}` as const)];

/** Every option any head reads; each head ignores the others. */
export interface HeadOptions {
  /** NetVLAD/CRN clusters K (64). */
  clusters?: number;
  /** NetVLAD/CRN k-means iterations for initFromDescriptors (100). */
  kmeansIterations?: number;
  /** GeM initial p (3). */
  gemP?: number;
  /** GeM: p learns (true) or stays fixed. */
  gemPTrainable?: boolean;
  /** GeM clamp floor (1e-6). */
  gemEps?: number;
  /** NetVLAD/CRN: L2 each local feature over channels before the soft assignment (true). */
  normalizeInput?: boolean;
  /** GeM, MAC, SPoC/avg, R-MAC: where to L2-normalise (the reference's --l2; default before_pool). */
  l2?: L2Placement;
  /** R-MAC grid levels (3). */
  rmacLevels?: number;
  /** attention+*: channel-MLP reduction ratio (16) and spatial kernel (7). */
  attentionReduction?: number;
  attentionKernel?: number;
  /** Learned whitening: Linear(dim → fcDim) + L2 after the head (off when undefined). */
  fcDim?: number;
}

const BASE: Record<BaseHeadName, (c: number, o: HeadOptions) => AggregationHead> = {
  gem: (c, o) => new GeM(c, { p: o.gemP, eps: o.gemEps, trainableP: o.gemPTrainable, ...poolingNorms(o.l2) }),
  netvlad: (c, o) => new NetVLAD(c, { clusters: o.clusters, normalizeInput: o.normalizeInput, kmeansIterations: o.kmeansIterations }),
  crn: (c, o) => new CRN(c, { clusters: o.clusters, normalizeInput: o.normalizeInput, kmeansIterations: o.kmeansIterations }),
  mac: (c, o) => new MAC(c, poolingNorms(o.l2)),
  spoc: (c, o) => new SPoC(c, poolingNorms(o.l2)),
  avg: (c, o) => new SPoC(c, poolingNorms(o.l2), 'avg'),
  rmac: (c, o) => new RMAC(c, { levels: o.rmacLevels, ...poolingNorms(o.l2) }),
};

function withProjection(head: AggregationHead, o: HeadOptions): AggregationHead {
  return o.fcDim === undefined ? head : new ProjectedHead(head, o.fcDim);
}

function attention(name: BaseHeadName) {
  return (c: number, o: HeadOptions): AggregationHead =>
    withProjection(new AttentionHead(c, BASE[name](c, o), { reduction: o.attentionReduction, spatialKernel: o.attentionKernel }), o);
}

function plain(name: BaseHeadName) {
  return (c: number, o: HeadOptions): AggregationHead => withProjection(BASE[name](c, o), o);
}

/** name → factory(inChannels, options) of the complete head (with the fcDim projection when asked). */
export const HEADS: Record<AggregationName, (inChannels: number, options: HeadOptions) => AggregationHead> = {
  gem: plain('gem'),
  netvlad: plain('netvlad'),
  crn: plain('crn'),
  mac: plain('mac'),
  spoc: plain('spoc'),
  avg: plain('avg'),
  rmac: plain('rmac'),
  'attention+gem': attention('gem'),
  'attention+netvlad': attention('netvlad'),
  'attention+crn': attention('crn'),
  'attention+mac': attention('mac'),
  'attention+spoc': attention('spoc'),
  'attention+avg': attention('avg'),
  'attention+rmac': attention('rmac'),
};

export function isAggregationName(name: string): name is AggregationName {
  return (AGGREGATION_NAMES as readonly string[]).includes(name);
}

/** HEADS[name] with a clear error for an unknown name. */
export function buildHead(name: string, inChannels: number, options: HeadOptions = {}): AggregationHead {
  if (!isAggregationName(name)) {
    throw new Error(`unknown aggregation "${name}"; choose one of: ${AGGREGATION_NAMES.join(', ')}`);
  }
  return HEADS[name](inChannels, options);
}

/**
 * The head's trainable parameters split for the optimizer: CRN layers (the reference trains them
 * with a 10x higher learning rate, 5e-3 vs 5e-4) and the rest. `crn` is empty for other heads.
 */
export function splitCrnParameters(head: AggregationHead): { crn: Tensor[]; rest: Tensor[] } {
  const crn: Tensor[] = [];
  const rest: Tensor[] = [];
  for (const [name, p] of head.namedParameters()) {
    if (!p.requiresGrad) continue;
    (isCrnParameterName(name) ? crn : rest).push(p);
  }
  return { crn, rest };
}
