// Turns a user's folders of images plus a CSV of positions into the datasets_vg layout:
// <out>/<name>/images/<split>/{database,queries}/@east@north@...@note@.<ext>, as symlinks or copies.
// Positions come as UTM east/north or as WGS84 lat/lon (converted to one shared UTM zone).
// Images go either to every named split, or each to one split by ranges of a numeric CSV column
// (a frame number along a route), refused when two splits would share a place.
import { readFile, mkdir, mkdtemp, symlink, copyFile, rm, readdir, realpath, rename, stat } from 'node:fs/promises';
import { join, resolve, dirname, relative, basename, extname } from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import { progressBar } from '../util/progress.ts';
import { formatDatasetFilename } from './filename.ts';
import { latLonToUtm, utmZoneNumber, utmZoneLetter } from './geo.ts';
import { listImages, formatProblems, DatasetError } from './dataset.ts';
import { mapLimit } from '../util/concurrency.ts';
import { PositionIndex, DEFAULT_SOFT_POSITIVE_RADIUS } from './positives.ts';
import { OptionError, OptionFileError } from '../errors.ts';

/** CSV column names to use instead of auto-detection (case-insensitive). */
export interface ImportColumns {
  file?: string;
  east?: string;
  north?: string;
  lat?: string;
  lon?: string;
}

/** What to import and where. */
export interface ImportOptions {
  /** Folder of database images (searched recursively for jpg/jpeg/png). */
  databaseDir: string;
  /**
   * Folder(s) of query images (searched recursively). With several folders, each note is prefixed with
   * its folder's base name (`day_right__Image100`) so same-named images at one position stay distinct.
   */
  queriesDir: string | readonly string[];
  /** CSV with a header row: a file column plus utm_east/utm_north or lat/lon columns. */
  csv: string;
  /** Datasets root to write into; the dataset lands in `<out>/<name>/images/<split>/`. */
  out: string;
  name: string;
  /** Split names that each receive every image (default ["test"]); not together with splitRanges. */
  splits?: string[];
  /** Route-based splits: each image goes to the split whose inclusive range holds its rangeColumn value. */
  splitRanges?: readonly SplitRange[];
  /** Numeric CSV column the ranges refer to (default "frame"). */
  rangeColumn?: string;
  /** With splitRanges: refuse when images of two splits lie within this many metres (default 25, the soft-positive radius). */
  minSplitGap?: number;
  /** Symlink to the originals (default) or copy them. */
  mode?: 'symlink' | 'copy';
  columns?: ImportColumns;
  /** UTM zone of east/north input, e.g. "33W", written into the names (optional). */
  utmZone?: string;
  /** Replace existing database/queries folders of the target splits (default false: refuse). */
  overwrite?: boolean;
  /** Fail when any CSV row or image is unmatched (default false: skip and report). */
  strict?: boolean;
  /** Show a progress bar on stderr (default: when stderr is a TTY). */
  progress?: boolean;
}

/** Images whose range-column value lies in [min, max] (inclusive) go to `split`. */
export interface SplitRange {
  split: string;
  min: number;
  max: number;
}

/** What one split received. */
export interface SplitCounts {
  database: number;
  queries: number;
  /** Smallest and largest range-column value among the split's images (with splitRanges only). */
  rangeMin?: number;
  rangeMax?: number;
}

/** Default range column for splitRanges. */
export const DEFAULT_RANGE_COLUMN = 'frame';

/** A CSV row that was not used, with the reason. */
export interface UnmatchedRow {
  /** 1-based line number in the CSV. */
  line: number;
  file: string;
  reason: string;
}

/** What an import did. */
export interface ImportResult {
  /** Absolute `<out>/<name>`. */
  datasetDir: string;
  splits: string[];
  /** Images imported (per split, or each once with splitRanges). */
  database: number;
  queries: number;
  /** Per split: its database and query counts (and range-column extent with splitRanges). */
  perSplit: Record<string, SplitCounts>;
  /** Positioned images that fell in no split range (skipped; always 0 without splitRanges). */
  outsideRanges: number;
  /** How positions were obtained: given UTM, or converted from lat/lon (with the zone used). */
  positionSource: 'utm' | 'latlon';
  utmZone?: string;
  unmatchedRows: UnmatchedRow[];
  /** Absolute image paths that no CSV row gave a position to (skipped). */
  imagesWithoutPosition: string[];
  /** Human-readable warnings (zone spread, unmatched rows, ...). */
  warnings: string[];
  /** Path of the JSON report written next to `images/`. */
  reportPath: string;
}

/** Parses CSV text (comma, semicolon or tab, detected from the header; RFC 4180 quotes) into rows of fields. */
export function parseCsv(text: string): string[][] {
  const firstLine = text.slice(0, text.search(/\r?\n|$/));
  const delimiter = firstLine.includes(',') ? ',' : firstLine.includes('\t') ? '\t' : firstLine.includes(';') ? ';' : ',';
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === '') quoted = true;
    else if (c === delimiter) { row.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) { row.push(field); rows.push(row); }
  return rows;
}

const AUTO_COLUMNS: Record<keyof ImportColumns, string[]> = {
  file: ['file', 'filename', 'file_name', 'path', 'image', 'image_path', 'img', 'name'],
  east: ['utm_east', 'east', 'easting', 'utm_e', 'x'],
  north: ['utm_north', 'north', 'northing', 'utm_n', 'y'],
  lat: ['lat', 'latitude'],
  lon: ['lon', 'lng', 'long', 'longitude'],
};

/** Finds each needed column's index; explicit names must exist, auto names are tried in order. */
function findColumns(header: string[], csv: string, given: ImportColumns): Partial<Record<keyof ImportColumns, number>> {
  const norm = header.map((h) => h.trim().replace(/^\uFEFF/, '').toLowerCase());
  const out: Partial<Record<keyof ImportColumns, number>> = {};
  for (const key of Object.keys(AUTO_COLUMNS) as (keyof ImportColumns)[]) {
    const explicit = given[key];
    if (explicit !== undefined) {
      const i = norm.indexOf(explicit.trim().toLowerCase());
      if (i < 0) throw new Error(`${csv}: column "${explicit}" (--${key}-column) not in the header [${header.join(', ')}]`);
      out[key] = i;
    } else {
      const i = AUTO_COLUMNS[key].map((n) => norm.indexOf(n)).find((j) => j >= 0);
      if (i !== undefined) out[key] = i;
    }
  }
  if (out.file === undefined) throw new Error(`${csv}: no file column (tried ${AUTO_COLUMNS.file.join(', ')}; set --file-column) in header [${header.join(', ')}]`);
  const utm = out.east !== undefined && out.north !== undefined;
  const ll = out.lat !== undefined && out.lon !== undefined;
  if (!utm && !ll) {
    throw new Error(`${csv}: needs utm_east + utm_north or lat + lon columns (set --east-column/--north-column or --lat-column/--lon-column); header is [${header.join(', ')}]`);
  }
  return out;
}

const NUMBER = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

interface Row { line: number; file: string; east?: number; north?: number; lat?: number; lon?: number; range?: number }

/**
 * Reads the CSV rows, collecting per-row problems (bad numbers, empty file) instead of failing on the first.
 * A bad range value is an error, not a skip: silently dropping images would shift the splits.
 */
function readRows(text: string, csv: string, columns: ImportColumns, rangeColumn: string | undefined, unmatched: UnmatchedRow[]): { rows: Row[]; source: 'utm' | 'latlon'; hasLatLon: boolean } {
  const table = parseCsv(text);
  if (table.length === 0) throw new Error(`${csv}: empty CSV (expected a header row)`);
  const cols = findColumns(table[0], csv, columns);
  let rangeIndex = -1;
  if (rangeColumn !== undefined) {
    rangeIndex = table[0].map((h) => h.trim().replace(/^\uFEFF/, '').toLowerCase()).indexOf(rangeColumn.trim().toLowerCase());
    if (rangeIndex < 0) throw new Error(`${csv}: no column "${rangeColumn}" (--range-column, used by --split-ranges) in the header [${table[0].join(', ')}]`);
  }
  const badRange: string[] = [];
  const source = cols.east !== undefined && cols.north !== undefined ? 'utm' : 'latlon';
  const hasLatLon = cols.lat !== undefined && cols.lon !== undefined;
  const rows: Row[] = [];
  for (let r = 1; r < table.length; r++) {
    const cells = table[r];
    if (cells.length === 1 && cells[0].trim() === '') continue; // blank line
    const line = r + 1;
    const file = (cells[cols.file!] ?? '').trim();
    if (file === '') { unmatched.push({ line, file, reason: 'empty file column' }); continue; }
    const row: Row = { line, file };
    let bad = '';
    for (const key of ['east', 'north', 'lat', 'lon'] as const) {
      const i = cols[key];
      if (i === undefined) continue;
      const cell = cells[i] ?? '';
      const needed = source === 'utm' ? key === 'east' || key === 'north' : key === 'lat' || key === 'lon';
      if (!NUMBER.test(cell)) {
        if (needed) bad ||= `${key} "${cell}" is not a number`;
        continue;
      }
      row[key] = Number(cell);
    }
    if (bad) { unmatched.push({ line, file, reason: bad }); continue; }
    if (rangeIndex >= 0) {
      const cell = cells[rangeIndex] ?? '';
      if (!NUMBER.test(cell)) { badRange.push(`${csv} line ${line} (${file}): ${rangeColumn} "${cell}" is not a number`); continue; }
      row.range = Number(cell);
    }
    rows.push(row);
  }
  if (badRange.length > 0) throw new DatasetError(`--range-column ${rangeColumn}: values that are not numbers`, badRange);
  return { rows, source, hasLatLon };
}

/** A path with forward slashes and no leading "./", for matching CSV entries. */
function normalise(p: string): string {
  return p.replace(/\\/g, '/').replace(/^(\.\/)+/, '');
}

/** An image found on disk; `rel` is relative to its folder, `prefix` goes before its note (several query folders). */
interface Image { abs: string; part: 'database' | 'queries'; rel: string; prefix: string }

/** Matches CSV rows to images: by path relative to the CSV, then relative to its image folder, then by unique path ending (base name, parent/base name, ...). */
function matchRows(rows: Row[], images: Image[], csvDir: string, unmatched: UnmatchedRow[]): Map<Image, Row> {
  const byAbs = new Map<string, Image>();
  const byRel = new Map<string, Image[]>();
  const bySuffix = new Map<string, Image[]>();
  const push = (m: Map<string, Image[]>, k: string, v: Image) => { const a = m.get(k); if (a) a.push(v); else m.set(k, [v]); };
  for (const im of images) {
    byAbs.set(im.abs, im);
    push(byRel, im.rel, im);
    const parts = normalise(im.abs).split('/').filter((x) => x !== '');
    for (let k = 1; k <= parts.length; k++) push(bySuffix, parts.slice(parts.length - k).join('/'), im);
  }
  const matched = new Map<Image, Row>();
  for (const row of rows) {
    const f = normalise(row.file);
    let candidates: Image[] = [];
    const abs = byAbs.get(resolve(csvDir, f));
    if (abs) candidates = [abs];
    else if (byRel.get(f)?.length === 1) candidates = byRel.get(f)!;
    else candidates = bySuffix.get(f.split('/').filter((x) => x !== '' && x !== '.').join('/')) ?? [];
    if (candidates.length === 0) { unmatched.push({ line: row.line, file: row.file, reason: 'no such image in the database or queries folder' }); continue; }
    if (candidates.length > 1) {
      unmatched.push({ line: row.line, file: row.file, reason: `ambiguous: matches ${candidates.map((c) => c.abs).join(' and ')} (give the path relative to the CSV)` });
      continue;
    }
    const im = candidates[0];
    const prev = matched.get(im);
    if (prev) { unmatched.push({ line: row.line, file: row.file, reason: `second row for ${im.abs} (first at line ${prev.line}); ignored` }); continue; }
    matched.set(im, row);
  }
  return matched;
}

/** Parses "33W" / "33" into a zone number and optional letter. */
function parseZone(zone: string): { zoneNumber: number; zoneLetter?: string } {
  const m = /^\s*(\d{1,2})\s*([C-HJ-NP-Xc-hj-np-x])?\s*$/.exec(zone);
  if (!m || Number(m[1]) < 1 || Number(m[1]) > 60) throw new Error(`UTM zone "${zone}" must look like 33W or 33 (number 1..60, letter C..X without I, O)`);
  return { zoneNumber: Number(m[1]), zoneLetter: m[2]?.toUpperCase() };
}

/** Folder-safe note from an image's path relative to its folder (keeps names unique and traceable). */
function noteFor(rel: string, prefix = ''): string {
  const stem = rel.slice(0, rel.length - extname(rel).length);
  return (prefix + stem).split(/[\\/]/).join('__').replace(/@/g, '_');
}

async function nonEmptyDir(p: string): Promise<boolean> {
  try {
    return (await readdir(p)).length > 0;
  } catch {
    return false;
  }
}

/** The real path of `p`, or of its nearest existing ancestor joined with the rest (p may not exist yet). */
async function realPathOfNearest(p: string): Promise<string> {
  try {
    return await realpath(p);
  } catch {
    const parent = dirname(p);
    return parent === p ? p : join(await realPathOfNearest(parent), basename(p));
  }
}

/**
 * Refuses to replace folders holding anything vgl import did not make: every entry must be a link,
 * or a file the dataset's import-report.json lists (a copy it made).
 */
async function checkMadeByImport(datasetDir: string, folders: string[]): Promise<void> {
  let listed = new Set<string>();
  try {
    const report = JSON.parse(await readFile(join(datasetDir, 'import-report.json'), 'utf8')) as { files?: { name?: unknown }[] };
    listed = new Set((report.files ?? []).map((f) => String(f.name)));
  } catch { /* no report: only links may go */ }
  const foreign: string[] = [];
  for (const d of folders) {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      if (entry.isSymbolicLink() || (entry.isFile() && listed.has(entry.name))) continue;
      foreign.push(join(d, entry.name));
    }
  }
  if (foreign.length > 0) {
    throw new Error(`--overwrite refused: ${foreign.length} entries were not made by vgl import (e.g. ${foreign.slice(0, 3).join(', ')}); ` +
      'vgl deletes only the links and copies it made: move those files elsewhere first');
  }
}

async function requireDir(p: string, flag: string): Promise<string> {
  const abs = resolve(p);
  let ok = false;
  try { ok = (await stat(abs)).isDirectory(); } catch { /* reported below */ }
  if (!ok) throw new Error(`${flag} ${p}: not a folder`);
  return abs;
}


/** A dataset or split name: a plain folder name. */
const isFolderName = (s: string) => /^[A-Za-z0-9._-]+$/.test(s) && s !== '.' && s !== '..';
const RANGE_ENTRY = /^\s*([A-Za-z0-9._-]+)\s*:\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*-\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*$/;

/** "train:100-139" style text of a range, for messages and reports. */
export function formatSplitRange(r: SplitRange): string {
  return `${r.split}:${r.min}-${r.max}`;
}

/** Parses "train:100-139,val:144-153,test:158-199" (inclusive bounds) and checks it; `flag` names the source in errors. */
export function parseSplitRanges(text: string, flag = '--split-ranges'): SplitRange[] {
  const entries = text.split(',').filter((e) => e.trim() !== '');
  if (entries.length === 0) throw new Error(`${flag} "${text}": no ranges (expected e.g. train:100-139,val:144-153,test:158-199)`);
  const ranges = entries.map((e) => {
    const m = RANGE_ENTRY.exec(e);
    if (!m) throw new Error(`${flag} "${text}": "${e.trim()}" is not split:from-to (e.g. train:100-139)`);
    return { split: m[1], min: Number(m[2]), max: Number(m[3]) };
  });
  checkSplitRanges(ranges, flag);
  return ranges;
}

/** Refuses bad split names, reversed or non-finite bounds and overlapping ranges (naming both). */
export function checkSplitRanges(ranges: readonly SplitRange[], flag = '--split-ranges'): void {
  if (ranges.length === 0) throw new Error(`${flag}: no ranges given`);
  for (const r of ranges) {
    if (!isFolderName(r.split)) throw new Error(`${flag} ${formatSplitRange(r)}: split name "${r.split}" must use only letters, digits, ".", "_" and "-"`);
    if (!Number.isFinite(r.min) || !Number.isFinite(r.max)) throw new Error(`${flag} ${formatSplitRange(r)}: bounds must be finite numbers`);
    if (r.min > r.max) throw new Error(`${flag} ${formatSplitRange(r)}: from ${r.min} is above to ${r.max}`);
  }
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      const a = ranges[i], b = ranges[j];
      if (a.min <= b.max && b.min <= a.max) {
        throw new Error(`${flag}: ranges ${formatSplitRange(a)} and ${formatSplitRange(b)} overlap (${Math.max(a.min, b.min)}-${Math.min(a.max, b.max)}); each value must belong to at most one split`);
      }
    }
  }
}

/** Distinct split names of the ranges, in order of first appearance (a split may own several ranges). */
function rangeSplits(ranges: readonly SplitRange[]): string[] {
  return [...new Set(ranges.map((r) => r.split))];
}

interface Placed { abs: string; part: 'database' | 'queries'; split: string; east: number; north: number; range?: number }

/**
 * Every pair of images of different splits within `gap` metres, closest first, as messages.
 * A k-d tree radius search per image: linear in the images times their few neighbours.
 */
function crossSplitLeaks(placed: readonly Placed[], gap: number, rangeColumn: string): string[] {
  const positions = new Float64Array(placed.length * 2);
  placed.forEach((p, i) => { positions[2 * i] = p.east; positions[2 * i + 1] = p.north; });
  const index = new PositionIndex(positions);
  const pairs: { i: number; j: number; d: number }[] = [];
  for (let i = 0; i < placed.length; i++) {
    const { indices, distances } = index.withinWithDistances(placed[i].east, placed[i].north, gap);
    for (let k = 0; k < indices.length; k++) {
      const j = indices[k];
      if (j > i && placed[j].split !== placed[i].split) pairs.push({ i, j, d: distances[k] });
    }
  }
  pairs.sort((a, b) => a.d - b.d || a.i - b.i || a.j - b.j);
  const describe = (p: Placed) => `${p.abs} (${p.split} ${p.part}, ${rangeColumn} ${p.range})`;
  return pairs.map(({ i, j, d }) => `${describe(placed[i])} and ${describe(placed[j])}: ${d.toFixed(2)} m apart`);
}

/** Imports a database folder, one or more query folders and a position CSV into the datasets_vg layout; see ImportOptions. */
export async function importDataset(options: ImportOptions): Promise<ImportResult> {
  const ranges = options.splitRanges;
  if (ranges !== undefined && options.splits !== undefined) {
    throw new Error(`--split ${options.splits.join(',')} and --split-ranges ${ranges.map(formatSplitRange).join(',')} are mutually exclusive: give one`);
  }
  if (ranges !== undefined) checkSplitRanges(ranges);
  const rangeColumn = ranges !== undefined ? (options.rangeColumn ?? DEFAULT_RANGE_COLUMN) : undefined;
  const minSplitGap = options.minSplitGap ?? DEFAULT_SOFT_POSITIVE_RADIUS;
  if (!Number.isFinite(minSplitGap) || minSplitGap < 0) throw new OptionError('minSplitGap', 'must be a finite number of metres >= 0', options.minSplitGap);
  const splits = ranges !== undefined ? rangeSplits(ranges) : options.splits ?? ['test'];
  if (splits.length === 0) throw new Error('at least one split name is needed');
  for (const s of [options.name, ...splits]) {
    if (!isFolderName(s)) throw new Error(`name/split "${s}" must use only letters, digits, ".", "_" and "-"`);
  }
  const databaseDir = await requireDir(options.databaseDir, '--database');
  const queriesGiven = typeof options.queriesDir === 'string' ? [options.queriesDir] : options.queriesDir;
  if (queriesGiven.length === 0) throw new OptionError('queries', 'at least one folder is needed');
  const queriesDirs: string[] = [];
  for (const q of queriesGiven) queriesDirs.push(await requireDir(q, '--queries'));
  const inside = (a: string, b: string) => a === b || a.startsWith(b + '/');
  const folders = [{ flag: '--database', dir: databaseDir }, ...queriesDirs.map((dir) => ({ flag: '--queries', dir }))];
  for (let i = 0; i < folders.length; i++) {
    for (let j = i + 1; j < folders.length; j++) {
      const a = folders[i], b = folders[j];
      if (inside(a.dir, b.dir) || inside(b.dir, a.dir)) throw new Error(`${a.flag} ${a.dir} and ${b.flag} ${b.dir} overlap; give two separate folders`);
    }
  }
  // Never import from inside the target: --overwrite would replace the folder the originals are in.
  const datasetDirResolved = await realPathOfNearest(join(resolve(options.out), options.name));
  for (const f of folders) {
    const real = await realpath(f.dir);
    if (inside(real, datasetDirResolved) || inside(datasetDirResolved, real)) {
      throw new Error(`${f.flag} ${f.dir} overlaps the target dataset folder ${join(resolve(options.out), options.name)} (after resolving links): ` +
        'importing would replace the originals; import from a folder outside it, or into another --out/--name');
    }
  }
  // The folder name tells apart same-named queries of several folders, so it must itself be unique.
  const prefixes = queriesDirs.length > 1 ? queriesDirs.map((d) => `${basename(d)}/`) : [''];
  for (let i = 0; i < prefixes.length; i++) {
    const j = prefixes.indexOf(prefixes[i]);
    if (j !== i) throw new Error(`--queries ${queriesDirs[j]} and ${queriesDirs[i]} have the same folder name "${basename(queriesDirs[i])}", which prefixes the query notes; rename one`);
  }
  const csv = resolve(options.csv);
  let text: string;
  try { text = await readFile(csv, 'utf8'); } catch (e) { throw new OptionFileError('csv', `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, options.csv); }

  const unmatchedRows: UnmatchedRow[] = [];
  const warnings: string[] = [];
  const { rows, source, hasLatLon } = readRows(text, csv, options.columns ?? {}, rangeColumn, unmatchedRows);

  const images: Image[] = [];
  const sourceFolders = [{ part: 'database' as const, dir: databaseDir, prefix: '' }, ...queriesDirs.map((dir, i) => ({ part: 'queries' as const, dir, prefix: prefixes[i] }))];
  for (const { part, dir, prefix } of sourceFolders) {
    const found = await listImages(dir);
    if (found.length === 0) throw new Error(`--${part} ${dir}: no .jpg/.jpeg/.png images found (searched recursively)`);
    for (const abs of found) images.push({ abs, part, rel: normalise(relative(dir, abs)), prefix });
  }
  const matched = matchRows(rows, images, dirname(csv), unmatchedRows);
  const imagesWithoutPosition = images.filter((im) => !matched.has(im)).map((im) => im.abs);

  // lat/lon: one shared zone (the most common) so that all positions are metric in the same frame.
  let zoneNumber: number | undefined;
  let zoneLetter: string | undefined;
  if (options.utmZone !== undefined) ({ zoneNumber, zoneLetter } = parseZone(options.utmZone));
  if (source === 'latlon') {
    const counts = new Map<number, number>();
    for (const row of matched.values()) {
      if (row.lat! < -80 || row.lat! > 84 || row.lon! < -180 || row.lon! > 180) continue; // reported below
      const z = utmZoneNumber(row.lat!, row.lon!);
      counts.set(z, (counts.get(z) ?? 0) + 1);
    }
    const sorted = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    if (zoneNumber === undefined && sorted.length > 0) zoneNumber = sorted[0][0];
    if (sorted.length > 1) {
      warnings.push(`positions span UTM zones ${sorted.map(([z, n]) => `${z} (${n} images)`).join(', ')}; all converted in zone ${zoneNumber} so that distances stay consistent`);
    }
  }

  interface Planned { im: Image; name: string; east: number; north: number; range?: number }
  const planned: Planned[] = [];
  const badPositions: string[] = [];
  for (const im of images) {
    const row = matched.get(im);
    if (!row) continue;
    let east = row.east, north = row.north, zn = zoneNumber, zl = zoneLetter;
    if (source === 'latlon' || hasLatLon) {
      try {
        const utm = latLonToUtm(row.lat!, row.lon!, zoneNumber);
        if (source === 'latlon') { east = utm.east; north = utm.north; }
        zn = utm.zoneNumber;
        zl = utmZoneLetter(row.lat!);
      } catch (e) {
        if (source === 'latlon') { badPositions.push(`${csv} line ${row.line} (${row.file}): ${(e as Error).message}`); continue; }
      }
    }
    planned.push({
      im, east: east!, north: north!, range: row.range,
      name: formatDatasetFilename({
        east: east!, north: north!, zoneNumber: zn, zoneLetter: zl, lat: hasLatLon ? row.lat : undefined, lon: hasLatLon ? row.lon : undefined,
        note: noteFor(im.rel, im.prefix), extension: extname(im.abs).toLowerCase(),
      }),
    });
  }
  if (badPositions.length > 0) throw new DatasetError('positions that cannot be converted to UTM', badPositions);

  const describe = (): string[] => [
    ...unmatchedRows.map((u) => `${csv} line ${u.line} (${u.file}): ${u.reason}`),
    ...imagesWithoutPosition.map((p) => `${p}: no position in ${csv}`),
  ];
  if (options.strict && (unmatchedRows.length > 0 || imagesWithoutPosition.length > 0)) {
    throw new DatasetError(`import refused (--strict): ${unmatchedRows.length} unmatched CSV rows, ${imagesWithoutPosition.length} images without a position`, describe());
  }
  const counts = { database: 0, queries: 0 };
  for (const p of planned) counts[p.im.part]++;
  for (const part of ['database', 'queries'] as const) {
    if (counts[part] === 0) throw new DatasetError(`no ${part} image got a position`, describe());
  }
  if (unmatchedRows.length > 0) warnings.push(formatProblems(`${unmatchedRows.length} CSV rows matched no image (skipped)`, unmatchedRows.map((u) => `line ${u.line} (${u.file}): ${u.reason}`)));
  if (imagesWithoutPosition.length > 0) warnings.push(formatProblems(`${imagesWithoutPosition.length} images have no position in the CSV (skipped)`, imagesWithoutPosition));

  // Two images at the same position with the same note cannot happen (notes follow unique relative
  // paths), but '@' -> '_' could collide: check before writing anything.
  const seen = new Map<string, string>();
  for (const p of planned) {
    const key = `${p.im.part}/${p.name}`;
    const other = seen.get(key);
    if (other) throw new Error(`${p.im.abs} and ${other} would get the same name ${p.name}; rename one of them`);
    seen.set(key, p.im.abs);
  }

  // Where each image goes: every split, or the one split whose range holds its value.
  const jobs: { split: string; p: Planned }[] = [];
  let outsideRanges = 0;
  if (ranges === undefined) {
    for (const split of splits) for (const p of planned) jobs.push({ split, p });
  } else {
    for (const p of planned) {
      const r = ranges.find((x) => p.range! >= x.min && p.range! <= x.max);
      if (r) jobs.push({ split: r.split, p });
      else outsideRanges++;
    }
  }
  const perSplit: Record<string, SplitCounts> = {};
  for (const split of splits) perSplit[split] = { database: 0, queries: 0 };
  for (const { split, p } of jobs) {
    const c = perSplit[split];
    c[p.im.part]++;
    if (p.range !== undefined) {
      c.rangeMin = Math.min(c.rangeMin ?? Infinity, p.range);
      c.rangeMax = Math.max(c.rangeMax ?? -Infinity, p.range);
    }
  }
  if (ranges !== undefined) {
    const empty: string[] = [];
    for (const split of splits) {
      for (const part of ['database', 'queries'] as const) {
        if (perSplit[split][part] === 0) empty.push(`split ${split} (${ranges.filter((r) => r.split === split).map(formatSplitRange).join(', ')}): no ${part} image has a ${rangeColumn} in range`);
      }
    }
    if (empty.length > 0) throw new DatasetError(`--split-ranges leave splits without images (a datasets_vg split needs both database and queries)`, empty);
    if (outsideRanges > 0) warnings.push(`${outsideRanges} images have a ${rangeColumn} in no split range (skipped): ${ranges.map(formatSplitRange).join(', ')}`);
    const leaks = crossSplitLeaks(jobs.map(({ split, p }) => ({ abs: p.im.abs, part: p.im.part, split, east: p.east, north: p.north, range: p.range })), minSplitGap, rangeColumn!);
    if (leaks.length > 0) {
      throw new DatasetError(`import refused: ${leaks.length} pairs of images in different splits lie within --min-split-gap ${minSplitGap} m, so a place would be in two splits; widen the gaps between the --split-ranges`, leaks);
    }
  }

  // Built in a temporary folder beside the target and swapped in at the end: a failed or killed
  // import leaves the previous dataset as it was, and only files vgl made are ever deleted.
  const datasetDir = join(resolve(options.out), options.name);
  const replaced: string[] = [];
  for (const split of splits) {
    for (const part of ['database', 'queries'] as const) {
      const d = join(datasetDir, 'images', split, part);
      if (!(await nonEmptyDir(d))) continue;
      if (!options.overwrite) throw new Error(`${d} already holds files; choose another --name/--split or pass --overwrite to replace it`);
      replaced.push(d);
    }
  }
  if (replaced.length > 0) await checkMadeByImport(datasetDir, replaced);
  await mkdir(datasetDir, { recursive: true });
  const staging = await mkdtemp(join(datasetDir, '.import-'));
  try {
    for (const split of splits) for (const part of ['database', 'queries'] as const) await mkdir(join(staging, split, part), { recursive: true });
    const mode = options.mode ?? 'symlink';
    const bar = progressBar(`import (${mode})`, jobs.length, { show: options.progress, unit: 'img' });
    await mapLimit(jobs, 16, async ({ split, p }) => {
      const target = join(staging, split, p.im.part, p.name);
      // Link to the real file so the link stays valid wherever the dataset folder is read from.
      if (mode === 'symlink') await symlink(await realpath(p.im.abs), target);
      else await copyFile(p.im.abs, target);
      bar.tick();
    });
    bar.stop();
    // Swap: the old folders (checked above: links and files of an earlier import) go, the new ones come.
    for (const split of splits) {
      for (const part of ['database', 'queries'] as const) {
        const d = join(datasetDir, 'images', split, part);
        await rm(d, { recursive: true, force: true });
        await mkdir(join(datasetDir, 'images', split), { recursive: true });
        await rename(join(staging, split, part), d);
      }
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  const mode = options.mode ?? 'symlink';

  const reportPath = join(datasetDir, 'import-report.json');
  const imported = { database: 0, queries: 0 };
  for (const c of Object.values(perSplit)) { imported.database += c.database; imported.queries += c.queries; }
  const result: ImportResult = {
    datasetDir, splits,
    // With ranges each image is imported once; without, each split holds every image.
    database: ranges === undefined ? counts.database : imported.database,
    queries: ranges === undefined ? counts.queries : imported.queries,
    perSplit, outsideRanges, positionSource: source,
    utmZone: zoneNumber !== undefined ? `${zoneNumber}${zoneLetter ?? ''}` : undefined,
    unmatchedRows, imagesWithoutPosition, warnings, reportPath,
  };
  const report = {
    ...result, mode, createdAt: new Date().toISOString(),
    ...(ranges !== undefined ? { splitRanges: ranges, rangeColumn, minSplitGap } : {}),
    sources: { database: databaseDir, queries: queriesDirs.length === 1 ? queriesDirs[0] : queriesDirs, csv },
    files: ranges === undefined
      ? planned.map((p) => ({ part: p.im.part, source: p.im.abs, name: p.name }))
      : jobs.map(({ split, p }) => ({ split, part: p.im.part, source: p.im.abs, name: p.name, [rangeColumn!]: p.range })),
  };
  await writeFileAtomic(reportPath, JSON.stringify(report, null, 2) + '\n');
  return result;
}
