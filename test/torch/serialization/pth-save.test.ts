// Writing .pth files: round trip through our reader, and torch.load in Python (PyTorch reference)
// when /usr/bin/python3 has torch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostTensor } from '../../../src/torch/dtype.ts';
import { loadPth, readStateDict, savePth, tuple, type SaveValue } from '../../../src/torch/serialization/index.ts';
import { writeFileAtomic, writeFileAtomicSync } from '../../../src/util/atomic.ts';
import { tempDir } from '../../helpers/tmp.ts';

const f32 = (shape: number[], values: number[]): HostTensor => ({ dtype: 'float32', shape, data: Float32Array.from(values) });

// float16 bits: 0x3c00 = 1, 0xc100 = -2.5, 0x7bff = 65504, 0x0001 = 2^-24
function sample() {
  const stateDict = new Map<string, HostTensor>([
    ['conv.weight', f32([2, 1, 1, 3], [0.5, -1.25, 3, 4.75, -0.125, 1e-3])],
    ['bn.num_batches_tracked', { dtype: 'int64', shape: [], data: BigInt64Array.from([123n]) }],
    ['f64', { dtype: 'float64', shape: [3], data: Float64Array.from([Math.PI, -1e300, 5e-324]) }],
    ['f16', { dtype: 'float16', shape: [2, 2], data: Uint16Array.from([0x3c00, 0xc100, 0x7bff, 0x0001]) }],
    ['i64', { dtype: 'int64', shape: [3], data: BigInt64Array.from([2n ** 62n + 1n, -5n, 0n]) }],
    ['i32', { dtype: 'int32', shape: [2], data: Int32Array.from([-(2 ** 31), 2 ** 31 - 1]) }],
    ['i16', { dtype: 'int16', shape: [2], data: Int16Array.from([-300, 300]) }],
    ['i8', { dtype: 'int8', shape: [2], data: Int8Array.from([-128, 127]) }],
    ['u8', { dtype: 'uint8', shape: [2], data: Uint8Array.from([0, 255]) }],
    ['mask', { dtype: 'bool', shape: [3], data: Uint8Array.from([1, 0, 1]) }],
    ['scalar', f32([], [2.5])],
    ['empty', f32([0, 3], [])],
  ]);
  const checkpoint: SaveValue = {
    epoch: 3n,
    state_dict: stateDict,
    optimizer: { param_groups: [{ lr: 1e-5, betas: tuple(0.9, 0.999), params: [0n, 1n] }], state: new Map() },
    best_r5: 71.5,
    whole_float: 2,
    ints: [0n, 255n, 256n, 65535n, 65536n, -1n, -(2n ** 31n), 2n ** 31n, 2n ** 70n, -(2n ** 70n)],
    note: 'Zürich ✓',
    none: null,
    flag: false,
  };
  return { stateDict, checkpoint };
}

function tmp(): string {
  return tempDir('vgl-pth-save-');
}

test('savePth → loadPth round trip keeps values, dtypes, shapes, ints vs floats, tuples', async () => {
  const dir = tmp();
  const path = join(dir, 'ckpt.pth');
  const { stateDict, checkpoint } = sample();
  await savePth(path, checkpoint);
  assert.deepEqual(readdirSync(dir), ['ckpt.pth'], 'no temp files left');
  const back = await loadPth(path, { intsAsBigInt: true }) as Map<string, any>;
  assert.equal(back.get('epoch'), 3n);
  assert.equal(back.get('best_r5'), 71.5);
  assert.equal(back.get('whole_float'), 2, 'a number is written as a float');
  assert.deepEqual(back.get('ints'), (checkpoint as any).ints);
  assert.equal(back.get('note'), 'Zürich ✓');
  assert.equal(back.get('none'), null);
  assert.equal(back.get('flag'), false);
  const group = back.get('optimizer').get('param_groups')[0] as Map<string, any>;
  assert.ok(Object.isFrozen(group.get('betas')), 'tuple stays a tuple');
  assert.deepEqual([...group.get('betas')], [0.9, 0.999]);
  assert.deepEqual(group.get('params'), [0n, 1n]);
  const sd = back.get('state_dict') as Map<string, HostTensor>;
  assert.deepEqual([...sd.keys()], [...stateDict.keys()]);
  for (const [k, t] of stateDict) {
    const u = sd.get(k)!;
    assert.equal(u.dtype, t.dtype, k);
    assert.deepEqual(u.shape, t.shape, k);
    assert.deepEqual(Array.from(u.data as ArrayLike<number>), Array.from(t.data as ArrayLike<number>), k);
  }
  assert.deepEqual([...(await readStateDict(path)).keys()], [...stateDict.keys()]);
});

test('one storage per tensor object: the same tensor saved twice is shared', async () => {
  const dir = tmp();
  const path = join(dir, 'shared.pth');
  const w = f32([2], [1, 2]);
  await savePth(path, { a: w, b: w, c: f32([2], [1, 2]) });
  const names = (readFileSync(path).toString('latin1').match(/archive\/data\/\d+/g) ?? []);
  assert.deepEqual([...new Set(names)].sort(), ['archive/data/0', 'archive/data/1']);
  const back = await loadPth(path) as Map<string, HostTensor>;
  assert.deepEqual(Array.from(back.get('b')!.data as Float32Array), [1, 2]);
});

test('bad values are refused with the path of the offending entry; the old file survives', async () => {
  const dir = tmp();
  const path = join(dir, 'keep.pth');
  await savePth(path, { x: 1n });
  const before = readFileSync(path);
  await assert.rejects(savePth(path, { sd: new Map([['w', { dtype: 'float32', shape: [2, 2], data: new Float32Array(3) } as HostTensor]]) }),
    /sd\.w: float32 tensor of shape \[2,2\] has 3 values, expected 4/);
  await assert.rejects(savePth(path, { cb: (() => 1) as unknown as SaveValue }), /value\.cb|cb: values of type function/);
  const cyclic: any[] = [];
  cyclic.push(cyclic);
  await assert.rejects(savePth(path, cyclic), /cyclic/);
  assert.deepEqual(readFileSync(path), before);
  assert.deepEqual(readdirSync(dir), ['keep.pth']);
});

test('writeFileAtomic replaces files whole and names the path on failure', async () => {
  const dir = tmp();
  const path = join(dir, 'results.json');
  await writeFileAtomic(path, '{"a":1}');
  await writeFileAtomic(path, [Buffer.from('{"a":'), Buffer.from('2}')]);
  assert.equal(readFileSync(path, 'utf8'), '{"a":2}');
  writeFileAtomicSync(path, new TextEncoder().encode('{"a":3}'));
  assert.equal(readFileSync(path, 'utf8'), '{"a":3}');
  assert.deepEqual(readdirSync(dir), ['results.json']);
  const bad = join(dir, 'no-such-dir', 'x.json');
  await assert.rejects(writeFileAtomic(bad, 'x'), new RegExp(`cannot write ${bad}`));
  assert.throws(() => writeFileAtomicSync(bad, 'x'), new RegExp(`cannot write ${bad}`));
});

// Python side: prints a JSON description of what torch.load returns (types, dtypes, values).
const PY = String.raw`
import json, sys
try:
    import torch
except Exception as e:
    print(json.dumps({'no_torch': str(e)})); sys.exit(0)
from collections import OrderedDict
ck = torch.load(sys.argv[1])
try:
    # torch's own restricted unpickler must accept a state dict (1.13's refuses any Python float, so
    # only the float-free state dict file is tried here)
    torch.load(sys.argv[2], weights_only=True)
    weights_only = 'ok'
except TypeError:
    weights_only = 'unsupported'
def desc(v):
    if isinstance(v, torch.Tensor):
        vals = v.reshape(-1).tolist()
        if v.dtype == torch.int64: vals = [str(x) for x in vals]
        return {'tensor': str(v.dtype).replace('torch.', ''), 'shape': list(v.shape), 'values': vals, 'contiguous': v.is_contiguous()}
    if isinstance(v, OrderedDict): return {'OrderedDict': [[k, desc(x)] for k, x in v.items()]}
    if isinstance(v, dict): return {'dict': [[desc(k), desc(x)] for k, x in v.items()]}
    if isinstance(v, tuple): return {'tuple': [desc(x) for x in v]}
    if isinstance(v, list): return {'list': [desc(x) for x in v]}
    if isinstance(v, bool) or v is None: return v
    if isinstance(v, int): return {'int': str(v)}
    if isinstance(v, float): return {'float': v}
    return v
lin = torch.nn.Linear(3, 2)
lin.load_state_dict(torch.load(sys.argv[2]))
print(json.dumps({'ck': desc(ck), 'weights_only': weights_only, 'linear_out': lin(torch.tensor([[1.0, 2.0, 3.0]])).tolist()}))
`;

test('torch.load in Python reads what savePth writes (types, dtypes, values, load_state_dict)', async (t) => {
  if (!existsSync('/usr/bin/python3')) return t.skip('/usr/bin/python3 not found (PyTorch reference absent)');
  const dir = tmp();
  const path = join(dir, 'ckpt.pth');
  const linPath = join(dir, 'linear.pth');
  const { checkpoint } = sample();
  await savePth(path, checkpoint);
  await savePth(linPath, new Map([['weight', f32([2, 3], [1, 0, 0, 0, 1, -1])], ['bias', f32([2], [0.5, -0.5])]]));
  const r = spawnSync('/usr/bin/python3', ['-c', PY, path, linPath], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `python failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout);
  if (out.no_torch) return t.skip(`/usr/bin/python3 cannot import torch: ${out.no_torch}`);
  assert.notEqual(out.weights_only, undefined);
  if (out.weights_only !== 'unsupported') assert.equal(out.weights_only, 'ok');
  // Linear: W·[1,2,3] + b = [1+0.5, 2-3-0.5]
  assert.deepEqual(out.linear_out, [[1.5, -1.5]]);
  const ck = new Map<string, any>((out.ck.dict as [any, any][]).map(([k, v]) => [k, v]));
  assert.deepEqual(ck.get('epoch'), { int: '3' });
  assert.deepEqual(ck.get('best_r5'), { float: 71.5 });
  assert.deepEqual(ck.get('whole_float'), { float: 2 });
  assert.deepEqual(ck.get('ints').list.map((x: any) => x.int),
    ['0', '255', '256', '65535', '65536', '-1', String(-(2 ** 31)), String(2 ** 31), String(2n ** 70n), String(-(2n ** 70n))]);
  assert.equal(ck.get('note'), 'Zürich ✓');
  assert.equal(ck.get('none'), null);
  assert.equal(ck.get('flag'), false);
  const opt = new Map<string, any>((ck.get('optimizer').dict as [any, any][]));
  const group = new Map<string, any>(opt.get('param_groups').list[0].dict);
  assert.deepEqual(group.get('betas'), { tuple: [{ float: 0.9 }, { float: 0.999 }] });
  assert.deepEqual(group.get('params'), { list: [{ int: '0' }, { int: '1' }] });
  assert.deepEqual(opt.get('state'), { dict: [] });
  const sd = new Map<string, any>(ck.get('state_dict').OrderedDict);
  const T = (tensor: string, shape: number[], values: unknown[]) => ({ tensor, shape, values, contiguous: true });
  assert.deepEqual(sd.get('conv.weight'), T('float32', [2, 1, 1, 3], [0.5, -1.25, 3, 4.75, -0.125, Math.fround(1e-3)]));
  assert.deepEqual(sd.get('bn.num_batches_tracked'), T('int64', [], ['123']));
  assert.deepEqual(sd.get('f64'), T('float64', [3], [Math.PI, -1e300, 5e-324]));
  assert.deepEqual(sd.get('f16'), T('float16', [2, 2], [1, -2.5, 65504, 2 ** -24]));
  assert.deepEqual(sd.get('i64'), T('int64', [3], [String(2n ** 62n + 1n), '-5', '0']));
  assert.deepEqual(sd.get('i32'), T('int32', [2], [-(2 ** 31), 2 ** 31 - 1]));
  assert.deepEqual(sd.get('i16'), T('int16', [2], [-300, 300]));
  assert.deepEqual(sd.get('i8'), T('int8', [2], [-128, 127]));
  assert.deepEqual(sd.get('u8'), T('uint8', [2], [0, 255]));
  assert.deepEqual(sd.get('mask'), T('bool', [3], [true, false, true]));
  assert.deepEqual(sd.get('scalar'), T('float32', [], [2.5]));
  assert.deepEqual(sd.get('empty'), T('float32', [0, 3], []));
});
