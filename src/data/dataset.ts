// A split of a datasets_vg dataset: <root>/<name>/images/<split>/{database,queries}/**/*.{jpg,jpeg,png}.
// Everything is validated up front (folders, names, file sizes) so training never fails an hour in.
import { readdir, stat, access, constants } from 'node:fs/promises';
import { join, relative, extname, resolve } from 'node:path';
import { progressBar } from '../util/progress.ts';
import { mapLimit } from '../util/concurrency.ts';
import { parseDatasetFilename, FilenameError, IMAGE_EXTENSIONS } from './filename.ts';
import { checkImageFile } from './image.ts';

/** One split of a datasets_vg dataset: image paths and their UTM positions. */
export interface GeoDataset {
  /** Absolute datasets root (the folder holding `<name>/`). */
  root: string;
  name: string;
  split: string;
  /** Absolute `<root>/<name>/images/<split>`. */
  dir: string;
  /** Absolute database image paths, sorted by their path relative to `database/`. */
  databasePaths: string[];
  /** Absolute query image paths, sorted by their path relative to `queries/`. */
  queriesPaths: string[];
  /** Database positions, row-major N x 2: [east0, north0, east1, north1, ...] in metres. */
  databasePositions: Float64Array;
  /** Query positions, row-major M x 2: [east0, north0, ...] in metres. */
  queriesPositions: Float64Array;
  /** For a concatenation (concatDatasets): where each dataset's images lie in the lists. */
  parts?: readonly DatasetPart[];
}

/** One dataset inside a concatenation: its name and its index ranges [start, end) in the lists. */
export interface DatasetPart {
  name: string;
  database: readonly [number, number];
  queries: readonly [number, number];
}

/** The part index of every item of one list (database or queries); all 0 for a single dataset. */
export function partOf(ds: Pick<GeoDataset, 'parts' | 'databasePaths' | 'queriesPaths'>, list: 'database' | 'queries'): Int32Array {
  const out = new Int32Array(list === 'database' ? ds.databasePaths.length : ds.queriesPaths.length);
  (ds.parts ?? []).forEach((p, i) => out.fill(i, p[list][0], p[list][1]));
  return out;
}

/** Invalid dataset input; `problems` lists every offending path with its fault. */
export class DatasetError extends Error {
  constructor(readonly title: string, readonly problems: string[]) {
    super(formatProblems(title, problems));
    this.name = 'DatasetError';
  }
}

/** Formats a problem list for people: the title, the first `limit` lines and how many more there are. */
export function formatProblems(title: string, problems: string[], limit = 20): string {
  const shown = problems.slice(0, limit).map((p) => `  - ${p}`);
  const more = problems.length > limit ? [`  ... and ${problems.length - limit} more (${problems.length} in total)`] : [];
  return [`${title} (${problems.length} problem${problems.length === 1 ? '' : 's'}):`, ...shown, ...more].join('\n');
}

/** Plain code-unit order: deterministic across locales, unlike localeCompare. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Lists image files (jpg/jpeg/png, any case) under `dir` recursively, following symlinked files; sorted by relative path. */
export async function listImages(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string): Promise<void> {
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (IMAGE_EXTENSIONS.includes(extname(e.name).toLowerCase())) out.push(p); // files and symlinks; checked later
    }
  }
  await walk(dir);
  return out.sort((a, b) => compareStrings(relative(dir, a), relative(dir, b)));
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Reason a file cannot be used (missing target, not a file, empty, unreadable), or null when fine. */
async function fileProblem(p: string): Promise<string | null> {
  try {
    const s = await stat(p); // follows symlinks: a dangling link fails here
    if (!s.isFile()) return `${p}: not a regular file`;
    if (s.size === 0) return `${p}: empty file (0 bytes)`;
    await access(p, constants.R_OK);
    return null;
  } catch (e) {
    return `${p}: unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
}

/** Parses every name into a row-major N x 2 position array, collecting problems instead of throwing. */
function positionsOf(paths: string[], problems: string[]): Float64Array {
  const pos = new Float64Array(paths.length * 2);
  paths.forEach((p, i) => {
    try {
      const f = parseDatasetFilename(p);
      pos[2 * i] = f.east;
      pos[2 * i + 1] = f.north;
    } catch (e) {
      if (e instanceof FilenameError) problems.push(e.message);
      else throw e;
    }
  });
  return pos;
}

/** Options for openDataset. */
export interface OpenDatasetOptions {
  /** Also decode every image header (slower: ~seconds per 10k images); default false. */
  verifyImages?: boolean | VerifyImagesOptions;
}

/** Opens `<root>/<name>/images/<split>`; throws one DatasetError listing every missing/empty folder, bad name and unreadable file. */
export async function openDataset(root: string, name: string, split: string, options: OpenDatasetOptions = {}): Promise<GeoDataset> {
  const absRoot = resolve(root);
  const dir = join(absRoot, name, 'images', split);
  const problems: string[] = [];
  const lists: Record<'database' | 'queries', string[]> = { database: [], queries: [] };
  for (const part of ['database', 'queries'] as const) {
    const d = join(dir, part);
    if (!(await isDirectory(d))) {
      problems.push(`${d}: folder missing (expected <root>/<name>/images/<split>/${part}/ holding .jpg/.jpeg/.png images)`);
      continue;
    }
    lists[part] = await listImages(d);
    if (lists[part].length === 0) problems.push(`${d}: no .jpg/.jpeg/.png images found (searched recursively)`);
  }
  if (problems.length > 0) throw new DatasetError(`dataset "${name}" split "${split}" under ${absRoot} is not usable`, problems);

  const databasePositions = positionsOf(lists.database, problems);
  const queriesPositions = positionsOf(lists.queries, problems);
  const all = [...lists.database, ...lists.queries];
  const fileProblems = await mapLimit(all, 64, fileProblem);
  for (const p of fileProblems) if (p !== null) problems.push(p);
  if (problems.length > 0) throw new DatasetError(`dataset "${name}" split "${split}" under ${absRoot} has bad files`, problems);

  const dataset: GeoDataset = {
    root: absRoot, name, split, dir,
    databasePaths: lists.database, queriesPaths: lists.queries,
    databasePositions, queriesPositions,
  };
  if (options.verifyImages) await verifyImages(dataset, options.verifyImages === true ? {} : options.verifyImages);
  return dataset;
}

/** Splits present under `<root>/<name>/images/` (folder names, sorted). */
export async function listSplits(root: string, name: string): Promise<string[]> {
  const d = join(resolve(root), name, 'images');
  if (!(await isDirectory(d))) throw new DatasetError(`dataset "${name}" not found`, [`${d}: folder missing`]);
  const entries = await readdir(d, { withFileTypes: true });
  const out: string[] = [];
  for (const e of entries) if (e.isDirectory() || (e.isSymbolicLink() && (await isDirectory(join(d, e.name))))) out.push(e.name);
  return out.sort(compareStrings);
}

/** Options for verifyImages. */
export interface VerifyImagesOptions {
  /** Parallel header decodes (default 8). */
  concurrency?: number;
  /** Show a progress bar on stderr (default: when stderr is a TTY). */
  progress?: boolean;
}

/**
 * Checks every image of the dataset(s) cheaply — header decode and end marker, no pixels — in parallel,
 * so a corrupt or truncated file stops a run before hours of work; throws one DatasetError naming every
 * bad file and why. Returns how many images were checked.
 */
export async function verifyImages(datasets: GeoDataset | readonly GeoDataset[], options: VerifyImagesOptions = {}): Promise<number> {
  const list = Array.isArray(datasets) ? datasets : [datasets as GeoDataset];
  const all = [...new Set(list.flatMap((d) => [...d.databasePaths, ...d.queriesPaths]))];
  const bar = progressBar('verify images', all.length, { show: options.progress, unit: 'img' });
  const problems = await mapLimit(all, options.concurrency ?? 8, async (p) => {
    const reason = await checkImageFile(p);
    bar.tick();
    return reason === null ? null : `${p}: ${reason}`;
  });
  bar.stop();
  const bad = problems.filter((p): p is string => p !== null);
  const what = list.map((d) => `"${d.name}" split "${d.split}"`).join(', ');
  if (bad.length > 0) throw new DatasetError(`dataset ${what}: ${bad.length} of ${all.length} images cannot be read; fix or remove them`, bad);
  return all.length;
}

/**
 * Apart by this many metres (north), the datasets of a concatenation never share a positive at any
 * radius a user would set, whatever their own coordinates (UTM northings stay below 10,000 km).
 */
export const CONCATENATION_OFFSET = 1e8;

/**
 * One dataset made of several (e.g. synthetic and real training sets mixed): paths concatenated in
 * order, positions of the i-th part moved i x CONCATENATION_OFFSET metres north so that positives
 * and negatives are only ever found within a part. Positions of the result are for radius searches,
 * not for display.
 */
export function concatDatasets(parts: readonly GeoDataset[]): GeoDataset {
  if (parts.length === 0) throw new Error('concatDatasets: no dataset given');
  if (parts.length === 1) return parts[0];
  const shifted = (pos: Float64Array, i: number) => {
    const out = Float64Array.from(pos);
    for (let k = 1; k < out.length; k += 2) out[k] += i * CONCATENATION_OFFSET;
    return out;
  };
  const join2 = (arrays: Float64Array[]) => {
    const out = new Float64Array(arrays.reduce((s, a) => s + a.length, 0));
    let at = 0;
    for (const a of arrays) { out.set(a, at); at += a.length; }
    return out;
  };
  const ranges: DatasetPart[] = [];
  let db = 0, q = 0;
  for (const p of parts) {
    ranges.push({ name: p.name, database: [db, db + p.databasePaths.length], queries: [q, q + p.queriesPaths.length] });
    db += p.databasePaths.length;
    q += p.queriesPaths.length;
  }
  return {
    root: parts[0].root, name: parts.map((p) => p.name).join(','), split: parts[0].split, parts: ranges,
    dir: parts.map((p) => p.dir).join(','),
    databasePaths: parts.flatMap((p) => p.databasePaths),
    queriesPaths: parts.flatMap((p) => p.queriesPaths),
    databasePositions: join2(parts.map((p, i) => shifted(p.databasePositions, i))),
    queriesPositions: join2(parts.map((p, i) => shifted(p.queriesPositions, i))),
  };
}

/** Several names ("a,b"): each opened at `split` and concatenated (see concatDatasets). */
/** "a,b" → ["a", "b"]: one dataset name, or several (their splits used together). */
export const splitDatasetNames = (names: string): string[] => names.split(',').map((n) => n.trim());

export async function openDatasets(root: string, names: readonly string[], split: string, options: OpenDatasetOptions = {}): Promise<GeoDataset> {
  const parts: GeoDataset[] = [];
  for (const name of names) parts.push(await openDataset(root, name, split, options));
  return concatDatasets(parts);
}
