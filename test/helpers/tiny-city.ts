// The training tests' shared set-up: a tiny synthetic city rendered once per test file, fresh run
// configs on it, and readers and comparisons for what runs leave (log.jsonl, checkpoint tensors).
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostTensor } from '../../src/torch/dtype.ts';
import { generateCity } from '../../src/data/synth/generate.ts';
import { TrainConfigSchema, type TrainConfig, type TrainConfigInput } from '../../src/train/config.ts';
import type { LogEntry, TrainHooks } from '../../src/train/train.ts';

export const CITY = 'tiny';

/**
 * Renders the tiny city (24/16/24 queries) before the file's tests and removes it after; `config`
 * gives a fresh output folder and a small, fast run (3 cache loops of 4 queries per epoch, 48x64
 * images) with `base` (the network) and `over` applied.
 */
export function useTinyCity(prefix: string, base: Partial<TrainConfigInput>) {
  let root = '';
  let runs = 0;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), prefix));
    await generateCity({ out: root, name: CITY, size: 'tiny', workers: 0, seed: 3, queries: { train: 24, val: 16, test: 24 } });
  });
  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });
  return {
    get root() { return root; },
    config(over: Partial<TrainConfigInput> = {}): TrainConfig {
      return TrainConfigSchema.parse({
        datasetsFolder: root, datasetName: CITY, outputFolder: join(root, `run-${runs++}`), resize: [48, 64],
        queriesPerEpoch: 12, cacheRefreshRate: 4, negSamplesNum: 20, negsNumPerQuery: 3, batchSize: 2,
        epochs: 2, patience: 5, lr: 1e-3, recallValues: [1, 5], inferBatchSize: 32, seed: 7,
        ...base, ...over,
      });
    },
  };
}

export const quiet: TrainHooks = { progress: false, log: () => {} };

export function readLog(out: string): (LogEntry & { time: string })[] {
  return readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

/** [epoch, loop, batch, loss] of every step a run logged. */
export const stepLosses = (out: string) => readLog(out).filter((e) => e.event === 'step')
  .map((e) => e.event === 'step' && [e.epoch, e.loop, e.batch, e.loss]);

export function bytesOf(t: HostTensor): Buffer {
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Every tensor bit for bit (names, dtypes, shapes and bytes). */
export function assertSameTensors(a: Map<string, HostTensor>, b: Map<string, HostTensor>, what: string): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${what}: same tensor names`);
  for (const [name, t] of a) {
    const u = b.get(name)!;
    assert.equal(u.dtype, t.dtype, `${what} ${name}: dtype`);
    assert.deepEqual(u.shape, t.shape, `${what} ${name}: shape`);
    assert.ok(bytesOf(t).equals(bytesOf(u)), `${what} ${name}: values differ`);
  }
}

/** How many tensors differ in any byte. */
export function countDiffering(a: Map<string, HostTensor>, b: Map<string, HostTensor>): number {
  let n = 0;
  for (const [name, t] of a) if (!bytesOf(t).equals(bytesOf(b.get(name)!))) n++;
  return n;
}
