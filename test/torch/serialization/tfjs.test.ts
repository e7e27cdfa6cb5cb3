// TF.js layers weights: the shared MobileNetV2 weights against numpy's reading
// (scripts/fixtures/make_tfjs_fixtures.py), plus hand-made quantized models and broken folders.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadTfjsLayersModel } from '../../../src/torch/serialization/index.ts';
import { tempDir } from '../../helpers/tmp.ts';

const SHARED = resolve('..', 'shared', 'weights', 'mobilenet_v2_0.35_imagenet');
const EXPECTED = JSON.parse(readFileSync('test/fixtures/tfjs/mobilenet_v2_0.35.json', 'utf8'));

test('reads the shared MobileNetV2 0.35 weights exactly as numpy does', async (t) => {
  if (!existsSync(join(SHARED, 'model.json'))) return t.skip(`${SHARED} is absent (shared ImageNet weights not installed)`);
  const model = await loadTfjsLayersModel(SHARED);
  assert.equal(model.weights.size, EXPECTED.count);
  const names = [...model.weights.keys()];
  assert.deepEqual(names.slice(0, 5), EXPECTED.first_names, 'manifest order');
  assert.deepEqual(names.slice(-3), EXPECTED.last_names);
  for (const [name, e] of Object.entries<any>(EXPECTED.weights)) {
    const w = model.weights.get(name)!;
    assert.ok(w, name);
    assert.equal(w.dtype, e.dtype);
    assert.deepEqual(w.shape, e.shape, name);
    const d = w.data as Float32Array;
    e.values.forEach((v: number, i: number) => assert.equal(d[i], v, `${name}[${i}]`));
    assert.equal(d[d.length - 1], e.last, `${name} last`);
    let sum = 0;
    let abs = 0;
    for (const x of d) { sum += x; abs += Math.abs(x); }
    assert.ok(Math.abs(sum - e.sum) <= 1e-9 * Math.max(1, abs), `${name} sum ${sum} vs ${e.sum}`);
    assert.ok(Math.abs(abs - e.abs_sum) <= 1e-9 * Math.max(1, abs), `${name} abs sum`);
  }
  const topo = model.topology as { class_name?: string; config?: { name?: string } };
  assert.equal(topo.class_name, 'Sequential', 'topology is the parsed modelTopology');
  assert.equal(topo.config?.name, 'sequential_8');
});

function writeModel(weights: object[], shards: Record<string, Uint8Array>): string {
  const dir = tempDir('vgl-tfjs-');
  const paths = Object.keys(shards);
  writeFileSync(join(dir, 'model.json'), JSON.stringify({ modelTopology: { name: 'tiny' }, weightsManifest: [{ paths, weights }] }));
  for (const [p, b] of Object.entries(shards)) writeFileSync(join(dir, p), b);
  return dir;
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

test('dequantizes uint8 / uint16 (q·scale + min), float16, int32 and reads shards in order', async () => {
  // Stream: float32 [1.5, -2] | uint8 [0, 1, 255] | uint16 [0, 1000, 65535] | float16 [1, -2.5] | int32 [7, -9] | uint8→int32 [2, 4]
  const f = bytesOf(Float32Array.from([1.5, -2]));
  const u8 = Uint8Array.from([0, 1, 255]);
  const u16 = bytesOf(Uint16Array.from([0, 1000, 65535]));
  const f16 = bytesOf(Uint16Array.from([0x3c00, 0xc100]));
  const i32 = bytesOf(Int32Array.from([7, -9]));
  const qi = Uint8Array.from([2, 4]);
  const all = new Uint8Array([...f, ...u8, ...u16, ...f16, ...i32, ...qi]);
  const dir = writeModel([
    { name: 'a', shape: [2], dtype: 'float32' },
    { name: 'b', shape: [3], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.5, min: -1 } },
    { name: 'c', shape: [1, 3], dtype: 'float32', quantization: { dtype: 'uint16', scale: 0.001, min: 2 } },
    { name: 'd', shape: [2], dtype: 'float32', quantization: { dtype: 'float16' } },
    { name: 'e', shape: [2], dtype: 'int32' },
    { name: 'f', shape: [2], dtype: 'int32', quantization: { dtype: 'uint8', scale: 1.5, min: -1, original_dtype: 'int32' } },
  ], { 'group1-shard1of2.bin': all.subarray(0, 7), 'group1-shard2of2.bin': all.subarray(7) });
  const m = await loadTfjsLayersModel(join(dir, 'model.json'));
  assert.deepEqual(m.topology, { name: 'tiny' });
  const get = (n: string) => Array.from(m.weights.get(n)!.data as Float32Array);
  assert.deepEqual(get('a'), [1.5, -2]);
  assert.deepEqual(get('b'), [-1, -0.5, 126.5]);
  assert.deepEqual(get('c'), [2, Math.fround(1000 * 0.001 + 2), Math.fround(65535 * 0.001 + 2)]);
  assert.deepEqual(m.weights.get('c')!.shape, [1, 3]);
  assert.deepEqual(get('d'), [1, -2.5]);
  assert.equal(m.weights.get('e')!.dtype, 'int32');
  assert.deepEqual(get('e'), [7, -9]);
  assert.equal(m.weights.get('f')!.dtype, 'int32');
  assert.deepEqual(get('f'), [2, 5]); // round(2·1.5−1), round(4·1.5−1)
});

test('missing shard, wrong shard size, missing model.json and unsupported dtypes name the file', async () => {
  const w = [{ name: 'a', shape: [2, 2], dtype: 'float32' }];
  const missingDir = writeModel(w, {});
  const json = JSON.parse(readFileSync(join(missingDir, 'model.json'), 'utf8'));
  json.weightsManifest[0].paths = ['weights.bin'];
  writeFileSync(join(missingDir, 'model.json'), JSON.stringify(json));
  await assert.rejects(loadTfjsLayersModel(missingDir),
    new RegExp(`^Error: ${join(missingDir, 'weights.bin')}: weight shard listed in ${join(missingDir, 'model.json')} is missing`));

  const shortDir = writeModel(w, { 'weights.bin': new Uint8Array(12) });
  await assert.rejects(loadTfjsLayersModel(shortDir),
    new RegExp(`${join(shortDir, 'weights.bin')} \\(12 bytes\\): shards hold 12 bytes but .*model\\.json describes 16 bytes`));

  const nothing = tempDir('vgl-tfjs-');
  await assert.rejects(loadTfjsLayersModel(nothing), new RegExp(`^Error: ${join(nothing, 'model.json')}: file not found`));

  const strDir = writeModel([{ name: 's', shape: [1], dtype: 'string' }], { 'w.bin': new Uint8Array(0) });
  await assert.rejects(loadTfjsLayersModel(strDir), /model\.json: weight s has dtype 'string'/);
});

test('a manifest path outside the model folder ("..", absolute) is refused before anything is opened', async () => {
  const w = [{ name: 'a', shape: [1], dtype: 'float32' }];
  for (const evil of ['../../../etc/hostname', '/etc/hostname', 'sub/../../x.bin', '..\\..\\x.bin']) {
    const dir = writeModel(w, {});
    const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    json.weightsManifest[0].paths = [evil];
    writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
    await assert.rejects(loadTfjsLayersModel(dir), (e: Error) => e.message.includes(`"${evil}" is not a file name inside the model's folder`) && e.message.startsWith(join(dir, 'model.json')), evil);
  }
});
