// The two architectures of the synthetic city: "city" (dense downtown blocks, brick and stone
// facades, shop fronts; the Pittsburgh role) and "stlucia" (low suburban houses behind lawns, many
// trees, pastel walls and tiled roofs; the St Lucia role, for cross-dataset tests).
// Facade styles are drawn from a small pool per city so that the same look recurs in many places:
// a place must be recognised by its arrangement of buildings, not by one unique colour.

import type { Rng } from '../random.ts';

export type RGB = readonly [number, number, number];
export type StyleName = 'city' | 'stlucia';
export const STYLE_NAMES: readonly StyleName[] = ['city', 'stlucia'];

/** How one kind of facade looks; a building adds its own tint, height and sign colour. */
export interface FacadeStyle {
  wall: RGB;
  /** Amplitude of the wall texture noise (0..0.2). */
  grain: number;
  /** Brick courses: horizontal mortar lines every `course` metres (0 = smooth render). */
  course: number;
  storey: number;
  winW: number;
  winH: number;
  /** Distance between window centres along the facade. */
  winSpacing: number;
  /** Height of the window bottom above the storey floor. */
  winSill: number;
  glass: RGB;
  frame: RGB;
  /** Width of the frame around windows (m). */
  frameW: number;
  /** Ground floor of the street face: a shop window with a sign, a door, or more wall. */
  ground: 'shop' | 'door' | 'plain';
  cornice: RGB;
  /** Vertical pilaster stripes every `pilaster` windows (0 = none). */
  pilaster: number;
  /** Pitched roof (houses): roof colour and its rise in metres (0 = flat). */
  roof: RGB;
  roofRise: number;
  /** Horizontal sidings (weatherboard) instead of brick courses. */
  boards: boolean;
}

export interface GroundPalette {
  road: RGB;
  marking: RGB;
  /** Centre line colour (yellow in some countries). */
  centre: RGB;
  sidewalk: RGB;
  curb: RGB;
  /** Inside the blocks, behind and between buildings. */
  lot: RGB;
  /** Whether the area between the sidewalk and the houses is lawn (suburbs). */
  lawns: boolean;
}

export interface Architecture {
  name: StyleName;
  /** Block side lengths (m), drawn per block row/column. */
  block: readonly [number, number];
  /** Street width between building lines (m) and the carriageway width within it. */
  street: number;
  road: number;
  storeys: readonly [number, number];
  /** Width of a building lot along the street and its depth into the block (m). */
  lotWidth: readonly [number, number];
  lotDepth: readonly [number, number];
  /** Distance from the block edge to the building front, and gap between neighbours (m). */
  setback: readonly [number, number];
  sideGap: readonly [number, number];
  /** Chance that a lot stays empty (parking, gap). */
  emptyLot: number;
  /** Number of distinct facade styles in the whole city (repetition makes the task real). */
  facadeCount: number;
  /** Street trees per metre of street edge, and trees inside lots per lot. */
  streetTrees: number;
  lotTrees: number;
  /** Lamp posts and parked cars per metre of street edge. */
  lamps: number;
  parkedCars: number;
  walls: readonly RGB[];
  glass: readonly RGB[];
  roofs: readonly RGB[];
  signs: readonly RGB[];
  foliage: RGB;
  ground: GroundPalette;
  /** A plausible UTM frame for the names: the city's south-west corner. */
  utm: { east: number; north: number; zone: number; letter: string; south: boolean };
}

const CITY: Architecture = {
  name: 'city',
  block: [46, 84],
  street: 16,
  road: 9,
  storeys: [2, 9],
  lotWidth: [7, 22],
  lotDepth: [12, 22],
  setback: [0, 0],
  sideGap: [0, 0],
  emptyLot: 0.06,
  facadeCount: 20,
  streetTrees: 0.012,
  lotTrees: 0,
  lamps: 0.03,
  parkedCars: 0.035,
  walls: [
    [150, 72, 52], [118, 58, 46], [196, 182, 150], [150, 150, 144], [222, 212, 188], [212, 192, 122],
    [160, 170, 182], [86, 90, 96], [188, 140, 84], [228, 228, 222], [138, 136, 100], [170, 110, 90],
  ],
  glass: [[38, 48, 62], [70, 94, 118], [58, 88, 84], [88, 74, 60], [110, 130, 150]],
  roofs: [[90, 90, 92]],
  signs: [[196, 38, 36], [36, 76, 170], [34, 140, 70], [232, 196, 40], [228, 120, 30], [120, 50, 140], [240, 240, 235], [20, 20, 24]],
  foliage: [70, 118, 52],
  ground: {
    road: [78, 78, 82], marking: [228, 228, 220], centre: [226, 190, 60], sidewalk: [168, 164, 156],
    curb: [120, 118, 114], lot: [120, 116, 108], lawns: false,
  },
  // Pittsburgh-like: UTM 17T.
  utm: { east: 584000, north: 4476000, zone: 17, letter: 'T', south: false },
};

const STLUCIA: Architecture = {
  name: 'stlucia',
  block: [70, 120],
  street: 22,
  road: 8,
  storeys: [1, 2],
  lotWidth: [14, 24],
  lotDepth: [16, 26],
  setback: [4, 9],
  sideGap: [2, 5],
  emptyLot: 0.1,
  facadeCount: 10,
  streetTrees: 0.05,
  lotTrees: 0.9,
  lamps: 0.015,
  parkedCars: 0.02,
  walls: [
    [236, 236, 228], [236, 222, 164], [192, 212, 182], [182, 202, 216], [230, 216, 186], [186, 104, 64],
    [212, 182, 132], [220, 200, 200],
  ],
  glass: [[46, 56, 66], [84, 98, 110], [60, 70, 60]],
  roofs: [[168, 72, 52], [150, 156, 160], [72, 96, 78], [148, 42, 36], [190, 190, 182]],
  signs: [[200, 200, 196]],
  foliage: [64, 112, 44],
  ground: {
    road: [64, 64, 66], marking: [236, 236, 230], centre: [236, 236, 230], sidewalk: [180, 176, 166],
    curb: [150, 148, 142], lot: [96, 138, 58], lawns: true,
  },
  // Brisbane (St Lucia): UTM 56J, southern hemisphere.
  utm: { east: 498000, north: 6958000, zone: 56, letter: 'J', south: true },
};

/** Car body colours (parked cars and query traffic). */
export const CAR_COLOURS: readonly RGB[] = [
  [180, 30, 30], [30, 40, 120], [220, 220, 220], [30, 30, 32], [120, 120, 124], [200, 160, 40], [40, 100, 60],
];

export function architecture(name: StyleName): Architecture {
  return name === 'city' ? CITY : STLUCIA;
}

/** The pool of facade styles for one city, drawn from the architecture's ranges with `rng`. */
export function facadePool(arch: Architecture, rng: Rng): FacadeStyle[] {
  const pool: FacadeStyle[] = [];
  for (let i = 0; i < arch.facadeCount; i++) {
    const house = arch.name === 'stlucia';
    const storey = house ? rng.uniform(2.8, 3.3) : rng.uniform(3.0, 4.2);
    const winH = house ? rng.uniform(1.1, 1.6) : rng.uniform(1.2, storey - 1.2);
    const winW = house ? rng.uniform(0.9, 2.4) : rng.uniform(0.7, 2.2);
    const winSpacing = winW + (house ? rng.uniform(1.2, 3.5) : rng.uniform(0.5, 2.4));
    const wall = rng.pick(arch.walls);
    pool.push({
      wall,
      grain: rng.uniform(0.02, 0.1),
      course: !house && rng.bernoulli(0.45) ? rng.uniform(0.25, 0.45) : 0,
      storey,
      winW,
      winH,
      winSpacing,
      winSill: Math.min(rng.uniform(0.6, 1.1), storey - winH - 0.2),
      glass: rng.pick(arch.glass),
      frame: rng.bernoulli(0.5) ? shade(wall, rng.uniform(0.55, 0.8)) : rng.pick([[235, 235, 230], [40, 40, 42], [110, 70, 40]] as RGB[]),
      frameW: rng.uniform(0.06, 0.2),
      ground: house ? 'door' : rng.pick(['shop', 'shop', 'door', 'plain'] as const),
      cornice: rng.bernoulli(0.5) ? shade(wall, rng.uniform(0.6, 1.25)) : rng.pick([[230, 226, 214], [60, 58, 56]] as RGB[]),
      pilaster: !house && rng.bernoulli(0.35) ? rng.int(1, 4) : 0,
      roof: rng.pick(arch.roofs),
      roofRise: house ? rng.uniform(1.6, 3.2) : 0,
      boards: house && rng.bernoulli(0.5),
    });
  }
  return pool;
}

export function shade(c: RGB, k: number): RGB {
  return [Math.min(255, c[0] * k), Math.min(255, c[1] * k), Math.min(255, c[2] * k)];
}
