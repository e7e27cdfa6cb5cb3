import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import * as torch from '../../src/torch/index.ts';
import { openDataset } from '../../src/data/dataset.ts';
import { evaluate } from '../../src/eval/evaluate.ts';
import { recallAtRadii } from '../../src/eval/recall.ts';
import { readNpy } from '../../src/data/npy.ts';
import { TEST_METHODS } from '../../src/eval/test-methods.ts';
import { CSV_COLUMNS } from '../../src/eval/predictions.ts';
import { MeanColourModel, tinyDataset } from './helpers.ts';

// Solid-colour images; the model's descriptor is the (ImageNet-normalised) mean colour, so a query
// retrieves first the database image of its own colour (distance 0), then the nearest colours.
//   d0 red (0,0), d1 green (100,0), d2 green-blue (200,0) — the colour nearest to green — d3 blue (300,0).
//   q0 red at (10,0): top-1 d0, 10 m away              -> correct at 25 m.
//   q1 green at (195,0): top-1 d1 (95 m), top-2 d2 (5 m) -> wrong at R@1, correct at R@2; at 100 m correct at R@1.
//   q2 green-blue at (210,0): top-1 d2, 10 m away       -> correct.
//   q3 blue at (1000,1000): no database image nearby     -> never correct.
// (Queries are indexed in file-name order, i.e. by east here.)
// recall@{1,2,4} at 25 m: 50, 75, 75; at 100 m: 75, 75, 75.
const red: [number, number, number] = [250, 0, 0], green: [number, number, number] = [0, 200, 0];
const greenBlue: [number, number, number] = [0, 190, 20], blue: [number, number, number] = [0, 0, 250];

async function makeDataset() {
  const root = await tinyDataset(
    [{ east: 0, north: 0, rgb: red }, { east: 100, north: 0, rgb: green }, { east: 200, north: 0, rgb: greenBlue }, { east: 300, north: 0, rgb: blue }],
    [{ east: 10, north: 0, rgb: red }, { east: 195, north: 0, rgb: green }, { east: 1000, north: 1000, rgb: blue }, { east: 210, north: 0, rgb: greenBlue }],
  );
  return { root, dataset: await openDataset(root, 'tiny', 'test') };
}

test('evaluate end to end on a tiny dataset: recalls reasoned by hand, other radii from the same predictions, files written', async (t) => {
  const { root, dataset } = await makeDataset();
  t.after(() => rm(root, { recursive: true, force: true }));
  const outDir = join(root, 'out');
  const live = torch.liveTensors();
  const r = await evaluate(new MeanColourModel(), dataset, {
    recallValues: [1, 2, 4], extraRadii: [100], size: { height: 24, width: 32 }, batchSize: 3, progress: false,
    outDir, saveDescriptors: true, images: { sample: 4, wrong: 10, rowsPerPage: 3, topN: 3, cellWidth: 40, cellHeight: 30 },
  });
  assert.equal(torch.liveTensors(), live, 'descriptors are freed');
  assert.deepEqual(r.recalls, { 1: 50, 2: 75, 4: 75 });
  assert.deepEqual(r.recallsByRadius[100], { 1: 75, 2: 75, 4: 75 });
  assert.equal(r.predictions.k, 4);
  assert.deepEqual([0, 1, 2, 3].map((q) => r.predictions.indices[q * 4]), [0, 1, 2, 3]);
  assert.equal(r.predictions.indices[1 * 4 + 1], 2, 'q1 ranks the green-blue image second');
  assert.ok(r.predictions.distances[0] < 1e-3, 'same colour, distance ~0');
  // Re-evaluation at a new radius needs only predictions and positions.
  assert.deepEqual(recallAtRadii(r.predictions, dataset.databasePositions, dataset.queriesPositions, [6], [1, 2]), { 6: { 1: 0, 2: 25 } }); // only q1's d2 (5 m)

  // recalls.json
  const summary = JSON.parse(await readFile(join(outDir, 'recalls.json'), 'utf8'));
  assert.deepEqual(summary.recalls, { 1: 50, 2: 75, 4: 75 });
  assert.equal(summary.method, 'hard_resize');
  assert.equal(summary.dataset.name, 'tiny');
  assert.ok(summary.timings.totalMs > 0);
  // predictions.json: per query file, position, top-N with errors and correctness.
  const pj = JSON.parse(await readFile(join(outDir, 'predictions.json'), 'utf8'));
  assert.equal(pj.radius, 25);
  assert.equal(pj.queries.length, 4);
  const q1 = pj.queries[1];
  assert.match(q1.file, /^queries\/@0000195\.00@0000000\.00@/);
  assert.equal(q1.firstCorrectRank, 1);
  assert.deepEqual(q1.predictions.map((p: { database: number }) => p.database), [1, 2, 3, 0]);
  assert.deepEqual(q1.predictions.map((p: { errorMetres: number }) => p.errorMetres), [95, 5, 105, 195]);
  assert.deepEqual(q1.predictions.map((p: { correct: boolean }) => p.correct), [false, true, false, false]);
  assert.equal(pj.queries[3].positives, 0);
  // predictions.csv: header and one row per query and rank.
  const csv = (await readFile(join(outDir, 'predictions.csv'), 'utf8')).trim().split('\n');
  assert.deepEqual(csv[0].split(','), [...CSV_COLUMNS]);
  assert.equal(csv.length, 1 + 4 * 4);
  const row = Object.fromEntries(csv[0].split(',').map((c, i) => [c, csv[1 + 4 + 1].split(',')[i]])); // q1, rank 1
  assert.equal(row.query_index, '1');
  assert.equal(row.rank, '1');
  assert.equal(row.database_index, '2');
  assert.equal(row.error_m, '5.00');
  assert.equal(row.correct, 'true');
  // Descriptors as .npy: database rows are the unit mean colours.
  const npy = await readNpy(join(outDir, 'database.npy'));
  assert.deepEqual(npy.shape, [4, 3]);
  const norm = Math.hypot(npy.data[0], npy.data[1], npy.data[2]);
  assert.ok(Math.abs(norm - 1) < 1e-5);
  // Grids: 4 spread queries on 2 pages of 3 rows; wrong top-1 queries (q1, q3) on one page.
  const grids = (await readdir(join(outDir, 'grids'))).sort();
  assert.deepEqual(grids, ['sample-01.png', 'sample-02.png', 'wrong-01.png']);
  // In the wrong page, row 0 is q1: its #1 (d1, 95 m) is framed red, its #2 (d2, 5 m) green.
  const { data, info } = await sharp(join(outDir, 'grids', 'wrong-01.png')).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const pixel = (x: number, y: number) => Array.from(data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3));
  const pad = 10, cw = 40, title = 44, ch = 30; // the grid layout of src/data/grid.ts (cells after a 10-px pad, rows below a 44-px title)
  const frame = (col: number) => pixel(pad + col * (cw + pad) - 2, title + ch / 2); // inside the 4-px border, left of the cell
  assert.deepEqual(frame(0), [0x1f, 0x4e, 0x9e], 'query framed blue');
  assert.deepEqual(frame(1), [0xd6, 0x20, 0x20], 'wrong prediction framed red');
  assert.deepEqual(frame(2), [0x1a, 0x9e, 0x3a], 'correct prediction framed green');
  const inside = pixel(pad + 2 * (cw + pad) + cw / 2, title + ch / 2); // the d2 thumbnail itself
  assert.ok(Math.abs(inside[1] - 190) <= 2 && Math.abs(inside[2] - 20) <= 2, `thumbnail of d2 shows its colour, got ${inside}`);
});

test('every test-time method gives the same recalls on solid images (all crops look alike); bad options named', async (t) => {
  const { root, dataset } = await makeDataset();
  t.after(() => rm(root, { recursive: true, force: true }));
  for (const method of TEST_METHODS) {
    const r = await evaluate(new MeanColourModel(), dataset, { method, recallValues: [1, 2], size: { height: 24, width: 32 }, progress: false });
    assert.deepEqual(r.recalls, { 1: 50, 2: 75 }, method);
    assert.equal(r.predictions.count, 4, method);
  }
  const model = new MeanColourModel();
  await assert.rejects(evaluate(model, dataset, { method: 'six_crops' as never }), /unknown test method "six_crops"/);
  await assert.rejects(evaluate(model, dataset, { recallValues: [1, 0] }), /recall values must be positive integers, got \[1, 0\]/);
  await assert.rejects(evaluate(model, dataset, { radius: -1 }), /got -1/);
});

test('low-memory evaluation (database in chunks) gives the same predictions and recalls; refuses to save descriptors it never holds', async (t) => {
  const { root, dataset } = await makeDataset();
  t.after(() => rm(root, { recursive: true, force: true }));
  const options = { recallValues: [1, 2, 4], extraRadii: [100], size: { height: 24, width: 32 }, batchSize: 3, progress: false, images: false as const };
  const whole = await evaluate(new MeanColourModel(), dataset, options);
  for (const chunk of [1, 3]) {
    const live = torch.liveTensors();
    const parts = await evaluate(new MeanColourModel(), dataset, { ...options, databaseChunk: chunk });
    assert.equal(torch.liveTensors(), live, 'descriptors are freed');
    assert.deepEqual(Array.from(parts.predictions.indices), Array.from(whole.predictions.indices), `chunks of ${chunk}`);
    assert.deepEqual(parts.recallsByRadius, whole.recallsByRadius);
  }
  await assert.rejects(evaluate(new MeanColourModel(), dataset, { ...options, databaseChunk: 2, saveDescriptors: true }), /never holds the database descriptors/);
});
