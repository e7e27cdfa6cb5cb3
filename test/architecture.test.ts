// The layers of src/ (docs/architecture.md): folders follow the flow of data, and a module imports
// only from its own folder or from layers to its left; no module imports itself back through others.
// Read from the source text (every `import`/`export ... from './...'`), so a new file is checked too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = resolve(import.meta.dirname, '..', 'src');
/** Left to right. util/ and errors.ts are layer 0: anything may use them, they use nothing else of vgl (util may throw errors.ts's errors). */
const LAYER: Record<string, number> = {
  'errors.ts': 0, util: 0, torch: 1, data: 2, models: 3, eval: 4, train: 5, experiments: 6, serve: 6, bench: 6, report: 7, cli: 8,
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Each module's imports of other vgl modules: the target and whether it is `import type` only. */
function imports(): Map<string, { target: string; typeOnly: boolean }[]> {
  const graph = new Map<string, { target: string; typeOnly: boolean }[]>();
  for (const file of sources(SRC)) {
    const text = readFileSync(file, 'utf8');
    const found: { target: string; typeOnly: boolean }[] = [];
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(type\s+)?[^;]*?\bfrom\s+'(\.{1,2}\/[^']+)'/gms)) {
      found.push({ target: resolve(dirname(file), m[2]), typeOnly: m[1] !== undefined });
    }
    graph.set(file, found);
  }
  return graph;
}

const folderOf = (file: string) => relative(SRC, file).split('/')[0];

test('every src/ module imports only from its own folder or from a layer to its left', () => {
  const wrong: string[] = [];
  for (const [file, deps] of imports()) {
    const from = folderOf(file);
    assert.ok(from in LAYER, `${relative(SRC, file)}: folder ${from} has no layer (add it to LAYER and to docs/architecture.md)`);
    for (const { target } of deps) {
      const to = folderOf(target);
      if (to === from || (from === 'util' && to === 'errors.ts')) continue;
      if (!(LAYER[to] < LAYER[from])) wrong.push(`${relative(SRC, file)} imports ${relative(SRC, target)} (${from} is layer ${LAYER[from]}, ${to} layer ${LAYER[to]})`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('no import cycle among src/ modules (type-only imports aside: they vanish at run time)', () => {
  const graph = imports();
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const path: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    path.push(file);
    for (const { target, typeOnly } of graph.get(file) ?? []) {
      if (typeOnly || !graph.has(target)) continue;
      if (state.get(target) === 'open') cycles.push([...path.slice(path.indexOf(target)), target].map((f) => relative(SRC, f)).join(' -> '));
      else if (!state.has(target)) visit(target);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  assert.deepEqual(cycles, []);
  assert.ok(graph.size > 100, `read ${graph.size} modules`);
});
