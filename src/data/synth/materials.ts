// What the surfaces of the synthetic city look like: facades (storeys, window grids, shop fronts,
// doors, pitched roofs), sprites (trees, lamps, cars, people), ground (road, markings, sidewalks,
// lawns) and sky, under the light, season and weather of `Conditions`. Colours are 0..255 floats
// before lighting; the renderer multiplies in the light.

import { hash2f, hash3f } from './prng.ts';
import { OFFSET_RES, type Building, type City, type Face, type Sprite } from './city.ts';
import type { RGB } from './styles.ts';

export interface Conditions {
  sunAzimuth: number;
  sunElevation: number;
  /** Direct sun strength and ambient (sky) light, multiplied into surface colours. */
  sun: number;
  ambient: number;
  /** Colour of the light (1 = neutral). */
  light: readonly [number, number, number];
  skyZenith: RGB;
  skyHorizon: RGB;
  /** Cloud cover 0..1 and where the cloud pattern starts. */
  clouds: number;
  cloudSeed: number;
  fogColour: RGB;
  /** Extinction per metre (0.002 = clear haze, 0.03 = thick fog). */
  fogDensity: number;
  /** Share of windows lit from inside (night). */
  windowsLit: number;
  foliage: RGB;
  /** Share of the canopy that has leaves (winter < 1). */
  leaves: number;
  /** Snow on lawns, sidewalks and roofs, 0..1. */
  snow: number;
}

/** True when the face is a gable end of a pitched roof (the triangle side). */
function gableEnd(b: Building, face: Face): boolean {
  const frontAxisNS = b.front === 'south' || b.front === 'north';
  const faceNS = face === 'south' || face === 'north';
  return b.ridgeAlongFront ? faceNS !== frontAxisNS : faceNS === frontAxisNS;
}

/** Height of the building's outline above the point u of a face (roofs make it vary). */
export function wallTop(b: Building, face: Face, u: number, len: number): number {
  const rise = b.style.roofRise;
  if (rise === 0) return b.height;
  if (gableEnd(b, face)) return b.height + rise * (1 - Math.abs((2 * u) / len - 1));
  return b.height + rise;
}

function set(out: Float32Array, c: RGB, k: number): void {
  out[0] = c[0] * k; out[1] = c[1] * k; out[2] = c[2] * k;
}

/** Colour of a facade at (u along the face, v above ground); returns true if self-lit (window at night). */
export function facade(b: Building, face: Face, u: number, len: number, v: number, cond: Conditions, out: Float32Array): boolean {
  const s = b.style;
  const faceId = face === 'south' ? 0 : face === 'east' ? 1 : face === 'north' ? 2 : 3;
  const grain = 1 + s.grain * (hash3f(b.seed, Math.floor(u * 3), Math.floor(v * 3)) - 0.5) * 2;
  if (v > b.height) {
    if (gableEnd(b, face)) { set(out, s.wall, b.tint * 0.92 * grain); return false; }
    const tiles = (v * 3.3) % 1 < 0.2 ? 0.8 : 1;
    const snow = cond.snow * 0.8;
    const k = tiles * grain;
    out[0] = (s.roof[0] * (1 - snow) + 235 * snow) * k;
    out[1] = (s.roof[1] * (1 - snow) + 238 * snow) * k;
    out[2] = (s.roof[2] * (1 - snow) + 242 * snow) * k;
    return false;
  }
  if (s.roofRise === 0 && v > b.height - 0.5) { set(out, s.cornice, grain); return false; }
  if (s.roofRise > 0 && v > b.height - 0.25) { set(out, s.frame, 1); return false; }
  const front = face === b.front;
  const storey = Math.floor(v / s.storey);
  const vs = v - storey * s.storey;
  if (storey === 0 && front) {
    if (s.ground === 'shop') {
      const signLo = s.storey - 0.95, signHi = s.storey - 0.2;
      if (vs > signLo && vs < signHi && u > 0.4 && u < len - 0.4) {
        // Sign band with a few darker "letters".
        const letter = (vs - signLo) / (signHi - signLo) > 0.25 && (vs - signLo) / (signHi - signLo) < 0.75
          && hash3f(b.seed, Math.floor(u * 2.5), 17) < 0.45 && u > len * 0.2 && u < len * 0.8;
        set(out, b.sign, letter ? 0.45 : 1);
        return false;
      }
      if (vs > 0.35 && vs < signLo - 0.15 && u > 0.6 && u < len - 0.6) {
        const door = Math.abs(u - len * 0.3) < 0.6;
        if (door) { set(out, s.frame, 0.7); return false; }
        const mullion = ((u - 0.6) % 2.2) < 0.12;
        if (mullion) { set(out, s.frame, 1); return false; }
        // Shop window: bright interior towards the bottom, lit at night.
        const lit = cond.windowsLit > 0.3;
        set(out, lit ? [250, 226, 170] : s.glass, lit ? 1 : 1.3 + 0.4 * (1 - vs / signLo));
        return lit;
      }
    } else if (s.ground === 'door') {
      const doorU = len * (0.3 + 0.4 * hash2f(b.seed, 5));
      if (Math.abs(u - doorU) < 0.6 && vs < 2.3) { set(out, [92, 60, 40], vs > 2.15 || Math.abs(u - doorU) > 0.5 ? 0.6 : 1); return false; }
    }
  }
  if (v < 0.45) { set(out, s.wall, b.tint * 0.62 * grain); return false; }
  // Windows on a regular grid, centred on the face.
  const n = Math.floor((len - 0.8) / s.winSpacing);
  if (n >= 1) {
    const start = (len - n * s.winSpacing) / 2;
    const k = Math.floor((u - start) / s.winSpacing);
    if (k >= 0 && k < n) {
      const du = Math.abs(u - start - (k + 0.5) * s.winSpacing);
      const dv = vs - s.winSill;
      const hw = s.winW / 2, fw = s.frameW;
      if (du < hw + fw && dv > -fw && dv < s.winH + fw) {
        if (du > hw || dv < 0 || dv > s.winH) { set(out, s.frame, 1); return false; }
        const cell = hash3f(b.seed, k * 64 + storey, faceId);
        if (cell < cond.windowsLit) { set(out, [255, 222, 150], 0.8 + 0.2 * hash2f(b.seed, k + storey * 97)); return true; }
        // Blinds half down in some windows; sky reflection brighter towards the top.
        if (cell > 0.8 && dv > s.winH * 0.55) { set(out, [214, 208, 190], 0.9); return false; }
        set(out, s.glass, 0.85 + 0.5 * (dv / s.winH));
        return false;
      }
      if (s.pilaster > 0 && k % s.pilaster === 0 && Math.abs(u - start - k * s.winSpacing) < 0.25) {
        set(out, s.wall, b.tint * 0.82 * grain);
        return false;
      }
    }
  }
  let k = b.tint * grain;
  if (s.course > 0 && (v / s.course) % 1 < 0.12) k *= 0.82;
  if (s.boards && (v / 0.22) % 1 < 0.16) k *= 0.86;
  // A band between storeys on some facades.
  if (s.course === 0 && !s.boards && vs < 0.18 && storey > 0) k *= 0.88;
  set(out, s.wall, k);
  return false;
}

export function spriteTexel(s: Sprite, u: number, v: number, cond: Conditions, out: Float32Array): boolean {
  const x = (u - 0.5) * s.width; // metres from the axis
  switch (s.kind) {
    case 'tree': {
      const trunkTop = s.height * 0.38;
      const cy = trunkTop + (s.height - trunkTop) * 0.5, ry = (s.height - trunkTop) * 0.55, rx = s.width / 2;
      const e = (x / rx) ** 2 + ((v - cy) / ry) ** 2;
      const q = hash3f(s.seed, Math.floor(x / 0.3) + 1000, Math.floor(v / 0.3));
      if (e < 1 - 0.35 * q) {
        if (q > cond.leaves) {
          // Bare winter branches: a sparse brown lattice.
          if (hash3f(s.seed, Math.floor(x / 0.15), Math.floor(v / 0.15) + 7) < 0.22) { set(out, [92, 80, 70], 1); return true; }
        } else {
          set(out, cond.foliage, (0.62 + 0.5 * q) * (0.8 + 0.25 * (v - trunkTop) / (s.height - trunkTop)));
          return true;
        }
      }
      if (Math.abs(x) < 0.14 + 0.05 * (1 - v / s.height) && v < cy) { set(out, [88, 68, 50], 1); return true; }
      return false;
    }
    case 'lamp': {
      if (Math.abs(x) < 0.07 && v < s.height) { set(out, s.colour, 1); return true; }
      if (v > s.height - 0.2 && v < s.height && x > 0 && x < 0.6) { set(out, s.colour, 1); return true; }
      if (v > s.height - 0.5 && v < s.height - 0.2 && x > 0.4 && x < 0.65) { set(out, [236, 230, 200], 1); return true; }
      return false;
    }
    case 'car': {
      const w = s.width;
      for (const wx of [-w * 0.3, w * 0.3]) {
        if ((x - wx) ** 2 + (v - 0.33) ** 2 < 0.33 ** 2) { set(out, [24, 24, 26], 1); return true; }
      }
      if (v > 0.22 && v < 0.95 && Math.abs(x) < w / 2) {
        set(out, s.colour, v > 0.85 ? 0.85 : 1);
        return true;
      }
      const cabin = w * (0.3 - 0.08 * (v - 0.95) / 0.5);
      if (v >= 0.95 && v < s.height && Math.abs(x) < cabin) {
        const pillar = Math.abs(x) > cabin - 0.09 || Math.abs(x) < 0.05 || v > s.height - 0.07;
        set(out, pillar ? s.colour : [52, 64, 78], pillar ? 0.9 : 1 + 0.4 * (v - 0.95));
        return true;
      }
      return false;
    }
    case 'person': {
      const hue = hash2f(s.seed, 3);
      if ((x / 0.11) ** 2 + ((v - s.height + 0.12) / 0.13) ** 2 < 1) { set(out, hue < 0.5 ? [214, 170, 140] : [120, 84, 60], 1); return true; }
      if (v > s.height * 0.5 && v < s.height - 0.24 && Math.abs(x) < 0.22 - 0.04 * (v / s.height)) { set(out, s.colour, 1); return true; }
      if (v <= s.height * 0.5 && Math.abs(Math.abs(x) - 0.08) < 0.065) { set(out, hue < 0.3 ? [40, 44, 70] : [50, 48, 46], 1); return true; }
      return false;
    }
  }
}

export function ground(city: City, x: number, y: number, cond: Conditions, out: Float32Array): void {
  const { arch } = city;
  const G = arch.ground;
  const ix = Math.round(x * OFFSET_RES), iy = Math.round(y * OFFSET_RES);
  if (ix < 0 || iy < 0 || ix >= city.offX.length || iy >= city.offY.length) { set(out, G.lot, 0.9); return; }
  const ox = city.offX[ix]!, oy = city.offY[iy]!;
  const inNS = ox < 1e3, inEW = oy < 1e3;
  const half = arch.road / 2;
  const n = 0.93 + 0.14 * hash3f(city.seed, Math.floor(x * 2), Math.floor(y * 2));
  const snow = cond.snow;
  if (inNS || inEW) {
    const roadNS = inNS && Math.abs(ox) < half, roadEW = inEW && Math.abs(oy) < half;
    if (roadNS || roadEW) {
      if (roadNS && !inEW && marking(ox, city.offY, iy, half)) { set(out, G.marking, 1); return; }
      if (roadEW && !inNS && marking(oy, city.offX, ix, half)) { set(out, G.marking, 1); return; }
      if (roadNS && !inEW && Math.abs(Math.abs(ox) - 0.18) < 0.1 && arch.name === 'city') { set(out, G.centre, 1); return; }
      if (roadNS && !inEW && Math.abs(ox) < 0.1 && arch.name !== 'city' && (y / 6) % 1 < 0.5) { set(out, G.centre, 1); return; }
      if (roadEW && !inNS && Math.abs(Math.abs(oy) - 0.18) < 0.1 && arch.name === 'city') { set(out, G.centre, 1); return; }
      if (roadEW && !inNS && Math.abs(oy) < 0.1 && arch.name !== 'city' && (x / 6) % 1 < 0.5) { set(out, G.centre, 1); return; }
      set(out, G.road, n * (1 - 0.25 * snow));
      return;
    }
    const e = Math.min(inNS ? Math.abs(ox) - half : 1e3, inEW ? Math.abs(oy) - half : 1e3);
    if (e < 0.3) { set(out, G.curb, n); return; }
    const verge = G.lawns && e > 0.9 && e < (arch.street - arch.road) / 2 - 2;
    if (verge) { grass(G.lot, n, snow, out); return; }
    const joint = (x / 1.5) % 1 < 0.06 || (y / 1.5) % 1 < 0.06;
    mixSnow(G.sidewalk, n * (joint ? 0.85 : 1), snow * 0.7, out);
    return;
  }
  if (G.lawns) grass(G.lot, n, snow, out);
  else mixSnow(G.lot, n, snow * 0.5, out);
}

/** Zebra crossings: stripes across the road within 3 m of the crossing street. */
function marking(off: number, crossOff: Float32Array, crossIdx: number, half: number): boolean {
  if (Math.abs(off) > half - 0.3) return false;
  const near = (crossOff[Math.max(0, crossIdx - 3 * OFFSET_RES)]! < 1e3) || (crossOff[Math.min(crossOff.length - 1, crossIdx + 3 * OFFSET_RES)]! < 1e3);
  return near && ((off + 10) / 0.9) % 1 < 0.5;
}

function grass(c: RGB, n: number, snow: number, out: Float32Array): void {
  mixSnow(c, 0.82 + (n - 0.93) * 1.4, snow, out);
}

function mixSnow(c: RGB, k: number, snow: number, out: Float32Array): void {
  out[0] = (c[0] * (1 - snow) + 236 * snow) * k;
  out[1] = (c[1] * (1 - snow) + 238 * snow) * k;
  out[2] = (c[2] * (1 - snow) + 244 * snow) * k;
}

/** Sky colour for a view direction (dX, dY horizontal, elevation tangent t): gradient plus clouds. */
export function sky(cond: Conditions, dX: number, dY: number, t: number, out: Float32Array): void {
  const a = Math.min(1, Math.max(0, t * 1.6));
  const Z = cond.skyZenith, Hc = cond.skyHorizon;
  let r = Hc[0] + (Z[0] - Hc[0]) * a, g = Hc[1] + (Z[1] - Hc[1]) * a, b = Hc[2] + (Z[2] - Hc[2]) * a;
  if (cond.clouds > 0 && t > 0.01) {
    const norm = Math.hypot(dX, dY);
    const px = (dX / norm) / t * 3, py = (dY / norm) / t * 3;
    const c = valueNoise(px + cond.cloudSeed, py) * 0.65 + valueNoise(px * 2.7, py * 2.7 + cond.cloudSeed) * 0.35;
    const cover = Math.min(1, Math.max(0, (c - (1 - cond.clouds)) * 3));
    const lum = 0.7 * (cond.ambient + cond.sun) * 255;
    r += (lum - r) * cover; g += (lum - g) * cover; b += (lum * 1.02 - b) * cover;
  }
  out[0] = r; out[1] = g; out[2] = b;
}

function valueNoise(x: number, y: number): number {
  const x0 = Math.floor(x), y0 = Math.floor(y);
  const tx = x - x0, ty = y - y0;
  const sx = tx * tx * (3 - 2 * tx), sy = ty * ty * (3 - 2 * ty);
  const a = hash2f(x0, y0 * 7919), b = hash2f(x0 + 1, y0 * 7919);
  const c = hash2f(x0, (y0 + 1) * 7919), d = hash2f(x0 + 1, (y0 + 1) * 7919);
  return a + (b - a) * sx + (c - a) * sy + (a - b - c + d) * sx * sy;
}
