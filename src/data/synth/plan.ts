// What a synthetic dataset will hold, decided before any pixel is drawn: the city, every view and its
// datasets_vg file name. Pure and seeded, so workers (and tests) can rebuild the same city.

import type { Rng } from '../random.ts';
import { deriveCityRng } from './prng.ts';
import { buildCity, SPLITS, type City, type Split } from './city.ts';
import { databaseViews, places, queryViews, type View } from './views.ts';
import { architecture } from './styles.ts';
import type { SynthParams } from './options.ts';
import { formatDatasetFilename } from '../filename.ts';
import { utmToLatLon } from '../geo.ts';

export interface PlannedImage {
  view: View;
  /** Path relative to the dataset folder: images/<split>/<database|queries>/<name>.jpg */
  file: string;
  east: number;
  north: number;
}

/** A district in UTM metres (the rectangle its positions lie in). */
export interface UtmDistrict {
  split: Split;
  east0: number; north0: number; east1: number; north1: number;
}

export interface SynthPlan {
  params: SynthParams;
  city: City;
  images: PlannedImage[];
  districts: UtmDistrict[];
  /** Per written split. */
  counts: Partial<Record<Split, { database: number; queries: number; places: number }>>;
}

export function planDataset(params: SynthParams): SynthPlan {
  const city = buildCity(params.style, params.seed, params);
  const { utm } = architecture(params.style);
  const images: PlannedImage[] = [];
  const counts = {} as SynthPlan['counts'];
  SPLITS.forEach((split, si) => {
    if (!params.splits.includes(split)) return;
    const district = city.districts.find((d) => d.split === split)!;
    const ps = places(city, district, params.spacing);
    const opts = { spacing: params.spacing, headings: params.headings, queries: params.queries, queryOffset: params.queryOffset, fov: params.fov };
    if (ps.length === 0) {
      throw new Error(`synth: the ${split} district holds no database place; lower --spacing (${params.spacing}) or add --rows/--columns`);
    }
    const db = databaseViews(city, split, ps, opts);
    const qs = queryViews(city, district, ps, opts, deriveCityRng(params.seed, 100 + si));
    counts[split] = { database: db.length, queries: qs.length, places: ps.length };
    for (const view of [...db, ...qs]) {
      // The name carries the heading to 0.01 degree; render exactly that heading.
      view.camera.heading = Math.round(view.camera.heading * 100) / 100;
      const east = utm.east + view.camera.x, north = utm.north + view.camera.y;
      images.push({ view, file: `images/${split}/${view.kind}/${imageName(view, east, north, utm.zone, utm.letter)}`, east, north });
    }
  });
  const districts = city.districts.map((d) => ({
    split: d.split, east0: utm.east + d.x0, north0: utm.north + d.y0, east1: utm.east + d.x1, north1: utm.north + d.y1,
  }));
  return { params, city, images, districts, counts };
}

function imageName(view: View, east: number, north: number, zone: number, letter: string): string {
  const { lat, lon } = utmToLatLon(east, north, zone, letter);
  const id = `${view.kind === 'database' ? 'p' : 'q'}${String(view.kind === 'database' ? view.place : view.index).padStart(6, '0')}`;
  return formatDatasetFilename({
    east, north, zoneNumber: zone, zoneLetter: letter, lat, lon,
    panoId: id,
    heading: view.camera.heading,
    pitch: Math.round(view.camera.pitch * 10) / 10,
    note: view.note === '' ? undefined : view.note,
  });
}
