// Labelled image grids (rows of captioned thumbnails with coloured borders) composited with sharp:
// the prediction grids of evaluation and the example grids of the reports. An unreadable image becomes
// a grey cell with a note, never an error.
import sharp from 'sharp';
import type { OverlayOptions } from 'sharp';

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** One cell of an image grid: an image file with a caption and an optional coloured border. */
export interface GridCell {
  path: string;
  caption?: string;
  /** Border colour, e.g. green for a correct retrieval. */
  border?: string;
}

/** One row of an image grid, with a label on its left. */
export interface GridRow {
  label?: string;
  cells: GridCell[];
}

/** Options of imageGrid. */
export interface ImageGridOptions {
  title?: string;
  /** Cell image box in pixels (images are fitted inside, aspect kept). Default 200 x 150. */
  cellWidth?: number;
  cellHeight?: number;
  /** Width of the row label column (default 0 = none, or 150 when any row has a label). */
  labelWidth?: number;
}

/** Composites image files into a labelled grid PNG (sharp); unreadable images show as grey cells with a note. */
export async function imageGrid(rows: GridRow[], options: ImageGridOptions = {}): Promise<Buffer> {
  const cw = options.cellWidth ?? 200, ch = options.cellHeight ?? 150;
  const pad = 10, caption = 34, border = 4;
  const labelW = options.labelWidth ?? (rows.some((r) => r.label) ? 150 : 0);
  const top = options.title ? 44 : pad;
  const cols = Math.max(1, ...rows.map((r) => r.cells.length));
  const width = labelW + pad + cols * (cw + pad);
  const rowH = ch + caption + pad;
  const height = top + rows.length * rowH + pad;
  const overlays: OverlayOptions[] = [];
  const text: string[] = [];
  if (options.title) text.push(`<text x="${width / 2}" y="28" text-anchor="middle" font-size="18" font-weight="bold" fill="#222">${escapeXml(options.title)}</text>`);
  for (let r = 0; r < rows.length; r++) {
    const y = top + r * rowH;
    const row = rows[r];
    if (row.label) {
      row.label.split('\n').forEach((line, k) => text.push(`<text x="${pad}" y="${y + 20 + k * 17}" font-size="13" fill="#222"${k === 0 ? ' font-weight="bold"' : ''}>${escapeXml(line)}</text>`));
    }
    for (let c = 0; c < row.cells.length; c++) {
      const cell = row.cells[c];
      const x = labelW + pad + c * (cw + pad);
      if (cell.border) text.push(`<rect x="${x - border}" y="${y - border}" width="${cw + 2 * border}" height="${ch + 2 * border}" fill="${cell.border}"/>`);
      try {
        // Small images (e.g. 64x32 Nordland frames) are enlarged with nearest neighbour to stay sharp;
        // larger ones are shrunk with lanczos, which does not alias.
        const meta = await sharp(cell.path).metadata();
        const enlarge = (meta.width ?? 0) < cw && (meta.height ?? 0) < ch;
        const img = await sharp(cell.path).resize(cw, ch, { fit: 'contain', background: '#f2f2f2', kernel: enlarge ? 'nearest' : 'lanczos3' }).removeAlpha().png().toBuffer();
        overlays.push({ input: img, left: x, top: y });
      } catch (e) {
        text.push(`<rect x="${x}" y="${y}" width="${cw}" height="${ch}" fill="#ddd"/><text x="${x + cw / 2}" y="${y + ch / 2}" text-anchor="middle" font-size="12" fill="#a33">unreadable image</text>`);
      }
      (cell.caption ?? '').split('\n').slice(0, 2).forEach((line, k) => {
        text.push(`<text x="${x + cw / 2}" y="${y + ch + 15 + k * 14}" text-anchor="middle" font-size="12" fill="#333">${escapeXml(line)}</text>`);
      });
    }
  }
  // Borders go under the images, captions over the background: draw the SVG layer first.
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">` +
    `<rect width="${width}" height="${height}" fill="white"/>\n${text.join('\n')}</svg>`;
  return sharp(Buffer.from(svg)).composite(overlays).png().toBuffer();
}
