// Shared by the service tests: a tiny street dataset on disk and a run folder (config.json + best.pth)
// of a narrow, randomly initialised ResNet-18 conv4 + GeM that describes it at 32x32.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { formatDatasetFilename } from '../../src/data/filename.ts';
import { tinyDataset, untrainedRunFolder, writeImage, type TinyImage } from '../eval/helpers.ts';
import { tempDir } from '../helpers/tmp.ts';

/** Two-coloured images (left/right halves) so a random network tells them apart. */
const colour = (i: number, a: number, b: number, c: number): [number, number, number] => [(a * i + 17) % 256, (b * i + 90) % 256, (c * i + 200) % 256];

/** Database every 10 m along a street (east), queries near some of them. */
export const DATABASE: TinyImage[] = Array.from({ length: 12 }, (_, i) => ({
  east: 500_000 + 10 * i, north: 4_000_000 + (i % 3), rgb: colour(i, 37, 91, 53), right: colour(i, 113, 29, 71),
}));
/** Queries 3 m east and 4 m north of a database image; the last two look like images 90-100 m away (failures). */
export const QUERIES: TinyImage[] = [[0, 0], [3, 3], [5, 5], [8, 8], [11, 2], [6, 10]].map(([at, looksLike]) => ({
  east: 500_000 + 10 * at + 3, north: 4_000_000 + 4, rgb: colour(looksLike, 37, 91, 53), right: colour(looksLike, 113, 29, 71),
}));

export interface TinyRun {
  /** Datasets root holding `tiny/images/test/{database,queries}`. */
  root: string;
  runDir: string;
}

export async function tinyRun(): Promise<TinyRun> {
  const root = await tinyDataset(DATABASE, QUERIES);
  const runDir = tempDir('vgl-serve-run-');
  await untrainedRunFolder(root, runDir, 11);
  return { root, runDir };
}

/** Writes images with datasets_vg names into a new folder; returns the folder and the paths. */
export async function imageFolder(images: readonly TinyImage[]): Promise<{ dir: string; paths: string[] }> {
  const dir = tempDir('vgl-serve-images-');
  await mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (const img of images) {
    const p = join(dir, formatDatasetFilename({ east: img.east, north: img.north, extension: '.png' }));
    await writeImage(p, img);
    paths.push(p);
  }
  return { dir, paths };
}

/** The path of database image i of the tiny dataset (as openDataset lists it: sorted names). */
export function databasePath(root: string, img: TinyImage): string {
  return join(root, 'tiny', 'images', 'test', 'database', formatDatasetFilename({ east: img.east, north: img.north, extension: '.png' }));
}
