// Generation parameters of `vgl synth`, the size presets and their validation (zod): one schema for
// the CLI and for programmatic callers, so bad values fail before any rendering starts.

import { z } from 'zod';
import { availableParallelism } from 'node:os';
import { SPLITS, type CityLayout, type Split } from './city.ts';
import { STYLE_NAMES, type StyleName } from './styles.ts';

export type SizeName = 'tiny' | 'small' | 'demo' | 'full';
export const SIZE_NAMES: readonly SizeName[] = ['tiny', 'small', 'demo', 'full'];

export interface SynthParams extends CityLayout {
  style: StyleName;
  seed: number;
  /** Image size in pixels. */
  height: number;
  width: number;
  /** Distance between database places along a street (m) and headings per place. */
  spacing: number;
  headings: number;
  queries: Record<Split, number>;
  /** Largest distance of a query from the database place it was drawn near (m). */
  queryOffset: number;
  /** Horizontal field of view of the database camera (degrees); queries vary it by ±15%. */
  fov: number;
  /** JPEG quality. */
  quality: number;
  /** Splits to write (all three by default; e.g. only test for a cross-dataset test set). */
  splits: Split[];
}

/** Presets: tiny for tests (seconds), small for smoke runs, demo for the demo (< 1 min on 2 cores). */
export const SIZES: Record<SizeName, Omit<SynthParams, 'style' | 'seed' | 'splits'>> = {
  tiny: {
    height: 48, width: 64, blockRows: 1, columns: { train: 1, val: 1, test: 1 }, spacing: 12, headings: 4,
    queries: { train: 12, val: 8, test: 8 }, queryOffset: 10, fov: 75, quality: 90,
  },
  small: {
    height: 96, width: 128, blockRows: 2, columns: { train: 2, val: 1, test: 1 }, spacing: 10, headings: 4,
    queries: { train: 200, val: 100, test: 100 }, queryOffset: 10, fov: 75, quality: 90,
  },
  demo: {
    height: 120, width: 160, blockRows: 3, columns: { train: 4, val: 2, test: 2 }, spacing: 8, headings: 4,
    queries: { train: 600, val: 300, test: 300 }, queryOffset: 10, fov: 75, quality: 90,
  },
  full: {
    height: 240, width: 320, blockRows: 5, columns: { train: 8, val: 3, test: 3 }, spacing: 6, headings: 6,
    queries: { train: 4000, val: 1500, test: 1500 }, queryOffset: 10, fov: 75, quality: 90,
  },
};

const NAME = /^[A-Za-z0-9._-]+$/;
const int = (lo: number, hi: number) => z.number().int().min(lo).max(hi);

/** What a caller may set; anything left out comes from the size preset. */
export const SynthOptionsSchema = z.object({
  out: z.string().min(1),
  name: z.string().regex(NAME, 'use only letters, digits, ".", "_" and "-"'),
  style: z.enum(STYLE_NAMES as [StyleName, ...StyleName[]]).default('city'),
  size: z.enum(SIZE_NAMES as [SizeName, ...SizeName[]]).default('demo'),
  seed: int(0, 2 ** 32 - 1).default(0),
  height: int(16, 2048).optional(),
  width: int(16, 2048).optional(),
  spacing: z.number().min(1).max(100).optional(),
  headings: int(1, 36).optional(),
  blockRows: int(1, 40).optional(),
  columns: z.object({ train: int(1, 40), val: int(1, 40), test: int(1, 40) }).optional(),
  queries: z.object({ train: int(1, 1e6), val: int(1, 1e6), test: int(1, 1e6) }).optional(),
  queryOffset: z.number().min(0).max(50).optional(),
  fov: z.number().min(20).max(150).optional(),
  quality: int(1, 100).optional(),
  splits: z.array(z.enum(SPLITS as [Split, ...Split[]])).min(1).optional(),
  /** Worker threads (0 = render in this thread). */
  workers: int(0, 64).default(Math.min(availableParallelism(), 8)),
  overwrite: z.boolean().default(false),
  progress: z.boolean().default(false),
});

export type SynthOptions = z.input<typeof SynthOptionsSchema>;
export type ResolvedSynthOptions = z.output<typeof SynthOptionsSchema>;

/** The full parameter set: preset values overridden by what the caller gave. */
export function resolveParams(o: ResolvedSynthOptions): SynthParams {
  const base = SIZES[o.size];
  return {
    style: o.style,
    seed: o.seed,
    height: o.height ?? base.height,
    width: o.width ?? base.width,
    blockRows: o.blockRows ?? base.blockRows,
    columns: o.columns ?? base.columns,
    spacing: o.spacing ?? base.spacing,
    headings: o.headings ?? base.headings,
    queries: o.queries ?? base.queries,
    queryOffset: o.queryOffset ?? base.queryOffset,
    fov: o.fov ?? base.fov,
    quality: o.quality ?? base.quality,
    // Canonical order, no repeats: the same set always gives the same files and synth.json.
    splits: SPLITS.filter((s) => (o.splits ?? SPLITS).includes(s)),
  };
}

/** The dataset name the demo and the epoch benchmark render and read. */
export const DEMO_CITY_NAME = 'synth-city';
