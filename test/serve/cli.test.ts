// vgl index / localize / serve at the command line: flags checked up front, errors naming the flag,
// and one real `vgl localize --json` process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { parseFlags, UsageError } from '../../src/cli/flags.ts';
import { IndexBuildFlags, runIndexBuild } from '../../src/cli/commands/index.ts';
import { LocalizeFlags, runLocalize } from '../../src/cli/commands/localize.ts';
import { ServeFlags } from '../../src/cli/commands/serve.ts';
import { tempDir } from '../helpers/tmp.ts';
import { DATABASE, tinyRun, databasePath, type TinyRun } from './helpers.ts';
import { commandLineMessage } from '../../src/errors.ts';

const quiet = () => undefined;
let tiny: TinyRun;
let indexDir: string;

test('setup', async () => {
  tiny = await tinyRun();
  indexDir = join(tempDir('vgl-cli-'), 'index');
});

test('flags: bad values and combinations name the flag', async () => {
  assert.throws(() => parseFlags(IndexBuildFlags, {}), /--out: required/);
  assert.throws(() => parseFlags(IndexBuildFlags, { out: 'x', approximate: 'f8' }), /--approximate "f8"/);
  assert.equal(parseFlags(IndexBuildFlags, { out: 'x', approximate: true }).approximate, 'f16');
  assert.throws(() => parseFlags(LocalizeFlags, { index: 'i', top: '0' }), /--top "0"/);
  assert.throws(() => parseFlags(ServeFlags, { index: 'i', port: '70000' }), /--port "70000"/);
  await assert.rejects(runIndexBuild(parseFlags(IndexBuildFlags, { run: tiny.runDir, backbone: 'resnet18conv4', out: indexDir }), quiet),
    (e: Error) => e instanceof UsageError && /drop --backbone/.test(e.message));
  await assert.rejects(runIndexBuild(parseFlags(IndexBuildFlags, { run: tiny.runDir, connectivity: '8', out: indexDir }), quiet), /--connectivity: HNSW options; add --approximate/);
  await assert.rejects(runIndexBuild(parseFlags(IndexBuildFlags, { backbone: 'resnet18conv4', aggregation: 'netvlad', resnetWidths: [8, 8, 16, 16], datasetsFolder: tiny.root, datasetName: 'tiny', out: indexDir }), quiet),
    (e: unknown) => /--aggregation netvlad: an untrained head initialised from data/.test(commandLineMessage(e)));
  await assert.rejects(runLocalize(['missing.jpg'], parseFlags(LocalizeFlags, { index: indexDir })), /missing\.jpg: not found/);
});

test('vgl localize --json (a real process) gives what runLocalize gives', async () => {
  await runIndexBuild(parseFlags(IndexBuildFlags, { run: tiny.runDir, out: indexDir }), quiet);
  const photos = [DATABASE[2], DATABASE[9]].map((d) => databasePath(tiny.root, d));
  const inProcess = await runLocalize(photos, parseFlags(LocalizeFlags, { index: indexDir, top: '3' }));
  const { stdout } = await promisify(execFile)(process.execPath, ['bin/vgl.js', 'localize', ...photos, '--index', indexDir, '--top', '3', '--json'], { cwd: join(import.meta.dirname, '..', '..') });
  const printed = JSON.parse(stdout) as typeof inProcess;
  assert.equal(printed.length, 2);
  assert.deepEqual(printed.map((p) => p.matches.map((m) => m.id)), inProcess.map((p) => p.matches.map((m) => m.id)));
  assert.deepEqual(printed.map((p) => p.matches[0].id), [2, 9]);
  printed.forEach((p, i) => {
    assert.equal(p.photo, photos[i]);
    assert.ok(Math.abs(p.estimate!.east - [DATABASE[2], DATABASE[9]][i].east) < 0.05);
  });
});
