// Option validation shared by every command: zod schemas at the edge, errors that name the flag.
import type { z } from 'zod';

export class UsageError extends Error {}

const flagName = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

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
