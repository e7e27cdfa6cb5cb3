// Where the camera stands and what the weather is: database places along the street centrelines of
// each district (several headings per place, one reference daylight), and queries near those places
// with perturbed position, heading, height, light, fog, season and occluding cars and people.

import type { Rng } from '../random.ts';
import { hash2 } from './prng.ts';
import { buildingAt, type City, type District, type Split, type Sprite } from './city.ts';
import type { Camera, Conditions } from './render.ts';
import { CAR_COLOURS, type RGB } from './styles.ts';

export interface Place {
  x: number;
  y: number;
  /** Compass heading of the street direction at this place (0 or 90). */
  streetHeading: number;
}

export interface View {
  split: Split;
  kind: 'database' | 'queries';
  /** Index within its split and kind (names stay unique even for equal positions). */
  index: number;
  /** Place index (database: shared by the headings of a place; queries: the place it was drawn near). */
  place: number;
  camera: Camera;
  conditions: Conditions;
  occluders: Sprite[];
  /** Short label of the conditions (goes into the file name's note field). */
  note: string;
}

export interface ViewOptions {
  spacing: number;
  headings: number;
  queries: Record<Split, number>;
  /** Maximum distance of a query from the database place it was drawn near (m). */
  queryOffset: number;
  fov: number;
}

/** Reference daylight of every database image. */
export const DATABASE_CONDITIONS: Conditions = {
  sunAzimuth: 150, sunElevation: 50, sun: 0.42, ambient: 0.72, light: [1, 1, 1],
  skyZenith: [92, 140, 205], skyHorizon: [186, 208, 230], clouds: 0, cloudSeed: 0,
  fogColour: [196, 210, 226], fogDensity: 0.0025, windowsLit: 0,
  foliage: [70, 118, 52], leaves: 1, snow: 0,
};

/** Places every `spacing` metres along the streets inside the district (deduplicated at crossings). */
export function places(city: City, d: District, spacing: number): Place[] {
  const out: Place[] = [];
  const taken = new Set<string>();
  const key = (x: number, y: number) => `${Math.floor(x / spacing)},${Math.floor(y / spacing)}`;
  const near = (x: number, y: number) => {
    const gx = Math.floor(x / spacing), gy = Math.floor(y / spacing);
    for (let a = -1; a <= 1; a++) for (let b = -1; b <= 1; b++) {
      const k = `${gx + a},${gy + b}`;
      if (!taken.has(k)) continue;
      for (const p of out) if (Math.hypot(p.x - x, p.y - y) < spacing * 0.6) return true;
    }
    return false;
  };
  for (const s of city.streets) {
    const inRange = s.axis === 'ns' ? s.centre >= d.x0 && s.centre <= d.x1 : s.centre >= d.y0 && s.centre <= d.y1;
    if (!inRange) continue;
    const lo = Math.max(s.from, s.axis === 'ns' ? d.y0 : d.x0), hi = Math.min(s.to, s.axis === 'ns' ? d.y1 : d.x1);
    for (let t = lo; t <= hi + 1e-9; t += spacing) {
      const x = s.axis === 'ns' ? s.centre : t, y = s.axis === 'ns' ? t : s.centre;
      if (near(x, y) || buildingAt(city, x, y)) continue;
      out.push({ x, y, streetHeading: s.axis === 'ns' ? 0 : 90 });
      taken.add(key(x, y));
    }
  }
  return out;
}

export function databaseViews(city: City, split: Split, ps: Place[], opts: ViewOptions): View[] {
  const out: View[] = [];
  const conditions: Conditions = { ...DATABASE_CONDITIONS, foliage: city.arch.foliage };
  ps.forEach((p, place) => {
    for (let k = 0; k < opts.headings; k++) {
      const heading = (p.streetHeading + (360 * k) / opts.headings) % 360;
      out.push({
        split, kind: 'database', index: out.length, place,
        camera: { x: p.x, y: p.y, heading, height: 2.5, fov: opts.fov, pitch: 0 },
        conditions, occluders: [], note: '',
      });
    }
  });
  return out;
}

export function queryViews(city: City, d: District, ps: Place[], opts: ViewOptions, rng: Rng): View[] {
  const out: View[] = [];
  const half = city.arch.road / 2 - 0.6;
  let guard = 0;
  while (out.length < opts.queries[d.split] && ps.length > 0) {
    if (++guard > opts.queries[d.split] * 50) throw new Error(`synth: cannot place queries in district ${d.split}`);
    const place = rng.int(0, ps.length);
    const p = ps[place]!;
    const along = rng.uniform(-1, 1) * opts.queryOffset * 0.9;
    const across = rng.uniform(-1, 1) * Math.min(half, opts.queryOffset);
    const ns = p.streetHeading === 0;
    const x = p.x + (ns ? across : along), y = p.y + (ns ? along : across);
    if (x < d.x0 || x > d.x1 || y < d.y0 || y > d.y1 || buildingAt(city, x, y)) continue;
    if (Math.hypot(x - p.x, y - p.y) > opts.queryOffset) continue;
    const camera: Camera = {
      x, y,
      // Near one of the database headings of the place, jittered.
      heading: (p.streetHeading + (360 * rng.int(0, opts.headings)) / opts.headings + rng.uniform(-1, 1) * QUERY.headingJitter + 360) % 360,
      height: rng.uniform(...QUERY.cameraHeight),
      fov: opts.fov * (1 + rng.uniform(-1, 1) * QUERY.fovChange),
      pitch: rng.uniform(...QUERY.pitch),
    };
    const { conditions, note } = queryConditions(city, rng);
    const occluders = traffic(city, camera, rng, hash2(city.seed, 0x51ed + out.length));
    out.push({
      split: d.split, kind: 'queries', index: out.length, place, camera, conditions, occluders,
      note: occluders.length > 0 ? `${note}-occluded` : note,
    });
  }
  return out;
}

function lerp(a: RGB, b: RGB, t: number): RGB {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

/** Time of day, weather and season of one query. */
function queryConditions(city: City, rng: Rng): { conditions: Conditions; note: string } {
  const c: Conditions = { ...DATABASE_CONDITIONS, foliage: city.arch.foliage, cloudSeed: rng.uniform(0, 1000) };
  const parts: string[] = [];
  const time = rng.pick(QUERY.times);
  parts.push(time);
  c.sunAzimuth = rng.uniform(0, 360);
  switch (time) {
    case 'morning':
    case 'afternoon':
      c.sunElevation = rng.uniform(12, 35); c.sun = rng.uniform(0.35, 0.55); c.ambient = rng.uniform(0.55, 0.72);
      c.light = [1.04, 0.98, 0.9]; c.skyZenith = [84, 128, 196]; c.skyHorizon = [222, 210, 190];
      c.clouds = rng.uniform(0, 0.5);
      break;
    case 'noon':
      c.sunElevation = rng.uniform(55, 75); c.sun = rng.uniform(0.35, 0.55); c.ambient = rng.uniform(0.65, 0.85);
      c.clouds = rng.uniform(0, 0.6);
      break;
    case 'overcast':
      c.sunElevation = 40; c.sun = 0.05; c.ambient = rng.uniform(0.6, 0.85);
      c.skyZenith = [158, 162, 170]; c.skyHorizon = [196, 198, 202]; c.clouds = 0; c.light = [0.97, 0.99, 1.03];
      break;
    case 'dusk':
      c.sunElevation = rng.uniform(1, 8); c.sun = rng.uniform(0.2, 0.45); c.ambient = rng.uniform(0.3, 0.45);
      c.light = [1.15, 0.85, 0.68]; c.skyZenith = [60, 70, 130]; c.skyHorizon = [236, 150, 96];
      c.windowsLit = rng.uniform(0, 0.3); c.clouds = rng.uniform(0, 0.5);
      break;
    case 'night':
      c.sunElevation = -10; c.sun = 0; c.ambient = rng.uniform(0.14, 0.24);
      c.light = [0.85, 0.9, 1.15]; c.skyZenith = [10, 14, 30]; c.skyHorizon = [40, 44, 62];
      c.windowsLit = rng.uniform(0.3, 0.6); c.clouds = 0;
      break;
  }
  c.fogColour = lerp(c.skyHorizon, [200, 200, 200], 0.5);
  if (rng.bernoulli(QUERY.fog)) {
    c.fogDensity = rng.uniform(0.006, 0.025);
    parts.push('fog');
  } else {
    c.fogDensity = rng.uniform(0.002, 0.006);
  }
  const season = rng.pick(QUERY.seasons);
  parts.push(season);
  if (season === 'autumn') c.foliage = rng.pick([[176, 112, 40], [196, 150, 52], [150, 70, 36]] as RGB[]);
  if (season === 'spring') c.foliage = [110, 158, 70];
  if (season === 'winter') {
    c.leaves = rng.uniform(0, 0.25);
    c.snow = rng.bernoulli(0.5) ? rng.uniform(0.3, 0.85) : 0;
    if (c.snow > 0) parts.push('snow');
  }
  return { conditions: c, note: parts.join('-') };
}

/** The ranges queries are drawn from (also recorded in synth.json). */
export const QUERY = {
  /** Largest difference (degrees) between a query's heading and a database heading of its place. */
  headingJitter: 15,
  cameraHeight: [1.8, 2.7] as [number, number],
  pitch: [-3, 4] as [number, number],
  /** Relative change of the field of view, ±. */
  fovChange: 0.1,
  /** Times of day, repeated by weight. */
  times: ['morning', 'morning', 'noon', 'noon', 'noon', 'afternoon', 'afternoon', 'overcast', 'overcast', 'dusk', 'night'] as const,
  /** Chance of fog. */
  fog: 0.25,
  seasons: ['summer', 'autumn', 'winter', 'spring'] as const,
  maxCars: 2,
  maxPeople: 3,
};


/** Cars on the road and people on the sidewalk in front of the query camera. */
function traffic(city: City, cam: Camera, rng: Rng, seed: number): Sprite[] {
  const out: Sprite[] = [];
  const nCars = rng.int(0, QUERY.maxCars + 1), nPeople = rng.int(0, QUERY.maxPeople + 1);
  const h = (cam.heading * Math.PI) / 180;
  const fwd = [Math.sin(h), Math.cos(h)] as const, right = [Math.cos(h), -Math.sin(h)] as const;
  const tanHalf = Math.tan((cam.fov * Math.PI) / 360);
  for (let i = 0; i < nCars + nPeople; i++) {
    const car = i < nCars;
    for (let tries = 0; tries < 8; tries++) {
      const d = rng.uniform(car ? 4 : 2.5, car ? 22 : 14);
      const lat = rng.uniform(-1, 1) * d * tanHalf;
      const x = cam.x + fwd[0] * d + right[0] * lat, y = cam.y + fwd[1] * d + right[1] * lat;
      if (buildingAt(city, x, y)) continue;
      out.push(car
        ? { kind: 'car', x, y, width: rng.uniform(3.8, 4.6), height: rng.uniform(1.4, 1.7), colour: rng.pick(CAR_COLOURS), seed: hash2(seed, i) }
        : { kind: 'person', x, y, width: 0.6, height: rng.uniform(1.55, 1.9), colour: [rng.int(30, 221), rng.int(30, 221), rng.int(30, 221)], seed: hash2(seed, i) });
      break;
    }
  }
  return out;
}
