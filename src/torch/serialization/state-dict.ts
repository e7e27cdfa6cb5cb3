// Finding the model's state dict inside the usual checkpoint shapes.
import type { HostTensor } from '../dtype.ts';
import type { PickleValue } from './pickle.ts';
import { isHostTensor } from './host-tensor.ts';
import { loadPth } from './pth.ts';

/** Checkpoint keys that hold the model's weights, in the order they are tried. */
export const STATE_DICT_KEYS = ['state_dict', 'model_state_dict', 'model'] as const;

function isTensorDict(v: unknown): v is Map<string, HostTensor> {
  if (!(v instanceof Map) || v.size === 0) return false;
  for (const [k, t] of v) if (typeof k !== 'string' || !isHostTensor(t)) return false;
  return true;
}

function listKeys(m: Map<unknown, unknown>): string {
  const keys = [...m.keys()].map(String);
  return keys.slice(0, 20).join(', ') + (keys.length > 20 ? `, ... (${keys.length} keys)` : '');
}

function describe(v: unknown): string {
  if (v instanceof Map) return v.size === 0 ? 'an empty dict' : `a dict with keys ${listKeys(v)}`;
  if (Array.isArray(v)) return `a ${Object.isFrozen(v) ? 'tuple' : 'list'} of ${v.length} items`;
  if (isHostTensor(v)) return 'a single tensor';
  return `a ${v === null ? 'None' : typeof v}`;
}

/**
 * The state dict in a loaded checkpoint: the value itself when it maps names to tensors, else its
 * `state_dict` / `model_state_dict` / `model` entry. A `module.` prefix on every key (saved from
 * DataParallel) is removed. `label` names the file in errors.
 */
export function findStateDict(value: PickleValue, label: string): Map<string, HostTensor> {
  let found: Map<string, HostTensor> | undefined;
  if (isTensorDict(value)) found = value;
  else if (value instanceof Map) {
    for (const key of STATE_DICT_KEYS) {
      const inner = value.get(key);
      if (isTensorDict(inner)) { found = inner; break; }
    }
  }
  if (!found) {
    let detail = describe(value);
    if (value instanceof Map) {
      const near = STATE_DICT_KEYS.filter((k) => value.has(k)).map((k) => `'${k}' is ${describe(value.get(k))}`);
      if (near.length > 0) detail += `; ${near.join('; ')}`;
    }
    throw new Error(`${label}: no state dict found (a dict of name → tensor at the top level or under `
      + `${STATE_DICT_KEYS.map((k) => `'${k}'`).join(', ')}); the file holds ${detail}`);
  }
  const keys = [...found.keys()];
  if (keys.every((k) => k.startsWith('module.'))) {
    return new Map(keys.map((k) => [k.slice('module.'.length), found.get(k)!]));
  }
  return found;
}

/**
 * Reads a `.pth` file and returns its state dict (see `findStateDict`). To copy the tensors into a
 * Module by name, hand the result to `loadStateDict` in src/torch/state-dict.ts.
 */
export async function readStateDict(path: string): Promise<Map<string, HostTensor>> {
  return findStateDict(await loadPth(path), path);
}

