// `vgl import`: user folders + position CSV -> datasets_vg layout (symlinks by default).
import type { Command } from 'commander';
import { z } from 'zod';
import { importDataset, parseSplitRanges, formatSplitRange, DEFAULT_RANGE_COLUMN, type ImportResult } from '../../data/importer.ts';
import { openDataset } from '../../data/dataset.ts';
import { DEFAULT_SOFT_POSITIVE_RADIUS } from '../../data/positives.ts';
import { parseFlags } from '../flags.ts';

const NAME = /^[A-Za-z0-9._-]+$/;

/** A list flag given repeatedly and/or comma-separated, as commander collects it (string or string[]). */
const listFlag = z.union([z.string(), z.array(z.string())])
  .transform((v) => (typeof v === 'string' ? [v] : v).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== ''));

export const ImportFlags = z.object({
  database: z.string().min(1),
  queries: listFlag.refine((a) => a.length > 0, 'at least one folder'),
  csv: z.string().min(1),
  out: z.string().min(1),
  name: z.string().regex(NAME, 'use only letters, digits, ".", "_" and "-"'),
  // No commander default: --split must stay undefined to be told apart from --split-ranges.
  split: z.string().transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x !== ''))
    .refine((a) => a.length > 0 && a.every((x) => NAME.test(x)), 'comma-separated split names made of letters, digits, ".", "_" and "-"').optional(),
  splitRanges: z.string().transform((s, ctx) => {
    try {
      return parseSplitRanges(s);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
      return z.NEVER;
    }
  }).optional(),
  rangeColumn: z.string().min(1).optional(),
  minSplitGap: z.coerce.number().finite().min(0).optional(),
  copy: z.boolean().default(false),
  overwrite: z.boolean().default(false),
  strict: z.boolean().default(false),
  fileColumn: z.string().optional(),
  eastColumn: z.string().optional(),
  northColumn: z.string().optional(),
  latColumn: z.string().optional(),
  lonColumn: z.string().optional(),
  utmZone: z.string().regex(/^\d{1,2}[C-HJ-NP-Xc-hj-np-x]?$/, 'like 33W or 33').optional(),
}).superRefine((f, ctx) => {
  if (f.split !== undefined && f.splitRanges !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['splitRanges'], message: '--split and --split-ranges are mutually exclusive: give one' });
  }
  for (const key of ['rangeColumn', 'minSplitGap'] as const) {
    if (f[key] !== undefined && f.splitRanges === undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'only applies with --split-ranges' });
  }
});
export type ImportFlags = z.output<typeof ImportFlags>;

type Log = (line: string) => void;

/** Runs the import, then re-opens every split with the loader training uses; prints a summary through `out`. */
export async function runImport(f: ImportFlags, out: Log = (s) => process.stdout.write(`${s}\n`), warn: Log = (s) => process.stderr.write(`warning: ${s}\n`)): Promise<ImportResult> {
  const result = await importDataset({
    databaseDir: f.database, queriesDir: f.queries, csv: f.csv, out: f.out, name: f.name,
    splits: f.split, splitRanges: f.splitRanges, rangeColumn: f.rangeColumn, minSplitGap: f.minSplitGap,
    mode: f.copy ? 'copy' : 'symlink', overwrite: f.overwrite, strict: f.strict, utmZone: f.utmZone,
    columns: { file: f.fileColumn, east: f.eastColumn, north: f.northColumn, lat: f.latColumn, lon: f.lonColumn },
  });
  for (const w of result.warnings) warn(w);
  // Re-open what was written with the same loader training uses: proves the layout is valid.
  for (const split of result.splits) {
    const ds = await openDataset(f.out, f.name, split);
    const c = result.perSplit[split];
    const extent = c.rangeMin !== undefined ? ` (${f.rangeColumn ?? DEFAULT_RANGE_COLUMN} ${c.rangeMin}..${c.rangeMax})` : '';
    out(`${f.name}/${split}: ${ds.databasePaths.length} database, ${ds.queriesPaths.length} queries${extent} -> ${ds.dir}`);
  }
  if (f.splitRanges) {
    out(`split ranges ${f.splitRanges.map(formatSplitRange).join(',')}: ${result.outsideRanges} images in no range (skipped); `
      + `no two splits closer than ${f.minSplitGap ?? DEFAULT_SOFT_POSITIVE_RADIUS} m`);
  }
  out(`positions from ${result.positionSource === 'utm' ? 'UTM columns' : `lat/lon (UTM zone ${result.utmZone})`}; `
    + `${result.unmatchedRows.length} unmatched CSV rows, ${result.imagesWithoutPosition.length} images without position; report: ${result.reportPath}`);
  return result;
}

/** Registers `vgl import`. */
export function register(program: Command): void {
  const collect = (value: string, previous?: string[]) => [...(previous ?? []), value];
  program
    .command('import')
    .description('import a database folder, query folder(s) and a CSV of positions into the datasets_vg layout')
    .requiredOption('--database <dir>', 'folder of database images (searched recursively for jpg/jpeg/png)')
    .requiredOption('--queries <dirs>', 'folder of query images (searched recursively); repeat the flag or separate with commas for several folders, whose names then prefix the notes', collect)
    .requiredOption('--csv <file>', 'CSV with a header: a file column (path relative to the CSV, to the image folder, or a unique base name) and utm_east,utm_north or lat,lon')
    .requiredOption('--out <dir>', 'datasets root; writes <out>/<name>/images/<split>/{database,queries}')
    .requiredOption('--name <name>', 'dataset name')
    .option('--split <names>', 'comma-separated split names, each gets every image (e.g. test or val,test; default test)')
    .option('--split-ranges <ranges>', 'route-based splits: each image goes to the split whose inclusive range of --range-column holds it, e.g. train:100-139,val:144-153,test:158-199; others are skipped')
    .option('--range-column <name>', `numeric CSV column for --split-ranges (default ${DEFAULT_RANGE_COLUMN})`)
    .option('--min-split-gap <m>', `with --split-ranges, refuse when images of two splits lie within this many metres (default ${DEFAULT_SOFT_POSITIVE_RADIUS}, the soft-positive radius)`)
    .option('--copy', 'copy the images instead of symlinking them', false)
    .option('--overwrite', 'replace existing database/queries folders of these splits', false)
    .option('--strict', 'fail if any CSV row or image is left unmatched', false)
    .option('--file-column <name>', 'CSV column holding the image path')
    .option('--east-column <name>', 'CSV column holding UTM east (m)')
    .option('--north-column <name>', 'CSV column holding UTM north (m)')
    .option('--lat-column <name>', 'CSV column holding latitude (deg, WGS84)')
    .option('--lon-column <name>', 'CSV column holding longitude (deg, WGS84)')
    .option('--utm-zone <zone>', 'UTM zone of east/north input (e.g. 33W), written into the names; with lat/lon, forces that zone')
    .action(async (raw: Record<string, unknown>) => {
      await runImport(parseFlags(ImportFlags, raw));
    });
}
