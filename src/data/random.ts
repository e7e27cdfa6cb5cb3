// Seeded pseudo-random numbers for data code (sampling, shuffling, augmentation).
// mulberry32 (32-bit state, fast, good enough for data order and jitter) seeded through a splitmix32
// mix, so nearby seeds (0, 1, 2, ...) give unrelated streams. Not for cryptography.

/** One step of the splitmix32 finaliser: a bijective 32-bit hash. */
export function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * A seed derived from a base seed and keys (e.g. epoch, image index), so every item gets its own
 * stream whatever order items are processed in.
 */
export function deriveSeed(seed: number, ...keys: number[]): number {
  let h = mix32(seed >>> 0);
  for (const k of keys) h = mix32((h ^ mix32(k >>> 0)) + Math.floor(k / 2 ** 32));
  return h;
}

export class Rng {
  private state: number;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new Error(`Rng: seed must be a finite number, got ${seed}`);
    this.state = mix32(Math.trunc(seed) >>> 0);
  }

  /** A stream started from a raw 32-bit state (no seed mixing): the synthetic city's streams, whose files must not change. */
  static fromState(state: number): Rng {
    const r = new Rng(0);
    r.state = state | 0;
    return r;
  }

  /** Uniform 32-bit unsigned integer (mulberry32). */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [lo, hi) (hi exclusive, like torch.randint). */
  int(lo: number, hi: number): number {
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || hi <= lo) {
      throw new Error(`Rng.int: need integers lo < hi, got [${lo}, ${hi})`);
    }
    const span = hi - lo;
    // Two draws give 53 bits, so large spans stay (nearly) unbiased.
    const u = span <= 2 ** 32 ? this.next() : (this.nextUint32() * 2 ** 21 + (this.nextUint32() >>> 11)) / 2 ** 53;
    return lo + Math.floor(u * span);
  }

  /** Standard normal draw (Box-Muller), scaled to the given mean and standard deviation. */
  normal(mean = 0, std = 1): number {
    const u1 = 1 - this.next(); // (0, 1]: log stays finite
    const u2 = this.next();
    return mean + std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** One of `items`, uniformly. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: empty list');
    return items[this.int(0, items.length)]!;
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.next() < p;
  }

  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const t = items[i]!;
      items[i] = items[j]!;
      items[j] = t;
    }
    return items;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }

  /** k distinct integers from [0, n), in random order (partial Fisher-Yates). */
  sample(n: number, k: number): number[] {
    if (k > n || k < 0) throw new Error(`Rng.sample: cannot draw ${k} distinct values from ${n}`);
    const pool = Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < k; i++) {
      const j = this.int(i, n);
      const t = pool[i]!;
      pool[i] = pool[j]!;
      pool[j] = t;
    }
    return pool.slice(0, k);
  }

  /**
   * Up to `count` distinct items drawn from `groups` in equal shares, smallest group first: a group
   * smaller than its share gives all it has and the rest is shared among the larger ones. Returns the
   * items group by group (smallest first), each group's in draw order.
   */
  sampleBalanced(groups: readonly (readonly number[])[], count: number): number[] {
    const sorted = [...groups].sort((a, b) => a.length - b.length);
    const picked: number[] = [];
    let left = Math.min(count, sorted.reduce((s, g) => s + g.length, 0));
    sorted.forEach((group, j) => {
      const share = Math.min(group.length, Math.floor(left / (sorted.length - j)));
      for (const i of this.sample(group.length, share)) picked.push(group[i]!);
      left -= share;
    });
    return picked;
  }
}
