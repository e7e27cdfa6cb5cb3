// Shared by the benchmarks: median timing, and running the Debian PyTorch reference side by side.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export function medianMs(fn: () => void, iters: number, warmup = 3): number {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

export const REFERENCE_PYTHON = process.env.VGL_REFERENCE_PYTHON ?? '/usr/bin/python3';

/** Runs a reference script with Debian's python3-torch and parses the JSON it prints. */
export function runReference<T>(script: string, args: string[]): T {
  if (!existsSync(REFERENCE_PYTHON)) {
    throw new Error(`benchmark reference: ${REFERENCE_PYTHON} not found (apt-get install python3-torch, or set VGL_REFERENCE_PYTHON)`);
  }
  const r = spawnSync(REFERENCE_PYTHON, [script, ...args], { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`benchmark reference ${script} failed (is python3-torch installed? apt-get install python3-torch):\n${r.stderr}`);
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

export const ratio = (ours: number, reference: number): number => Math.round((ours / reference) * 1000) / 1000;

/**
 * The fastest value of each timing over several rounds. The benchmarks alternate reference and vgl in
 * rounds and keep each side's best median: on a shared 2-core machine, noise only ever adds time.
 */
export function bestOf<T extends Record<string, number | string>>(rounds: readonly T[]): T {
  const out = { ...rounds[0] };
  for (const r of rounds.slice(1)) {
    for (const [k, v] of Object.entries(r)) {
      if (typeof v === 'number' && v < (out[k] as number)) (out as Record<string, unknown>)[k] = v;
    }
  }
  return out;
}

/**
 * Runs fn while another process keeps one core busy (a spinning node), as on a user's machine that is
 * never idle; the load is started before fn and stopped after it.
 */
export function withBusyCore<T>(fn: () => T): T {
  const hog = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300); // let it start and take its core
    return fn();
  } finally {
    hog.kill('SIGKILL');
  }
}
