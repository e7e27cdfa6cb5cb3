// VGL_NUM_THREADS=auto: training steps follow the machine's load. Each step is timed by the adapter,
// which now and then tries another intra-op thread count and keeps the faster; a change is logged.
import * as torch from '../torch/index.ts';

/** One thread-count change: from, to, and the two step times (ms) that decided it. */
export interface ThreadChange {
  from: number;
  to: number;
  stepMs: [number, number];
}

/** Runs one step, through the adapter when there is one; reports a change of thread count it made. */
export async function adaptiveStep<T>(threads: torch.ThreadAdapter | null, step: () => T, onChange: (c: ThreadChange) => Promise<void>): Promise<T> {
  if (threads === null) return step();
  const before = threads.changes.length;
  const value = threads.step(step);
  if (threads.changes.length > before) {
    const c = threads.changes.at(-1)!;
    await onChange({ from: c.from, to: c.to, stepMs: c.ms.map((m) => Math.round(m)) as [number, number] });
  }
  return value;
}
