// datasets_vg file names carry each image's position:
// @UTM_east@UTM_north@zone_number@zone_letter@lat@lon@pano_id@tile_num@heading@pitch@roll@height@timestamp@note@.jpg
// Only east and north are required; every other field may be empty.
import { basename } from 'node:path';

/** The fields of a datasets_vg file name; optional fields are `undefined` when empty. */
export interface DatasetFilename {
  east: number;
  north: number;
  zoneNumber?: number;
  zoneLetter?: string;
  lat?: number;
  lon?: number;
  panoId?: string;
  tileNum?: string;
  heading?: number;
  pitch?: number;
  roll?: number;
  height?: number;
  timestamp?: string;
  note?: string;
  /** Extension including the dot, lower-cased (".jpg", ".jpeg", ".png"). */
  extension: string;
}

/** A malformed datasets_vg file name; `message` names the file and the fault. */
export class FilenameError extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`);
    this.name = 'FilenameError';
  }
}

/** Image extensions a datasets_vg folder may hold. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png'];

const FIELD_NAMES = ['UTM_east', 'UTM_north', 'zone_number', 'zone_letter', 'lat', 'lon', 'pano_id', 'tile_num',
  'heading', 'pitch', 'roll', 'height', 'timestamp', 'note'] as const;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Parses a datasets_vg file name (a path is accepted; only its base name is parsed); throws FilenameError. */
export function parseDatasetFilename(file: string): DatasetFilename {
  const name = basename(file);
  if (!name.startsWith('@')) throw new FilenameError(file, 'name does not start with "@" (expected @UTM_east@UTM_north@...@.jpg)');
  const parts = name.split('@');
  // parts[0] is '' (before the leading @); the last part is the extension after the final @.
  const extension = parts[parts.length - 1].toLowerCase();
  if (!IMAGE_EXTENSIONS.includes(extension)) {
    throw new FilenameError(file, `name must end with "@" followed by one of ${IMAGE_EXTENSIONS.join(', ')} (got "${parts[parts.length - 1]}" after the last @)`);
  }
  const fields = parts.slice(1, -1);
  if (fields.length < 2) throw new FilenameError(file, 'UTM_east and UTM_north are required (fewer than 2 fields between @)');
  if (fields.length > FIELD_NAMES.length) throw new FilenameError(file, `${fields.length} fields between @, at most ${FIELD_NAMES.length} allowed`);
  const field = (i: number): string | undefined => (i < fields.length && fields[i] !== '' ? fields[i] : undefined);
  const num = (i: number, required = false): number | undefined => {
    const s = field(i);
    if (s === undefined) {
      if (required) throw new FilenameError(file, `${FIELD_NAMES[i]} is empty`);
      return undefined;
    }
    if (!NUMBER.test(s)) throw new FilenameError(file, `${FIELD_NAMES[i]} "${s}" is not a number`);
    const v = Number(s);
    if (!Number.isFinite(v)) throw new FilenameError(file, `${FIELD_NAMES[i]} "${s}" is not a finite number`);
    return v;
  };
  const east = num(0, true)!;
  const north = num(1, true)!;
  const zoneNumber = num(2);
  if (zoneNumber !== undefined && (!Number.isInteger(zoneNumber) || zoneNumber < 1 || zoneNumber > 60)) {
    throw new FilenameError(file, `zone_number "${field(2)}" is not an integer in 1..60`);
  }
  return {
    east, north, zoneNumber, zoneLetter: field(3), lat: num(4), lon: num(5), panoId: field(6), tileNum: field(7),
    heading: num(8), pitch: num(9), roll: num(10), height: num(11), timestamp: field(12), note: field(13), extension,
  };
}

/** Pads the integer part of a fixed-point number: fixed(549678.365, 7, 2) = "0549678.37", fixed(-122.4359, 3, 5) = "-122.43590". */
function fixed(value: number, intDigits: number, decimals: number): string {
  const s = Math.abs(value).toFixed(decimals);
  const dot = s.indexOf('.');
  const intPart = (dot < 0 ? s : s.slice(0, dot)).padStart(intDigits, '0');
  const sign = value < 0 && Number(s) !== 0 ? '-' : '';
  return sign + intPart + (dot < 0 ? '' : s.slice(dot));
}

/** Field text must not contain the separator or a path separator. */
function text(value: string | undefined, what: string): string {
  if (value === undefined) return '';
  if (/[@/\\]/.test(value)) throw new Error(`datasets_vg file name field ${what} "${value}" contains "@", "/" or "\\"`);
  return value;
}

const opt = (v: number | undefined): string => (v === undefined ? '' : String(v));

/** Formats the canonical datasets_vg name: east/north as 7.2 digits, lat/lon as 3.5 digits, extension default ".jpg". */
export function formatDatasetFilename(f: Partial<DatasetFilename> & { east: number; north: number }): string {
  if (!Number.isFinite(f.east) || !Number.isFinite(f.north)) throw new Error(`datasets_vg file name needs finite east/north, got ${f.east}, ${f.north}`);
  const extension = f.extension ?? '.jpg';
  if (!IMAGE_EXTENSIONS.includes(extension)) throw new Error(`datasets_vg file name extension "${extension}" is not one of ${IMAGE_EXTENSIONS.join(', ')}`);
  const fields = [
    fixed(f.east, 7, 2), fixed(f.north, 7, 2), opt(f.zoneNumber), text(f.zoneLetter, 'zone_letter'),
    f.lat === undefined ? '' : fixed(f.lat, 3, 5), f.lon === undefined ? '' : fixed(f.lon, 3, 5),
    text(f.panoId, 'pano_id'), text(f.tileNum, 'tile_num'), opt(f.heading), opt(f.pitch), opt(f.roll), opt(f.height),
    text(f.timestamp, 'timestamp'), text(f.note, 'note'),
  ];
  return `@${fields.join('@')}@${extension}`;
}
