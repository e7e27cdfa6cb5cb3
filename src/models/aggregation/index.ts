// The registry of aggregation heads and of the blocks that go in front of them: the trainer, the
// evaluator and the CLI pick a head by name here and never need to know the heads themselves. A head
// is one file with its entry (entry.ts: name, options, create, training hooks) and one line below.
import type { z } from 'zod';
import type { AggregationHead } from '../types.ts';
import type { Tensor } from '../../torch/index.ts';
import { mergeOptions, namesOf, optionsFor } from '../../util/components.ts';
import type { HeadEntry, BlockEntry, HeadTraining } from './entry.ts';
import { gemHead } from './gem.ts';
import { netvladHead } from './netvlad.ts';
import { crnHead } from './crn.ts';
import { macHead, spocHead, avgHead, rmacHead } from './pooling.ts';
import { clsHead } from './cls.ts';
import { AttentionHead, cbamBlock } from './attention.ts';
import { nonLocalBlock, soaBlock } from './non-local.ts';
import { ProjectedHead, PROJECTION_OPTIONS } from './projection.ts';

export { GeM, type GeMOptions } from './gem.ts';
export { NetVLAD, assignmentSharpness, type NetVLADOptions } from './netvlad.ts';
export { CRN, CRNModule, isCrnParameterName } from './crn.ts';
export { MAC, SPoC, RMAC, L2_PLACEMENTS, poolingNorms, type RMACOptions, type L2Placement, type PoolingNorms } from './pooling.ts';
export { CBAM, ChannelAttention, SpatialAttention, AttentionHead, type CBAMOptions, type AttentionBlock } from './attention.ts';
export { NonLocalBlock, SecondOrderAttention } from './non-local.ts';
export { ProjectedHead } from './projection.ts';
export { ClsToken } from './cls.ts';
export { defineHead, defineBlock, type HeadEntry, type BlockEntry, type HeadTraining } from './entry.ts';

/** The heads, one line each. */
export const HEAD_ENTRIES = [gemHead, netvladHead, crnHead, macHead, spocHead, avgHead, rmacHead, clsHead] as const;
/**
 * Blocks in front of a head, `<block>+<head>`: attention = CBAM (the name checkpoints have carried),
 * nonlocal = the non-local block, soa = SOLAR's second-order attention.
 */
export const BLOCK_ENTRIES = [cbamBlock, nonLocalBlock, soaBlock] as const;

export const BASE_HEADS = namesOf<(typeof HEAD_ENTRIES)[number]['name']>(HEAD_ENTRIES);
export type BaseHeadName = (typeof BASE_HEADS)[number];
export const ATTENTION_BLOCKS = namesOf<(typeof BLOCK_ENTRIES)[number]['name']>(BLOCK_ENTRIES);
export type AttentionBlockName = (typeof ATTENTION_BLOCKS)[number];
export type AggregationName = BaseHeadName | `${AttentionBlockName}+${BaseHeadName}`;
export const AGGREGATION_NAMES: readonly AggregationName[] = [
  ...BASE_HEADS, ...ATTENTION_BLOCKS.flatMap((block) => BASE_HEADS.map((head) => `${block}+${head}` as const)),
];

const PROJECTION = { name: 'learned whitening', options: PROJECTION_OPTIONS };

/**
 * Every option of every head and block, and the learned whitening after any head, as a model spec, a
 * training config and every command's flags spell them (ModelSpecShape spreads this shape). Each is
 * declared once, beside its head; each head reads its own and ignores the others.
 */
export const HEAD_OPTIONS = mergeOptions([...HEAD_ENTRIES, ...BLOCK_ENTRIES, PROJECTION], 'aggregation heads');
export type HeadOptionValues = z.output<z.ZodObject<typeof HEAD_OPTIONS>>;
export const HEAD_OPTION_KEYS = Object.keys(HEAD_OPTIONS) as Extract<keyof typeof HEAD_OPTIONS, string>[];

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

/** The registry entry of a head. */
export const headEntry = (name: BaseHeadName): HeadEntry => HEAD_ENTRIES.find((e) => e.name === name)! as HeadEntry;
const blockEntry = (name: AttentionBlockName): BlockEntry => BLOCK_ENTRIES.find((e) => e.name === name)! as BlockEntry;

/** The heads with training hooks (CRN: Kim et al. 2017, trained from a NetVLAD at two learning rates), by name. */
export const HEAD_TRAINING: Partial<Record<BaseHeadName, HeadTraining & { label: string }>> = Object.fromEntries(
  HEAD_ENTRIES.flatMap((e) => ('training' in e && e.training ? [[e.name, { label: e.label, ...e.training }]] : [])));

/** The head of a name: `<head>`, or `<block>+<head>` (the block in front), with the learned whitening when fcOutputDim is set. */
function createHead(name: AggregationName, inChannels: number, options: Partial<HeadOptionValues>): AggregationHead {
  const { block, head } = parseAggregationName(name);
  const entry = headEntry(head);
  const inner = entry.create(inChannels, optionsFor(entry, options));
  const blocked = block === undefined ? inner : new AttentionHead(blockEntry(block).create(inChannels, optionsFor(blockEntry(block), options)), inner);
  const { fcOutputDim } = optionsFor(PROJECTION, options);
  return fcOutputDim === undefined ? blocked : new ProjectedHead(blocked, fcOutputDim);
}

/** Head factories by name; options as specs spell them (HEAD_OPTIONS), each head's defaults where absent. */
export const HEADS = Object.fromEntries(AGGREGATION_NAMES.map((n) => [n, (c: number, o: Partial<HeadOptionValues> = {}) => createHead(n, c, o)])) as
  Record<AggregationName, (inChannels: number, options?: Partial<HeadOptionValues>) => AggregationHead>;

/** Heads that describe an image by the backbone's global token, so a transformer must output it. */
export function takesGlobalToken(name: AggregationName): boolean {
  return headEntry(parseAggregationName(name).head).takesGlobalToken === true;
}

export function isAggregationName(name: string): name is AggregationName {
  return (AGGREGATION_NAMES as readonly string[]).includes(name);
}

/** HEADS[name] with a clear error for an unknown name. */
export function buildHead(name: string, inChannels: number, options: Partial<HeadOptionValues> = {}): AggregationHead {
  if (!isAggregationName(name)) {
    throw new Error(`unknown aggregation "${name}"; choose one of: ${AGGREGATION_NAMES.join(', ')}`);
  }
  return HEADS[name](inChannels, options);
}

/**
 * The head's trainable parameters split for the optimizer: its own layers (its training hook's
 * isOwnLayer; CRN's, which the reference trains at a 10x higher learning rate, 5e-3 vs 5e-4) and the
 * rest. `own` is empty for heads without own layers.
 */
export function splitOwnLayerParameters(name: BaseHeadName, head: AggregationHead): { own: Tensor[]; rest: Tensor[] } {
  const isOwn = headEntry(name).training?.isOwnLayer ?? (() => false);
  const own: Tensor[] = [];
  const rest: Tensor[] = [];
  for (const [n, p] of head.namedParameters()) {
    if (!p.requiresGrad) continue;
    (isOwn(n) ? own : rest).push(p);
  }
  return { own, rest };
}
