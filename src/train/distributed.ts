// Data-parallel training over a torch.distributed process group, as PyTorch's DDP does it: every rank
// holds the same weights (broadcast from rank 0 at the start, checked by a checksum every epoch),
// takes its share of each step's tuples, and the gradients are summed over the ranks (each rank's
// loss weighted by its share of the batch) before the same optimizer step everywhere. The feature
// cache is sharded: each rank describes its slice of the loop's images, then all-gather.
import * as torch from '../torch/index.ts';
import type { Tensor } from '../torch/index.ts';
import type { ProcessGroup } from '../torch/distributed.ts';
import type { GeoLocalizationNet } from '../models/network.ts';
import { extractDescriptors } from '../eval/extract.ts';

/** The [lo, hi) slice of `n` items that `rank` of `size` takes: contiguous, sizes differing by at most one. */
export function shardOf(n: number, rank: number, size: number): [number, number] {
  const base = Math.floor(n / size);
  const extra = n % size;
  const lo = rank * base + Math.min(rank, extra);
  return [lo, lo + base + (rank < extra ? 1 : 0)];
}

/**
 * One collective over several float32 tensors: concatenated into one flat buffer, `collective` run on
 * it, the result copied back into each tensor (in place). One round trip instead of one per tensor.
 */
function throughFlatBuffer(tensors: readonly Tensor[], collective: (flat: Tensor) => void): void {
  if (tensors.length === 0) return;
  // Outside autograd: the tensors may be parameters, written in place.
  torch.noGrad(() => torch.tidy(() => {
    const flat = torch.cat(tensors.map((t) => t.reshape(-1)), 0).contiguous();
    collective(flat);
    let offset = 0;
    for (const t of tensors) {
      t.copy_(flat.narrow(0, offset, t.numel).reshape(...t.shape));
      offset += t.numel;
    }
  }));
}

/** Rank 0's answer to a yes/no question, on every rank (e.g. whether rank 0's best.pth exists). */
export function agreeWithRank0(group: ProcessGroup, answer: boolean): boolean {
  return torch.tidy(() => {
    const flag = torch.tensor([answer ? 1 : 0], [1]);
    group.broadcast([flag], 0);
    return flag.item() === 1;
  });
}

/** Rank 0's weights and buffers into every rank's network (in place): the float32 ones in one buffer, the others (step counts) each. */
export function broadcastWeights(group: ProcessGroup, net: GeoLocalizationNet): void {
  const tensors = [...net.stateDict().values()];
  throughFlatBuffer(tensors.filter((t) => t.dtype === 'float32'), (flat) => group.broadcast([flat], 0));
  group.broadcast(tensors.filter((t) => t.dtype !== 'float32'), 0);
}

/**
 * Rank 0's buffers (BatchNorm running statistics) into every rank's network, as DDP's
 * broadcast_buffers does: each rank's BatchNorm saw only its share of the batch.
 * The float buffers travel in one flat tensor (one collective); integer ones (step counts) agree already.
 */
export function broadcastBuffers(group: ProcessGroup, net: GeoLocalizationNet): void {
  const buffers = [...net.namedBuffers()].map(([, t]) => t).filter((t) => t.dtype === 'float32');
  throughFlatBuffer(buffers, (flat) => group.broadcast([flat], 0));
}

/**
 * Descriptors of `count` items described in shards: `describe(lo, hi)` gives this rank's
 * [(hi - lo) · rowsPerItem, D] rows; the result, on every rank, is all of them in order [count · rowsPerItem, D].
 */
export async function gatherShards(group: ProcessGroup, count: number, dim: number, describe: (lo: number, hi: number) => Promise<Tensor>, rowsPerItem = 1): Promise<Tensor> {
  const [lo, hi] = shardOf(count, group.rank, group.worldSize);
  const widest = Math.ceil(count / group.worldSize) * rowsPerItem;
  const mine = await describe(lo, hi);
  return torch.tidy(() => {
    // All-gather needs one shape: each shard padded to the widest, the padding cut after.
    const padded = mine.size(0) === widest ? mine : torch.cat([mine, torch.zeros([widest - mine.size(0), dim])], 0);
    const parts = group.allGather(padded.contiguous());
    const rows = parts.map((p, r) => {
      const [a, b] = shardOf(count, r, group.worldSize);
      return p.narrow(0, 0, (b - a) * rowsPerItem);
    });
    mine.dispose();
    return torch.cat(rows, 0);
  });
}

/**
 * An extractor (evaluate's `extract`) that describes its images in shards, one per rank, and gathers
 * them: the cache, validation and the final test in data-parallel training, in every test method
 * (five crops kept apart are five rows per image).
 */
export function shardedExtractor(group: ProcessGroup): typeof extractDescriptors {
  return (model, paths, options = {}) => {
    const rows = options.mode === 'five_crops' && options.meanOfCrops !== true ? 5 : 1;
    return gatherShards(group, paths.length, model.dim, (lo, hi) => extractDescriptors(model, paths.slice(lo, hi), options), rows);
  };
}

/**
 * After backward: every trainable parameter's gradient summed over the ranks (one flat buffer, one
 * all-reduce), with the step's loss and its terms' values alongside; returns them summed over the
 * ranks (each rank computed its part of each term, so these are the batch's). A parameter without a
 * gradient, or a term a rank had no part of, counts as zeros. `names` lists every term of the step,
 * the same on every rank.
 */
export function allReduceGradients(group: ProcessGroup, params: readonly Tensor[], loss: Tensor, terms: Record<string, number>, names: readonly string[]): { loss: number; terms: Record<string, number> } {
  return torch.tidy(() => {
    const grads = params.map((p) => p.grad ?? torch.zeros(p.shape));
    const total = loss.detach().reshape(1).to('float32').clone();
    const parts = torch.tensor(names.map((n) => terms[n] ?? 0), [names.length]);
    const present = torch.tensor(names.map((n) => (n in terms ? 1 : 0)), [names.length]);
    throughFlatBuffer([...grads, total, parts, present], (flat) => group.allReduceSum([flat]));
    params.forEach((p, i) => {
      p.grad = grads[i];
    });
    const [sums, seen] = [parts.toFloat32Array(), present.toFloat32Array()];
    const summed: Record<string, number> = {};
    names.forEach((n, i) => {
      if (seen[i] > 0) summed[n] = sums[i];
    });
    return { loss: total.item(), terms: summed };
  });
}

/** Fails when the ranks' weights differ (a sum of every parameter and buffer in float64, compared across ranks). */
export function checkSameWeights(group: ProcessGroup, net: GeoLocalizationNet, epoch: number): void {
  const sums = torch.tidy(() => {
    let s = 0;
    for (const [, t] of net.stateDict()) if (t.dtype.startsWith('float')) s += t.to('float64').sum().item();
    return group.allGather(torch.tensor([s], [1], { dtype: 'float64' })).map((t) => t.item());
  });
  if (sums.some((s) => s !== sums[0])) {
    throw new Error(`data-parallel training: the ranks' weights differ after epoch ${epoch} (checksums ${sums.join(', ')}); a rank computed something else`);
  }
}
