// Option validation shared by every command: zod schemas at the edge, errors that name the flag.
import { z } from 'zod';
import { UsageError, flagName } from '../errors.ts';
import { parseSize } from '../data/image.ts';

export { UsageError, flagName };

/** An image size flag "HxW" (e.g. 480x640) → [height, width], each side at least minSide pixels. */
export function imageSizeFlag(minSide = 1) {
  return z.string().transform((s, ctx) => {
    const size = parseSize(s);
    if (!size || size[0] < minSide || size[1] < minSide) {
      ctx.addIssue({ code: 'custom', message: `expected HxW in pixels${minSide > 1 ? ` (each at least ${minSide})` : ''}, e.g. 480x640` });
      return z.NEVER;
    }
    return size;
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

/** What a flag takes, read off a zod field. */
export type FlagKind = 'number' | 'string' | 'size' | 'sizes' | 'list' | 'bool';

export interface SchemaFlag {
  /** The option key (camelCase) and its flag (kebab-case). */
  key: string;
  flag: string;
  kind: FlagKind;
  /** The field's description, its choices and its default. */
  help: string;
}

interface ZodInternals { _zod: { def: { type: string; innerType?: ZodInternals; in?: ZodInternals; defaultValue?: unknown; entries?: Record<string, string>; element?: ZodInternals } }; description?: string }

/**
 * One flag per field of a zod object shape: the kind from the field's type (enums and strings take a
 * string, tuples an HxW size, arrays a comma list — of numbers, or of sizes), the help from its description, choices and default.
 */
export function flagsFromShape(shape: Record<string, unknown>): SchemaFlag[] {
  return Object.entries(shape).map(([key, field]) => {
    let t = field as ZodInternals;
    let fallback: unknown;
    while (['default', 'optional', 'pipe'].includes(t._zod.def.type)) {
      if (t._zod.def.type === 'default') fallback = t._zod.def.defaultValue;
      t = (t._zod.def.type === 'pipe' ? t._zod.def.in : t._zod.def.innerType)!;
    }
    const type = t._zod.def.type;
    const list = type === 'array' ? (t._zod.def.element?._zod.def.type === 'tuple' ? 'sizes' : 'list') : undefined;
    const kind: FlagKind = type === 'number' ? 'number' : type === 'boolean' ? 'bool' : type === 'tuple' ? 'size' : list ?? 'string';
    const parts = [(field as ZodInternals).description ?? key];
    if (type === 'enum') parts.push(`(${Object.values(t._zod.def.entries!).join(' | ')})`);
    const shown = kind === 'size' ? (fallback as number[]).join('x')
      : kind === 'sizes' ? (fallback as number[][]).map((f) => f.join('x')).join(',') || 'none'
        : Array.isArray(fallback) ? fallback.join(',') : String(fallback);
    if (fallback !== undefined) parts.push(`[default: ${shown}]`);
    return { key, flag: flagName(key).slice(2), kind, help: parts.join(' ') };
  });
}
