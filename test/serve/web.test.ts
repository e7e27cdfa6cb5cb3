// The web page in a real browser (Debian chromium through playwright-core): upload a photo, the map
// and the thumbnails appear; the evaluation explorer filters failures. Screenshots are kept in
// $VGL_TEST_ARTIFACTS (default <tmp>/vgl-test-artifacts)/serve for a person to look at.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildIndex } from '../../src/serve/build.ts';
import { startService, type RunningService } from '../../src/serve/server.ts';
import { runEval, EvalFlags } from '../../src/cli/commands/eval.ts';
import { tempDir } from '../helpers/tmp.ts';
import { DATABASE, tinyRun, databasePath } from './helpers.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;
const ARTIFACTS = join(process.env.VGL_TEST_ARTIFACTS ?? join(tmpdir(), 'vgl-test-artifacts'), 'serve');

let service: RunningService | undefined;
after(async () => {
  await service?.close();
});

test('web page: upload → estimate on the map and top-N thumbnails; explorer filters failures', { skip, timeout: 120_000 }, async () => {
  const { chromium } = await import('playwright-core');
  const tiny = await tinyRun();
  const indexDir = join(tempDir('vgl-web-'), 'index');
  await buildIndex({ run: tiny.runDir, split: 'test', out: indexDir, progress: false }, () => undefined);
  const evalDir = join(tempDir('vgl-web-'), 'eval');
  await runEval(EvalFlags.parse({ run: tiny.runDir, outputFolder: evalDir, progress: false }), () => undefined);
  service = await startService({ index: indexDir, port: 0, eval: evalDir });
  await mkdir(ARTIFACTS, { recursive: true });

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    await page.goto(service.url);
    await page.waitForSelector('#map[data-points]');
    assert.equal(await page.getAttribute('#map', 'data-points'), String(DATABASE.length));
    assert.match(await page.textContent('#index-info') ?? '', new RegExp(`${DATABASE.length} database images`));

    const i = 5;
    await page.setInputFiles('#file', databasePath(tiny.root, DATABASE[i]));
    await page.waitForSelector('#matches figure img');
    // (expressions as strings: they run in the page, which this project's types do not describe)
    await page.waitForFunction("[...document.querySelectorAll('#matches img')].every((im) => im.complete && im.naturalWidth > 0)");
    const figures = await page.$$('#matches figure');
    assert.equal(figures.length, 10); // the default top-N, here capped by nothing: 12 database images
    assert.match(await page.textContent('#estimate') ?? '', new RegExp(`Estimated position: ${DATABASE[i].east.toFixed(1)} E, ${DATABASE[i].north.toFixed(1)} N`));
    assert.equal(await page.locator('path.estimate').count(), 1); // the estimate on the map
    assert.equal(await page.locator('path.match-marker').count(), 10);
    assert.match(await page.getAttribute('#matches figure:first-child img', 'src') ?? '', new RegExp(`/database/${i}/thumbnail`));
    await page.screenshot({ path: join(ARTIFACTS, 'localize.png') });

    // A file that is not an image: the page says why, and still works afterwards.
    await page.setInputFiles('#file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
    await page.waitForSelector('#status.error');
    assert.match(await page.textContent('#status') ?? '', /not an image/);

    // The explorer: every query, then only those whose top-1 is wrong (counted from predictions.json).
    const saved = JSON.parse(await readFile(join(evalDir, 'predictions.json'), 'utf8')) as { queries: { firstCorrectRank: number }[] };
    const failures = saved.queries.filter((q) => q.firstCorrectRank !== 0).length;
    await page.click('#eval-tab');
    await page.waitForSelector('#eval-table tbody tr');
    assert.equal(await page.locator('#eval-table tbody tr').count(), saved.queries.length);
    await page.check('#failures-only');
    assert.equal(await page.locator('#eval-table tbody tr').count(), failures);
    assert.equal(await page.locator('#eval-table tbody tr.right').count(), 0);
    assert.match(await page.textContent('#eval-count') ?? '', new RegExp(`^${failures} of ${saved.queries.length} queries`));
    assert.ok(failures >= 1 && failures < saved.queries.length, `the tiny set has right and wrong queries (${failures} wrong)`);
    await page.click('#eval-table tbody tr:first-child');
    await page.waitForSelector('#eval-detail figure.wrong img');
    await page.click('#grids li:first-child a');
    await page.waitForFunction("(() => { const im = document.querySelector('#grid-view img'); return im !== null && im.complete && im.naturalWidth > 0; })()");
    await page.screenshot({ path: join(ARTIFACTS, 'explorer.png'), fullPage: true });
    assert.deepEqual(problems.filter((p) => !/Failed to load resource.*(400|415)/.test(p)), []);
    console.log(`screenshots: ${ARTIFACTS}/localize.png, explorer.png`);
  } finally {
    await browser.close();
  }
});
