// `vgl synth`: render the synthetic city into the datasets_vg layout (the default dataset of the demo).
import type { Command } from 'commander';
import { z } from 'zod';
import { generateCity } from '../../data/synth/generate.ts';
import { SIZE_NAMES, type SizeName } from '../../data/synth/options.ts';
import { STYLE_NAMES, type StyleName } from '../../data/synth/styles.ts';
import { parseFlags } from '../flags.ts';

const NAME = /^[A-Za-z0-9._-]+$/;
/** A flag given as text that must be an integer in [lo, hi]. */
const intFlag = (lo: number, hi: number) => z.coerce.number().int(`must be an integer`).min(lo).max(hi);
const numFlag = (lo: number, hi: number) => z.coerce.number().min(lo).max(hi);
const triple = z.string().transform((s, ctx) => {
  const parts = s.split(',').map((x) => Number(x.trim()));
  if (parts.length !== 3 || parts.some((x) => !Number.isInteger(x) || x < 1)) {
    ctx.addIssue({ code: 'custom', message: `expected three positive integers "train,val,test", got "${s}"` });
    return z.NEVER;
  }
  return { train: parts[0]!, val: parts[1]!, test: parts[2]! };
});

const SynthFlags = z.object({
  out: z.string().min(1),
  name: z.string().regex(NAME, 'use only letters, digits, ".", "_" and "-"'),
  style: z.enum(STYLE_NAMES as [StyleName, ...StyleName[]]),
  size: z.enum(SIZE_NAMES as [SizeName, ...SizeName[]]),
  seed: intFlag(0, 2 ** 32 - 1),
  height: intFlag(16, 2048).optional(),
  width: intFlag(16, 2048).optional(),
  spacing: numFlag(1, 100).optional(),
  headings: intFlag(1, 36).optional(),
  rows: intFlag(1, 40).optional(),
  columns: triple.optional(),
  queries: triple.optional(),
  queryOffset: numFlag(0, 50).optional(),
  fov: numFlag(20, 150).optional(),
  quality: intFlag(1, 100).optional(),
  workers: intFlag(0, 64).optional(),
  splits: z.string().transform((s, ctx) => {
    const parts = s.split(',').map((x) => x.trim());
    const bad = parts.filter((x) => !['train', 'val', 'test'].includes(x));
    if (bad.length > 0 || parts.length === 0) {
      ctx.addIssue({ code: 'custom', message: `expected a comma-separated subset of train,val,test, got "${s}"` });
      return z.NEVER;
    }
    return parts as ('train' | 'val' | 'test')[];
  }).optional(),
  overwrite: z.boolean(),
});

export function register(program: Command): void {
  program
    .command('synth')
    .description('render the synthetic city (street-level views) into <out>/<name>/images/{train,val,test}/{database,queries}')
    .requiredOption('--out <dir>', 'datasets root')
    .requiredOption('--name <name>', 'dataset name (folder under --out)')
    .option('--style <style>', `architecture: ${STYLE_NAMES.join(' | ')} (stlucia: low suburban houses, lawns, trees)`, 'city')
    .option('--size <size>', `preset: ${SIZE_NAMES.join(' | ')} (tiny: tests, demo: < 1 min on 2 cores)`, 'demo')
    .option('--seed <n>', 'random seed (same seed, same files)', '0')
    .option('--height <px>', 'image height (default from --size)')
    .option('--width <px>', 'image width (default from --size)')
    .option('--spacing <m>', 'distance between database places along a street')
    .option('--headings <k>', 'database headings per place')
    .option('--rows <n>', 'block rows of the city')
    .option('--columns <t,v,t>', 'block columns of the train,val,test districts')
    .option('--queries <t,v,t>', 'queries per split: train,val,test')
    .option('--query-offset <m>', 'largest distance of a query from its database place')
    .option('--fov <deg>', 'horizontal field of view')
    .option('--quality <q>', 'JPEG quality (1-100)')
    .option('--splits <list>', 'splits to write, e.g. test (a cross-dataset test set); default train,val,test')
    .option('--workers <n>', 'worker threads (0 = this thread; default: one per core)')
    .option('--overwrite', 'replace an existing dataset made by vgl synth', false)
    .action(async (raw: Record<string, unknown>) => {
      const f = parseFlags(SynthFlags, raw);
      const summary = await generateCity({
        out: f.out, name: f.name, style: f.style, size: f.size, seed: f.seed, height: f.height, width: f.width,
        spacing: f.spacing, headings: f.headings, blockRows: f.rows, columns: f.columns, queries: f.queries,
        queryOffset: f.queryOffset, fov: f.fov, quality: f.quality, workers: f.workers, overwrite: f.overwrite, splits: f.splits,
        progress: true,
      });
      for (const [split, c] of Object.entries(summary.counts)) {
        if (c === undefined) continue;
        process.stdout.write(`${f.name}/${split}: ${c.database} database (${c.places} places x ${summary.params.headings} headings), ${c.queries} queries\n`);
      }
      process.stdout.write(`${summary.images} images ${summary.params.width}x${summary.params.height} in ${summary.seconds.toFixed(1)} s -> ${summary.dir} (parameters: synth.json, contact sheet: synth-preview.png)\n`);
    });
}
