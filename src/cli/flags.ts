// Option validation shared by every command: zod schemas at the edge, errors that name the flag.
import { z } from 'zod';
import type { Command } from 'commander';
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

/**
 * Parses commander's raw options with schema; an invalid value is reported with its flag. `nameOf`
 * gives an issue's option name (flat) from its path in a nested schema (default: the path joined).
 */
export function parseFlags<S extends z.ZodType>(schema: S, raw: unknown, nameOf: (path: readonly PropertyKey[]) => string = (p) => p.map(String).join('.')): z.infer<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    const key = nameOf(i.path);
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

/** A command-line value (commander's string, or true for a bare switch) as the kind of its field. */
export function flagValue(kind: FlagKind, flag: string, v: string | boolean): unknown {
  if (kind === 'bool') {
    if (v === true || v === 'true') return true;
    if (v === 'false') return false;
    throw new UsageError(`--${flag} "${String(v)}": expected true or false (or no value for true)`);
  }
  const s = String(v);
  if (kind === 'string') return s;
  if (kind === 'number') {
    const n = Number(s);
    if (s.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag} "${s}": expected a number`);
    return n;
  }
  if (kind === 'list') return s.split(',').map((x) => flagValue('number', flag, x));
  if (kind === 'sizes') return s.split(',').map((x) => flagValue('size', flag, x));
  const size = imageSizeFlag().safeParse(s);
  if (!size.success) throw new UsageError(`--${flag} "${s}": ${size.error.issues[0].message}`);
  return size.data;
}

/** One commander option per schema flag; switches take an optional value (--gem-p-trainable, --gem-p-trainable false). */
export function addSchemaOptions(cmd: Command, flags: readonly SchemaFlag[], helpPrefix = ''): Command {
  for (const { flag, kind, help } of flags) cmd.option(kind === 'bool' ? `--${flag} [value]` : `--${flag} <value>`, `${helpPrefix}${help}`);
  return cmd;
}

/**
 * A shape's fields as optional command flags: a value given on the command line is converted by its
 * kind and validated by the field (its default dropped: absent stays absent, so a run's config or the
 * field's default applies later, where the spec is parsed).
 */
export function optionalFlagFields<S extends Record<string, z.ZodType>>(shape: S): { [K in keyof S]: z.ZodType<z.output<S[K]> | undefined> } {
  const kinds = new Map(flagsFromShape(shape).map((f) => [f.key, f]));
  return Object.fromEntries(Object.entries(shape).map(([key, field]) => {
    const { kind, flag } = kinds.get(key)!;
    let inner = field as unknown as ZodInternals;
    while (['default', 'optional'].includes(inner._zod.def.type)) inner = inner._zod.def.innerType!;
    return [key, z.preprocess((v) => (v === undefined ? undefined : typeof v === 'string' || v === true ? flagValue(kind, flag, v) : v),
      (inner as unknown as z.ZodType).optional())];
  })) as never;
}
