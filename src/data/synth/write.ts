// Render one planned view and write it as a JPEG (shared by the worker threads and the in-thread path).

import { writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { City, Sprite } from './city.ts';
import { renderView, type Camera, type Conditions } from './render.ts';

export interface RenderJob {
  /** Absolute output path. */
  path: string;
  camera: Camera;
  conditions: Conditions;
  occluders: Sprite[];
}

export async function encodeJpeg(rgb: Uint8Array, width: number, height: number, quality: number): Promise<Buffer> {
  return sharp(rgb, { raw: { width, height, channels: 3 } }).jpeg({ quality }).toBuffer();
}

export async function writeJob(city: City, job: RenderJob, o: { width: number; height: number; quality: number }): Promise<void> {
  const rgb = renderView(city, job.camera, job.conditions, job.occluders, o.width, o.height);
  await writeFile(job.path, await encodeJpeg(rgb, o.width, o.height, o.quality));
}
