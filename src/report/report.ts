// `vgl report`: the brief's report from an experiments folder — load the plans' records, draw the
// figures, write the text from the numbers, typeset report.pdf with Typst and report.html from the
// same document. Also: dataset figures for every dataset the plans used (where the dataset is on
// disk), example retrievals from saved prediction grids, and a reproducibility appendix.
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { cpus, totalmem } from 'node:os';
import sharp from 'sharp';
import { gitCommit } from '../util/provenance.ts';
import { writeDatasetReport } from './dataset-stats.ts';
import { b, code, heading, para, type Block, type FigureBlock, type Inline, type ReportDoc, type TableBlock } from './doc.ts';
import { writeFigure } from '../util/figure.ts';
import { loadStudy, type Study } from './load.ts';
import { CATALOGUE, planSection, type FigureSink } from './sections.ts';
import { answers } from './answers.ts';
import { introduction, method, relatedWork, REFERENCES } from './content.ts';
import { f1 } from './text.ts';
import { compilePdf, typstSource } from './typst.ts';
import { htmlDocument } from './html.ts';

export interface ReportOptions {
  out: string;
  /** The study was a reduced one (make report QUICK=1): said at the top of the report. */
  quick?: boolean;
  /** A folder of saved evaluations with grids (vgl demo's runs/demo); none: no example retrievals. */
  examples?: string;
  /** Draw the dataset figures (default true; needs the datasets on disk). */
  datasetFigures?: boolean;
  log?: (s: string) => void;
}

export interface ReportFiles { pdf: string; html: string; typst: string; figures: string[]; pages?: number }

/** A JPEG beside a photo grid PNG, at most 1400 px wide, for the PDF (the PNGs made it ~20 MB). */
async function printCopy(png: string): Promise<string> {
  const jpg = png.replace(/\.png$/, '.print.jpg');
  await sharp(png).resize({ width: 1400, withoutEnlargement: true }).flatten({ background: '#ffffff' }).jpeg({ quality: 82 }).toFile(jpg);
  return jpg;
}

/** Datasets the plans trained and tested on: root → name → splits. */
function datasetsUsed(s: Study): { root: string; name: string; splits: string[] }[] {
  const out = new Map<string, { root: string; name: string; splits: Set<string> }>();
  const add = (root: string, name: string, split: string) => {
    const k = `${root}\u0000${name}`;
    const e = out.get(k) ?? { root, name, splits: new Set<string>() };
    e.splits.add(split);
    out.set(k, e);
  };
  for (const p of s.plans) {
    const d = p.plan.defaults;
    const root = String(d.datasets_folder ?? d.datasetsFolder ?? 'data/datasets');
    const training = new Set([d.dataset_name ?? d.datasetName, ...(p.plan.variants ?? []).map((v) => v.dataset_name ?? v.datasetName)].filter((x): x is string => typeof x === 'string'));
    for (const n of training) for (const one of n.split(',')) add(root, one, 'train');
    for (const t of p.plan.tests) add(root, t.dataset, t.split);
  }
  return [...out.values()].map((e) => ({ root: e.root, name: e.name, splits: [...e.splits].sort() }));
}

async function dataSection(s: Study, outDir: string, figures: string[], log: (s: string) => void): Promise<Block[]> {
  const blocks: Block[] = [heading(1, 'Data')];
  const used = datasetsUsed(s);
  blocks.push(para(`The plans train and test on ${used.length} dataset${used.length === 1 ? '' : 's'} (datasets_vg layout: database and queries per split, positions in UTM metres in the file names). Numbers and figures below are those of `, code('vgl dataset stats'), ' on each split used: positives are database images within the training radius (hard, 10 m) and the test radius (soft, 25 m) of a query.'));
  const rows: Inline[][][] = [];
  const missing: string[] = [];
  const figs: Block[] = [];
  for (const d of used) {
    if (!existsSync(join(d.root, d.name, 'images'))) {
      missing.push(`${d.name} (${d.splits.join(', ')}; looked for ${join(d.root, d.name)})`);
      continue;
    }
    const present = d.splits.filter((sp) => existsSync(join(d.root, d.name, 'images', sp)));
    const absent = d.splits.filter((sp) => !present.includes(sp));
    if (absent.length > 0) missing.push(`${d.name} (${absent.join(', ')})`);
    if (present.length === 0) continue;
    log(`dataset figures: ${d.name} (${present.join(', ')})`);
    const dir = join(outDir, 'figures', 'data', d.name);
    const r = await writeDatasetReport(d.root, d.name, dir, { splits: present, exampleQueries: 3, examplePositives: 4 });
    figures.push(...r.figures);
    for (const sp of r.stats.splits) {
      rows.push([[d.name], [sp.split], [String(sp.database)], [String(sp.queries)], [f1(sp.hardPositivesPerQuery.mean)], [f1(sp.softPositivesPerQuery.mean)], [String(sp.queriesWithoutSoftPositive)], [f1(sp.nearestDatabaseDistance.median)]]);
      const rel = (f: string) => relative(outDir, join(dir, f));
      figs.push(heading(3, `${d.name} / ${sp.split}`));
      figs.push({ kind: 'figrow', figures: [
        { kind: 'figure', svg: rel(`${sp.split}-map.svg`), png: rel(`${sp.split}-map.png`), caption: [`${d.name} / ${sp.split}: positions of the database images and queries (UTM).`] },
        { kind: 'figure', svg: rel(`${sp.split}-positives.svg`), png: rel(`${sp.split}-positives.png`), caption: [`${d.name} / ${sp.split}: database images within ${sp.hardRadius} m and ${sp.softRadius} m of each query.`] },
      ] });
      const jpg = await printCopy(join(dir, `${sp.split}-examples.png`));
      figs.push({ kind: 'figure', png: rel(`${sp.split}-examples.png`), print: relative(outDir, jpg), width: 0.75, caption: [`${d.name} / ${sp.split}: example queries and their positives.`] });
    }
  }
  if (rows.length > 0) {
    const table: TableBlock = {
      kind: 'table', scale: 0.9, caption: ['The datasets used: images per split, mean positives per query, queries without a positive within 25 m, median distance from a query to its nearest database image (m). Source: vgl dataset stats (summary.json under figures/data/).'],
      header: ['dataset', 'split', 'database', 'queries', 'pos ≤ 10 m', 'pos ≤ 25 m', 'no pos ≤ 25 m', 'nearest (m)'], align: ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r'], rows,
    };
    blocks.push(table);
  }
  if (missing.length > 0) blocks.push(para(b('Not on this machine: '), `${missing.join('; ')} — no figures for ${missing.length === 1 ? 'it' : 'them'} (make them with vgl demo datasets, then rebuild the report).`));
  blocks.push(...figs);
  return blocks;
}

/** Example retrievals: a correct and a wrong grid per saved evaluation of the examples folder. */
async function examplesSection(dir: string | undefined, outDir: string, figures: string[]): Promise<Block[]> {
  const blocks: Block[] = [heading(2, 'Example retrievals')];
  const found: { model: string; test: string; folder: string }[] = [];
  if (dir && existsSync(dir)) {
    for (const model of readdirSync(dir).sort()) {
      const trained = join(dir, model, 'trained');
      if (!existsSync(trained)) continue;
      for (const test of readdirSync(trained).sort()) if (existsSync(join(trained, test, 'grids'))) found.push({ model, test, folder: join(trained, test) });
    }
  }
  if (found.length === 0) return [...blocks, para(`No saved prediction grids${dir ? ` in ${dir}` : ''} (vgl demo or vgl eval --output-folder writes them): no examples.`)];
  blocks.push(para(`Grids saved by the demo's evaluations (${dir}: its models are trained with the demo's own recipe, not the study's): each row a query and its top retrievals, correct ones (within the radius) framed green, wrong ones red. One row set where the top-1 is right, one of failures, per model and test set.`));
  // At most two test sets per model keep the report readable: the first real ones in name order.
  const chosen = found.filter((f) => !f.test.includes('@'));
  const perModel = new Map<string, number>();
  for (const f of chosen) {
    const n = perModel.get(f.model) ?? 0;
    if (n >= 2) continue;
    perModel.set(f.model, n + 1);
    let r1 = '';
    try { r1 = f1(JSON.parse(await readFile(join(f.folder, 'recalls.json'), 'utf8')).recalls['1']); } catch { /* a grid without recalls.json is shown without its R@1 */ }
    for (const kind of ['sample', 'wrong']) {
      const src = join(f.folder, 'grids', `${kind}-01.png`);
      if (!existsSync(src)) continue;
      const dst = join(outDir, 'figures', 'examples', `${f.model}-${f.test}-${kind}.png`);
      await mkdir(join(outDir, 'figures', 'examples'), { recursive: true });
      await copyFile(src, dst);
      figures.push(dst);
      blocks.push({ kind: 'figure', png: relative(outDir, dst), print: relative(outDir, await printCopy(dst)), width: 0.8, caption: [`${f.model} on ${f.test}${r1 ? ` (R@1 ${r1})` : ''}: ${kind === 'sample' ? 'sample queries' : 'queries whose top-1 is wrong'}.`] } satisfies FigureBlock);
    }
  }
  return blocks;
}

function reproducibility(s: Study, opts: ReportOptions, quick: boolean): Block[] {
  const records = s.plans.flatMap((p) => p.records);
  const commits = new Map<string, number>();
  for (const r of records) commits.set(r.commit, (commits.get(r.commit) ?? 0) + 1);
  const machines = [...new Set(records.map((r) => `${r.machine.cpus}, ${r.machine.cores} cores, ${r.machine.threads} threads, ${r.machine.device}, node ${r.machine.node}`))];
  const rows: Inline[][][] = s.plans.map((p) => {
    const own = p.records.filter((r) => !r.trainedBy);
    const sum = (f: (r: (typeof own)[number]) => number, rs = own) => rs.reduce((a, r) => a + f(r), 0) / 60_000;
    return [[p.name], [`${p.records.length} / ${p.planned}`], [String(p.records.length - own.length)], [f1(sum((r) => r.wallMs.train))], [f1(sum((r) => r.wallMs.evaluate, p.records))]];
  });
  const dirName = (p: { name: string }) => (quick ? `experiments/quick/${p.name}.yaml` : `experiments/${p.name}.yaml`);
  return [
    heading(1, 'Reproducibility'),
    para('Each plan is run (and resumed after a kill) with ', code('vgl experiment run <plan>'), '; this report is rebuilt from the run files with ', code(`vgl report ${s.root} --out ${opts.out}`), '. The commands of this study:'),
    { kind: 'code', text: s.plans.map((p) => `node bin/vgl.js experiment run ${dirName(p)} --out ${join(s.root, p.name)}`).join('\n') },
    para(b('Code. '), `The runs were made at commit${commits.size === 1 ? '' : 's'} ${[...commits].map(([c, n]) => `${c.slice(0, 12)} (${n} run${n === 1 ? '' : 's'})`).join(', ') || '–'}; the report at ${gitCommit().slice(0, 12)} on ${new Date().toISOString().slice(0, 10)}.`),
    para(b('Machine. '), machines.join('; ') || '–', `. Report built on ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB.`),
    {
      kind: 'table', caption: ['Runs and wall times per plan, from the records (wallMs); reused runs were trained by their source plan and count only their evaluation here.'],
      header: ['plan', 'runs done / planned', 'reused', 'training min', 'evaluation min'], rows,
    },
  ];
}

export async function buildReport(root: string, opts: ReportOptions): Promise<ReportFiles> {
  const log = opts.log ?? (() => {});
  const study = loadStudy(root);
  const outDir = resolve(opts.out);
  await mkdir(join(outDir, 'figures'), { recursive: true });
  const figures: string[] = [];
  const sink: FigureSink = async (f, caption, width) => {
    if (!f) return null;
    const files = await writeFigure(f, join(outDir, 'figures', f.name));
    figures.push(files.svg, files.png);
    return { kind: 'figure', svg: relative(outDir, files.svg), png: relative(outDir, files.png), caption, width: width ?? 1 };
  };
  const reduced = study.plans.filter((p) => p.plan.seeds.length < 3).map((p) => p.name);
  // The quick plans (experiments/quick) mark themselves in their description; --quick says it for any folder.
  const quick = opts.quick || study.plans.some((p) => p.plan.description?.startsWith('quick:'));
  const blocks: Block[] = [...introduction(), ...relatedWork(), ...method()];
  blocks.push(...(opts.datasetFigures === false ? [heading(1, 'Data'), para('Dataset figures were not drawn for this build (--no-dataset-figures).')] : await dataSection(study, outDir, figures, log)));
  blocks.push(heading(1, 'Experiments'));
  blocks.push(para(`Results folder ${study.root}: ${study.plans.length} plan${study.plans.length === 1 ? '' : 's'} (${study.plans.map((p) => p.name).join(', ')}). `,
    ...(reduced.length > 0 ? [b('Fewer than three seeds'), ` in ${reduced.join(', ')}: a std over one seed is 0 by construction, not a measured spread. `] : [])));
  const missing = CATALOGUE.filter((c) => !study.plans.some((p) => p.name === c.name));
  if (missing.length > 0) blocks.push(para(b('Not in this folder: '), missing.map((c) => `${c.title} (${c.name})`).join('; '), '. These parts of the brief are not reported here; nothing about them below is measured.'));
  const ordered = [...CATALOGUE.map((c) => study.plans.find((p) => p.name === c.name)).filter((p) => p !== undefined), ...study.plans.filter((p) => !CATALOGUE.some((c) => c.name === p.name))];
  for (const p of ordered) {
    log(`section: ${p.name}`);
    blocks.push(...(await planSection(p, sink)));
  }
  blocks.push(...(await examplesSection(opts.examples, outDir, figures)));
  blocks.push(...answers(study));
  blocks.push(heading(1, 'Conclusion'), para(...conclusion(study)));
  blocks.push(...reproducibility(study, opts, quick));

  const doc: ReportDoc = {
    title: 'Visual geo-localization: GeM and NetVLAD, ablations and variations',
    subtitle: `vgl study report — ${study.plans.reduce((a, p) => a + p.records.length, 0)} runs from ${basename(resolve(root))}`,
    ...(quick ? { notice: [b('Reduced study. '), 'Built from the quick study (make report QUICK=1): one seed, fewer variants, shorter training. Differences are less certain and some plans are absent; run the full study (make report) for the brief\'s results.'] } : {}),
    blocks, references: REFERENCES,
  };
  const source = typstSource(doc);
  const typstFile = join(outDir, 'report.typ');
  await writeFile(typstFile, source);
  log('typesetting report.pdf');
  const pdf = compilePdf(source, outDir);
  const pdfFile = join(outDir, 'report.pdf');
  await writeFile(pdfFile, pdf);
  const htmlFile = join(outDir, 'report.html');
  await writeFile(htmlFile, htmlDocument(doc));
  return { pdf: pdfFile, html: htmlFile, typst: typstFile, figures, ...(pdf.pages ? { pages: pdf.pages } : {}) };
}

/** The conclusion: the findings of each plan that count, or that none does. */
function conclusion(s: Study): Inline[] {
  const out: Inline[] = [];
  let any = 0;
  for (const p of s.plans) {
    if (!p.table) continue;
    // Between variants only: an evaluation variant against the same models' plain evaluation is a finding of its section, not a choice compared.
    const sig = p.table.cells.flatMap((c) => c.comparisons.filter((d) => d.significant && !d.against.endsWith('(same models)')).map((d) => ({ c, d })));
    any += sig.length;
    const strongest = sig.sort((x, y) => Math.abs(y.d.difference) - Math.abs(x.d.difference))[0];
    out.push(b(`${p.name}: `), strongest
      ? `${sig.length} difference${sig.length > 1 ? 's' : ''} beyond noise; the largest, ${strongest.c.variant} against ${strongest.d.against} on ${strongest.c.test}, ${strongest.d.difference > 0 ? '+' : '−'}${f1(Math.abs(strongest.d.difference))} R@1. `
      : 'no difference beyond noise. ');
  }
  out.push(any === 0 ? 'No comparison between variants exceeds its noise: at this scale the choices studied do not change recall measurably.' : 'Every other comparison between variants is within its noise: the intervals say which choices matter at this scale and which cannot be told apart.');
  return out;
}
