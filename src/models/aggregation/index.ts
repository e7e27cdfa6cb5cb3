// The registry of aggregation heads: the trainer, the evaluator and the CLI pick a head by name here
// and never need to know the heads themselves.
import type { AggregationHead } from '../types.ts';
import { GeM } from './gem.ts';
import { NetVLAD } from './netvlad.ts';
import { CRN, isCrnParameterName } from './crn.ts';
import { MAC, SPoC, RMAC, poolingNorms, type L2Placement } from './pooling.ts';
import { AttentionHead, CBAM, type AttentionBlock } from './attention.ts';
import { NonLocalBlock, SecondOrderAttention } from './non-local.ts';
import { ProjectedHead } from './projection.ts';
import { ClsToken } from './cls.ts';
import type { Tensor } from '../../torch/index.ts';
import type { z } from 'zod';
import { GEM_OPTIONS } from './gem.ts';
import { NETVLAD_OPTIONS } from './netvlad.ts';
import { POOLING_OPTIONS } from './pooling.ts';
import { PROJECTION_OPTIONS } from './projection.ts';

export { GeM, type GeMOptions } from './gem.ts';
export { NetVLAD, assignmentSharpness, type NetVLADOptions } from './netvlad.ts';
export { CRN, CRNModule, isCrnParameterName } from './crn.ts';
export { MAC, SPoC, RMAC, L2_PLACEMENTS, poolingNorms, type RMACOptions, type L2Placement, type PoolingNorms } from './pooling.ts';
export { CBAM, ChannelAttention, SpatialAttention, AttentionHead, type CBAMOptions, type AttentionBlock } from './attention.ts';
export { NonLocalBlock, SecondOrderAttention } from './non-local.ts';
export { ProjectedHead } from './projection.ts';
export { ClsToken } from './cls.ts';

/** cls: a transformer backbone's global token (class token, or CCT's sequence pooling) as the descriptor. */
export const BASE_HEADS = ['gem', 'netvlad', 'crn', 'mac', 'spoc', 'avg', 'rmac', 'cls'] as const;
export type BaseHeadName = (typeof BASE_HEADS)[number];
/**
 * Blocks in front of a head, `<block>+<head>`: attention = CBAM (the name checkpoints have carried),
 * nonlocal = the non-local block (Wang et al. 2018), soa = SOLAR's second-order attention.
 */
export const ATTENTION_BLOCKS = ['attention', 'nonlocal', 'soa'] as const;
export type AttentionBlockName = (typeof ATTENTION_BLOCKS)[number];
export type AggregationName = BaseHeadName | `${AttentionBlockName}+${BaseHeadName}`;
export const AGGREGATION_NAMES: readonly AggregationName[] = [
  ...BASE_HEADS, ...ATTENTION_BLOCKS.flatMap((block) => BASE_HEADS.map((head) => `${block}+${head}` as const)),
];

/** The parts of an aggregation name, `<head>` or `<block>+<head>`. */
export interface AggregationParts {
  block?: AttentionBlockName;
  head: BaseHeadName;
}

/** `<block>+<head>` → its parts: the one decoder of aggregation names. */
export function parseAggregationName(name: AggregationName): AggregationParts {
  const plus = name.indexOf('+');
  return plus < 0 ? { head: name as BaseHeadName } : { block: name.slice(0, plus) as AttentionBlockName, head: name.slice(plus + 1) as BaseHeadName };
}

/** Its parts → `<block>+<head>`: the one encoder. */
export const formatAggregationName = ({ block, head }: AggregationParts): AggregationName =>
  (block === undefined ? head : `${block}+${head}`) as AggregationName;

/**
 * The heads' options as a model spec, a training config and every command's flags spell them, each
 * declared once beside its head (zod: type, default, description). ModelSpecShape spreads this shape;
 * vgl train, vgl eval and vgl index build build their flags from it.
 */
export const HEAD_OPTIONS = { ...NETVLAD_OPTIONS, ...POOLING_OPTIONS, ...GEM_OPTIONS, ...PROJECTION_OPTIONS };
export type HeadOptionValues = z.output<z.ZodObject<typeof HEAD_OPTIONS>>;
export const HEAD_OPTION_KEYS = Object.keys(HEAD_OPTIONS) as (keyof typeof HEAD_OPTIONS)[];

/** The head factories' options of spec values (the spec's names → the heads' own). */
export function headOptionsOf(v: Partial<HeadOptionValues>): HeadOptions {
  return { clusters: v.netvladClusters, fcDim: v.fcOutputDim, l2: v.l2, gemP: v.gemP, gemPTrainable: v.gemPTrainable };
}

/** What the trainer must know of a head beyond building it: the hooks of its registry entry. */
export interface HeadTraining {
  /** Its display name in messages. */
  label: string;
  /** A run of it starts from a trained checkpoint of this head (--resume), as the reference requires. */
  startsFrom?: { head: BaseHeadName; label: string };
  /** Its own layers (parameter names within the head): absent from a `startsFrom` checkpoint, they start fresh. */
  isOwnLayer?: (name: string) => boolean;
  /** Learning-rate options (training config keys): its own layers at `ownLayers`, the rest of the network at `rest`. */
  learningRates?: { ownLayers: string; rest: string };
}

/** The heads with training hooks (CRN: Kim et al. 2017, trained from a NetVLAD at two learning rates). */
export const HEAD_TRAINING: Partial<Record<BaseHeadName, HeadTraining>> = {
  crn: {
    label: 'CRN', startsFrom: { head: 'netvlad', label: 'NetVLAD' }, isOwnLayer: isCrnParameterName,
    learningRates: { ownLayers: 'lrCrnLayer', rest: 'lrCrnNet' },
  },
};

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
  /** attention+*: CBAM's channel-MLP reduction ratio (16) and spatial kernel (7); soa+*: channel reduction k (2). */
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
  cls: (c, o) => new ClsToken(c, poolingNorms(o.l2)),
};

function withProjection(head: AggregationHead, o: HeadOptions): AggregationHead {
  return o.fcDim === undefined ? head : new ProjectedHead(head, o.fcDim);
}

const BLOCKS: Record<AttentionBlockName, (c: number, o: HeadOptions) => AttentionBlock> = {
  attention: (c, o) => new CBAM(c, { reduction: o.attentionReduction, spatialKernel: o.attentionKernel }),
  nonlocal: (c) => new NonLocalBlock(c),
  soa: (c, o) => new SecondOrderAttention(c, { reduction: o.attentionReduction ?? 2 }),
};

/** The head of a name: `<head>`, or `<block>+<head>` (the block in front), with the learned whitening if asked. */
function headFactory(name: AggregationName): (c: number, o: HeadOptions) => AggregationHead {
  const { block, head } = parseAggregationName(name);
  return (c, o) => withProjection(block ? new AttentionHead(BLOCKS[block](c, o), BASE[head](c, o)) : BASE[head](c, o), o);
}

export const HEADS = Object.fromEntries(AGGREGATION_NAMES.map((n) => [n, headFactory(n)])) as
  Record<AggregationName, (inChannels: number, options: HeadOptions) => AggregationHead>;

/** Heads that describe an image by the backbone's global token, so a transformer must output it. */
export function takesGlobalToken(name: AggregationName): boolean {
  return parseAggregationName(name).head === 'cls';
}

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
 * The head's trainable parameters split for the optimizer: its own layers (HEAD_TRAINING's isOwnLayer;
 * CRN's, which the reference trains at a 10x higher learning rate, 5e-3 vs 5e-4) and the rest.
 * `own` is empty for heads without own layers.
 */
export function splitOwnLayerParameters(name: BaseHeadName, head: AggregationHead): { own: Tensor[]; rest: Tensor[] } {
  const isOwn = HEAD_TRAINING[name]?.isOwnLayer ?? (() => false);
  const own: Tensor[] = [];
  const rest: Tensor[] = [];
  for (const [n, p] of head.namedParameters()) {
    if (!p.requiresGrad) continue;
    (isOwn(n) ? own : rest).push(p);
  }
  return { own, rest };
}
