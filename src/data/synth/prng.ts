// Seeded randomness for the synthetic city. Everything random in `vgl synth` comes from here so that
// one seed reproduces the same files byte for byte (Math.random is never used).

/** A stream of uniform numbers in [0, 1) (mulberry32: 32-bit state, fast, good enough for layout). */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = (seed >>> 0) ^ 0x9e3779b9;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer uniform in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** A child stream whose sequence depends on this seed and `salt` only (not on how much was drawn). */
  static derive(seed: number, salt: number): Rng {
    return new Rng(hash2(seed, salt));
  }
}

/** A 32-bit integer hash of two integers (stateless: per-window, per-pixel variation). */
export function hash2(a: number, b: number): number {
  let h = Math.imul(a | 0, 0x27d4eb2d) ^ Math.imul(b | 0, 0x165667b1);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Stateless uniform in [0, 1) from three integers. */
export function hash3f(a: number, b: number, c: number): number {
  return hash2(hash2(a, b), c) / 4294967296;
}

/** Stateless uniform in [0, 1) from two integers. */
export function hash2f(a: number, b: number): number {
  return hash2(a, b) / 4294967296;
}
