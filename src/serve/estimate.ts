// Where a photo was taken, from its nearest database images: the matches that agree with the best one
// (within `radius` metres of it, found with the positions' k-d tree) vote for the position, each
// weighted by its similarity to the photo, 1 / (d² + ε) with d the descriptor distance — an
// (almost) identical image pins the estimate to its own position, several similar ones share it.
// The confidence is the share of the similarity of all top matches held by those that agree: 1 when
// the top-N all point at one place, about 1/N when the best match stands alone among scattered ones.
import { PositionIndex } from '../data/positives.ts';

export interface Match {
  /** Database row. */
  id: number;
  east: number;
  north: number;
  /** L2 distance in descriptor space. */
  distance: number;
}

export interface PositionEstimate {
  east: number;
  north: number;
  /** 0..1: share of the top matches' similarity that agrees with the best match. */
  confidence: number;
  /** Database rows that voted (the best match first). */
  agreeing: number[];
  /** Metres within which a match agrees with the best one. */
  radius: number;
  /** Similarity-weighted RMS distance of the voters from the estimate, metres. */
  spreadMetres: number;
}

/** Added to d² only so that an exact duplicate (d = 0) gets a finite weight; real matches have d² of 0.01-1. */
export const SIMILARITY_EPSILON = 1e-8;

export const similarity = (distance: number): number => 1 / (distance * distance + SIMILARITY_EPSILON);

/** The estimate from matches sorted by distance (best first); null without matches. */
export function estimatePosition(matches: readonly Match[], radius = 25): PositionEstimate | null {
  if (!Number.isFinite(radius) || radius < 0) throw new Error(`estimate: radius must be metres >= 0, got ${radius}`);
  if (matches.length === 0) return null;
  const best = matches[0];
  const positions = new Float64Array(matches.length * 2);
  matches.forEach((m, i) => {
    positions[2 * i] = m.east;
    positions[2 * i + 1] = m.north;
  });
  const near = new PositionIndex(positions).within(best.east, best.north, radius);
  // within() sorts by distance, so the best match (at 0 m) comes first unless another match shares its position.
  const voters = [...near].sort((a, b) => a - b);
  let total = 0;
  for (const m of matches) total += similarity(m.distance);
  let weight = 0, east = 0, north = 0;
  for (const i of voters) {
    const w = similarity(matches[i].distance);
    weight += w;
    east += w * matches[i].east;
    north += w * matches[i].north;
  }
  east /= weight;
  north /= weight;
  let spread = 0;
  for (const i of voters) spread += similarity(matches[i].distance) * ((matches[i].east - east) ** 2 + (matches[i].north - north) ** 2);
  return {
    east, north, confidence: weight / total, agreeing: voters.map((i) => matches[i].id), radius,
    spreadMetres: Math.sqrt(spread / weight),
  };
}
