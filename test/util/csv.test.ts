// The one CSV writer: RFC 4180 quoting of commas, quotes and line breaks; empty nulls; rows checked
// against the header. Read back with the importer's parser (an independent implementation).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { csvField, csvText } from '../../src/util/csv.ts';
import { parseCsv } from '../../src/data/importer.ts';

test('csv: fields with commas, quotes and line breaks are quoted and read back whole', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  assert.equal(csvField(null), '');
  assert.equal(csvField(3.5), '3.5');
  const text = csvText(['name', 'note', 'n'], [['x', 'a,b', 1], ['y', 'line\nbreak "q"', 2]]);
  assert.equal(text, 'name,note,n\nx,"a,b",1\ny,"line\nbreak ""q""",2\n');
  assert.deepEqual(parseCsv(text).filter((r) => r.length > 1), [['name', 'note', 'n'], ['x', 'a,b', '1'], ['y', 'line\nbreak "q"', '2']]);
  assert.throws(() => csvText(['a', 'b'], [['only one']]), /a row of 1 fields under a header of 2 \(a, b\)/);
});
