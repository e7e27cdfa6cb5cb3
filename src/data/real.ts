// Real photographs embedded in the repository (assets/real, made by scripts/make-real-data.ts) and the
// datasets_vg datasets built from them with route-based splits. The definitions are data so that the
// demo and the docs can list which sets exist without repeating the split ranges.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importDataset, parseCsv, formatSplitRange, DEFAULT_RANGE_COLUMN, type SplitRange } from './importer.ts';
import { openDataset } from './dataset.ts';
export { FINAL_SPLIT } from './splits.ts';

/** The repository's `assets/real`: one folder per source (gardens_point, nordland), each with positions.csv. */
export const REAL_DATA_DIR = fileURLToPath(new URL('../../assets/real', import.meta.url));

// Four splits per route: train, val (recipe, epoch, size and head choices), test (looked at while
// exploring) and final, sealed: evaluated only for a frozen recipe (vgl demo --split final), so that the
// split that measures a recipe has not chosen it. The final stretches are the ones whose recall no
// earlier recipe choice measured: until 2026-12-07 they were training data (the old splits: Gardens
// Point train 100-129, val 134-143, test 148-199; Nordland train 10-21000, val 21100-24000, test
// 24100-35760), and recipes were chosen on the old test splits.

// Gardens Point: frames 100-199, 10 m apart. Four frames are left out between stretches, so two
// splits are at least 50 m apart: beyond the 25 m soft-positive radius, no place is in two splits.
export const GARDENS_POINT_FINAL: SplitRange = { split: 'final', min: 100, max: 129 };
export const GARDENS_POINT_TRAIN: SplitRange = { split: 'train', min: 134, max: 163 };
export const GARDENS_POINT_VAL: SplitRange = { split: 'val', min: 168, max: 177 };
export const GARDENS_POINT_TEST: SplitRange = { split: 'test', min: 182, max: 199 };
export const GARDENS_POINT_RANGES: readonly SplitRange[] = [GARDENS_POINT_TRAIN, GARDENS_POINT_VAL, GARDENS_POINT_TEST, GARDENS_POINT_FINAL];
/** Val, test and final only: the single-condition sets are for evaluation. */
export const GARDENS_POINT_EVAL_RANGES: readonly SplitRange[] = [GARDENS_POINT_VAL, GARDENS_POINT_TEST, GARDENS_POINT_FINAL];

// Nordland: frame indices 10..35760 in steps of 10 (1 m per index unit, so kept frames are 10 m apart);
// nine kept frames (100 m) are left out between stretches.
export const NORDLAND_FINAL: SplitRange = { split: 'final', min: 10, max: 6000 };
export const NORDLAND_TRAIN: SplitRange = { split: 'train', min: 6100, max: 26000 };
export const NORDLAND_VAL: SplitRange = { split: 'val', min: 26100, max: 29000 };
export const NORDLAND_TEST: SplitRange = { split: 'test', min: 29100, max: 35760 };
export const NORDLAND_RANGES: readonly SplitRange[] = [NORDLAND_TRAIN, NORDLAND_VAL, NORDLAND_TEST, NORDLAND_FINAL];

/** One dataset built from the embedded photographs. */
export interface RealDatasetDefinition {
  /** Dataset name under the datasets folder. */
  name: string;
  /** Folder under REAL_DATA_DIR holding the traverse folders and positions.csv. */
  source: string;
  /** Traverse folder used as the database. */
  database: string;
  /** Traverse folders used as queries (several: their names prefix the notes). */
  queries: readonly string[];
  /** Route-based splits over the `frame` column. */
  ranges: readonly SplitRange[];
  /** One line for people. */
  description: string;
}

export const REAL_DATASETS: readonly RealDatasetDefinition[] = [
  {
    name: 'gardens_point', source: 'gardens_point', database: 'day_left', queries: ['day_right', 'night_right'], ranges: GARDENS_POINT_RANGES,
    description: 'Gardens Point Walking: day left-side database, day right-side and night right-side queries',
  },
  {
    name: 'gardens_point_day', source: 'gardens_point', database: 'day_left', queries: ['day_right'], ranges: GARDENS_POINT_EVAL_RANGES,
    description: 'Gardens Point Walking, viewpoint change only: day left-side database, day right-side queries',
  },
  {
    name: 'gardens_point_night', source: 'gardens_point', database: 'day_left', queries: ['night_right'], ranges: GARDENS_POINT_EVAL_RANGES,
    description: 'Gardens Point Walking, day to night: day left-side database, night right-side queries',
  },
  {
    name: 'nordland', source: 'nordland', database: 'summer', queries: ['winter'], ranges: NORDLAND_RANGES,
    description: 'Nordland railway at 64x32: summer database, winter queries',
  },
];

/** Images of one split. */
export interface SplitSize {
  database: number;
  queries: number;
}

/** What ensureRealDatasets found or made for one dataset. */
export interface RealDatasetSummary {
  name: string;
  /** True when the existing folders already held the expected images (nothing written). */
  reused: boolean;
  splits: Record<string, SplitSize>;
}

export interface EnsureRealOptions {
  /** Show import progress bars on stderr (default: when stderr is a TTY). */
  progress?: boolean;
  log?: (line: string) => void;
  /** Where the embedded photographs are (default REAL_DATA_DIR). */
  realDataDir?: string;
}

/** Per split, how many database and query rows of `source`/positions.csv fall in its ranges: the counts an import must give. */
export async function expectedSplitSizes(def: RealDatasetDefinition, realDataDir = REAL_DATA_DIR): Promise<Record<string, SplitSize>> {
  const csv = join(realDataDir, def.source, 'positions.csv');
  const table = parseCsv(await readFile(csv, 'utf8'));
  const header = table[0] ?? [];
  const fileCol = header.indexOf('file');
  const frameCol = header.indexOf(DEFAULT_RANGE_COLUMN);
  if (fileCol < 0 || frameCol < 0) throw new Error(`${csv}: header [${header.join(', ')}] lacks file or ${DEFAULT_RANGE_COLUMN}; regenerate it with scripts/make-real-data.ts`);
  const out: Record<string, SplitSize> = {};
  for (const r of def.ranges) out[r.split] = { database: 0, queries: 0 };
  for (const row of table.slice(1)) {
    if (row.length < header.length) continue; // blank line
    const folder = row[fileCol].split('/')[0];
    const part = folder === def.database ? 'database' : def.queries.includes(folder) ? 'queries' : undefined;
    if (part === undefined) continue;
    const frame = Number(row[frameCol]);
    const range = def.ranges.find((r) => frame >= r.min && frame <= r.max);
    if (range) out[range.split][part]++;
  }
  return out;
}

/** The existing dataset holds exactly the expected split sizes, made with the same ranges (dangling links fail openDataset). */
async function alreadyImported(root: string, def: RealDatasetDefinition, expected: Record<string, SplitSize>): Promise<boolean> {
  try {
    const report = JSON.parse(await readFile(join(root, def.name, 'import-report.json'), 'utf8')) as { splitRanges?: SplitRange[] };
    if ((report.splitRanges ?? []).map(formatSplitRange).join(',') !== def.ranges.map(formatSplitRange).join(',')) return false;
    for (const [split, size] of Object.entries(expected)) {
      const ds = await openDataset(root, def.name, split);
      if (ds.databasePaths.length !== size.database || ds.queriesPaths.length !== size.queries) return false;
    }
    return true;
  } catch {
    return false; // missing or broken: import again
  }
}

/**
 * Makes every dataset of REAL_DATASETS available under `datasetsFolder` as symlinks to the embedded
 * photographs. Idempotent: a dataset whose splits already hold the expected images is left alone,
 * any other is imported again over the old folders.
 */
export async function ensureRealDatasets(datasetsFolder: string, options: EnsureRealOptions = {}): Promise<RealDatasetSummary[]> {
  const log = options.log ?? (() => undefined);
  const dir = options.realDataDir ?? REAL_DATA_DIR;
  const out: RealDatasetSummary[] = [];
  for (const def of REAL_DATASETS) {
    const expected = await expectedSplitSizes(def, dir);
    const sizes = Object.entries(expected).map(([s, c]) => `${s} ${c.database}/${c.queries}`).join(', ');
    if (await alreadyImported(datasetsFolder, def, expected)) {
      log(`${def.name}: already in ${datasetsFolder} (${sizes} database/queries)`);
      out.push({ name: def.name, reused: true, splits: expected });
      continue;
    }
    const source = join(dir, def.source);
    const result = await importDataset({
      databaseDir: join(source, def.database), queriesDir: def.queries.map((q) => join(source, q)), csv: join(source, 'positions.csv'),
      out: datasetsFolder, name: def.name, splitRanges: def.ranges, overwrite: true, progress: options.progress,
    });
    // Rows of traverses this dataset does not use are expected to match no image; anything else is not.
    const got = Object.entries(result.perSplit).map(([s, c]) => `${s} ${c.database}/${c.queries}`).join(', ');
    if (result.imagesWithoutPosition.length > 0 || got !== sizes) {
      throw new Error(`${def.name}: imported ${got} database/queries with ${result.imagesWithoutPosition.length} images without position, expected ${sizes} from ${join(source, 'positions.csv')}; regenerate ${dir} with scripts/make-real-data.ts`);
    }
    log(`${def.name}: imported into ${result.datasetDir} (${sizes} database/queries, ${result.outsideRanges} images between ranges skipped)`);
    out.push({ name: def.name, reused: false, splits: expected });
  }
  return out;
}
