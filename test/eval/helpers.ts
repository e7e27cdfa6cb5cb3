// Shared by the eval tests: a trivial descriptor model, a tiny datasets_vg layout on disk and a run
// folder of an untrained narrow network.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import * as torch from '../../src/torch/index.ts';
import type { Tensor } from '../../src/torch/index.ts';
import { saveCheckpoint } from '../../src/torch/checkpoint.ts';
import { TrainConfigSchema, flattenConfig } from '../../src/train/config.ts';
import { buildModel } from '../../src/models/assemble.ts';
import type { DescriptorModel } from '../../src/eval/extract.ts';
import { formatDatasetFilename } from '../../src/data/filename.ts';
import { tempDir } from '../helpers/tmp.ts';

/** Average colour of the image, L2-normalised: descriptors [B, 3]. */
export class MeanColourModel implements DescriptorModel {
  readonly dim = 3;
  readonly inputNormalization = 'imagenet' as const;
  evalCalls = 0;
  forward(images: Tensor): Tensor {
    const m = images.mean([2, 3]);
    return m.div(m.norm(2, 1, true).clampMin(1e-12));
  }
  eval(): this {
    this.evalCalls++;
    return this;
  }
}

export interface TinyImage {
  east: number;
  north: number;
  /** Solid colour, or left/right halves of two colours (for crop tests). */
  rgb: [number, number, number];
  right?: [number, number, number];
  width?: number;
  height?: number;
}

/** Writes a solid (or two-halved) PNG. */
export async function writeImage(path: string, img: TinyImage): Promise<void> {
  const width = img.width ?? 64, height = img.height ?? 48;
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const c = img.right && x >= width / 2 ? img.right : img.rgb;
      data.set(c, (y * width + x) * 3);
    }
  }
  await sharp(data, { raw: { width, height, channels: 3 } }).png().toFile(path);
}

/** A temp `<root>/tiny/images/test/{database,queries}` with the given images; returns the root. */
export async function tinyDataset(database: TinyImage[], queries: TinyImage[]): Promise<string> {
  const root = tempDir('vgl-eval-');
  for (const [part, list] of [['database', database], ['queries', queries]] as const) {
    const dir = join(root, 'tiny', 'images', 'test', part);
    await mkdir(dir, { recursive: true });
    for (const img of list) await writeImage(join(dir, formatDatasetFilename({ east: img.east, north: img.north, extension: '.png' })), img);
  }
  return root;
}

/**
 * A run folder (config.json + best.pth) of a narrow, randomly initialised ResNet-18 conv4 + GeM that
 * describes the tiny dataset under `root` at 32x32: what vgl eval --run and vgl index build --run read.
 */
export async function untrainedRunFolder(root: string, runDir: string, seed: number, o: { averageSeed?: number } = {}): Promise<void> {
  const config = TrainConfigSchema.parse({
    datasetsFolder: root, datasetName: 'tiny', outputFolder: runDir, backbone: 'resnet18conv4', aggregation: 'gem', resnetWidths: [8, 8, 16, 16],
    resize: [32, 32], recallValues: [1, 2, 5], inferBatchSize: 4, averageWeights: o.averageSeed !== undefined,
  });
  const write = async (file: string, s: number, meta: Record<string, unknown>) => {
    torch.manualSeed(s);
    const net = buildModel(config.model);
    await saveCheckpoint(join(runDir, file), net, null, { ...meta, config: flattenConfig(config) });
    net.dispose();
  };
  await write('best.pth', seed, { epoch: 0, recalls: {} });
  // A run that averaged weights: average.pth, here another network so that the two tell apart.
  if (o.averageSeed !== undefined) await write('average.pth', o.averageSeed, { throughEpoch: 0, epochs: 1, recalls: {} });
  await writeFile(join(runDir, 'config.json'), JSON.stringify(flattenConfig(config), null, 2));
}
