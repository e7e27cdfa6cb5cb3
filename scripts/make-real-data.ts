// Writes the compact copies of the real photographs that the repository embeds (assets/real):
// Gardens Point Walking frames 100-199 shrunk to 480x270 JPEG, Nordland 64x32 frames as JPEG, each with a
// positions.csv (plus a frame column) checked against the route formula, and a README with provenance.
// The split ranges in the READMEs come from src/data/real.ts, the one place they are defined.
//
//   node --import tsx scripts/make-real-data.ts [--from ../shared/data] [--out assets/real]
//
// Relative paths are taken from the repository root.

import { parseArgs } from 'node:util';
import { readFile, writeFile, mkdir, rm, readdir, stat } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp, { type Sharp } from 'sharp';
import { parseCsv, formatSplitRange } from '../src/data/importer.ts';
import { mapLimit } from '../src/util/concurrency.ts';
import { REAL_DATASETS, expectedSplitSizes, type RealDatasetDefinition } from '../src/data/real.ts';
import { DEFAULT_SOFT_POSITIVE_RADIUS } from '../src/data/positives.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** How one source is read, checked and re-encoded. */
interface Source {
  name: 'gardens_point' | 'nordland';
  /** First CSV column in the source and in the copy. */
  group: 'traverse' | 'season';
  folders: string[];
  /** Source file name -> frame number (the integer in the name). */
  pattern: RegExp;
  /** Frame numbers between consecutive images. */
  step: number;
  /** The route linearisation stated in the source README. */
  east: (frame: number) => number;
  north: number;
  outName: (frame: number) => string;
  encode: (image: Sharp) => Sharp;
  readme: () => string;
}

const SOURCES: Source[] = [
  {
    name: 'gardens_point', group: 'traverse', folders: ['day_left', 'day_right', 'night_right'],
    pattern: /^Image(\d{3})\.jpg$/, step: 1, east: (f) => 500000 + 10 * f, north: 6000000,
    outName: (f) => `Image${String(f).padStart(3, '0')}.jpg`,
    // Longest side 480 keeps 16:9 (day 960x540 and night 640x360 both become 480x270); no metadata by default.
    encode: (im) => im.resize({ width: 480, height: 480, fit: 'inside' }).jpeg({ quality: 85 }),
    readme: () => `# Gardens Point Walking, frames 100–199 (compact copy)

Real photographs of one walk through the Gardens Point campus of Queensland University of Technology
(Brisbane, Australia), filmed with a hand-held camera three times: by day keeping to the left side of the
path, by day on the right side, and at night on the right side.

## Provenance and licence

- Source: the Gardens Point Walking dataset (Glover et al.), a common visual place recognition benchmark,
  as published in the public repository sepidehhosseinzadeh/Visual-Place-Recognition (folder
  GardensPointWalking). Only frames 100–199 of each traverse are kept.
- Licence: the source we copied from states none. Credit Glover et al. when using these images, and check
  the terms of the original dataset before redistributing them outside this repository.

## Contents

- \`day_left/\`, \`day_right/\`, \`night_right/\`: \`ImageNNN.jpg\`, NNN = frame 100..199. The same frame number
  shows the same place in all three traverses.
- \`positions.csv\`: \`traverse,file,frame,utm_east,utm_north\`; \`file\` is relative to this folder.
  Positions are a linearisation of the route, not GPS: east = 500000 + 10 × frame, north = 6000000, so
  neighbouring frames are 10 m apart and the 25 m soft-positive radius accepts a frame and its two
  neighbours on each side.

## What was changed

- Resized so that the longest side is 480 pixels: 960x540 (day) and 640x360 (night) both become 480x270.
- Re-encoded as JPEG, quality 85, without metadata. File names are unchanged.
- \`positions.csv\` gained the \`frame\` column; positions are copied unchanged and were checked against the
  formula above by \`scripts/make-real-data.ts\`, which made this folder.
`,
  },
  {
    name: 'nordland', group: 'season', folders: ['summer', 'winter'],
    pattern: /^images-(\d{5})\.png$/, step: 10, east: (f) => 500000 + f, north: 7000000,
    outName: (f) => `images-${String(f).padStart(5, '0')}.jpg`,
    encode: (im) => im.jpeg({ quality: 90 }),
    readme: () => `# Nordland railway, summer and winter at 64x32 (compact copy)

Real footage from the front of a train on the Nordland line in Norway, filmed in summer and in winter
along the same track.

## Provenance and licence

- Source: the Nordland footage of NRK (the Norwegian public broadcaster), released under Creative
  Commons Attribution 3.0 (CC BY 3.0): credit NRK when using it. We took every 10th frame of the 1 fps
  sequence, already downsampled to 64x32 RGB, from the public SeqSLAM repository TimQuelch/seqslam
  (datasets/nordland_trimmed).

## Contents

- \`summer/\`, \`winter/\`: \`images-NNNNN.jpg\`, NNNNN = frame index 10..35760 in steps of 10. The same index
  shows the same place in both seasons.
- \`positions.csv\`: \`season,file,frame,utm_east,utm_north\`; \`file\` is relative to this folder.
  Positions are a linearisation of the track, not GPS: east = 500000 + frame index, north = 7000000, so
  kept frames are 10 m apart and the 25 m soft-positive radius accepts a frame and its two neighbours
  on each side (the usual Nordland tolerance).
- Many frames inside tunnels are black or nearly identical: a real nuisance, kept on purpose.

## What was changed

- Size kept (64x32); re-encoded from PNG to JPEG, quality 90, without metadata. Names end in \`.jpg\`.
- \`positions.csv\` gained the \`frame\` column; positions are copied unchanged and were checked against the
  formula above by \`scripts/make-real-data.ts\`, which made this folder.
`,
  },
];

/** The "Splits" section, rendered from the definitions in src/data/real.ts with counts from the CSV just written. */
async function splitsSection(source: Source, out: string): Promise<string> {
  const defs = REAL_DATASETS.filter((d) => d.source === source.name);
  const lines = [
    '## Splits',
    '',
    'Made by `ensureRealDatasets` in `src/data/real.ts` (or `vgl import --split-ranges` over the `frame` column):',
    'each image goes to the split whose inclusive frame range holds it. `final` is sealed: it is evaluated only',
    'for a frozen recipe (`vgl demo --split final`), so that the split that measures a recipe has not chosen it.',
    '',
    '| dataset | database | queries | split ranges | database/queries per split |',
    '|---|---|---|---|---|',
  ];
  for (const def of defs as RealDatasetDefinition[]) {
    const sizes = await expectedSplitSizes(def, out);
    lines.push(`| ${def.name} | ${def.database} | ${def.queries.join(', ')} | ${def.ranges.map(formatSplitRange).join(', ')} | `
      + `${Object.entries(sizes).map(([s, c]) => `${s} ${c.database}/${c.queries}`).join(', ')} |`);
  }
  const ranges = [...new Map(defs.flatMap((d) => d.ranges).map((r) => [formatSplitRange(r), r])).values()].sort((a, b) => a.min - b.min);
  const gaps = ranges.slice(1).map((r, i) => {
    const prev = ranges[i].max;
    return `- ${(r.min - prev) / source.step - 1} frames left out between ${prev} and ${r.min}: the closest images of the two splits are ${source.east(r.min) - source.east(prev)} m apart.`;
  });
  lines.push('',
    `Why the gaps: a place within the ${DEFAULT_SOFT_POSITIVE_RADIUS} m soft-positive radius of images in two splits would be`,
    'trained on and then tested on. The frames between the ranges keep every pair of splits farther apart than that:',
    '', ...gaps, '',
    `The importer checks this on the positions and refuses a layout that leaks (\`--min-split-gap\`, default ${DEFAULT_SOFT_POSITIVE_RADIUS} m).`, '');
  return lines.join('\n');
}

interface Entry { group: string; frame: number; east: number; north: number; src: string; out: string }

/** Reads and checks the source CSV: header, one row per image file, positions equal to the formula. */
async function readSource(source: Source, from: string): Promise<Entry[]> {
  const dir = join(from, source.name);
  const csv = join(dir, 'positions.csv');
  const table = parseCsv(await readFile(csv, 'utf8'));
  const header = [source.group, 'file', 'utm_east', 'utm_north'];
  if (table[0]?.join(',') !== header.join(',')) throw new Error(`${csv}: header is [${table[0]?.join(', ')}], expected [${header.join(', ')}]`);
  const entries: Entry[] = [];
  const seen = new Set<string>();
  table.slice(1).forEach((row, i) => {
    if (row.length === 1 && row[0] === '') return;
    const where = `${csv} line ${i + 2} (${row.join(',')})`;
    const [group, file, e, n] = row;
    const [folder, name, ...rest] = file.split('/');
    const m = source.pattern.exec(name ?? '');
    if (!source.folders.includes(folder) || !m || rest.length > 0) throw new Error(`${where}: file is not <${source.folders.join('|')}>/<${source.pattern.source}>`);
    if (group !== folder) throw new Error(`${where}: ${source.group} "${group}" differs from the folder "${folder}"`);
    if (seen.has(file)) throw new Error(`${where}: second row for ${file}`);
    seen.add(file);
    const frame = Number(m[1]);
    const east = Number(e), north = Number(n);
    if (east !== source.east(frame) || north !== source.north) {
      throw new Error(`${where}: position (${e}, ${n}) differs from the route formula (${source.east(frame)}, ${source.north}) for frame ${frame}`);
    }
    entries.push({ group, frame, east, north, src: join(dir, file), out: `${folder}/${source.outName(frame)}` });
  });
  for (const folder of source.folders) {
    const files = (await readdir(join(dir, folder))).filter((f) => source.pattern.test(f));
    const missing = files.filter((f) => !seen.has(`${folder}/${f}`));
    if (missing.length > 0) throw new Error(`${join(dir, folder)}: ${missing.length} images have no row in ${csv}, e.g. ${missing[0]}`);
  }
  const order = new Map(source.folders.map((f, i) => [f, i]));
  return entries.sort((a, b) => order.get(a.group)! - order.get(b.group)! || a.frame - b.frame);
}

async function folderSize(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? await folderSize(p) : (await stat(p)).size;
  }
  return total;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    from: { type: 'string', default: '../shared/data' }, out: { type: 'string', default: 'assets/real' },
    // After a change of split ranges: the READMEs' split sections again, the images and CSVs as they are.
    'readmes-only': { type: 'boolean', default: false },
  } });
  const from = resolve(REPO, values.from!);
  const out = resolve(REPO, values.out!);
  if (values['readmes-only']) {
    for (const source of SOURCES) await writeFile(join(out, source.name, 'README.md'), `${source.readme()}\n${await splitsSection(source, out)}`);
    console.log(`README.md rewritten in ${SOURCES.map((s) => join(out, s.name)).join(', ')}`);
    return;
  }
  sharp.concurrency(1); // the machine is shared: parallelism comes from mapLimit below
  for (const source of SOURCES) {
    const entries = await readSource(source, from);
    const dest = join(out, source.name);
    // Only the folders and files this script owns are replaced, so stale images cannot linger.
    for (const f of source.folders) await rm(join(dest, f), { recursive: true, force: true });
    for (const f of source.folders) await mkdir(join(dest, f), { recursive: true });
    const sizes = new Set<string>();
    await mapLimit(entries, 2, async (e) => {
      const info = await source.encode(sharp(e.src)).toFile(join(dest, e.out));
      sizes.add(`${e.group} ${info.width}x${info.height}`);
    });
    const csvLines = [`${source.group},file,frame,utm_east,utm_north`, ...entries.map((e) => `${e.group},${e.out},${e.frame},${e.east},${e.north}`)];
    await writeFile(join(dest, 'positions.csv'), csvLines.join('\n') + '\n');
    await writeFile(join(dest, 'README.md'), `${source.readme()}\n${await splitsSection(source, out)}`);
    const bytes = await folderSize(dest);
    console.log(`${source.name}: ${entries.length} images (${[...sizes].sort().join(', ')}), ${(bytes / 1e6).toFixed(2)} MB -> ${dest}`);
  }
  console.log(`total: ${((await folderSize(out)) / 1e6).toFixed(2)} MB in ${out}`);
}

await main();
