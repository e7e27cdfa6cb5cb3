// The report document as Typst source, and the PDF compiled from it in-process (typst.ts: Typst's
// compiler as a Node addon; no LaTeX). Text is emitted as Typst string literals (#"..."), never as
// markup, so no character of a variant or dataset name can be read as Typst syntax.
import { NodeCompiler } from '@myriaddreamin/typst-ts-node-compiler';
import { existsSync } from 'node:fs';
import type { Block, FigureBlock, Inline, ReportDoc } from './doc.ts';

/** A Typst string literal. */
export const str = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

export function inlineTypst(x: Inline | Inline[]): string {
  if (Array.isArray(x)) return x.map(inlineTypst).join('');
  if (typeof x === 'string') return x === '' ? '' : `#${str(x)}`;
  if ('b' in x) return `#strong[${inlineTypst(x.b)}]`;
  if ('i' in x) return `#emph[${inlineTypst(x.i)}]`;
  if ('code' in x) return `#raw(${str(x.code)})`;
  return `#${str(`[${x.cite.join(', ')}]`)}`;
}

function figureTypst(f: FigureBlock): string {
  return `figure(image(${str(f.print ?? f.svg ?? f.png)}, width: ${Math.round((f.width ?? 1) * 100)}%), caption: [${inlineTypst(f.caption)}])`;
}

function blockTypst(bl: Block): string {
  switch (bl.kind) {
    case 'heading': return `#heading(level: ${bl.level})[${inlineTypst(bl.text)}]${bl.id ? ` <${bl.id}>` : ''}`;
    case 'para': return `#par[${inlineTypst(bl.content)}]`;
    case 'list': return bl.items.map((it) => `- ${inlineTypst(it)}`).join('\n');
    case 'equation': return `$ ${bl.typst} $`;
    case 'pagebreak': return '#pagebreak(weak: true)';
    case 'code': return `#block(width: 100%, inset: 6pt, fill: rgb("#f4f4f4"), text(size: 7.5pt, raw(block: true, ${str(bl.text)})))`;
    case 'figure': return `#${figureTypst(bl)}`;
    case 'figrow': return `#grid(columns: ${bl.figures.length}, column-gutter: 10pt, ${bl.figures.map(figureTypst).join(', ')})`;
    case 'table': {
      const align = bl.header.map((_, i) => ((bl.align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'l' ? 'left' : 'right'));
      const cells = bl.rows.map((r) => r.map((c) => `[${inlineTypst(c)}]`).join(', ')).join(',\n  ');
      return `#figure(kind: table, caption: [${inlineTypst(bl.caption)}], text(size: ${(9 * (bl.scale ?? 1)).toFixed(1)}pt, table(columns: ${bl.header.length}, align: (${align.join(', ')},), stroke: (x, y) => if y == 0 { (bottom: 0.6pt) } else { none }, inset: (x: 4pt, y: 2.5pt),
  table.header(${bl.header.map((h) => `[*${inlineTypst(h)}*]`).join(', ')}),
  ${cells})))`;
    }
  }
}

export function typstSource(d: ReportDoc): string {
  const head = [
    '#set document(title: ' + str(d.title) + ')',
    '#set page(paper: "a4", margin: (x: 2.2cm, y: 2.4cm), numbering: "1")',
    '#set text(font: ("Libertinus Serif", "DejaVu Serif"), size: 10.5pt, lang: "en")',
    '#set par(justify: true)',
    '#set heading(numbering: "1.1")',
    '#show raw: set text(font: "DejaVu Sans Mono", size: 8.5pt)',
    '#show figure: set block(breakable: true)',
    '#show table: set par(justify: false)',
    '#show figure.where(kind: table): set figure.caption(position: top)',
    `#align(center)[#set par(justify: false); #text(size: 17pt, weight: "bold")[${inlineTypst(d.title)}] \\ #v(2pt) #text(size: 11pt)[${inlineTypst(d.subtitle)}]]`,
  ];
  if (d.notice) head.push(`#block(stroke: 0.8pt + rgb("#D55E00"), inset: 8pt, radius: 3pt, width: 100%)[${inlineTypst(d.notice)}]`);
  head.push('#outline(depth: 2)');
  const refs = [`#heading(level: 1, numbering: none)[${inlineTypst('References')}]`,
    `#text(size: 9pt)[${d.references.map((r, i) => `#par(hanging-indent: 1.5em)[${inlineTypst(`[${i + 1}] ${r}`)}]`).join('\n')}]`];
  return `${[...head, ...d.blocks.map(blockTypst), ...refs].join('\n\n')}\n`;
}

/** Fonts Typst may use besides its embedded ones (Libertinus, New Computer Modern): the system's, where present. */
const FONT_DIRS = ['/usr/share/fonts', '/usr/local/share/fonts'].filter((d) => existsSync(d));

/** Compiles Typst source to PDF (and says how many pages Typst laid out); image paths in the source are relative to `workspace`. Errors carry Typst's diagnostics. */
export function compilePdf(source: string, workspace: string): Buffer & { pages?: number } {
  const compiler = NodeCompiler.create({ workspace, fontArgs: [{ fontPaths: FONT_DIRS }] });
  const doc = compiler.compile({ mainFileContent: source });
  const result = doc.result;
  if (!result || doc.hasError()) {
    const err = doc.takeError() ?? doc.takeDiagnostics();
    const list = err ? compiler.fetchDiagnostics(err) : [];
    throw new Error(`typst could not compile the report: ${JSON.stringify(list).slice(0, 2000)}`);
  }
  return Object.assign(compiler.pdf(result), { pages: result.numOfPages });
}

/** One display equation as a standalone SVG (the HTML shows the PDF's typesetting). */
export function equationSvg(typst: string): string {
  const compiler = NodeCompiler.create({ fontArgs: [{ fontPaths: FONT_DIRS }] });
  return compiler.plainSvg({ mainFileContent: `#set page(width: auto, height: auto, margin: 3pt, fill: none)\n#set text(size: 12pt)\n$ ${typst} $` });
}
