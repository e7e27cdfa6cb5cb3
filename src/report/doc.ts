// The report as data: blocks of inline text, equations, tables and figures. typst.ts and html.ts
// render the same document, so the PDF and the HTML cannot say different things.

/** Inline text: plain strings (escaped by each renderer), emphasis, code, citations of the brief's references. */
export type Inline =
  | string
  | { b: Inline[] }
  | { i: Inline[] }
  | { code: string }
  | { cite: number[] };

export interface TableBlock {
  kind: 'table';
  caption: Inline[];
  header: string[];
  rows: Inline[][][];
  /** Column alignment ('l' left, 'r' right); default: first column left, the others right. */
  align?: ('l' | 'r')[];
  /** Relative font size for wide tables (1 = body size). */
  scale?: number;
}

export interface FigureBlock {
  kind: 'figure';
  /** Paths relative to the report folder. */
  svg?: string;
  png: string;
  /** A lighter copy for the PDF (photo grids as JPEG); default the SVG, else the PNG. */
  print?: string;
  caption: Inline[];
  /** Fraction of the text width. */
  width?: number;
}

export type Block =
  | { kind: 'heading'; level: 1 | 2 | 3; text: string; id?: string }
  | { kind: 'para'; content: Inline[] }
  | { kind: 'list'; items: Inline[][] }
  /** A display equation: Typst math source, and plain text for readers without it. */
  | { kind: 'equation'; typst: string; text: string }
  | TableBlock
  | FigureBlock
  /** Figures side by side (each width then a fraction of its column). */
  | { kind: 'figrow'; figures: FigureBlock[] }
  /** Preformatted text (commands). */
  | { kind: 'code'; text: string }
  | { kind: 'pagebreak' };

export interface ReportDoc {
  title: string;
  subtitle: string;
  /** Shown boxed under the title (e.g. a reduced study). */
  notice?: Inline[];
  blocks: Block[];
  references: string[];
}

export const b = (...x: Inline[]): Inline => ({ b: x });
export const em = (...x: Inline[]): Inline => ({ i: x });
export const code = (s: string): Inline => ({ code: s });
export const cite = (...n: number[]): Inline => ({ cite: n });
export const para = (...content: Inline[]): Block => ({ kind: 'para', content });
export const heading = (level: 1 | 2 | 3, text: string, id?: string): Block => ({ kind: 'heading', level, text, ...(id ? { id } : {}) });

/** The inline content as plain text (for tests and alt text). */
export function plainText(x: Inline | Inline[]): string {
  if (Array.isArray(x)) return x.map(plainText).join('');
  if (typeof x === 'string') return x;
  if ('b' in x) return plainText(x.b);
  if ('i' in x) return plainText(x.i);
  if ('code' in x) return x.code;
  return `[${x.cite.join(', ')}]`;
}
