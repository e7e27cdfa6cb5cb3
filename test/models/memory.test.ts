// The memory guard's estimate against what real training steps take (peak resident memory, measured
// in a fresh process), and the size it suggests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { largestFittingSize, availableMemory } from '../../src/models/memory.ts';

const PROBE = fileURLToPath(new URL('./memory-probe.ts', import.meta.url));

test('the estimate of a training step is within 0.6x-2.5x of the peak memory the step really takes', () => {
  for (const args of [['resnet18conv4', 'gem', '240', '320', '2'], ['mobilenetv2', 'netvlad', '240', '320', '2']]) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', PROBE, ...args], { encoding: 'utf8', env: { ...process.env, VGL_NUM_THREADS: '1' } });
    assert.equal(r.status, 0, r.stderr);
    const { estimate, measured } = JSON.parse(r.stdout) as { estimate: number; measured: number };
    assert.ok(measured > 200 * 2 ** 20, `${args.join(' ')}: the step took ${measured} bytes`);
    const ratio = estimate / measured;
    assert.ok(ratio > 0.6 && ratio < 2.5, `${args.join(' ')}: estimate ${estimate} vs measured ${measured} (${ratio.toFixed(2)}x)`);
  }
});

test('largestFittingSize: the pixel count scales with the budget, the aspect ratio is kept, sides are multiples of 16', () => {
  // 4x the budget → twice each side; a quarter → half.
  assert.deepEqual(largestFittingSize(100, 400, 480, 640), [960, 1280]);
  assert.deepEqual(largestFittingSize(400, 100, 480, 640), [240, 320]);
  assert.deepEqual(largestFittingSize(1000, 100, 500, 500), [144, 144]); // 500 / sqrt(10) = 158.1 → 144
  assert.equal(largestFittingSize(1e9, 1, 480, 640), null);
});

test('VGL_MEMORY_AVAILABLE_MB overrides the available memory; a bad value names the variable', () => {
  assert.equal(availableMemory({ VGL_MEMORY_AVAILABLE_MB: '1536' }), 1536 * 2 ** 20);
  assert.ok(availableMemory({}) > 0);
  assert.throws(() => availableMemory({ VGL_MEMORY_AVAILABLE_MB: 'lots' }), /VGL_MEMORY_AVAILABLE_MB "lots"/);
});
