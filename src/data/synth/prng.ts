// Seeded randomness for the synthetic city. Everything random in `vgl synth` comes from here so that
// one seed reproduces the same files byte for byte (Math.random is never used): streams of the
// project's Rng, and stateless hashes for per-window and per-pixel variation.
import { Rng } from '../random.ts';

/**
 * The city's stream for a seed: the project's one Rng (src/data/random.ts), started from the state
 * the city has always used, so a seed still renders the same files byte for byte.
 */
export function cityRng(seed: number): Rng {
  return Rng.fromState((seed >>> 0) ^ 0x9e3779b9);
}

/** A child stream whose sequence depends on `seed` and `salt` only (not on how much was drawn). */
export function deriveCityRng(seed: number, salt: number): Rng {
  return cityRng(hash2(seed, salt));
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
