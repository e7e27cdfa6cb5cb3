// A contact sheet a person can look at: query / database pairs of the test split side by side
// (each query next to the database image of its place whose heading is closest).

import sharp from 'sharp';
import type { SynthPlan } from './plan.ts';
import { renderView } from './render.ts';

export async function writePreview(plan: SynthPlan, file: string, pairs = 12, columns = 6): Promise<void> {
  const { width: W, height: H } = plan.params;
  // The last written split (test unless only train/val were asked for).
  const split = plan.params.splits[plan.params.splits.length - 1];
  const test = plan.images.filter((im) => im.view.split === split);
  const db = test.filter((im) => im.view.kind === 'database');
  const queries = test.filter((im) => im.view.kind === 'queries').slice(0, pairs);
  const tiles: Uint8Array[] = [];
  for (const q of queries) {
    const diff = (h: number) => Math.abs(((h - q.view.camera.heading + 540) % 360) - 180);
    const same = db.filter((d) => d.view.place === q.view.place);
    const match = same.reduce((a, b) => (diff(b.view.camera.heading) < diff(a.view.camera.heading) ? b : a));
    for (const im of [q, match]) tiles.push(renderView(plan.city, im.view.camera, im.view.conditions, im.view.occluders, W, H));
  }
  const rows = Math.ceil(tiles.length / columns);
  const sheet = Buffer.alloc(columns * W * rows * H * 3, 0);
  tiles.forEach((t, k) => {
    const c = k % columns, r = Math.floor(k / columns);
    for (let y = 0; y < H; y++) sheet.set(t.subarray(y * W * 3, (y + 1) * W * 3), ((r * H + y) * columns * W + c * W) * 3);
  });
  await sharp(sheet, { raw: { width: columns * W, height: rows * H, channels: 3 } }).png().toFile(file);
}
