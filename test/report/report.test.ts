// vgl report on the hand-made tiny study (test/fixtures/report/study, written by make-study.ts):
// the PDF's pages rendered (pdftoppm) are not blank where they hold figures, every table row of the
// PDF (pdftotext) carries the numbers recomputed here from the evaluation.json files, and the
// expected-vs-observed verdict flips when the fixture's numbers are swapped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { buildReport } from '../../src/report/report.ts';

const FIXTURE = 'test/fixtures/report/study';
const poppler = spawnSync('pdftoppm', ['-v']).error === undefined && spawnSync('pdftotext', ['-v']).error === undefined;
const NO_POPPLER = poppler ? false : 'pdftoppm/pdftotext not installed (Debian poppler-utils): the PDF is not inspected';

interface Rec { variant: string; seed: number; tests: { key: string; queries: number; recalls: Record<string, number>; ranks: number[] }[] }

function records(plan: string): Rec[] {
  const out: Rec[] = [];
  for (const v of readdirSync(join(FIXTURE, plan), { withFileTypes: true })) {
    if (!v.isDirectory()) continue;
    for (const s of readdirSync(join(FIXTURE, plan, v.name))) out.push(JSON.parse(readFileSync(join(FIXTURE, plan, v.name, s, 'evaluation.json'), 'utf8')) as Rec);
  }
  return out;
}

// Mean and sample std (n - 1) over seeds, printed with one decimal: what the table should say.
function meanStd(xs: number[]): [number, number] {
  const m = xs.reduce((a, x) => a + x, 0) / xs.length;
  return [m, xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1)) : 0];
}
const cell = (xs: number[]) => meanStd(xs).map((x) => x.toFixed(1)).join(' ± ');
const signed = (x: number) => (Math.abs(x) < 0.05 ? '+0.0' : `${x > 0 ? '+' : '−'}${Math.abs(x).toFixed(1)}`);
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const flat = (s: string) => s.replace(/\s+/g, ' ');

const pdfText = (pdf: string, page?: number) => execFileSync('pdftotext', ['-layout', ...(page ? ['-f', String(page), '-l', String(page)] : []), pdf, '-'], { encoding: 'utf8' });
const pageCount = (pdf: string) => Number(/Pages:\s+(\d+)/.exec(execFileSync('pdfinfo', [pdf], { encoding: 'utf8' }))![1]);

const out = mkdtempSync(join(tmpdir(), 'vgl-report-'));
const built = buildReport(FIXTURE, { out, examples: undefined });

test('writes report.pdf, report.html and each figure as SVG and PNG', async () => {
  const r = await built;
  for (const f of [r.pdf, r.html, r.typst]) assert.ok(existsSync(f), f);
  assert.equal(readFileSync(r.pdf).subarray(0, 5).toString(), '%PDF-');
  const svgs = r.figures.filter((f) => f.endsWith('.svg'));
  assert.ok(svgs.length >= 4, `figures: ${r.figures.join(', ')}`);
  for (const svg of svgs) {
    assert.match(readFileSync(svg, 'utf8'), /^<svg/);
    assert.ok(existsSync(svg.replace(/\.svg$/, '.png')), `${svg}: no PNG`);
  }
});

test('the pages render; every page with a figure has drawn, coloured content', { skip: NO_POPPLER }, async () => {
  const r = await built;
  const pages = pageCount(r.pdf);
  // title + contents, intro, method, data, three plan sections with figures, answers, appendix
  assert.ok(pages >= 6 && pages <= 40, `${pages} pages`);
  assert.equal(pages, r.pages, 'the PDF has the pages Typst laid out');
  execFileSync('pdftoppm', ['-r', '40', '-png', r.pdf, join(out, 'page')]);
  const pngs = readdirSync(out).filter((f) => /^page-\d+\.png$/.test(f)).sort();
  assert.equal(pngs.length, pages);
  let figurePages = 0;
  for (const [i, f] of pngs.entries()) {
    const { data, info } = await sharp(join(out, f)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    let ink = 0, colour = 0;
    for (let p = 0; p < data.length; p += info.channels) {
      const [r_, g, b] = [data[p]!, data[p + 1]!, data[p + 2]!];
      if (r_ + g + b < 600) ink++;
      if (Math.max(r_, g, b) - Math.min(r_, g, b) > 60) colour++;
    }
    assert.ok(ink > 0.002 * info.width * info.height, `page ${i + 1} is blank`);
    if (/Figure \d+:/.test(pdfText(r.pdf, i + 1))) {
      figurePages++;
      // the plots use the Okabe-Ito colours: a page with a figure but no colour lost its plot
      assert.ok(colour > 40, `page ${i + 1} has a figure caption but ${colour} coloured pixels`);
    }
  }
  assert.ok(figurePages >= 3, `${figurePages} pages with figures`);
});

test('every row of every table carries the numbers of the evaluation.json files', { skip: NO_POPPLER }, async () => {
  const r = await built;
  const text = pdfText(r.pdf);
  const html = flat(readFileSync(r.html, 'utf8'));
  let rows = 0;
  for (const plan of ['baselines', 'ablation-3-train-threshold', 'ablation-4-val-radius']) {
    const plans = JSON.parse(readFileSync(join(FIXTURE, plan, 'plan.json'), 'utf8')) as { variants: { name: string; against?: string | string[] }[] };
    const recs = records(plan);
    for (const key of [...new Set(recs.flatMap((x) => x.tests.map((t) => t.key)))].filter((k) => !k.includes('#'))) {
      for (const v of plans.variants) {
        const rs = recs.filter((x) => x.variant === v.name).map((x) => x.tests.find((t) => t.key === key)!);
        const recall = (n: number) => cell(rs.map((t) => t.recalls[n]!));
        let row = `${esc(key)}\\s+${esc(v.name)}\\s+${rs.length}\\s+${rs[0]!.queries}\\s+${esc(recall(1))}\\s+${esc(recall(5))}\\s+${esc(recall(10))}`;
        // The R@1 difference against the comparison: the difference of the mean R@1s (the paired scores average to them).
        const against = typeof v.against === 'string' ? v.against : v.against?.[0] ?? (v === plans.variants[0] ? undefined : plans.variants[0]!.name);
        if (against) {
          const base = recs.filter((x) => x.variant === against).map((x) => x.tests.find((t) => t.key === key)!);
          row += `\\s+${esc(signed(meanStd(rs.map((t) => t.recalls[1]!))[0] - meanStd(base.map((t) => t.recalls[1]!))[0]))} \\[`;
        }
        assert.match(text, new RegExp(row), `PDF row of ${plan} ${v.name} on ${key}`);
        assert.ok(html.includes(`>${recall(1)}<`), `HTML cell ${recall(1)} of ${plan} ${v.name} on ${key}`);
        rows++;
      }
    }
  }
  assert.equal(rows, 2 * 2 + 3 + 1);
  // ablation 4's radius table: the recallsByRadius of the single seed
  const byRadius = records('ablation-4-val-radius')[0]!.tests.find((t) => t.key.endsWith('#radii')) as unknown as { recallsByRadius: Record<string, Record<string, number>> };
  const radii = Object.keys(byRadius.recallsByRadius).map(Number).sort((a, b) => a - b);
  assert.match(text, new RegExp(`synth-city\\s+gem\\s+${radii.map((x) => esc(byRadius.recallsByRadius[x]![1]!.toFixed(1))).join('\\s+')}`));
});

test('plans the folder lacks are said to be missing, and the study is not called reduced without --quick', async () => {
  const r = await built;
  const html = flat(readFileSync(r.html, 'utf8'));
  assert.match(html, /Not in this folder: .*Ablation 1: learning rate and optimiser \(ablation-1-lr-optimizer\)/);
  assert.match(html, /Not on this machine: <\/strong>synth-city/); // no datasets under the fixture's datasets_folder
  assert.doesNotMatch(html, /Reduced study/);
});

test('the expected-vs-observed verdict and the comparisons flip when the numbers flip; a quick plan makes it a reduced study', { skip: NO_POPPLER }, async () => {
  const r = await built;
  const before = flat(pdfText(r.pdf));
  assert.match(before, /The prediction is confirmed: both extremes lose recall measurably/);
  assert.match(before, /on synth-city, netvlad has R@1 [^:]+: \+\d+\.\d \[[^\]]+\], higher beyond noise/);

  // Swap the numbers: 50 m gets the 10 m runs' test results and back; gem gets netvlad's and back.
  const flipped = mkdtempSync(join(tmpdir(), 'vgl-report-flip-'));
  cpSync(FIXTURE, flipped, { recursive: true });
  const swap = (plan: string, a: string, b: string) => {
    for (const seed of [0, 1]) {
      const fa = join(flipped, plan, a, `seed-${seed}`, 'evaluation.json'), fb = join(flipped, plan, b, `seed-${seed}`, 'evaluation.json');
      const ra = JSON.parse(readFileSync(fa, 'utf8')), rb = JSON.parse(readFileSync(fb, 'utf8'));
      [ra.tests, rb.tests] = [rb.tests, ra.tests];
      writeFileSync(fa, JSON.stringify(ra));
      writeFileSync(fb, JSON.stringify(rb));
    }
  };
  swap('ablation-3-train-threshold', 'train-10m', 'train-50m');
  swap('baselines', 'gem', 'netvlad');
  // and mark the study as the quick one the way experiments/quick's plans do (their description);
  // give it a tiny synth-city test split on disk (6 database images every 10 m, 3 queries) for the data section
  const datasets = join(flipped, 'datasets');
  for (const [part, norths] of [['database', [0, 10, 20, 30, 40, 50]], ['queries', [2, 21, 48]]] as const) {
    const dir = join(datasets, 'synth-city', 'images', 'test', part);
    mkdirSync(dir, { recursive: true });
    for (const n of norths) await sharp({ create: { width: 32, height: 24, channels: 3, background: { r: 40 + 4 * n, g: 90, b: 160 } } }).jpeg().toFile(join(dir, `@500000.00@${(4000000 + n).toFixed(2)}@@@@@@@@@@@@.jpg`));
  }
  for (const plan of ['baselines', 'ablation-3-train-threshold', 'ablation-4-val-radius']) {
    const planFile = join(flipped, plan, 'plan.json');
    const json = JSON.parse(readFileSync(planFile, 'utf8'));
    json.defaults.datasets_folder = datasets;
    if (plan === 'baselines') json.description = 'quick: reduced';
    writeFileSync(planFile, JSON.stringify(json));
  }
  const r2 = await buildReport(flipped, { out: join(flipped, 'report') });
  const after = flat(pdfText(r2.pdf));
  assert.match(after, /The prediction is contradicted: 50 m is better than 10 m/);
  assert.ok(!after.includes('The prediction is confirmed: both extremes'), 'ablation 3 still confirmed after the flip');
  assert.match(after, /on synth-city, netvlad has R@1 [^:]+: −\d+\.\d \[[^\]]+\], lower beyond noise/);
  assert.match(after, /Reduced study/);
  // the data section: synth-city's test split counted (queries within 10 m: 2, 2 and 2 database images; within 25 m: 3, 5 and 3; nearest 2, 1 and 2 m),
  // its figures drawn; the training split and gardens_point_night named as missing
  const layout = pdfText(r2.pdf);
  assert.match(layout, /synth-city\s+test\s+6\s+3\s+2\.0\s+3\.7\s+0\s+2\.0/);
  assert.match(after, /Not on this machine: .*gardens_point_night \(test; looked for/);
  assert.match(after, /synth-city \(train\)/);
  for (const f of ['test-map.svg', 'test-positives.svg', 'test-examples.png']) assert.ok(existsSync(join(flipped, 'report', 'figures', 'data', 'synth-city', f)), f);
});

test('vgl report on the command line: the files, and a missing folder refused with exit 2', { skip: NO_POPPLER }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vgl-report-cli-'));
  const ok = spawnSync(process.execPath, ['bin/vgl.js', 'report', `${FIXTURE}/ablation-3-train-threshold`, '--out', dir, '--quick', '--no-dataset-figures', '--examples', join(dir, 'none')], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /report: .*report\.pdf/);
  const text = flat(pdfText(join(dir, 'report.pdf')));
  assert.match(text, /Reduced study/);
  assert.match(text, /Dataset figures were not drawn/);
  assert.match(text, /No saved prediction grids in/);
  const bad = spawnSync(process.execPath, ['bin/vgl.js', 'report', `${FIXTURE}/nope`, '--out', dir], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /study\/nope: not a folder/);
});
