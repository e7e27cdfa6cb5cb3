// Street-level perspective renderer for the synthetic city: per-column ray casting on the 1 m
// footprint grid (walls of any height, so taller buildings show above nearer ones), then camera-
// facing sprites (trees, lamps, cars, people) with a depth buffer, then ground and sky for what is
// left. Light (sun direction, ambient, colour), fog and season come from `Conditions`, so the same
// place can be shown as a database image or as a changed query.

import { hash2f, hash3f } from './prng.ts';
import { OFFSET_RES, type Building, type City, type Face, type Sprite } from './city.ts';
import type { RGB } from './styles.ts';

export interface Camera {
  x: number;
  y: number;
  /** Compass heading in degrees (0 = north, 90 = east). */
  heading: number;
  /** Eye height above the ground (m). */
  height: number;
  /** Horizontal field of view (degrees). */
  fov: number;
  /** Up/down tilt (degrees, positive = up); moves the horizon. */
  pitch: number;
}

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

const FACE_NORMAL: Record<Face, readonly [number, number]> = {
  south: [0, -1], east: [1, 0], north: [0, 1], west: [-1, 0],
};
const MAX_DIST = 420;
const MAX_SPRITE_DIST = 160;

/** Renders one view as packed RGB bytes (height x width x 3). */
export function renderView(city: City, cam: Camera, cond: Conditions, extra: readonly Sprite[], width: number, height: number): Uint8Array {
  const W = width, H = height;
  const rgb = new Float32Array(W * H * 3);
  const depth = new Float32Array(W * H).fill(Infinity);
  const h = (cam.heading * Math.PI) / 180;
  const fx = Math.sin(h), fy = Math.cos(h);
  const rx = Math.cos(h), ry = -Math.sin(h);
  const f = W / 2 / Math.tan((cam.fov * Math.PI) / 360);
  const horizon = H / 2 + f * Math.tan((cam.pitch * Math.PI) / 180);
  const az = (cond.sunAzimuth * Math.PI) / 180, el = (cond.sunElevation * Math.PI) / 180;
  const sunX = Math.sin(az) * Math.cos(el), sunY = Math.cos(az) * Math.cos(el), sunZ = Math.max(0, Math.sin(el));
  const shade = new Float32Array(3);
  const { cells, buildings } = city;
  const CW = city.width, CH = city.height;

  // 1. Walls, column by column, front to back; a pixel once written keeps its nearest surface.
  for (let i = 0; i < W; i++) {
    const cx = (i + 0.5 - W / 2) / f;
    const dX = fx + rx * cx, dY = fy + ry * cx;
    let mapX = Math.floor(cam.x), mapY = Math.floor(cam.y);
    const deltaX = dX === 0 ? 1e30 : Math.abs(1 / dX), deltaY = dY === 0 ? 1e30 : Math.abs(1 / dY);
    const stepX = dX < 0 ? -1 : 1, stepY = dY < 0 ? -1 : 1;
    let sideX = dX < 0 ? (cam.x - mapX) * deltaX : (mapX + 1 - cam.x) * deltaX;
    let sideY = dY < 0 ? (cam.y - mapY) * deltaY : (mapY + 1 - cam.y) * deltaY;
    let prev = inside(mapX, mapY, CW, CH) ? cells[mapY * CW + mapX]! : 0;
    let filled = 0;
    for (;;) {
      let side: 0 | 1, dist: number;
      if (sideX < sideY) { dist = sideX; sideX += deltaX; mapX += stepX; side = 0; }
      else { dist = sideY; sideY += deltaY; mapY += stepY; side = 1; }
      if (dist > MAX_DIST || !inside(mapX, mapY, CW, CH)) break;
      const id = cells[mapY * CW + mapX]!;
      if (id !== 0 && id !== prev) {
        const b = buildings[id - 1]!;
        const face: Face = side === 0 ? (stepX > 0 ? 'west' : 'east') : (stepY > 0 ? 'south' : 'north');
        const wx = cam.x + dist * dX, wy = cam.y + dist * dY;
        const alongY = side === 0;
        const len = alongY ? b.y1 - b.y0 : b.x1 - b.x0;
        const u = Math.min(len, Math.max(0, alongY ? wy - b.y0 : wx - b.x0));
        const top = wallTop(b, face, u, len);
        const n = FACE_NORMAL[face];
        const lit = cond.ambient + cond.sun * Math.max(0, n[0] * sunX + n[1] * sunY);
        const r0 = Math.max(0, Math.ceil(horizon - ((top - cam.height) * f) / dist - 0.5));
        const r1 = Math.min(H - 1, Math.floor(horizon + (cam.height * f) / dist - 0.5));
        for (let r = r0; r <= r1; r++) {
          const p = r * W + i;
          if (depth[p] !== Infinity) continue;
          const v = cam.height + ((horizon - (r + 0.5)) * dist) / f;
          const emissive = facade(b, face, u, len, v, cond, shade);
          const k = emissive ? 1 : lit;
          rgb[p * 3] = shade[0]! * k; rgb[p * 3 + 1] = shade[1]! * k; rgb[p * 3 + 2] = shade[2]! * k;
          depth[p] = dist;
          filled++;
        }
        if (filled >= H) break;
      }
      prev = id;
    }
  }

  // 2. Sprites, tested against the walls and each other.
  const spriteLit = cond.ambient + cond.sun * 0.55;
  const drawSprite = (s: Sprite) => {
    const dx = s.x - cam.x, dy = s.y - cam.y;
    const d = dx * fx + dy * fy;
    if (d < 0.6 || d > MAX_SPRITE_DIST) return;
    const sxc = W / 2 + ((dx * rx + dy * ry) * f) / d;
    const half = ((s.width / 2) * f) / d;
    const c0 = Math.max(0, Math.floor(sxc - half)), c1 = Math.min(W - 1, Math.ceil(sxc + half));
    if (c0 > c1) return;
    const r0 = Math.max(0, Math.floor(horizon - ((s.height - cam.height) * f) / d));
    const r1 = Math.min(H - 1, Math.floor(horizon + (cam.height * f) / d - 0.5));
    for (let c = c0; c <= c1; c++) {
      const u = (c + 0.5 - (sxc - half)) / (2 * half);
      if (u < 0 || u > 1) continue;
      for (let r = r0; r <= r1; r++) {
        const p = r * W + c;
        if (depth[p]! <= d) continue;
        const v = cam.height + ((horizon - (r + 0.5)) * d) / f;
        if (v < 0 || !spriteTexel(s, u, v, cond, shade)) continue;
        const k = s.kind === 'lamp' && v > s.height - 0.55 && cond.windowsLit > 0.3 ? 1.3 : spriteLit;
        rgb[p * 3] = shade[0]! * k; rgb[p * 3 + 1] = shade[1]! * k; rgb[p * 3 + 2] = shade[2]! * k;
        depth[p] = d;
      }
    }
  };
  for (const s of city.sprites) drawSprite(s);
  for (const s of extra) drawSprite(s);

  // 3. Ground below the horizon and sky above it where nothing stands.
  const groundLit = cond.ambient + cond.sun * sunZ;
  for (let r = 0; r < H; r++) {
    const below = r + 0.5 - horizon;
    for (let i = 0; i < W; i++) {
      const p = r * W + i;
      if (depth[p] !== Infinity) continue;
      const cx = (i + 0.5 - W / 2) / f;
      const dX = fx + rx * cx, dY = fy + ry * cx;
      if (below > 0) {
        const d = (cam.height * f) / below;
        ground(city, cam.x + d * dX, cam.y + d * dY, cond, shade);
        rgb[p * 3] = shade[0]! * groundLit; rgb[p * 3 + 1] = shade[1]! * groundLit; rgb[p * 3 + 2] = shade[2]! * groundLit;
        depth[p] = d;
      } else {
        sky(cond, dX, dY, -below / f, shade);
        rgb[p * 3] = shade[0]!; rgb[p * 3 + 1] = shade[1]!; rgb[p * 3 + 2] = shade[2]!;
      }
    }
  }

  // 4. Light colour, then fog by distance along the ray.
  const out = new Uint8Array(W * H * 3);
  const L = cond.light, F = cond.fogColour;
  const skyFog = Math.min(1, cond.fogDensity * 120);
  for (let r = 0; r < H; r++) {
    for (let i = 0; i < W; i++) {
      const p = r * W + i;
      const cx = (i + 0.5 - W / 2) / f;
      const d = depth[p]!;
      const isSky = d === Infinity;
      const fog = isSky ? skyFog : 1 - Math.exp(-d * Math.sqrt(1 + cx * cx) * cond.fogDensity);
      for (let k = 0; k < 3; k++) {
        const surface = isSky ? rgb[p * 3 + k]! : rgb[p * 3 + k]! * L[k]!;
        const v = surface * (1 - fog) + F[k]! * fog;
        out[p * 3 + k] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
      }
    }
  }
  return out;
}

function inside(x: number, y: number, w: number, h: number): boolean {
  return x >= 0 && y >= 0 && x < w && y < h;
}

/** True when the face is a gable end of a pitched roof (the triangle side). */
function gableEnd(b: Building, face: Face): boolean {
  const frontAxisNS = b.front === 'south' || b.front === 'north';
  const faceNS = face === 'south' || face === 'north';
  return b.ridgeAlongFront ? faceNS !== frontAxisNS : faceNS === frontAxisNS;
}

/** Height of the building's outline above the point u of a face (roofs make it vary). */
function wallTop(b: Building, face: Face, u: number, len: number): number {
  const rise = b.style.roofRise;
  if (rise === 0) return b.height;
  if (gableEnd(b, face)) return b.height + rise * (1 - Math.abs((2 * u) / len - 1));
  return b.height + rise;
}

function set(out: Float32Array, c: RGB, k: number): void {
  out[0] = c[0] * k; out[1] = c[1] * k; out[2] = c[2] * k;
}

/** Colour of a facade at (u along the face, v above ground); returns true if self-lit (window at night). */
function facade(b: Building, face: Face, u: number, len: number, v: number, cond: Conditions, out: Float32Array): boolean {
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

function spriteTexel(s: Sprite, u: number, v: number, cond: Conditions, out: Float32Array): boolean {
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

function ground(city: City, x: number, y: number, cond: Conditions, out: Float32Array): void {
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
      if (roadNS && !inEW && marking(ox, y, city.offY, iy, half)) { set(out, G.marking, 1); return; }
      if (roadEW && !inNS && marking(oy, x, city.offX, ix, half)) { set(out, G.marking, 1); return; }
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
function marking(off: number, along: number, crossOff: Float32Array, crossIdx: number, half: number): boolean {
  if (Math.abs(off) > half - 0.3) return false;
  const near = (crossOff[Math.max(0, crossIdx - 3 * OFFSET_RES)]! < 1e3) || (crossOff[Math.min(crossOff.length - 1, crossIdx + 3 * OFFSET_RES)]! < 1e3);
  void along;
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
function sky(cond: Conditions, dX: number, dY: number, t: number, out: Float32Array): void {
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
