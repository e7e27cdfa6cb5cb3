// CSV as RFC 4180 writes it: a field holding a comma, a quote or a line break is quoted, its quotes
// doubled; rows end in "\n". Every CSV file vgl writes goes through csvText.

export type CsvValue = string | number | boolean | null | undefined;

/** One field: null and undefined are empty. */
export function csvField(v: CsvValue): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A header and rows as CSV text. */
export function csvText(header: readonly string[], rows: Iterable<readonly CsvValue[]>): string {
  const lines = [header.map(csvField).join(',')];
  for (const row of rows) {
    if (row.length !== header.length) throw new Error(`csv: a row of ${row.length} fields under a header of ${header.length} (${header.join(', ')})`);
    lines.push(row.map(csvField).join(','));
  }
  return `${lines.join('\n')}\n`;
}
