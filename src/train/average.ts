// --average-weights: the run's model is the mean of its end-of-epoch weights (average.pth).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../torch/index.ts';
import { saveCheckpoint, loadCheckpoint } from '../torch/checkpoint.ts';
import type { GeoLocalizationNet } from '../models/network.ts';
import { buildModel, RUN_FILES } from '../models/assemble.ts';
import type { Recalls } from '../eval/recall.ts';
import type { ProcessGroup } from '../torch/distributed.ts';
import { flattenConfig, type TrainConfig } from './config.ts';
import { agreeWithRank0, broadcastWeights } from './distributed.ts';

/** What averaging needs of the run after an epoch's validation. */
export interface AverageContext {
  net: GeoLocalizationNet;
  config: TrainConfig;
  /** The epoch just validated. */
  epoch: number;
  device: torch.Device;
  /** Recall on val, as the run validates. */
  validate: (net: GeoLocalizationNet) => Promise<Recalls>;
  record: (entry: { event: 'average'; epoch: number; epochs: number; recalls: Recalls }) => Promise<void>;
  log: (s: string) => void;
  /** Data-parallel: rank 0 keeps average.pth and broadcasts the average; `validate` runs on every rank. */
  group?: ProcessGroup | null;
}

/** Where a run keeps the average of its end-of-epoch weights (--average-weights). */
export const averagePathOf = (outputFolder: string) => join(outputFolder, RUN_FILES.average);

/**
 * Weight averaging over epochs (SWA, Izmailov et al. 2018, with a uniform average of the end-of-epoch
 * weights): average.pth = mean of the weights after each epoch so far. Idempotent per epoch (its metadata says through
 * which epoch), so a run killed between this write and last.pth resumes without counting an epoch twice.
 * BatchNorm statistics are averaged too (frozen ones stay as they are).
 */
export async function updateAverage(c: AverageContext): Promise<void> {
  const { net, config, epoch } = c;
  const group = c.group ?? null;
  const main = (group?.rank ?? 0) === 0;
  const path = averagePathOf(config.run.outputFolder);
  // Rank 0's file decides (another machine may not see it); the others receive the average.
  const previous = main && existsSync(path) ? await loadCheckpoint<{ throughEpoch: number; epochs: number }>(path) : null;
  const done = previous !== null && previous.meta.throughEpoch >= epoch;
  if (group ? agreeWithRank0(group, done) : done) return;
  const n = previous?.meta.epochs ?? 0;
  const average = buildModel(config.model);
  try {
    const mean = new Map<string, torch.HostTensor>();
    for (const [name, t] of net.stateDict()) {
      const now = t.toHost();
      const before = previous?.stateDict.get(name);
      if (!before || !now.dtype.startsWith('float')) {
        mean.set(name, now);
        continue;
      }
      const a = before.data as Float32Array, b = now.data as Float32Array;
      mean.set(name, { ...now, data: Float32Array.from(b, (x, i) => (a[i] * n + x) / (n + 1)) });
    }
    torch.loadStateDict(average, mean, { source: path });
    if (c.device !== 'cpu') average.to(c.device);
    if (group) broadcastWeights(group, average);
    const recalls = await c.validate(average);
    if (main) await saveCheckpoint(path, average, null, { throughEpoch: epoch, epochs: n + 1, recalls, config: flattenConfig(config) });
    await c.record({ event: 'average', epoch, epochs: n + 1, recalls });
    c.log(`average of ${n + 1} epochs: val ${Object.entries(recalls).map(([k, r]) => `R@${k} ${r.toFixed(1)}`).join(', ')}`);
  } finally {
    average.dispose();
  }
}
