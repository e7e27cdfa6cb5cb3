// `vgl demo` and `vgl demo curves` validate their own flags: a subcommand's options reach the
// subcommand (not the parent `demo`, which has options of the same names).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const VGL = fileURLToPath(new URL('../../bin/vgl.js', import.meta.url));
const vgl = (...args: string[]) => spawnSync(process.execPath, [VGL, ...args], { encoding: 'utf8' });

test('vgl demo curves: its flags are its own and are validated', () => {
  const r = vgl('demo', 'curves', '--datasets-folder', '/nonexistent/vgl', '--queries-per-epoch', '1');
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--queries-per-epoch "1": Too small/);
  const c = vgl('demo', 'curves', '--choices', 'real,dreams');
  assert.equal(c.status, 2, c.stderr);
  assert.match(c.stderr, /--choices/);
});

test('vgl demo: --train-on names the training data it accepts', () => {
  const r = vgl('demo', '--train-on', 'dreams');
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--train-on "dreams"/);
});

test('vgl demo --precision and vgl demo precision validate their flags', () => {
  const r = vgl('demo', '--precision', 'half');
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--precision "half"/);
  const p = vgl('demo', 'precision', '--heads', 'gem,vlad');
  assert.equal(p.status, 2, p.stderr);
  assert.match(p.stderr, /--heads/);
});
