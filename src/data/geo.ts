// Latitude/longitude (WGS84) to UTM, through proj4. The zone follows the longitude, with the standard
// exceptions for south-west Norway and Svalbard; southern latitudes use the 10,000 km false northing.
import proj4 from 'proj4';

/** A UTM position with its zone (e.g. 10 S). */
export interface UtmPosition {
  east: number;
  north: number;
  zoneNumber: number;
  zoneLetter: string;
}

const LETTERS = 'CDEFGHJKLMNPQRSTUVWX';

/** UTM zone number (1..60) for a position, including the Norway (32V) and Svalbard (31/33/35/37X) exceptions. */
export function utmZoneNumber(lat: number, lon: number): number {
  if (lat >= 56 && lat < 64 && lon >= 3 && lon < 12) return 32;
  if (lat >= 72 && lat < 84 && lon >= 0 && lon < 42) {
    if (lon < 9) return 31;
    if (lon < 21) return 33;
    if (lon < 33) return 35;
    return 37;
  }
  const z = Math.floor((lon + 180) / 6) + 1;
  return Math.min(Math.max(z, 1), 60); // lon = 180 belongs to zone 60
}

/** UTM latitude band letter (C..X without I and O) for latitudes in [-80, 84]. */
export function utmZoneLetter(lat: number): string {
  if (lat >= 72) return 'X';
  return LETTERS[Math.floor((lat + 80) / 8)];
}

function checkLatLon(lat: number, lon: number): void {
  if (!Number.isFinite(lat) || lat < -80 || lat > 84) throw new Error(`latitude ${lat} is outside UTM's range [-80, 84]`);
  if (!Number.isFinite(lon) || lon < -180 || lon > 180) throw new Error(`longitude ${lon} is outside [-180, 180]`);
}

/** proj4 definition string of a UTM zone (north or south hemisphere). */
export function utmProjection(zoneNumber: number, south: boolean): string {
  return `+proj=utm +zone=${zoneNumber}${south ? ' +south' : ''} +datum=WGS84 +units=m +no_defs`;
}

/** Converts WGS84 lat/lon (degrees) to UTM in the zone chosen from the position itself (or `zoneNumber` if given). */
export function latLonToUtm(lat: number, lon: number, zoneNumber?: number): UtmPosition {
  checkLatLon(lat, lon);
  const zone = zoneNumber ?? utmZoneNumber(lat, lon);
  const [east, north] = proj4('WGS84', utmProjection(zone, lat < 0), [lon, lat]);
  return { east, north, zoneNumber: zone, zoneLetter: utmZoneLetter(lat) };
}

/** Converts UTM (zone number + letter; letters below N are southern) back to WGS84 lat/lon in degrees. */
export function utmToLatLon(east: number, north: number, zoneNumber: number, zoneLetter: string): { lat: number; lon: number } {
  const south = zoneLetter.toUpperCase() < 'N';
  const [lon, lat] = proj4(utmProjection(zoneNumber, south), 'WGS84', [east, north]);
  return { lat, lon };
}
