// Reading torch.save files made by PyTorch 1.13 (scripts/fixtures/make_pth_fixtures.py), compared
// with the values that script recorded from torch itself (test/fixtures/pth/expected.json).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostTensor } from '../../../src/torch/dtype.ts';
import { halfToFloat, loadPth, readStateDict } from '../../../src/torch/serialization/index.ts';
import { tempDir } from '../../helpers/tmp.ts';

const DIR = 'test/fixtures/pth';
interface Expected { shape: number[]; dtype: string; values: Array<number | string | boolean>; sum: number | string; bits?: number[] }
const EXPECTED = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as Record<string, any>;

function checkTensor(t: HostTensor | undefined, e: Expected, name: string): void {
  assert.ok(t, `${name} missing`);
  assert.equal(t.dtype, e.dtype, `${name} dtype`);
  assert.deepEqual(t.shape, e.shape, `${name} shape`);
  const n = t.shape.reduce((a, b) => a * b, 1);
  assert.equal(t.data.length, n, `${name} length`);
  const data = t.data;
  if (data instanceof BigInt64Array) {
    e.values.forEach((v, i) => assert.equal(data[i], BigInt(v as number | string), `${name}[${i}]`));
    assert.equal(data.reduce((a, b) => a + b, 0n), BigInt(e.sum), `${name} sum`);
  } else if (t.dtype === 'bool') {
    e.values.forEach((v, i) => assert.equal(data[i] !== 0, v, `${name}[${i}]`));
    assert.equal((data as Uint8Array).reduce((a, b) => a + (b ? 1 : 0), 0), e.sum, `${name} sum`);
  } else if (t.dtype === 'float16') {
    e.bits!.forEach((b, i) => assert.equal(data[i], b, `${name}[${i}] bits`));
    e.values.forEach((v, i) => assert.equal(halfToFloat(data[i] as number), v, `${name}[${i}]`));
    const sum = Array.from(data as Uint16Array, halfToFloat).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - (e.sum as number)) <= 1e-9 * Math.max(1, Math.abs(sum)), `${name} sum ${sum} vs ${e.sum}`);
  } else {
    e.values.forEach((v, i) => assert.equal(data[i], v, `${name}[${i}]`));
    let sum = 0;
    for (const x of data as Float32Array) sum += x;
    assert.ok(Math.abs(sum - (e.sum as number)) <= 1e-9 * Math.max(1, Math.abs(sum)), `${name} sum ${sum} vs ${e.sum}`);
  }
}

test('loads a torchvision-layout ResNet-18 state dict (OrderedDict with _metadata) exactly', async () => {
  const exp = EXPECTED['resnet18_tiny.pth'];
  const sd = await readStateDict(join(DIR, 'resnet18_tiny.pth'));
  assert.deepEqual([...sd.keys()], exp.keys, 'keys in saved order');
  assert.ok(sd.has('layer2.0.downsample.1.running_var') && sd.has('fc.bias'));
  for (const [k, e] of Object.entries(exp.tensors as Record<string, Expected>)) checkTensor(sd.get(k), e, k);
});

for (const file of ['views.pth', 'legacy_views.pth']) test(`${file}: strided, sliced, permuted tensors and every dtype come back contiguous and exact`, async () => {
  const v = await loadPth(join(DIR, file)) as Map<string, any>;
  const tensors = v.get('tensors') as Map<string, HostTensor>;
  const exp = EXPECTED['views.pth'].tensors as Record<string, Expected>;
  assert.deepEqual([...tensors.keys()], Object.keys(exp));
  for (const [k, e] of Object.entries(exp)) checkTensor(tensors.get(k), e, k);
  // Hand check: base = arange(24).reshape(4,6)*0.5-3; every_other_col = base[:, 1::2].
  assert.deepEqual(Array.from(tensors.get('every_other_col')!.data as Float32Array), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23].map((i) => i * 0.5 - 3));
  assert.deepEqual(Array.from(tensors.get('slice_rows')!.data as Float32Array), Array.from({ length: 12 }, (_, i) => (i + 6) * 0.5 - 3));
  // A slice is a copy: it must not alias (and pin) the larger storage it came from.
  assert.notEqual(tensors.get('slice_rows')!.data.buffer, tensors.get('base')!.data.buffer);
  assert.equal(tensors.get('bfloat16')!.dtype, 'float32', 'bfloat16 widened to float32');
  if (file.startsWith('legacy')) return;
  assert.deepEqual([...(v.get('size') as number[])], [2, 3]);
  assert.deepEqual([...(v.get('tuple') as unknown[])], [1, 'a', null]);
  assert.ok(Object.isFrozen(v.get('tuple')));
  assert.deepEqual(v.get('nested'), new Map([['list', [1.5, true, [2]]]]));
  assert.equal(v.get('big_int'), 2n ** 60n);
  assert.equal(v.get('neg_int'), -123456789);
  assert.equal(v.get('float'), -0.125);
  assert.equal(v.get('text'), 'Zürich');
});

for (const file of ['checkpoint.pth', 'legacy_checkpoint.pth', 'rezipped_deflate.pth']) test(`${file}: unwraps a training checkpoint: state_dict, optimizer state, numpy scalar`, async () => {
  const path = join(DIR, file);
  const exp = EXPECTED['checkpoint.pth'];
  const ckpt = await loadPth(path) as Map<string, any>;
  assert.equal(ckpt.get('epoch'), 3);
  assert.equal(ckpt.get('best_r5'), 71.5);
  assert.equal(ckpt.get('best_r1_np'), 55.25, 'numpy.float64 scalar');
  assert.deepEqual(ckpt.get('recalls'), [55.25, 71.5, 80]);
  assert.equal(ckpt.get('note'), 'vgl fixture ✓');
  const groups = ckpt.get('optimizer').get('param_groups') as Map<string, any>[];
  assert.equal(groups.length, exp.optimizer_param_groups.length);
  assert.equal(groups[0]!.get('lr'), exp.optimizer_param_groups[0].lr);
  assert.deepEqual([...groups[0]!.get('betas')], exp.optimizer_param_groups[0].betas);
  assert.deepEqual(groups[0]!.get('params'), exp.optimizer_param_groups[0].params);
  const state = ckpt.get('optimizer').get('state') as Map<number, Map<string, HostTensor>>;
  assert.deepEqual([...state.keys()].sort(), exp.optimizer_state_keys);
  checkTensor(state.get(0)!.get('exp_avg'), exp.exp_avg_0, 'exp_avg');

  const sd = await readStateDict(path);
  assert.deepEqual([...sd.keys()], exp.state_dict_keys);
  for (const [k, e] of Object.entries(exp.tensors as Record<string, Expected>)) checkTensor(sd.get(k), e, k);
});

test('strips the DataParallel module. prefix under model_state_dict', async () => {
  const sd = await readStateDict(join(DIR, 'dataparallel.pth'));
  const exp = EXPECTED['checkpoint.pth'];
  assert.deepEqual([...sd.keys()], exp.state_dict_keys);
  for (const [k, e] of Object.entries(exp.tensors as Record<string, Expected>)) checkTensor(sd.get(k), e, k);
});

test('no state dict: the error names the file and lists what it found', async () => {
  const path = join(DIR, 'views.pth');
  await assert.rejects(readStateDict(path), (e: Error) => {
    assert.ok(e.message.startsWith(`${path}: no state dict found`), e.message);
    assert.match(e.message, /keys tensors, size, tuple, nested, big_int/);
    return true;
  });
});

test('refuses a forbidden global without running it, naming the global and the file', async () => {
  const marker = '/tmp/vgl-forbidden-global-marker';
  const path = join(DIR, 'forbidden_global.pth');
  await assert.rejects(loadPth(path), (e: Error) => {
    assert.ok(e.message.startsWith(path), e.message);
    assert.match(e.message, /refusing to load global 'os\.system'/);
    return true;
  });
  assert.ok(!existsSync(marker), 'the pickled os.system call must not have run');
  await assert.rejects(readStateDict(join(DIR, 'whole_module.pth')),
    /whole_module\.pth.*'torch\.nn\.modules\.linear\.Linear'.*save model\.state_dict\(\)/);
});

test('bare pickles, non-checkpoints, truncated and missing files give clear errors naming the file', async () => {
  const bare = join(DIR, 'bare_pickle.pth');
  await assert.rejects(loadPth(bare), new RegExp(`^Error: ${bare}: is a bare pickle, not a torch.save file`));
  const dir = tempDir('vgl-pth-');
  const text = join(dir, 'notes.pth');
  writeFileSync(text, 'hello, this is not a checkpoint\n');
  await assert.rejects(loadPth(text), new RegExp(`^Error: ${text}: is not a PyTorch checkpoint`));
  const truncated = join(dir, 'truncated.pth');
  writeFileSync(truncated, readFileSync(join(DIR, 'checkpoint.pth')).subarray(0, 3000));
  await assert.rejects(loadPth(truncated), new RegExp(`^Error: ${truncated}: .*(truncated|end-of-central-directory)`));
  const legacyCut = join(dir, 'legacy_cut.pth');
  writeFileSync(legacyCut, readFileSync(join(DIR, 'legacy_checkpoint.pth')).subarray(0, 2900));
  await assert.rejects(loadPth(legacyCut), new RegExp(`^Error: ${legacyCut}: .*truncated`));
  const missing = join(dir, 'nope.pth');
  await assert.rejects(loadPth(missing), new RegExp(`^Error: ${missing}: file not found`));
});

test('small files that would take gigabytes are refused, naming the file (scripts/fixtures/make_hostile_pth_fixtures.py)', async () => {
  // 750 bytes: one stored float viewed as [20000, 20000] with stride 0 (1.6 GB if materialised).
  const expanded = join(DIR, 'expanded.pth');
  const before = process.memoryUsage().rss;
  await assert.rejects(loadPth(expanded), (e: Error) => e.message.includes(expanded) && /400000000 elements over storage .* of 1: an expanded view, refused/.test(e.message));
  // A deflated entry whose header declares 100 bytes but inflates to 4 MB: stopped at what the header says.
  const lie = join(DIR, 'deflate_lie.pth');
  await assert.rejects(loadPth(lie), (e: Error) => e.message.includes(lie) && /does not inflate to the 100 bytes its header declares/.test(e.message));
  assert.ok(process.memoryUsage().rss - before < 200e6, `memory grew by ${((process.memoryUsage().rss - before) / 1e6).toFixed(0)} MB`);
  // 64 KB whose honest headers declare 64 MiB: refused before inflating where the memory is not there.
  const big = join(DIR, 'deflated_64mb.pth');
  process.env.VGL_MEMORY_AVAILABLE_MB = '32';
  try {
    await assert.rejects(loadPth(big), (e: Error) => e.message.includes(big) && /compressed entries declare 64 MiB in total, more than the 32 MiB of memory available/.test(e.message));
  } finally {
    delete process.env.VGL_MEMORY_AVAILABLE_MB;
  }
  const loaded = await loadPth(big);
  const w = (loaded as Map<string, HostTensor>).get('w')!;
  assert.deepEqual(w.shape, [16 * 1024 * 1024]);
  assert.ok((w.data as Float32Array).every((x) => x === 0));
});
