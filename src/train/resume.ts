// A run resumed from its own last.pth: which option changes it may take (and which would mix two
// trainings), whether a finished run is still what a config asks for, and the temp files a killed
// checkpoint write leaves.
import { existsSync, readFileSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { flagName } from '../errors.ts';
import { TrainConfigSchema, flattenConfig, withResolvedModel, type TrainConfig } from './config.ts';

/** Options a resumed run may change (applied and recorded); any other difference is refused. */
export const RESUMABLE_CHANGES: readonly string[] = ['epochs', 'patience', 'inferBatchSize', 'numWorkers', 'efficientRamTesting', 'testMethod', 'majorityWeight', 'datasetsFolder', 'worldSize'];

/**
 * Compares a run's saved config with the one it is resumed with: the changes RESUMABLE_CHANGES allows
 * are returned as "name: old -> new"; any other difference throws, listing every one of them.
 */
export function checkResumeConfig(saved: TrainConfig | undefined, now: TrainConfig, where: string): { applied: string[] } {
  if (saved === undefined) return { applied: [] }; // checkpoints written before configs were stored
  const { applied, refused } = configChanges(saved, now, RESUMABLE_CHANGES);
  if (refused.length > 0) {
    throw new Error(`${where}: this run was started with other options; resuming would mix two trainings:\n  ${refused.join('\n  ')}\n` +
      `Rerun with the run's options (see config.json), or use another --output-folder. Only ${RESUMABLE_CHANGES.map(flagName).join(', ')} may change on resume.`);
  }
  return { applied };
}

/** The differences between two configs as "flag old -> new": those among `allowed`, and the others. */
function configChanges(savedConfig: TrainConfig, nowConfig: TrainConfig, allowed: readonly string[]): { applied: string[]; refused: string[] } {
  const show = (v: unknown) => (v === undefined ? '(unset)' : JSON.stringify(v));
  const applied: string[] = [];
  const refused: string[] = [];
  const [saved, now] = [flattenConfig(savedConfig), flattenConfig(nowConfig)];
  for (const key of new Set([...Object.keys(saved), ...Object.keys(now)])) {
    if (JSON.stringify(saved[key]) === JSON.stringify(now[key])) continue;
    const change = `${flagName(key)} ${show(saved[key])} -> ${show(now[key])}`;
    (allowed.includes(key) ? applied : refused).push(change);
  }
  return { applied, refused };
}

/**
 * Options that do not change the model a finished run trained: how it was read and tested, not what it
 * learnt, and where it lives (a run folder moved or copied elsewhere holds the same training).
 */
const TRAINING_NEUTRAL: readonly string[] = ['inferBatchSize', 'numWorkers', 'efficientRamTesting', 'testMethod', 'majorityWeight', 'datasetsFolder', 'outputFolder', 'worldSize'];

/**
 * How a finished run's config.json differs from `config` in what it trains (more epochs count: the
 * finished run did not train them; the batch size for inference does not): empty when the run is
 * what `config` asks for, or when the folder has no config.json.
 */
export function trainedConfigChanges(folder: string, config: TrainConfig): string[] {
  const file = join(folder, 'config.json');
  if (!existsSync(file)) return [];
  let saved: unknown;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return [`${file} is not readable JSON (${(e as Error).message})`];
  }
  const parsed = TrainConfigSchema.safeParse(saved);
  if (!parsed.success) return [`${file} is not a valid run config: ${parsed.error.issues[0]?.message ?? ''}`];
  return configChanges(withResolvedModel(parsed.data), withResolvedModel(config), TRAINING_NEUTRAL).refused;
}

/** Temp files of checkpoint writes a killed run left behind (the checkpoints themselves are intact: writes are atomic). */
export const STALE_CHECKPOINT_TEMP = /^\.(last|best)\.pth\.\d+\.[0-9a-f]+\.tmp$/;

export async function removeStaleTempFiles(out: string, log: (s: string) => void): Promise<void> {
  const stale = (await readdir(out)).filter((f) => STALE_CHECKPOINT_TEMP.test(f));
  for (const f of stale) await rm(join(out, f), { force: true });
  if (stale.length > 0) log(`removed ${stale.length} unfinished checkpoint write(s) of an interrupted run: ${stale.slice(0, 20).join(', ')}`);
}
