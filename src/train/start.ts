// How a fresh run starts: its NetVLAD-style head initialised from its data, or its weights taken from
// another checkpoint (the reference's --resume). A run resumed from its own last.pth is resume.ts.
import { existsSync } from 'node:fs';
import * as torch from '../torch/index.ts';
import { loadCheckpoint } from '../torch/checkpoint.ts';
import type { GeoDataset } from '../data/dataset.ts';
import { imageSize } from '../data/image.ts';
import type { GeoLocalizationNet } from '../models/network.ts';
import { HEAD_TRAINING } from '../models/aggregation/index.ts';
import { initialiseHeadFromData, type InitialiseOptions } from '../models/assemble.ts';
import type { TrainConfig } from './config.ts';
import { OptionFileError } from '../errors.ts';

/** How training initialises a NetVLAD-style head from its data (k-means at the training size): untrained baselines use the same. */
export function initOptions(config: TrainConfig, log: (s: string) => void = () => {}, device: torch.Device = torch.defaultDevice()): InitialiseOptions {
  return { size: imageSize(config.data.resize), batchSize: config.eval.inferBatchSize, seed: config.run.seed, log, device };
}

/**
 * A fresh run starting from another checkpoint's weights (the reference's --resume). The backbone must
 * match key for key. The head loads too when it is the same head; a CRN run may start from a NetVLAD
 * checkpoint (its CRN layers start fresh); any other head starts as a fresh run's does (NetVLAD by
 * k-means on the loaded backbone's features): e.g. NetVLAD on a backbone fine-tuned with GeM.
 */
export async function startFrom(net: GeoLocalizationNet, config: TrainConfig, ds: GeoDataset, log: (s: string) => void, device: torch.Device): Promise<void> {
  const path = config.run.resume!;
  if (!existsSync(path)) throw new OptionFileError('resume', 'file not found', path);
  const ck = await loadCheckpoint(path);
  const part = (prefix: string) => new Map([...ck.stateDict].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  const backbone = torch.loadStateDict(net.backbone, part('backbone.'), { source: `--resume ${path} (backbone)` });
  const head = part('aggregation.');
  const own = net.aggregation.stateDict();
  const missing = [...own.keys()].filter((k) => !head.has(k));
  const sameHead = [...head].every(([k, v]) => own.has(k) && own.get(k)!.shape.join() === v.shape.join()) && missing.every(HEAD_TRAINING[config.model.aggregation]?.isOwnLayer ?? (() => false));
  if (sameHead) {
    const loaded = torch.loadStateDict(net.aggregation, head, { strict: false, source: path });
    log(`starting from ${path}: ${backbone.loaded.length + loaded.loaded.length} tensors loaded${missing.length > 0 ? `, ${missing.length} ${HEAD_TRAINING[config.model.aggregation]?.label ?? config.model.aggregation} tensors start fresh` : ''}`);
  } else {
    log(`starting from ${path}: ${backbone.loaded.length} backbone tensors loaded; its head is not a ${config.model.aggregation}, so the head starts fresh`);
    await initialiseHeadFromData(net, ds, initOptions(config, log, device));
  }
}
