// Layout of the synthetic city: a grid of streets of varying block sizes, buildings on lots along
// every block edge, street trees and lamps, and the districts that hold the train/val/test splits.
// Local frame: x = east, y = north, metres from the south-west corner; footprints lie on a 1 m grid
// (`cells`) that the ray caster walks.

import type { Rng } from '../random.ts';
import { deriveCityRng, hash2 } from './prng.ts';
import { architecture, facadePool, CAR_COLOURS, type Architecture, type FacadeStyle, type RGB, type StyleName } from './styles.ts';

export type Split = 'train' | 'val' | 'test';
export const SPLITS: readonly Split[] = ['train', 'val', 'test'];

/** Faces of a footprint, named by the direction their outside normal points to. */
export type Face = 'south' | 'east' | 'north' | 'west';

export interface Building {
  x0: number; y0: number; x1: number; y1: number;
  /** Height of the walls (m); pitched roofs rise above this. */
  height: number;
  style: FacadeStyle;
  /** Index of `style` in the pool (the same look recurs across the city). */
  styleIndex: number;
  /** Per-building brightness variation of the wall colour. */
  tint: number;
  sign: RGB;
  /** The face toward the street (door, shop front). */
  front: Face;
  /** Pitched roofs only: whether the ridge runs parallel to the front (front is an eaves face). */
  ridgeAlongFront: boolean;
  seed: number;
}

export type SpriteKind = 'tree' | 'lamp' | 'car' | 'person';

/** A camera-facing billboard standing on the ground at (x, y). */
export interface Sprite {
  kind: SpriteKind;
  x: number;
  y: number;
  width: number;
  height: number;
  colour: RGB;
  seed: number;
}

/** A street centreline segment (x = const for 'ns', y = const for 'ew'). */
export interface Street {
  axis: 'ns' | 'ew';
  centre: number;
  from: number;
  to: number;
}

export interface District {
  split: Split;
  /** Rectangle (local metres) in which this split's database and query positions lie. */
  x0: number; y0: number; x1: number; y1: number;
}

export interface CityLayout {
  blockRows: number;
  /** Block columns per split, west to east. */
  columns: Record<Split, number>;
}

export interface City {
  arch: Architecture;
  seed: number;
  width: number;
  height: number;
  /** Building index + 1 per 1 m cell (0 = open ground), row-major by y. */
  cells: Int32Array;
  buildings: Building[];
  sprites: Sprite[];
  streets: Street[];
  districts: District[];
  /** Signed offset (m) from the nearest ns street centre, sampled every 1/OFFSET_RES m of x. */
  offX: Float32Array;
  offY: Float32Array;
}

export const OFFSET_RES = 4;

export function buildCity(styleName: StyleName, seed: number, layout: CityLayout): City {
  const arch = architecture(styleName);
  const rng = deriveCityRng(seed, 1);
  const pool = facadePool(arch, deriveCityRng(seed, 2));
  // One ring of blocks outside the districts, so that views from the edge still see a city.
  const nCols = layout.columns.train + layout.columns.val + layout.columns.test + 2;
  const nRows = layout.blockRows + 2;
  const sx = streetCentres(nCols, arch, rng);
  const sy = streetCentres(nRows, arch, rng);
  const width = sx[sx.length - 1]! + arch.street / 2;
  const height = sy[sy.length - 1]! + arch.street / 2;
  const city: City = {
    arch, seed, width, height,
    cells: new Int32Array(width * height),
    buildings: [], sprites: [], streets: [], districts: [],
    offX: offsets(sx, width, arch.street), offY: offsets(sy, height, arch.street),
  };

  for (let r = 0; r < nRows; r++) {
    for (let c = 0; c < nCols; c++) {
      const bx0 = sx[c]! + arch.street / 2, bx1 = sx[c + 1]! - arch.street / 2;
      const by0 = sy[r]! + arch.street / 2, by1 = sy[r + 1]! - arch.street / 2;
      fillBlock(city, pool, rng, bx0, by0, bx1, by1);
    }
  }
  for (const x of sx) city.streets.push({ axis: 'ns', centre: x, from: sy[0]!, to: sy[sy.length - 1]! });
  for (const y of sy) city.streets.push({ axis: 'ew', centre: y, from: sx[0]!, to: sx[sx.length - 1]! });
  streetFurniture(city, rng, sx, sy);

  // Districts: consecutive block columns; a margin at internal borders keeps the splits apart.
  const gap = arch.street / 2 + 12;
  let col = 1;
  for (const split of ['train', 'val', 'test'] as const) {
    const n = layout.columns[split];
    const x0 = sx[col]!, x1 = sx[col + n]!;
    city.districts.push({
      split,
      x0: split === 'train' ? x0 : x0 + gap,
      x1: split === 'test' ? x1 : x1 - gap,
      y0: sy[1]!,
      y1: sy[nRows - 1]!,
    });
    col += n;
  }
  return city;
}

/** Centres of n+1 streets around n blocks of random sizes (integers, so footprints stay on cells). */
function streetCentres(n: number, arch: Architecture, rng: Rng): number[] {
  const out = [arch.street / 2];
  for (let i = 0; i < n; i++) out.push(out[i]! + arch.street + Math.round(rng.uniform(arch.block[0], arch.block[1])));
  return out;
}

function offsets(centres: number[], extent: number, street: number): Float32Array {
  const out = new Float32Array(extent * OFFSET_RES + 1);
  let k = 0;
  for (let i = 0; i < out.length; i++) {
    const v = i / OFFSET_RES;
    while (k + 1 < centres.length && Math.abs(centres[k + 1]! - v) < Math.abs(centres[k]! - v)) k++;
    const d = v - centres[k]!;
    out[i] = Math.abs(d) <= street / 2 + 1e-6 ? d : 1e4;
  }
  return out;
}

/** Lots along the four edges of a block, each holding one building (or left empty). */
function fillBlock(city: City, pool: FacadeStyle[], rng: Rng, bx0: number, by0: number, bx1: number, by1: number): void {
  const { arch } = city;
  const edges: { face: Face; len: number }[] = [
    { face: 'south', len: bx1 - bx0 }, { face: 'north', len: bx1 - bx0 },
    { face: 'west', len: by1 - by0 }, { face: 'east', len: by1 - by0 },
  ];
  const maxDepthNS = Math.floor((by1 - by0) / 2), maxDepthEW = Math.floor((bx1 - bx0) / 2);
  for (const { face, len } of edges) {
    let t = 0;
    while (t < len - 4) {
      let w = Math.round(rng.uniform(arch.lotWidth[0], arch.lotWidth[1]));
      if (len - (t + w) < arch.lotWidth[0] * 0.6) w = len - t;
      const maxDepth = face === 'south' || face === 'north' ? maxDepthNS : maxDepthEW;
      const setback = Math.round(rng.uniform(arch.setback[0], arch.setback[1]));
      const depth = Math.min(Math.round(rng.uniform(arch.lotDepth[0], arch.lotDepth[1])), maxDepth - setback);
      const gapA = Math.round(rng.uniform(arch.sideGap[0], arch.sideGap[1]) / 2);
      const gapB = Math.round(rng.uniform(arch.sideGap[0], arch.sideGap[1]) / 2);
      const empty = rng.bernoulli(arch.emptyLot);
      const styleIndex = rng.int(0, pool.length);
      const style = pool[styleIndex]!;
      const storeys = rng.int(arch.storeys[0], arch.storeys[1] + 1);
      const b: Building = {
        x0: 0, y0: 0, x1: 0, y1: 0,
        height: storeys * style.storey + (style.roofRise > 0 ? 0.4 : rng.uniform(0.3, 1.2)),
        style, styleIndex,
        tint: rng.uniform(0.86, 1.14),
        sign: rng.pick(arch.signs),
        front: face,
        ridgeAlongFront: rng.bernoulli(0.5),
        seed: hash2(city.seed, city.buildings.length + 7919),
      };
      const a0 = t + gapA, a1 = t + w - gapB; // along the edge
      if (!empty && depth >= 5 && a1 - a0 >= 4) {
        if (face === 'south') { b.x0 = bx0 + a0; b.x1 = bx0 + a1; b.y0 = by0 + setback; b.y1 = b.y0 + depth; }
        if (face === 'north') { b.x0 = bx0 + a0; b.x1 = bx0 + a1; b.y1 = by1 - setback; b.y0 = b.y1 - depth; }
        if (face === 'west') { b.y0 = by0 + a0; b.y1 = by0 + a1; b.x0 = bx0 + setback; b.x1 = b.x0 + depth; }
        if (face === 'east') { b.y0 = by0 + a0; b.y1 = by0 + a1; b.x1 = bx1 - setback; b.x0 = b.x1 - depth; }
        placeBuilding(city, b);
      }
      if (arch.lotTrees > 0 && rng.bernoulli(arch.lotTrees)) {
        // A tree in the front yard, beside or in front of the house.
        const along = t + rng.uniform(1.5, w - 1.5);
        const inward = rng.uniform(1.5, Math.max(2, setback + (empty ? 8 : 0)));
        const p = edgePoint(face, bx0, by0, bx1, by1, along, inward);
        city.sprites.push(tree(city, rng, p[0], p[1]));
      }
      t += w;
    }
  }
}

function edgePoint(face: Face, bx0: number, by0: number, bx1: number, by1: number, along: number, inward: number): [number, number] {
  if (face === 'south') return [bx0 + along, by0 + inward];
  if (face === 'north') return [bx0 + along, by1 - inward];
  if (face === 'west') return [bx0 + inward, by0 + along];
  return [bx1 - inward, by0 + along];
}

/** Writes the building into free cells only: where lots meet at corners the first one keeps them. */
function placeBuilding(city: City, b: Building): void {
  const id = city.buildings.length + 1;
  let placed = 0;
  for (let y = b.y0; y < b.y1; y++) {
    for (let x = b.x0; x < b.x1; x++) {
      const k = y * city.width + x;
      if (city.cells[k] === 0) { city.cells[k] = id; placed++; }
    }
  }
  if (placed > 0) city.buildings.push(b);
}

function tree(city: City, rng: Rng, x: number, y: number): Sprite {
  const big = city.arch.name === 'stlucia' ? rng.uniform(0.8, 1.5) : rng.uniform(0.7, 1.1);
  return {
    kind: 'tree', x, y,
    width: rng.uniform(3.5, 6) * big,
    height: rng.uniform(5, 9) * big,
    colour: city.arch.foliage,
    seed: hash2(city.seed, 100003 + city.sprites.length),
  };
}

/** Street trees and lamp posts along the sidewalks and parked cars along the kerbs, clear of crossings. */
function streetFurniture(city: City, rng: Rng, sx: number[], sy: number[]): void {
  const { arch } = city;
  const edge = arch.street / 2 - (arch.street - arch.road) / 4; // middle of the sidewalk / verge
  const nearCrossing = (v: number, centres: number[]) => centres.some((c) => Math.abs(v - c) < arch.street / 2 + 4);
  const kerb = arch.road / 2 - 1.1; // parking lane, beside the kerb
  const place = (kind: 'tree' | 'lamp' | 'car', x: number, y: number) => {
    const cx = Math.floor(x), cy = Math.floor(y);
    if (cx < 0 || cy < 0 || cx >= city.width || cy >= city.height || city.cells[cy * city.width + cx] !== 0) return;
    const seed = hash2(city.seed, 200003 + city.sprites.length);
    if (kind === 'tree') city.sprites.push(tree(city, rng, x, y));
    else if (kind === 'lamp') city.sprites.push({ kind, x, y, width: 1.4, height: 6.5, colour: [60, 62, 66], seed });
    else city.sprites.push({ kind, x, y, width: rng.uniform(3.8, 4.6), height: rng.uniform(1.4, 1.7), colour: rng.pick(CAR_COLOURS), seed });
  };
  const rows = [['tree', arch.streetTrees, edge], ['lamp', arch.lamps, edge], ['car', arch.parkedCars, kerb]] as const;
  for (const [kind, density, offset] of rows) {
    for (const c of sx) {
      for (const side of [-1, 1]) {
        for (let v = sy[0]! + rng.uniform(0, 1 / density); v < sy[sy.length - 1]!; v += rng.uniform(0.5, 1.5) / density) {
          if (!nearCrossing(v, sy)) place(kind, c + side * offset, v);
        }
      }
    }
    for (const c of sy) {
      for (const side of [-1, 1]) {
        for (let v = sx[0]! + rng.uniform(0, 1 / density); v < sx[sx.length - 1]!; v += rng.uniform(0.5, 1.5) / density) {
          if (!nearCrossing(v, sx)) place(kind, v, c + side * offset);
        }
      }
    }
  }
}

/** The building whose footprint holds the point, if any. */
export function buildingAt(city: City, x: number, y: number): Building | undefined {
  const cx = Math.floor(x), cy = Math.floor(y);
  if (cx < 0 || cy < 0 || cx >= city.width || cy >= city.height) return undefined;
  const id = city.cells[cy * city.width + cx]!;
  return id > 0 ? city.buildings[id - 1] : undefined;
}
