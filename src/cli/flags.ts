// Option validation shared by every command: zod schemas at the edge, errors that name the flag.
import { z } from 'zod';

export class UsageError extends Error {}

/** The command-line spelling of an option key: `pcaDim` → `--pca-dim`. */
export const flagName = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** An image size flag "HxW" (e.g. 480x640) → [height, width], each side at least minSide pixels. */
export function imageSizeFlag(minSide = 1) {
  return z.string().transform((s, ctx) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m || Number(m[1]) < minSide || Number(m[2]) < minSide) {
      ctx.addIssue({ code: 'custom', message: `expected HxW in pixels${minSide > 1 ? ` (each at least ${minSide})` : ''}, e.g. 480x640` });
      return z.NEVER;
    }
    return [Number(m[1]), Number(m[2])] as [number, number];
  });
}

/** Parses commander's raw options with schema; an invalid value is reported with its flag. */
export function parseFlags<S extends z.ZodType>(schema: S, raw: unknown): z.infer<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    const key = i.path.map(String).join('.');
    const value = key && raw && typeof raw === 'object' ? (raw as Record<string, unknown>)[key] : undefined;
    return `  ${key ? flagName(key) : 'options'}${value !== undefined ? ` ${JSON.stringify(value)}` : ''}: ${i.message}`;
  });
  throw new UsageError(`invalid options:\n${lines.join('\n')}`);
}
