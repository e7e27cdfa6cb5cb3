// `vgl dataset stats`: counts, positives, distances, a map and example grids of a datasets_vg dataset.
import type { Command } from 'commander';
import { z } from 'zod';
import { join } from 'node:path';
import { writeDatasetReport } from '../../report/dataset-stats.ts';
import { openDataset, verifyImages, listSplits } from '../../data/dataset.ts';
import { parseFlags } from '../flags.ts';

const NAME = /^[A-Za-z0-9._-]+$/;
const metres = z.coerce.number().finite().nonnegative();

const StatsFlags = z.object({
  root: z.string().min(1),
  name: z.string().regex(NAME, 'use only letters, digits, ".", "_" and "-"'),
  out: z.string().min(1).optional(),
  split: z.string().optional().transform((s) => (s === undefined ? undefined : s.split(',').map((x) => x.trim()).filter((x) => x !== '')))
    .refine((a) => a === undefined || (a.length > 0 && a.every((x) => NAME.test(x))), 'comma-separated split names'),
  softRadius: metres.default(25),
  hardRadius: metres.default(10),
  examples: z.coerce.number().int().min(0).max(50).default(4),
  verifyImages: z.boolean().default(false),
});

/** Registers `vgl dataset stats`. */
export function register(program: Command): void {
  const dataset = program.command('dataset').description('inspect datasets in the datasets_vg layout');
  dataset
    .command('stats')
    .description('write summary.json, a position map, positives and distance histograms and example grids for a dataset')
    .requiredOption('--root <dir>', 'datasets root (holds <name>/images/<split>/...)')
    .requiredOption('--name <name>', 'dataset name')
    .option('--out <dir>', 'output folder (default runs/dataset-<name>)')
    .option('--split <names>', 'comma-separated splits (default: every split found)')
    .option('--soft-radius <m>', 'soft positive radius in metres (val_positive_dist_threshold)', '25')
    .option('--hard-radius <m>', 'hard positive radius in metres (train_positives_dist_threshold)', '10')
    .option('--examples <n>', 'example queries per split in the image grid', '4')
    .option('--verify-images', 'also decode every image header (slower)', false)
    .action(async (raw: Record<string, unknown>) => {
      const f = parseFlags(StatsFlags, raw);
      const out = f.out ?? join('runs', `dataset-${f.name}`);
      const splits = f.split ?? (await listSplits(f.root, f.name));
      if (f.verifyImages) for (const split of splits) await verifyImages(await openDataset(f.root, f.name, split));
      const r = await writeDatasetReport(f.root, f.name, out, {
        splits, valPositiveDistThreshold: f.softRadius, trainPositivesDistThreshold: f.hardRadius, exampleQueries: f.examples,
      });
      const n = (v: number | null, d = 1): string => (v === null || !Number.isFinite(v) ? '-' : v.toFixed(d));
      process.stdout.write(`dataset ${f.name} (${f.root})\n`);
      process.stdout.write('split      database  queries  pos<=hard  pos<=soft  no-hard  no-soft  nearest median/p90 (m)\n');
      for (const s of r.stats.splits) {
        process.stdout.write(`${s.split.padEnd(10)} ${String(s.database).padStart(8)} ${String(s.queries).padStart(8)}  `
          + `${n(s.hardPositivesPerQuery.mean, 2).padStart(9)}  ${n(s.softPositivesPerQuery.mean, 2).padStart(9)}  `
          + `${String(s.queriesWithoutHardPositive).padStart(7)}  ${String(s.queriesWithoutSoftPositive).padStart(7)}  `
          + `${n(s.nearestDatabaseDistance.median, 2)} / ${n(s.nearestDatabaseDistance.p90, 2)}\n`);
      }
      process.stdout.write(`(radii: hard ${f.hardRadius} m, soft ${f.softRadius} m)\nwrote ${r.summary} and ${r.figures.length} figures in ${out}\n`);
    });
}
