// PCA at evaluation time: fitted on database descriptors after training, then every
// descriptor the model produces is projected (optionally whitened) and L2-normalised before search.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as torch from '../torch/index.ts';
import type { Tensor } from '../torch/index.ts';
import { Pca } from '../models/pca.ts';
import type { ImageSize } from '../data/image.ts';
import { extractDescriptors, type DescriptorModel } from './extract.ts';
import { Rng } from '../data/random.ts';
import { OptionError, OptionFileError } from '../errors.ts';

/** The reference's PCA sample: at most 2^14 images. */
export const PCA_MAX_IMAGES = 1 << 14;

/** The images (.jpg, also .png) under `folder` (recursively, sorted), a seeded sample of PCA_MAX_IMAGES when there are more. */
export async function pcaFolderImages(folder: string, seed = 0): Promise<string[]> {
  let entries: string[];
  try {
    entries = (await readdir(folder, { recursive: true })).map(String);
  } catch (e) {
    throw new OptionFileError('pcaDatasetFolder', (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (e as Error).message, folder);
  }
  const images = entries.filter((f) => /\.(jpe?g|png)$/i.test(f)).sort().map((f) => join(folder, f));
  if (images.length === 0) throw new OptionFileError('pcaDatasetFolder', 'no .jpg images under it', folder);
  if (images.length <= PCA_MAX_IMAGES) return images;
  return new Rng(seed).sample(images.length, PCA_MAX_IMAGES).sort((a, b) => a - b).map((i) => images[i]!);
}

export interface PcaFitOptions {
  dim: number;
  whiten?: boolean;
  size?: ImageSize;
  batchSize?: number;
  progress?: boolean;
  seed?: number;
  device?: torch.Device;
}

/** Extracts the descriptors of `databasePaths` with model and fits a PCA of `dim` components on them. */
export async function fitPca(model: DescriptorModel, databasePaths: readonly string[], o: PcaFitOptions): Promise<Pca> {
  if (o.dim >= model.dim) throw new OptionError('pcaDim', `must be below the descriptor dimension ${model.dim}`, o.dim);
  const descriptors = await extractDescriptors(model, databasePaths, { size: o.size, batchSize: o.batchSize, progress: o.progress, device: o.device, label: 'PCA database' });
  try {
    return Pca.fit(descriptors, { dim: o.dim, whiten: o.whiten, seed: o.seed });
  } finally {
    descriptors.dispose();
  }
}

/** The model followed by the PCA projection (unit descriptors of pca.outputDim dimensions). */
export function withPca(model: DescriptorModel, pca: Pca): DescriptorModel {
  return {
    forward: (images: Tensor) => torch.tidy(() => torch.noGrad(() => pca.transform(model.forward(images)))),
    dim: pca.outputDim,
    inputNormalization: model.inputNormalization,
    eval: () => model.eval(),
  };
}
