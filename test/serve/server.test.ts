// The HTTP service on real loopback, with its real inference worker: answers, bad input (each a 4xx,
// the server still up), and a bounded load test.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import sharp from 'sharp';
import { buildIndex } from '../../src/serve/build.ts';
import { startService, type RunningService } from '../../src/serve/server.ts';
import { runEval, EvalFlags } from '../../src/cli/commands/eval.ts';
import { tempDir } from '../helpers/tmp.ts';
import { DATABASE, tinyRun, databasePath, type TinyRun } from './helpers.ts';

const quiet = () => undefined;
let tiny: TinyRun;
let service: RunningService;
let evalDir: string;
const LIMIT = 256 * 1024;

after(async () => {
  await service?.close();
});

test('setup: index and evaluation of a tiny run; the service on loopback', async () => {
  tiny = await tinyRun();
  const dir = join(tempDir('vgl-serve-'), 'index');
  await buildIndex({ run: tiny.runDir, split: 'test', out: dir, progress: false }, quiet);
  evalDir = join(tempDir('vgl-serve-'), 'eval');
  await runEval(EvalFlags.parse({ run: tiny.runDir, outputFolder: evalDir, progress: false }), quiet);
  service = await startService({ index: dir, port: 0, eval: evalDir, limits: { maxUploadBytes: LIMIT, maxPixels: 1e6 } });
});

const url = (p: string) => `${service.url}${p}`;

function form(field: string, data: Uint8Array | string, name = 'photo.png', type = 'image/png'): FormData {
  const f = new FormData();
  f.append(field, new Blob([data], { type }), name);
  return f;
}

async function post(body: FormData | string, query = '', headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(url(`/localize${query}`), { method: 'POST', body, headers });
  return { status: r.status, json: await r.json() as Record<string, unknown> };
}

test('GET /health and /index describe the running service', async () => {
  const h = await (await fetch(url('/health'))).json() as { status: string };
  assert.equal(h.status, 'ok');
  const i = await (await fetch(url('/index'))).json() as { count: number; dim: number; search: { kind: string }; evaluation: boolean; bounds: { east: number[] } };
  assert.equal(i.count, DATABASE.length);
  assert.equal(i.search.kind, 'exact');
  assert.equal(i.evaluation, true);
  assert.deepEqual(i.bounds.east, [DATABASE[0].east, DATABASE[DATABASE.length - 1].east]);
});

test('POST /localize: a database photo comes back as its own best match at its position; thumbnails are served', async () => {
  const i = 7;
  const { status, json } = await post(form('image', await readFile(databasePath(tiny.root, DATABASE[i]))), '?top=4');
  assert.equal(status, 200, JSON.stringify(json));
  const matches = json.matches as { id: number; distance: number; thumbnail: string }[];
  const estimate = json.estimate as { east: number; north: number };
  assert.equal(matches.length, 4);
  assert.equal(matches[0].id, i);
  assert.ok(Math.abs(estimate.east - DATABASE[i].east) < 0.05 && Math.abs(estimate.north - DATABASE[i].north) < 0.05);
  const thumb = await fetch(url(matches[0].thumbnail));
  assert.equal(thumb.headers.get('content-type'), 'image/jpeg');
  const meta = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata();
  assert.deepEqual([meta.width, meta.height], [160, 120]);
});

test('bad input: each a clear 4xx, and the server stays up', async () => {
  const png = await readFile(databasePath(tiny.root, DATABASE[0]));
  const big = await sharp({ create: { width: 1200, height: 1000, channels: 3, background: { r: 9, g: 99, b: 199 } } }).png().toBuffer();
  const cases: [string, () => Promise<{ status: number; json: Record<string, unknown> }>, number, RegExp][] = [
    ['JSON instead of multipart', () => post('{"image": 1}', '', { 'content-type': 'application/json' }), 415, /multipart\/form-data.*"image"/],
    ['wrong field', () => post(form('photo', png)), 400, /field "image", not "photo"/],
    ['no file, only a field', () => { const f = new FormData(); f.append('image', 'not a file'); return post(f); }, 400, /no file/],
    ['empty file', () => post(form('image', new Uint8Array(0))), 400, /empty file/],
    ['text declared as an image', () => post(form('image', 'hello, world', 'photo.jpg', 'image/jpeg')), 400, /photo\.jpg: not a readable image/],
    ['text/plain', () => post(form('image', 'hello', 'notes.txt', 'text/plain')), 415, /notes\.txt: type text\/plain is not an image/],
    ['truncated PNG', () => post(form('image', png.subarray(0, Math.floor(png.length / 2)))), 400, /not a readable image/],
    ['too large a file', () => post(form('image', new Uint8Array(LIMIT + 1000))), 413, /larger than the limit of 0\.3 MiB/],
    ['too many pixels', () => post(form('image', big)), 413, /1200x1000 is more than 1 megapixels/],
    ['top=0', () => post(form('image', png), '?top=0'), 400, /top "0": expected an integer from 1 to 50/],
    ['top=abc', () => post(form('image', png), '?top=abc'), 400, /top "abc"/],
  ];
  for (const [what, send, status, message] of cases) {
    const r = await send();
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.json)}`);
    assert.match(String(r.json.error), message, what);
    const h = await fetch(url('/health'));
    assert.equal(h.status, 200, `alive after ${what}`);
  }
  for (const [path, status] of [['/database/99/thumbnail', 400], ['/database/abc/thumbnail', 400], ['/eval/grids/..%2F..%2Frecalls.json', 404], ['/eval/query/5000/thumbnail', 400], ['/nope', 404], ['/web/..%2Fserver.ts', 404]] as const) {
    const r = await fetch(url(path));
    assert.equal(r.status, status, path);
  }
});

test('GET /eval: the explorer\'s queries as vgl eval saved them; grids served by name only', async () => {
  const saved = JSON.parse(await readFile(join(evalDir, 'predictions.json'), 'utf8')) as { queries: { firstCorrectRank: number }[] };
  const ev = await (await fetch(url('/eval'))).json() as { queries: { firstCorrectRank: number }[]; grids: string[] };
  assert.equal(ev.queries.length, saved.queries.length);
  assert.deepEqual(ev.queries.map((q) => q.firstCorrectRank), saved.queries.map((q) => q.firstCorrectRank));
  assert.ok(ev.grids.length > 0);
  const g = await fetch(url(`/eval/grids/${ev.grids[0]}`));
  assert.equal(g.headers.get('content-type'), 'image/png');
  const q = await fetch(url('/eval/query/0/prediction/0/thumbnail'));
  assert.equal(q.status, 200);
});

test('a dead inference worker is started again; the server answers meanwhile and afterwards', async () => {
  // The worker is private to Inference; reach it to kill it as a crash would.
  const worker = (service.inference as unknown as { worker: { terminate(): Promise<number> } }).worker;
  await worker.terminate();
  const h = await (await fetch(url('/health'))).json() as { workerRestarts: number };
  assert.equal(h.workerRestarts, 1);
  const png = await readFile(databasePath(tiny.root, DATABASE[4]));
  for (let tries = 0; ; tries++) {
    const r = await post(form('image', png), '?top=2');
    if (r.status === 200) {
      assert.equal((r.json.matches as { id: number }[])[0].id, 4);
      break;
    }
    assert.ok(tries < 100, `still failing: ${JSON.stringify(r.json)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
});

interface AutocannonResult { errors: number; timeouts: number; non2xx: number; requests: { total: number; average: number }; latency: { p99: number; average: number } }
const autocannon = createRequire(import.meta.url)('autocannon') as (o: Record<string, unknown>) => Promise<AutocannonResult>;

test('load: a few hundred concurrent localizations on loopback, no errors, memory flat', async () => {
  const png = await readFile(databasePath(tiny.root, DATABASE[3]));
  const boundary = 'vglloadtestboundary';
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\nContent-Type: image/png\r\n\r\n`),
    png, Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const run = (amount: number) => autocannon({
    url: url('/localize?top=5'), method: 'POST', body, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    connections: 8, amount, timeout: 30,
  });
  await run(100); // warm-up: caches, allocator pools, JIT
  const rssBefore = process.memoryUsage().rss;
  const r = await run(300);
  const rssAfter = process.memoryUsage().rss;
  const growthMB = (rssAfter - rssBefore) / 1048576;
  console.log(`load: ${r.requests.total} requests, latency mean ${r.latency.average} ms, p99 ${r.latency.p99} ms; rss ${(rssBefore / 1048576).toFixed(0)} → ${(rssAfter / 1048576).toFixed(0)} MB`);
  assert.equal(r.errors, 0);
  assert.equal(r.timeouts, 0);
  assert.equal(r.non2xx, 0);
  assert.equal(r.requests.total, 300);
  assert.ok(growthMB < 40, `resident memory grew by ${growthMB.toFixed(1)} MB over 300 requests`);
  const h = await (await fetch(url('/health'))).json() as { served: number; failed: number; batches: number };
  assert.ok(h.served >= 401 && h.failed === 0);
  assert.ok(h.batches < h.served, `requests were batched: ${h.batches} batches for ${h.served}`);
});

test('the main thread never loads the engine: importing the server loads no libtorch, importing the localizer does', async () => {
  const { execFileSync } = await import('node:child_process');
  const enginesLoadedBy = (module: string): string[] => JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
    `await import(${JSON.stringify(join(import.meta.dirname, '../../src/serve', module))});
     console.log(JSON.stringify(process.report.getReport().sharedObjects.filter((l) => /torch/.test(l))));`], { encoding: 'utf8' }));
  assert.deepEqual(enginesLoadedBy('server.ts'), []);
  assert.ok(enginesLoadedBy('localizer.ts').some((l) => /vgl_torch\.node$/.test(l)), 'the check sees the engine where it is loaded');
});
