// Training losses over (query, positive, negatives) descriptor tuples: pure functions of tensors that
// return a scalar with autograd. Descriptors are usually unit vectors (NetVLAD, GeM with --l2 after_pool), but need not be.
//
// Shapes: query [B, D], positive [B, D], negatives [B, K, D] (B queries, K negatives each).
//
// Normalisation (`reduction`):
//   'per-triplet'  sum over the B·K (query, negative) terms / (B·K). What the geo-localization
//                  benchmark does for every criterion (`loss /= batch_size * negs_num_per_query`);
//                  for the triplet loss it equals nn.TripletMarginLoss(reduction='sum') summed over the
//                  batch and divided by B·K.
//   'per-query'    the per-query loss (summed over its K negatives for triplet and SARE-ind, the one
//                  joint term for SARE-joint) averaged over the B queries.
//   'none'         the per-query losses, shape [B].
// Default for every criterion: 'per-triplet', the benchmark's, so one lr means the same training
// whatever the loss. 'per-query' is the SARE paper's form (mean over the batch), K times larger.
//
// Precision: the losses compute in fp32 at least (computeLoss and featureInvarianceLoss widen bf16 inputs
// and turn autocast off), as PyTorch's autocast keeps losses in fp32: under --precision bf16 the feature
// maps arrive in bf16.
import { z } from 'zod';
import { Tensor, tidy, cat, zeros, inFloat32, atLeastFloat32, type Device } from '../torch/index.ts';
import { mergeOptions, namesOf, optionsFor, type Component, type OptionShape } from '../util/components.ts';

export type LossName = 'triplet' | 'sare_ind' | 'sare_joint' | 'solar';
export const LOSS_NAMES: readonly LossName[] = ['triplet', 'sare_ind', 'sare_joint', 'solar'];

export type LossReduction = 'per-triplet' | 'per-query' | 'none';

export interface TripletLossOptions {
  /** Hinge margin; default 0.1 (benchmark). Nanne's NetVLAD uses √0.1. */
  margin?: number;
  /** Added to every difference before the norm, as torch's pairwise_distance does; default 1e-6. */
  eps?: number;
  /** Default 'per-triplet'. */
  reduction?: LossReduction;
}

export interface SareLossOptions {
  /** Default 'per-triplet' (the benchmark's). */
  reduction?: LossReduction;
}

export interface SolarLossOptions extends TripletLossOptions {
  /** λ, the weight of the second-order term; default 5 (SOLAR's training default). */
  sosWeight?: number;
}

export type LossOptions = SolarLossOptions & SareLossOptions;

export const DEFAULT_TRIPLET_MARGIN = 0.1;
export const DEFAULT_SOS_WEIGHT = 5;
export const PAIRWISE_DISTANCE_EPS = 1e-6;

interface TupleShape {
  batch: number;
  negatives: number;
  dim: number;
}

/** Checks query [B, D], positive [B, D], negatives [B, K, D] and returns B, K, D. */
export function checkTupleShapes(query: Tensor, positive: Tensor, negatives: Tensor): TupleShape {
  const q = query.shape, p = positive.shape, n = negatives.shape;
  const fmt = (s: number[]): string => `[${s.join(', ')}]`;
  if (q.length !== 2) throw new Error(`loss: query descriptors must be [B, D], got ${fmt(q)}`);
  const [batch, dim] = q;
  if (p.length !== 2 || p[0] !== batch || p[1] !== dim) {
    throw new Error(`loss: positive descriptors must be [B, D] = ${fmt(q)} like the queries, got ${fmt(p)}`);
  }
  if (n.length !== 3 || n[0] !== batch || n[2] !== dim) {
    throw new Error(`loss: negative descriptors must be [B, K, D] = [${batch}, K, ${dim}], got ${fmt(n)}`);
  }
  if (batch === 0 || n[1] === 0) throw new Error(`loss: need at least one query and one negative, got B=${batch}, K=${n[1]}`);
  return { batch, negatives: n[1], dim };
}

/** Reduces per-pair terms [B, K] (sumOverNegatives) or per-query terms [B] as `reduction` says. */
function reduce(perQuery: Tensor, reduction: LossReduction, shape: TupleShape): Tensor {
  switch (reduction) {
    case 'none': return perQuery;
    case 'per-query': return perQuery.mean();
    case 'per-triplet': return perQuery.sum().div(shape.batch * shape.negatives);
  }
}

function checkReduction(r: string): LossReduction {
  if (r !== 'per-triplet' && r !== 'per-query' && r !== 'none') {
    throw new Error(`loss: reduction must be 'per-triplet', 'per-query' or 'none', got '${r}'`);
  }
  return r;
}

/**
 * Triplet margin loss Σ_b Σ_k max(0, ‖q_b − p_b‖ − ‖q_b − n_bk‖ + margin) with plain L2 distances
 * computed as torch does (‖x − y + eps‖), so values match nn.TripletMarginLoss.
 */
export function tripletLoss(query: Tensor, positive: Tensor, negatives: Tensor, options: TripletLossOptions = {}): Tensor {
  const shape = checkTupleShapes(query, positive, negatives);
  const margin = options.margin ?? DEFAULT_TRIPLET_MARGIN;
  const eps = options.eps ?? PAIRWISE_DISTANCE_EPS;
  if (!Number.isFinite(margin)) throw new Error(`tripletLoss: margin must be a finite number, got ${margin}`);
  const reduction = checkReduction(options.reduction ?? 'per-triplet');
  return tidy(() => {
    const dPos = query.sub(positive).add(eps).norm(2, -1); // [B]
    const dNeg = query.unsqueeze(1).sub(negatives).add(eps).norm(2, -1); // [B, K]
    const hinge = dPos.unsqueeze(1).sub(dNeg).add(margin).clampMin(0); // [B, K]
    return reduce(hinge.sum(1), reduction, shape);
  });
}

/** d_p − d_nk with d the squared L2 distance: [B, K]. */
function squaredDistanceGaps(query: Tensor, positive: Tensor, negatives: Tensor): Tensor {
  const dPos = query.sub(positive).pow(2).sum(-1); // [B]
  const dNeg = query.unsqueeze(1).sub(negatives).pow(2).sum(-1); // [B, K]
  return dPos.unsqueeze(1).sub(dNeg);
}

/** SARE-ind (Liu et al. 2019): Σ_k log(1 + exp(d_p − d_nk)) per query, via softplus (stable). */
export function sareIndLoss(query: Tensor, positive: Tensor, negatives: Tensor, options: SareLossOptions = {}): Tensor {
  const shape = checkTupleShapes(query, positive, negatives);
  const reduction = checkReduction(options.reduction ?? 'per-triplet');
  return tidy(() => reduce(squaredDistanceGaps(query, positive, negatives).softplus().sum(1), reduction, shape));
}

/** SARE-joint: log(1 + Σ_k exp(d_p − d_nk)) per query, as logsumexp over [0, gaps] (stable). */
export function sareJointLoss(query: Tensor, positive: Tensor, negatives: Tensor, options: SareLossOptions = {}): Tensor {
  const shape = checkTupleShapes(query, positive, negatives);
  const reduction = checkReduction(options.reduction ?? 'per-triplet');
  return tidy(() => {
    const gaps = squaredDistanceGaps(query, positive, negatives);
    const zero = zeros([shape.batch, 1], { dtype: gaps.dtype, device: gaps.device as Device });
    return reduce(cat([zero, gaps], 1).logsumexp(1), reduction, shape);
  });
}

/**
 * Second-order similarity (SOS; Tian et al. 2019, as SOLAR uses it, Ng et al. 2020) per query:
 * √(Σ_k (‖q − n_k‖² − ‖p − n_k‖²)²), [B]. It asks the query and its positive to stand at the same
 * distances from every negative: their neighbourhoods agree, not only their pair.
 */
export function secondOrderSimilarity(query: Tensor, positive: Tensor, negatives: Tensor): Tensor {
  checkTupleShapes(query, positive, negatives);
  return tidy(() => {
    const dQueryNeg = query.unsqueeze(1).sub(negatives).pow(2).sum(-1); // [B, K]
    const dPositiveNeg = positive.unsqueeze(1).sub(negatives).pow(2).sum(-1);
    // + 1e-12: sqrt's gradient at exactly 0 (identical neighbourhoods) would be infinite
    return dQueryNeg.sub(dPositiveNeg).pow(2).sum(1).add(1e-12).sqrt();
  });
}

/**
 * SOLAR's loss: per query, the triplet terms Σ_k max(0, ‖q − p‖ − ‖q − n_k‖ + margin) plus λ·SOS (one
 * term per tuple, as SOLAR sums them over its tuples); reduced like every criterion here.
 */
export function solarLoss(query: Tensor, positive: Tensor, negatives: Tensor, options: SolarLossOptions = {}): Tensor {
  const shape = checkTupleShapes(query, positive, negatives);
  const weight = options.sosWeight ?? DEFAULT_SOS_WEIGHT;
  if (!Number.isFinite(weight) || weight < 0) throw new Error(`solarLoss: sosWeight must be a number >= 0, got ${weight}`);
  const reduction = checkReduction(options.reduction ?? 'per-triplet');
  return tidy(() => {
    const triplets = tripletLoss(query, positive, negatives, { ...options, reduction: 'none' }); // [B]
    return reduce(triplets.add(secondOrderSimilarity(query, positive, negatives).mul(weight)), reduction, shape);
  });
}

/**
 * Camera-invariance distillation: ‖student − teacher‖² / ‖teacher‖² over the feature maps (or the
 * descriptors) of the same images, the student seeing them augmented (noise, blur, exposure, grey)
 * and the frozen teacher (the starting network) seeing them clean. Scale-free, so one weight suits
 * every backbone and head.
 */
export function featureInvarianceLoss(student: Tensor, teacher: Tensor, whole?: { energy: number; elements: number }): Tensor {
  const s = student.shape, t = teacher.shape;
  if (s.length !== t.length || s.some((d, i) => d !== t[i])) {
    throw new Error(`featureInvarianceLoss: student [${s.join(', ')}] and teacher [${t.join(', ')}] feature maps differ in shape`);
  }
  return inFloat32(() => tidy(() => {
    const [st, te] = [atLeastFloat32(student), atLeastFloat32(teacher)];
    if (whole === undefined) return st.sub(te).pow(2).mean().div(te.pow(2).mean().clampMin(1e-12));
    // This rank's part of the batch's loss: its squared errors over the whole batch's teacher energy
    // (summed over the ranks first), so the ranks' parts add up to the loss of the whole batch.
    return st.sub(te).pow(2).sum().div(whole.elements).div(Math.max(whole.energy / whole.elements, 1e-12));
  }));
}

/** A tuple loss: descriptors of B (query, positive, K negatives) → a scalar (reduced as asked). */
export type TupleLoss = (query: Tensor, positive: Tensor, negatives: Tensor, reduction: LossReduction) => Tensor;

/** A loss's registry entry: its name as configs spell it (--criterion), its options, the loss they configure. */
export interface LossEntry<N extends string = string, O extends OptionShape = OptionShape> extends Component<N, O> {
  description: string;
  create(options: z.output<z.ZodObject<O>>): TupleLoss;
}
const defineLoss = <N extends string, O extends OptionShape>(e: LossEntry<N, O>): LossEntry<N, O> => e;

const MARGIN = { margin: z.number().positive().default(DEFAULT_TRIPLET_MARGIN).describe('triplet margin') };

/** The losses, one line each (names as --criterion spells them). */
export const LOSS_ENTRIES = [
  defineLoss({ name: 'triplet', description: 'triplet margin loss', options: MARGIN, create: (o) => (q, p, n, reduction) => tripletLoss(q, p, n, { margin: o.margin, reduction }) }),
  defineLoss({ name: 'sare-ind', description: 'SARE, one softmax per negative (Liu et al. 2019)', options: {}, create: () => (q, p, n, reduction) => sareIndLoss(q, p, n, { reduction }) }),
  defineLoss({ name: 'sare-joint', description: 'SARE, one softmax over all negatives', options: {}, create: () => (q, p, n, reduction) => sareJointLoss(q, p, n, { reduction }) }),
  defineLoss({
    name: 'solar', description: 'triplet + second-order similarity (SOLAR, Ng et al. 2020)',
    options: { ...MARGIN, sosWeight: z.number().min(0).default(DEFAULT_SOS_WEIGHT).describe("solar: weight λ of the second-order similarity term (SOLAR's default 5)") },
    create: (o) => (q, p, n, reduction) => solarLoss(q, p, n, { margin: o.margin, sosWeight: o.sosWeight, reduction }),
  }),
] as const;
export const CRITERIA = namesOf<(typeof LOSS_ENTRIES)[number]['name']>(LOSS_ENTRIES);
export type Criterion = (typeof CRITERIA)[number];

/** Every loss's options, each declared once beside its loss. */
export const LOSS_OPTIONS = mergeOptions(LOSS_ENTRIES, 'losses');

/** The loss a criterion and its options name, computing in fp32 whatever its inputs. */
export function tupleLoss(criterion: Criterion, options: Record<string, unknown>): (query: Tensor, positive: Tensor, negatives: Tensor, reduction?: LossReduction) => Tensor {
  const entry = LOSS_ENTRIES.find((e) => e.name === criterion) as LossEntry | undefined;
  if (!entry) throw new Error(`unknown loss '${criterion}'; expected one of ${CRITERIA.join(', ')}`);
  const loss = entry.create(optionsFor(entry, options));
  return (query, positive, negatives, reduction = 'per-triplet') => inFloat32(() => tidy(() => {
    const [q, p, n] = [query, positive, negatives].map(atLeastFloat32);
    return loss(q, p, n, reduction);
  }));
}

/** The loss named `name` (the reference's spelling, sare_ind), in fp32. Triplet options are ignored by the SARE losses, sosWeight by all but SOLAR. */
export function computeLoss(name: LossName, query: Tensor, positive: Tensor, negatives: Tensor, options: LossOptions = {}): Tensor {
  if (!LOSS_NAMES.includes(name)) throw new Error(`unknown loss '${name as string}'; expected one of ${LOSS_NAMES.join(', ')}`);
  const { reduction, ...rest } = options;
  return tupleLoss(name.replace('_', '-') as Criterion, rest)(query, positive, negatives, reduction);
}

/**
 * Splits the descriptors of a training batch laid out tuple by tuple — for each of B tuples the query,
 * its positive, then its K negatives: [B·(2+K), D] — into query [B, D], positive [B, D] and
 * negatives [B, K, D] (views; gradients flow back to `features`).
 */
export function splitTuples(features: Tensor, batch: number): { query: Tensor; positive: Tensor; negatives: Tensor } {
  const s = features.shape;
  if (s.length !== 2) throw new Error(`splitTuples: features must be [B·(2+K), D], got [${s.join(', ')}]`);
  if (!Number.isInteger(batch) || batch <= 0 || s[0] % batch !== 0 || s[0] / batch < 3) {
    throw new Error(`splitTuples: ${s[0]} rows do not split into ${batch} tuples of 1 query + 1 positive + K >= 1 negatives`);
  }
  const perTuple = s[0] / batch;
  return tidy(() => {
    const t = features.view(batch, perTuple, s[1]);
    return { query: t.select(1, 0), positive: t.select(1, 1), negatives: t.narrow(1, 2, perTuple - 2) };
  });
}
