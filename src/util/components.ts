// Components that declare their own options: a backbone, a head, a loss, a miner... is a registry
// entry `{ name, options, create }` whose options are zod fields (type, default, description), written
// once beside the component. Configs, flags and help are composed from these declarations.
import { z } from 'zod';
import { OptionError } from '../errors.ts';

/** Options as zod fields, keyed by the name configs and flags spell (camelCase). */
export type OptionShape = Record<string, z.ZodType>;

/** What every registry entry has: a name and its option declarations. */
export interface Component<N extends string = string, O extends OptionShape = OptionShape> {
  name: N;
  options: O;
}

type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;

/** The options of several components as one shape. */
export type MergedOptions<C extends Component> = UnionToIntersection<C['options']> & OptionShape;

/**
 * The options of several components as one shape. Components may share an option (GeM and MAC both
 * read `l2`) only by sharing its declaration: two different fields under one name are an error.
 */
export function mergeOptions<C extends Component>(components: readonly C[], what: string): MergedOptions<C> {
  const merged: OptionShape = {};
  const owner: Record<string, string> = {};
  for (const c of components) {
    for (const [key, field] of Object.entries(c.options)) {
      if (key in merged && merged[key] !== field) {
        throw new Error(`${what}: option ${key} is declared by ${owner[key]} and, differently, by ${c.name}; share one declaration or rename one`);
      }
      merged[key] = field;
      owner[key] ??= c.name;
    }
  }
  return merged as MergedOptions<C>;
}

/** The names of the components that declare `key` (for "applies to X only" errors). */
export function componentsDeclaring(components: readonly Component[], key: string): string[] {
  return components.filter((c) => key in c.options).map((c) => c.name);
}

/** A component's own options out of a bag of many (its defaults applied; the others' dropped). */
export function optionsFor<O extends OptionShape>(component: Component<string, O>, values: Record<string, unknown>): z.output<z.ZodObject<O>> {
  const own = Object.fromEntries(Object.keys(component.options).filter((k) => values[k] !== undefined).map((k) => [k, values[k]]));
  const parsed = z.object(component.options).safeParse(own);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const key = String(issue.path[0]);
  throw new OptionError(key, `${JSON.stringify(own[key])} for ${component.name}: ${issue.message.replace(/^Invalid option: /, '')}`);
}

/** The names of a registry, for z.enum (which wants a non-empty tuple). */
export function namesOf<N extends string>(components: readonly Component<N>[]): [N, ...N[]] {
  if (components.length === 0) throw new Error('a registry needs at least one entry');
  return components.map((c) => c.name) as [N, ...N[]];
}
