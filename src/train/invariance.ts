// The camera-invariance term (docs/real-places.md): the network learns to give a photo under camera
// changes (grey, gamma, blur, noise, brightness, contrast) what its frozen starting point gives the
// clean photo. One loss term of a step, beside or instead of the tuple loss.
import * as torch from '../torch/index.ts';
import type { Tensor } from '../torch/index.ts';
import type { GeoDataset } from '../data/dataset.ts';
import { loadImage, imageSize, type Float32HostTensor, type ImageSize } from '../data/image.ts';
import { loadAugmentedImage } from '../data/augment.ts';
import { loadBatches } from '../data/loader.ts';
import { Rng, deriveSeed } from '../data/random.ts';
import type { GeoLocalizationNet } from '../models/network.ts';
import { buildModel, initialiseHeadFromData } from '../models/assemble.ts';
import type { imageNormalization } from '../eval/extract.ts';
import { featureInvarianceLoss } from './losses.ts';
import { initOptions } from './start.ts';
import type { TrainConfig } from './config.ts';
import type { ProcessGroup } from '../torch/distributed.ts';

export interface InvarianceTeacher {
  teacher: GeoLocalizationNet;
  /**
   * One step's images, [clean; augmented], drawn and augmented with this seed; with `shard` [lo, hi),
   * only images lo..hi-1 of the step's (data-parallel: this rank's share), each as the whole step would have it.
   */
  views(seed: number, shard?: readonly [number, number]): Promise<Float32HostTensor>;
}

/**
 * The invariance term of one step on its views [clean; augmented]: the student's feature maps (or
 * descriptors, with --invariance-on descriptors) of the augmented half against the frozen teacher's of
 * the clean half. `forward` runs a pass in the run's precision.
 */
export function invarianceTerm(teacher: GeoLocalizationNet, student: GeoLocalizationNet, views: Tensor, on: TrainConfig['loss']['invarianceOn'],
  forward: <T>(fn: () => T) => T, group: ProcessGroup | null = null): Tensor {
  const b = views.size(0) / 2;
  const describe = (m: GeoLocalizationNet, x: Tensor) => forward(() => (on === 'descriptors' ? m.forward(x) : m.features(x)));
  const target = torch.noGrad(() => describe(teacher, views.narrow(0, 0, b)));
  const seen = describe(student, views.narrow(0, b, b));
  if (group === null) return featureInvarianceLoss(seen, target);
  // Data-parallel: this rank's part, normalised by the teacher's energy over every rank's images.
  const [energy, elements] = torch.tidy(() => {
    const whole = torch.tensor([target.to('float64').pow(2).sum().item(), target.numel], [2], { dtype: 'float64' });
    group.allReduceSum([whole]);
    return Array.from(whole.toHost().data as Float64Array);
  });
  return featureInvarianceLoss(seen, target, { energy, elements });
}

/**
 * The camera-invariance term's frozen teacher (the starting network) and its images: every training
 * image, database and queries, drawn equally from each training dataset. views() loads a step's
 * images twice, [clean; augmented], as one [2B, 3, H, W] batch.
 */
export async function invarianceTeacher(config: TrainConfig, ds: GeoDataset, device: torch.Device, size: ImageSize,
  normalization: ReturnType<typeof imageNormalization>, start: GeoLocalizationNet | null): Promise<InvarianceTeacher> {
  // The student as the run started: copied when it is at its start, else rebuilt as it was built
  // (same seed, same weights), so a resumed run gets the same teacher. Steps reseed torch themselves,
  // so reseeding here changes nothing after.
  torch.manualSeed(config.run.seed);
  const teacher = buildModel(config.model);
  if (device !== 'cpu') teacher.to(device);
  if (start) {
    torch.loadStateDict(teacher, start.stateDict(), { source: 'the student at the start of the run' });
  } else {
    if (config.model.weights) await teacher.loadPretrained(config.model.weights);
    // Compared on descriptors, the teacher needs the head the student started with (k-means, same seed).
    if (config.loss.invarianceOn === 'descriptors' && config.run.resume === undefined) await initialiseHeadFromData(teacher, ds, initOptions(config, () => {}, device));
  }
  teacher.freezeBackbone('all');
  teacher.eval();
  teacher.toChannelsLast();
  const parts = ds.parts ?? [{ database: [0, ds.databasePaths.length] as const, queries: [0, ds.queriesPaths.length] as const }];
  const all = [...ds.databasePaths, ...ds.queriesPaths];
  const groups = parts.map(({ database: [d0, d1], queries: [q0, q1] }) => [
    ...Array.from({ length: d1 - d0 }, (_, i) => d0 + i),
    ...Array.from({ length: q1 - q0 }, (_, i) => ds.databasePaths.length + q0 + i),
  ]);
  return {
    teacher,
    async views(seed: number, shard?: readonly [number, number]): Promise<Float32HostTensor> {
      const rng = new Rng(seed);
      // Each group in turn, so a batch smaller than the number of datasets still varies across them.
      const offset = rng.int(0, groups.length);
      const paths = Array.from({ length: config.loss.invarianceBatch }, (_, i) => {
        const g = groups[(i + offset) % groups.length]!;
        return all[g[rng.int(0, g.length)]!]!;
      });
      // One size per step (a batch is one tensor); drawn after the images so that without sizes the
      // draws are those of a single-size run.
      const sizes = config.loss.invarianceSizes;
      const drawn = sizes.length > 0 ? sizes[rng.int(0, sizes.length)]! : null;
      const at: ImageSize = drawn ? imageSize(drawn) : size;
      // Image j of the step: clean as itself, augmented with the seed of its place j + B in the whole step.
      const [lo, hi] = shard ?? [0, paths.length];
      const mine = paths.slice(lo, hi);
      const transform = (p: string, i: number) => (i < mine.length
        ? loadImage(p, { size: at, normalization })
        : loadAugmentedImage(p, deriveSeed(seed, paths.length + lo + i - mine.length), { size: at, normalization, augment: config.data.augment }));
      for await (const batch of loadBatches([...mine, ...mine], transform, { batchSize: 2 * mine.length })) return batch.images;
      throw new Error('invariance views: no batch loaded');
    },
  };
}
