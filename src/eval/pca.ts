// PCA at evaluation time (DESIGN.md §4): fitted on database descriptors after training, then every
// descriptor the model produces is projected (optionally whitened) and L2-normalised before search.
import * as torch from '../torch/index.ts';
import type { Tensor } from '../torch/index.ts';
import { Pca } from '../models/pca.ts';
import type { ImageSize } from '../data/image.ts';
import { extractDescriptors, type DescriptorModel } from './extract.ts';

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
  if (o.dim >= model.dim) throw new Error(`--pca-dim ${o.dim}: must be below the descriptor dimension ${model.dim}`);
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
