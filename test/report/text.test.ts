// The templated statements of src/report/text.ts on hand-made numbers: the verdict follows the
// numbers (and changes with them); Typst output keeps any character of a name as text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { imageSizeStatement, valRadiusStatement, sizeGrid, type RadiusCurve } from '../../src/report/text.ts';
import { plainText } from '../../src/report/doc.ts';
import { compilePdf, typstSource } from '../../src/report/typst.ts';
import type { RunRecord } from '../../src/experiments/record.ts';

const curve = (variant: string, recalls: number[]): RadiusCurve => ({ variant, test: 'city', points: [5, 25, 100].map((radius, i) => ({ radius, recall: recalls[i]! })) });

test('ablation 4: confirmed while recall grows with the radius, not confirmed when it falls', () => {
  const up = valRadiusStatement([curve('gem', [20, 40, 95])]);
  assert.equal(up.verdict, 'confirmed');
  assert.match(plainText(up.observed), /gem 20\.0 at 5 m, 40\.0 at 25 m, 95\.0 at 100 m \(90% reached at 100 m\)/);
  const down = valRadiusStatement([curve('gem', [20, 40, 35])]);
  assert.equal(down.verdict, 'not confirmed');
  assert.match(plainText(down.observed), /falls with the radius for gem on city \(25 → 100 m\)/);
  assert.match(plainText(valRadiusStatement([curve('gem', [1, 2, 3])]).observed), /below 90% even at 100 m/);
  // where recall levels off: the same radius for both models, or not
  assert.match(plainText(valRadiusStatement([curve('gem', [20, 40, 95]), curve('netvlad', [10, 30, 91])]).observed), /set by the test set, not by the model/);
  const apart = plainText(valRadiusStatement([curve('gem', [20, 92, 95]), curve('netvlad', [10, 30, 91])]).observed);
  assert.match(apart, /reach 90% at different radii/);
  assert.match(apart, /On city recall reaches 90%/);
});

function record(variant: string, resize: string | undefined, seed: number, bySize: Record<string, number>): RunRecord {
  return {
    id: `${variant}/seed-${seed}`, variant, seed, options: resize ? { resize } : {}, model: 'x', commit: 'c',
    machine: { cpus: 'x', cores: 1, threads: 1, device: 'cpu', node: 'v' }, wallMs: { train: 0, evaluate: 0 }, phasesMs: { cache: 0, mine: 0, train: 0, validate: 0 }, epochs: 1,
    tests: Object.entries(bySize).map(([size, r1]) => ({ key: `city#test-${size}`, dataset: 'city', split: 'test', size: size.split('x').map(Number) as [number, number], queries: 10, radius: 25, recalls: { 1: r1 }, ranks: [], ms: 0 })),
  };
}

test('ablation 6: the grid is mean ± std over seeds per (training size, test size), and the verdicts follow it', () => {
  const matched = [
    record('small', '60x80', 0, { '60x80': 50, '120x160': 40 }), record('small', '60x80', 1, { '60x80': 54, '120x160': 42 }),
    record('large', undefined, 0, { '60x80': 30, '120x160': 70 }), record('large', undefined, 1, { '60x80': 34, '120x160': 72 }),
  ];
  const grid = sizeGrid(matched, { resize: '120x160' });
  const cell = grid.find((g) => g.train === '60x80' && g.testSize === '60x80')!;
  assert.equal(cell.recall, 52);
  assert.ok(Math.abs(cell.std - Math.SQRT2 * 2) < 1e-9); // sample std of 50, 54
  const s = imageSizeStatement(grid, undefined, undefined, {});
  assert.deepEqual(s.verdicts.city, { larger: true, matched: true }); // 120x160 averages 56.0 against 42.0 at 60x80
  assert.match(plainText(s.observed), /every model does best at its own training size/);
  // Every model best at the small size: larger is not better, and the large model is mismatched.
  const small = sizeGrid([record('small', '60x80', 0, { '60x80': 50, '120x160': 40 }), record('large', undefined, 0, { '60x80': 60, '120x160': 30 })], { resize: '120x160' });
  const t = imageSizeStatement(small, undefined, undefined, {});
  assert.deepEqual(t.verdicts.city, { larger: false, matched: false });
  assert.match(plainText(t.observed), /1 of 2 models do best at their own training size/);
});

test('Typst: names with markup characters are typeset as they are', { skip: spawnSync('pdftotext', ['-v']).error ? 'pdftotext not installed' : false }, () => {
  const name = 'v#1 *bold* _x_ $y$ [z] \\ @ref <l> "q" // c';
  const src = typstSource({ title: 'T', subtitle: 's', blocks: [{ kind: 'para', content: [name] }, { kind: 'table', caption: ['c'], header: ['a', 'b'], rows: [[[name], ['1.0 ± 0.5']]] }], references: ['R.'] });
  const pdf = compilePdf(src, process.cwd());
  const text = spawnSync('pdftotext', ['-', '-'], { input: pdf, encoding: 'utf8' }).stdout.replace(/\s+/g, ' ');
  assert.ok(text.includes(name), text);
  assert.ok(text.includes('1.0 ± 0.5'));
});

test('main table: evaluation variants that repeat the 25 m recall are left out, the others kept; with size variants the plain keys go', async () => {
  const { mainTests } = await import('../../src/report/sections.ts');
  const plan = (evaluations: Record<string, unknown>[], tests: string[]) => ({ plan: { evaluations }, table: { tests } }) as unknown as Parameters<typeof mainTests>[0];
  assert.deepEqual(mainTests(plan([{ name: 'radii', radii: [5] }, { name: 'search', searchSizes: [10] }, { name: 'bf16', precision: 'bf16' }, { name: 'pca', pcaDim: 8 }],
    ['a', 'a#radii', 'a#search', 'a#bf16', 'a#pca'])), ['a', 'a#bf16', 'a#pca']);
  assert.deepEqual(mainTests(plan([{ name: 'test-1x2', size: [1, 2] }], ['a', 'a#test-1x2'])), ['a#test-1x2']);
});
