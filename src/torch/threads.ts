// Thread counts that follow the machine's load. On a machine where other work holds cores, fewer
// intra-op threads are faster: a 2-thread MobileNetV2 step took 670 ms with one core busy, a 1-thread
// step 480 ms (idle: 2 threads 360 ms, 1 thread 510 ms). The adapter times the steps it runs and, now
// and then, tries another count for a few steps, keeping whichever was faster.
//
// Opt-in (VGL_NUM_THREADS=auto): the thread count changes how some reductions are split, so results
// then depend on the load, and a resumed run is no longer bit-identical to an uninterrupted one.
import { availableParallelism } from 'node:os';
import { getNumThreads, setNumThreads } from './factory.ts';

export interface ThreadAdapterOptions {
  /** Thread counts to choose from (default: all cores, half of them, one). */
  candidates?: number[];
  /** Steps between two trials of another count. */
  period?: number;
  /** Steps per trial; their median is compared with the median of as many steps just before. */
  trial?: number;
  /** Another count must be this much faster to be kept (hysteresis against noise). */
  margin?: number;
  setThreads?: (n: number) => void;
  now?: () => number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

export class ThreadAdapter {
  readonly candidates: number[];
  #current: number;
  #period: number;
  #trial: number;
  #margin: number;
  #set: (n: number) => void;
  #now: () => number;
  /** Recent step times at the current count, and those of a running trial. */
  #recent: number[] = [];
  #trialOf: number | null = null;
  #trialTimes: number[] = [];
  #sinceTrial = 0;
  #next = 0;
  /** Every change of count, for logs. */
  readonly changes: { step: number; from: number; to: number; ms: [number, number] }[] = [];
  #steps = 0;

  constructor(o: ThreadAdapterOptions = {}) {
    const max = availableParallelism();
    this.candidates = [...new Set(o.candidates ?? [max, Math.ceil(max / 2), 1])].filter((n) => n >= 1).sort((a, b) => b - a);
    this.#set = o.setThreads ?? setNumThreads;
    this.#now = o.now ?? (() => performance.now());
    this.#period = o.period ?? 40;
    this.#trial = o.trial ?? 3;
    this.#margin = o.margin ?? 0.1;
    this.#current = o.setThreads ? this.candidates[0]! : getNumThreads();
    if (!this.candidates.includes(this.#current)) this.candidates.unshift(this.#current);
  }

  /** The count chosen so far (a trial of another count may be running). */
  get threads(): number {
    return this.#current;
  }

  /** Runs one step (synchronous work) at the chosen count and times it. */
  step<T>(fn: () => T): T {
    if (this.#trialOf === null && this.#sinceTrial >= this.#period && this.#recent.length >= this.#trial && this.candidates.length > 1) {
      const others = this.candidates.filter((n) => n !== this.#current);
      this.#trialOf = others[this.#next++ % others.length]!;
      this.#trialTimes = [];
      this.#set(this.#trialOf);
    }
    const t = this.#now();
    const out = fn();
    const ms = this.#now() - t;
    this.#steps++;
    if (this.#trialOf === null) {
      this.#recent.push(ms);
      if (this.#recent.length > this.#trial) this.#recent.shift();
      this.#sinceTrial++;
      return out;
    }
    this.#trialTimes.push(ms);
    if (this.#trialTimes.length >= this.#trial) {
      const mine = median(this.#recent), theirs = median(this.#trialTimes);
      if (theirs < mine * (1 - this.#margin)) {
        this.changes.push({ step: this.#steps, from: this.#current, to: this.#trialOf, ms: [mine, theirs] });
        this.#current = this.#trialOf;
        this.#recent = [...this.#trialTimes];
      }
      this.#set(this.#current);
      this.#trialOf = null;
      this.#sinceTrial = 0;
    }
    return out;
  }
}

/** VGL_NUM_THREADS=auto: the trainer adapts the thread count to the load. */
export function adaptiveThreadsRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.VGL_NUM_THREADS?.trim().toLowerCase() === 'auto';
}
