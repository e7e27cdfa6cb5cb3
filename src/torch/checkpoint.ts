// vgl checkpoints: model weights, optimizer state and run metadata in one `.pth` file, written
// atomically (temp file + rename) so a killed run never leaves a half-written checkpoint.
// The file is a plain torch.save archive: in Python, torch.load(path)['state_dict'] gives the model.
import { savePth, loadPth, findStateDict, isHostTensor, type SaveValue } from './serialization/index.ts';
import type { PickleValue } from './serialization/index.ts';
import type { HostTensor } from './dtype.ts';
import type { Module } from './nn/module.ts';
import type { Optimizer, OptimizerState } from './optim/optimizer.ts';
import { loadStateDict, type LoadReport } from './state-dict.ts';

export interface Checkpoint<M> {
  stateDict: Map<string, HostTensor>;
  optimizer: OptimizerState | null;
  meta: M;
}

function optimizerToPickle(s: OptimizerState): SaveValue {
  return new Map<string, SaveValue>([
    ['kind', s.kind],
    ['groups', s.groups.map((g) => new Map<string, SaveValue>([['options', new Map(Object.entries(g.options))], ['size', BigInt(g.size)]]))],
    ['state', s.state.map((p) => new Map<string, SaveValue>([['step', BigInt(p.step)], ['tensors', new Map(Object.entries(p.tensors))]]))],
  ]);
}

function num(v: PickleValue | undefined): number {
  return typeof v === 'bigint' ? Number(v) : (v as number);
}

function optimizerFromPickle(v: PickleValue, label: string): OptimizerState {
  const m = v as Map<string, PickleValue>;
  if (!(m instanceof Map) || typeof m.get('kind') !== 'string') throw new Error(`${label}: malformed optimizer state`);
  return {
    kind: m.get('kind') as string,
    groups: (m.get('groups') as Map<string, PickleValue>[]).map((g) => ({
      options: Object.fromEntries([...(g.get('options') as Map<string, PickleValue>)].map(([k, x]) => [k, typeof x === 'boolean' ? x : num(x)])),
      size: num(g.get('size')),
    })),
    state: (m.get('state') as Map<string, PickleValue>[]).map((p) => {
      const tensors = p.get('tensors') as Map<string, PickleValue>;
      const out: Record<string, HostTensor> = {};
      for (const [k, t] of tensors) {
        if (!isHostTensor(t)) throw new Error(`${label}: optimizer state '${k}' is not a tensor`);
        out[k] = t;
      }
      return { step: num(p.get('step')), tensors: out };
    }),
  };
}

/** Writes model (+ optimizer) + JSON metadata to path atomically. */
export async function saveCheckpoint(path: string, model: Module, optimizer: Optimizer<object> | null, meta: unknown): Promise<void> {
  const stateDict = new Map<string, SaveValue>([...model.stateDict()].map(([k, t]) => [k, t.toHost()]));
  const value = new Map<string, SaveValue>([
    ['format', 'vgl-checkpoint-1'],
    ['state_dict', stateDict],
    ['meta_json', JSON.stringify(meta)],
  ]);
  if (optimizer) value.set('optimizer', optimizerToPickle(optimizer.stateDict()));
  await savePth(path, value);
}

export async function loadCheckpoint<M = unknown>(path: string): Promise<Checkpoint<M>> {
  const value = await loadPth(path);
  const stateDict = findStateDict(value, path);
  let optimizer: OptimizerState | null = null;
  let meta = null as M;
  if (value instanceof Map) {
    if (value.has('optimizer')) optimizer = optimizerFromPickle(value.get('optimizer')!, path);
    const json = value.get('meta_json');
    if (typeof json === 'string') {
      try {
        meta = JSON.parse(json) as M;
      } catch (e) {
        throw new Error(`${path}: checkpoint metadata is not valid JSON (${(e as Error).message})`);
      }
    }
  }
  return { stateDict, optimizer, meta };
}

/** Loads weights from a `.pth` file (a state dict or a checkpoint holding one) into model by name. */
export async function loadWeights(model: Module, path: string, strict = true): Promise<LoadReport> {
  const { stateDict } = await loadCheckpoint(path);
  return loadStateDict(model, stateDict, { strict, source: path });
}
