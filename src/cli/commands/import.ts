// `vgl import`: user folders + position CSV -> datasets_vg layout (symlinks by default).
import type { Command } from 'commander';
import { z } from 'zod';
import { importDataset } from '../../data/importer.ts';
import { openDataset } from '../../data/dataset.ts';
import { parseFlags } from '../flags.ts';

const NAME = /^[A-Za-z0-9._-]+$/;

const ImportFlags = z.object({
  database: z.string().min(1),
  queries: z.string().min(1),
  csv: z.string().min(1),
  out: z.string().min(1),
  name: z.string().regex(NAME, 'use only letters, digits, ".", "_" and "-"'),
  split: z.string().transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x !== ''))
    .refine((a) => a.length > 0 && a.every((x) => NAME.test(x)), 'comma-separated split names made of letters, digits, ".", "_" and "-"'),
  copy: z.boolean().default(false),
  overwrite: z.boolean().default(false),
  strict: z.boolean().default(false),
  fileColumn: z.string().optional(),
  eastColumn: z.string().optional(),
  northColumn: z.string().optional(),
  latColumn: z.string().optional(),
  lonColumn: z.string().optional(),
  utmZone: z.string().regex(/^\d{1,2}[C-HJ-NP-Xc-hj-np-x]?$/, 'like 33W or 33').optional(),
});

/** Registers `vgl import`. */
export function register(program: Command): void {
  program
    .command('import')
    .description('import a database folder, a queries folder and a CSV of positions into the datasets_vg layout')
    .requiredOption('--database <dir>', 'folder of database images (searched recursively for jpg/jpeg/png)')
    .requiredOption('--queries <dir>', 'folder of query images (searched recursively)')
    .requiredOption('--csv <file>', 'CSV with a header: a file column (path relative to the CSV, to the image folder, or a unique base name) and utm_east,utm_north or lat,lon')
    .requiredOption('--out <dir>', 'datasets root; writes <out>/<name>/images/<split>/{database,queries}')
    .requiredOption('--name <name>', 'dataset name')
    .option('--split <names>', 'comma-separated split names, each gets every image (e.g. test or val,test)', 'test')
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
      const f = parseFlags(ImportFlags, raw);
      const result = await importDataset({
        databaseDir: f.database, queriesDir: f.queries, csv: f.csv, out: f.out, name: f.name, splits: f.split,
        mode: f.copy ? 'copy' : 'symlink', overwrite: f.overwrite, strict: f.strict, utmZone: f.utmZone,
        columns: { file: f.fileColumn, east: f.eastColumn, north: f.northColumn, lat: f.latColumn, lon: f.lonColumn },
      });
      for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
      // Re-open what was written with the same loader training uses: proves the layout is valid.
      for (const split of result.splits) {
        const ds = await openDataset(f.out, f.name, split);
        process.stdout.write(`${f.name}/${split}: ${ds.databasePaths.length} database, ${ds.queriesPaths.length} queries -> ${ds.dir}\n`);
      }
      process.stdout.write(`positions from ${result.positionSource === 'utm' ? 'UTM columns' : `lat/lon (UTM zone ${result.utmZone})`}; `
        + `${result.unmatchedRows.length} unmatched CSV rows, ${result.imagesWithoutPosition.length} images without position; report: ${result.reportPath}\n`);
    });
}
