// The report document as one HTML file: the same blocks as the PDF, figures linked from figures/,
// equations as the SVG Typst typesets for the PDF.
import type { Block, Inline, ReportDoc } from './doc.ts';
import { equationSvg } from './typst.ts';

export const escapeHtml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function inlineHtml(x: Inline | Inline[]): string {
  if (Array.isArray(x)) return x.map(inlineHtml).join('');
  if (typeof x === 'string') return escapeHtml(x);
  if ('b' in x) return `<strong>${inlineHtml(x.b)}</strong>`;
  if ('i' in x) return `<em>${inlineHtml(x.i)}</em>`;
  if ('code' in x) return `<code>${escapeHtml(x.code)}</code>`;
  return `[${x.cite.map((n) => `<a href="#ref-${n}">${n}</a>`).join(', ')}]`;
}

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

function blockHtml(bl: Block, counters: { figure: number; table: number }): string {
  switch (bl.kind) {
    case 'heading': return `<h${bl.level + 1} id="${escapeHtml(bl.id ?? slug(bl.text))}">${escapeHtml(bl.text)}</h${bl.level + 1}>`;
    case 'para': return `<p>${inlineHtml(bl.content)}</p>`;
    case 'list': return `<ul>${bl.items.map((it) => `<li>${inlineHtml(it)}</li>`).join('')}</ul>`;
    case 'equation': return `<div class="eq" role="img" aria-label="${escapeHtml(bl.text)}">${equationSvg(bl.typst)}</div>`;
    case 'pagebreak': return '';
    case 'code': return `<pre>${escapeHtml(bl.text)}</pre>`;
    case 'figrow': return `<div class="row">${bl.figures.map((f) => blockHtml(f, counters)).join('')}</div>`;
    case 'figure': return `<figure><a href="${escapeHtml(bl.png)}"><img src="${escapeHtml(bl.svg ?? bl.png)}" style="width:${Math.round((bl.width ?? 1) * 100)}%" alt="${escapeHtml(`figure ${counters.figure + 1}`)}"></a><figcaption>Figure ${++counters.figure}: ${inlineHtml(bl.caption)}</figcaption></figure>`;
    case 'table': {
      const align = (i: number) => ((bl.align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'l' ? 'left' : 'right');
      return `<figure class="table"><figcaption>Table ${++counters.table}: ${inlineHtml(bl.caption)}</figcaption><table><thead><tr>${bl.header.map((h, i) => `<th style="text-align:${align(i)}">${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${bl.rows.map((r) => `<tr>${r.map((c, i) => `<td style="text-align:${align(i)}">${inlineHtml(c)}</td>`).join('')}</tr>`).join('')}</tbody></table></figure>`;
    }
  }
}

const STYLE = `body{font-family:"Libertinus Serif","DejaVu Serif",Georgia,serif;max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.45;color:#222}
h1{font-size:1.7rem;text-align:center;margin-bottom:.2rem}.subtitle{text-align:center;margin-top:0}
.notice{border:2px solid #D55E00;border-radius:4px;padding:.6rem}
table{border-collapse:collapse;font-size:.85rem;margin:auto}th{border-bottom:1px solid #444}td,th{padding:.15rem .45rem}
figure{margin:1.2rem 0;text-align:center}figcaption{font-size:.9rem;margin:.3rem 0}img{max-width:100%}
.row{display:flex;gap:1rem}.row figure{flex:1}.eq{text-align:center;margin:.6rem 0}.eq svg{max-width:100%;height:auto}code{font-size:.85em}ol.refs{font-size:.9rem}`;

export function htmlDocument(d: ReportDoc): string {
  const counters = { figure: 0, table: 0 };
  const body = d.blocks.map((bl) => blockHtml(bl, counters)).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(d.title)}</title><style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(d.title)}</h1><p class="subtitle">${inlineHtml(d.subtitle)}</p>
${d.notice ? `<p class="notice">${inlineHtml(d.notice)}</p>` : ''}
${body}
<h2>References</h2><ol class="refs">${d.references.map((r, i) => `<li id="ref-${i + 1}">${escapeHtml(r)}</li>`).join('')}</ol>
</body></html>
`;
}
