// `vgl localize photo.jpg [more...] --index DIR`: where each photo was taken — its top matches in the
// index with descriptor distances and positions, an estimated position and a confidence.
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { z } from 'zod';
import { parseFlags, UsageError } from '../flags.ts';
import type { Localization } from '../../serve/localizer.ts';

export const LocalizeFlags = z.object({
  index: z.string({ error: 'required: an index folder (vgl index build)' }).min(1),
  top: z.coerce.number().int().min(1).max(1000).default(10),
  radius: z.coerce.number().finite().nonnegative().default(25),
  json: z.boolean().default(false),
});
export type LocalizeFlags = z.output<typeof LocalizeFlags>;

export interface PhotoLocalization extends Localization {
  photo: string;
}

/** Localizes photos with an index; the model is loaded once. */
export async function runLocalize(photos: readonly string[], flags: LocalizeFlags): Promise<PhotoLocalization[]> {
  if (photos.length === 0) throw new UsageError('give at least one photo: vgl localize photo.jpg --index DIR');
  const missing = photos.filter((p) => !existsSync(p));
  if (missing.length > 0) throw new UsageError(`${missing.join(', ')}: not found`);
  const { Localizer } = await import('../../serve/localizer.ts');
  const loc = await Localizer.open(flags.index, { radius: flags.radius, log: (s) => console.error(s) });
  try {
    const results = await loc.localize(photos, flags.top);
    return results.map((r, i) => ({ photo: photos[i], ...r }));
  } finally {
    await loc.close();
  }
}

function print(r: PhotoLocalization): void {
  const e = r.estimate;
  console.log(e === null ? `${r.photo}: no match` :
    `${r.photo}: ${e.east.toFixed(1)} E, ${e.north.toFixed(1)} N (confidence ${(100 * e.confidence).toFixed(0)}%, ${e.agreeing.length} of ${r.matches.length} matches within ${e.radius} m, spread ${e.spreadMetres.toFixed(1)} m)`);
  console.log(`  ${'rank'.padStart(4)} ${'distance'.padStart(9)} ${'east'.padStart(11)} ${'north'.padStart(12)}  file`);
  const agree = new Set(e?.agreeing ?? []);
  for (const m of r.matches) {
    console.log(`  ${String(m.rank + 1).padStart(4)} ${m.distance.toFixed(4).padStart(9)} ${m.east.toFixed(1).padStart(11)} ${m.north.toFixed(1).padStart(12)}${agree.has(m.id) ? ' *' : '  '} ${m.file}`);
  }
}

export function register(program: Command): void {
  program.command('localize')
    .description('where was this photo taken: top matches in an index (vgl index build), an estimated position and a confidence')
    .argument('<photos...>', 'photos (JPEG, PNG)')
    .option('--index <dir>', 'the index folder')
    .option('--top <n>', 'matches per photo (10)')
    .option('--radius <m>', 'matches within this many metres of the best one vote for the position (25)')
    .option('--json', 'print the results as JSON')
    .action(async (photos: string[], raw: Record<string, unknown>) => {
      const flags = parseFlags(LocalizeFlags, raw);
      const results = await runLocalize(photos, flags);
      if (flags.json) console.log(JSON.stringify(results, null, 2));
      else for (const r of results) print(r);
    });
}
