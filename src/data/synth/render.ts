// Street-level perspective renderer for the synthetic city: per-column ray casting on the 1 m
// footprint grid (walls of any height, so taller buildings show above nearer ones), then camera-
// facing sprites (trees, lamps, cars, people) with a depth buffer, then ground and sky for what is
// left. Light (sun direction, ambient, colour), fog and season come from `Conditions`, so the same
// place can be shown as a database image or as a changed query.

import type { City, Face, Sprite } from './city.ts';
import { facade, ground, sky, spriteTexel, wallTop, type Conditions } from './materials.ts';

export type { Conditions } from './materials.ts';

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
