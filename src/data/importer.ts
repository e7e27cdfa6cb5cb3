// Turns a user's folders of images plus a CSV of positions into the datasets_vg layout:
// <out>/<name>/images/<split>/{database,queries}/@east@north@...@note@.<ext>, as symlinks or copies.
// Positions come as UTM east/north or as WGS84 lat/lon (converted to one shared UTM zone).
import { readFile, mkdir, symlink, copyFile, rm, readdir, realpath, writeFile, stat } from 'node:fs/promises';
import { join, resolve, dirname, relative, basename, extname } from 'node:path';
import { progressBar } from './progress.ts';
import { formatDatasetFilename } from './filename.ts';
import { latLonToUtm, utmZoneNumber, utmZoneLetter } from './geo.ts';
import { listImages, formatProblems, DatasetError, mapLimit } from './dataset.ts';

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
  /** Folder of query images (searched recursively). */
  queriesDir: string;
  /** CSV with a header row: a file column plus utm_east/utm_north or lat/lon columns. */
  csv: string;
  /** Datasets root to write into; the dataset lands in `<out>/<name>/images/<split>/`. */
  out: string;
  name: string;
  /** Split names that each receive every image (default ["test"]). */
  splits?: string[];
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
  database: number;
  queries: number;
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

interface Row { line: number; file: string; east?: number; north?: number; lat?: number; lon?: number }

/** Reads the CSV rows, collecting per-row problems (bad numbers, empty file) instead of failing on the first. */
function readRows(text: string, csv: string, columns: ImportColumns, unmatched: UnmatchedRow[]): { rows: Row[]; source: 'utm' | 'latlon'; hasLatLon: boolean } {
  const table = parseCsv(text);
  if (table.length === 0) throw new Error(`${csv}: empty CSV (expected a header row)`);
  const cols = findColumns(table[0], csv, columns);
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
    rows.push(row);
  }
  return { rows, source, hasLatLon };
}

/** A path with forward slashes and no leading "./", for matching CSV entries. */
function normalise(p: string): string {
  return p.replace(/\\/g, '/').replace(/^(\.\/)+/, '');
}

interface Image { abs: string; part: 'database' | 'queries'; rel: string }

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
function noteFor(rel: string): string {
  const stem = rel.slice(0, rel.length - extname(rel).length);
  return stem.split(/[\\/]/).join('__').replace(/@/g, '_');
}

async function nonEmptyDir(p: string): Promise<boolean> {
  try {
    return (await readdir(p)).length > 0;
  } catch {
    return false;
  }
}

async function requireDir(p: string, flag: string): Promise<string> {
  const abs = resolve(p);
  let ok = false;
  try { ok = (await stat(abs)).isDirectory(); } catch { /* reported below */ }
  if (!ok) throw new Error(`${flag} ${p}: not a folder`);
  return abs;
}

/** Imports two image folders and a position CSV into the datasets_vg layout; see ImportOptions. */
export async function importDataset(options: ImportOptions): Promise<ImportResult> {
  const splits = options.splits ?? ['test'];
  if (splits.length === 0) throw new Error('at least one split name is needed');
  for (const s of [options.name, ...splits]) {
    if (!/^[A-Za-z0-9._-]+$/.test(s) || s === '.' || s === '..') throw new Error(`name/split "${s}" must use only letters, digits, ".", "_" and "-"`);
  }
  const databaseDir = await requireDir(options.databaseDir, '--database');
  const queriesDir = await requireDir(options.queriesDir, '--queries');
  const inside = (a: string, b: string) => a === b || a.startsWith(b + '/');
  if (inside(databaseDir, queriesDir) || inside(queriesDir, databaseDir)) {
    throw new Error(`--database ${databaseDir} and --queries ${queriesDir} overlap; give two separate folders`);
  }
  const csv = resolve(options.csv);
  let text: string;
  try { text = await readFile(csv, 'utf8'); } catch (e) { throw new Error(`--csv ${options.csv}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); }

  const unmatchedRows: UnmatchedRow[] = [];
  const warnings: string[] = [];
  const { rows, source, hasLatLon } = readRows(text, csv, options.columns ?? {}, unmatchedRows);

  const images: Image[] = [];
  for (const [part, dir] of [['database', databaseDir], ['queries', queriesDir]] as const) {
    const found = await listImages(dir);
    if (found.length === 0) throw new Error(`--${part} ${dir}: no .jpg/.jpeg/.png images found (searched recursively)`);
    for (const abs of found) images.push({ abs, part, rel: normalise(relative(dir, abs)) });
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

  interface Planned { im: Image; name: string }
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
      im,
      name: formatDatasetFilename({
        east: east!, north: north!, zoneNumber: zn, zoneLetter: zl, lat: hasLatLon ? row.lat : undefined, lon: hasLatLon ? row.lon : undefined,
        note: noteFor(im.rel), extension: extname(im.abs).toLowerCase(),
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

  const datasetDir = join(resolve(options.out), options.name);
  for (const split of splits) {
    for (const part of ['database', 'queries'] as const) {
      const d = join(datasetDir, 'images', split, part);
      if (await nonEmptyDir(d)) {
        if (!options.overwrite) throw new Error(`${d} already holds files; choose another --name/--split or pass --overwrite to replace it`);
        await rm(d, { recursive: true, force: true });
      }
      await mkdir(d, { recursive: true });
    }
  }

  const mode = options.mode ?? 'symlink';
  const total = planned.length * splits.length;
  const bar = progressBar(`import (${mode})`, total, { show: options.progress, unit: 'img' });
  const jobs = splits.flatMap((split) => planned.map((p) => ({ split, p })));
  await mapLimit(jobs, 16, async ({ split, p }) => {
    const target = join(datasetDir, 'images', split, p.im.part, p.name);
    // Link to the real file so the link stays valid wherever the dataset folder is read from.
    if (mode === 'symlink') await symlink(await realpath(p.im.abs), target);
    else await copyFile(p.im.abs, target);
    bar.tick();
  });
  bar.stop();

  const reportPath = join(datasetDir, 'import-report.json');
  const result: ImportResult = {
    datasetDir, splits, database: counts.database, queries: counts.queries, positionSource: source,
    utmZone: zoneNumber !== undefined ? `${zoneNumber}${zoneLetter ?? ''}` : undefined,
    unmatchedRows, imagesWithoutPosition, warnings, reportPath,
  };
  const report = {
    ...result, mode, createdAt: new Date().toISOString(),
    sources: { database: databaseDir, queries: queriesDir, csv },
    files: planned.map((p) => ({ part: p.im.part, source: p.im.abs, name: p.name })),
  };
  await writeFile(reportPath, JSON.stringify(report, null, 2) + '\n');
  return result;
}
