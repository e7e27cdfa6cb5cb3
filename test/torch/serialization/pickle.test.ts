// The restricted unpickler on pickles written by CPython's pickle (hex below, made with
// `pickle.dumps(v, protocol=p).hex()` for the value in EXPECTED) and on hostile inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PyCallable, unpickle, UnpicklingError } from '../../../src/torch/serialization/pickle.ts';
import { Pickler } from '../../../src/torch/serialization/pickler.ts';

// v = {'a': [1, -2, 2**70, -2**70, 1.5, None, True, False, 'ü', (1,2), (), (3,), (4,5,6), (7,8,9,10)],
//      'b': {'k': []}, 'n': -(2**31), 'm': 65535, 'big': 2**53+1};  v['same'] = v['b']
const PICKLES: Record<number, string> = {
  0: '286470300a56610a70310a286c70320a49310a61492d320a614c313138303539313632303731373431313330333432344c0a614c2d313138303539313632303731373431313330333432344c0a6146312e350a614e614930310a614930300a6156fc0a70330a612849310a49320a7470340a612874612849330a7470350a612849340a49350a49360a7470360a612849370a49380a49390a4931300a7470370a617356620a70380a286470390a566b0a7031300a286c7031310a7373566e0a7031320a492d323134373438333634380a73566d0a7031330a4936353533350a73566269670a7031340a4c393030373139393235343734303939334c0a735673616d650a7031350a67390a732e',
  2: '80027d71002858010000006171015d7102284b014afeffffff8a090000000000000000408a090000000000000000c0473ff80000000000004e88895802000000c3bc71034b014b02867104294b038571054b044b054b06877106284b074b084b094b0a7471076558010000006271087d710958010000006b710a5d710b7358010000006e710c4a0000008058010000006d710d4dffff5803000000626967710e8a0701000000000020580400000073616d65710f6809752e',
  4: '8004958e000000000000007d94288c0161945d94284b014afeffffff8a090000000000000000408a090000000000000000c0473ff80000000000004e88898c02c3bc944b014b028694294b0385944b044b054b068794284b074b084b094b0a7494658c0162947d948c016b945d94738c016e944a000000808c016d944dffff8c03626967948a07010000000000208c0473616d65946809752e',
  5: '8005958e000000000000007d94288c0161945d94284b014afeffffff8a090000000000000000408a090000000000000000c0473ff80000000000004e88898c02c3bc944b014b028694294b0385944b044b054b068794284b074b084b094b0a7494658c0162947d948c016b945d94738c016e944a000000808c016d944dffff8c03626967948a07010000000000208c0473616d65946809752e',
};

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const noGlobals = { label: 'test.pkl', findGlobal: () => undefined };

for (const [proto, h] of Object.entries(PICKLES)) {
  test(`unpickles CPython protocol ${proto}: ints, longs, floats, strings, tuples, shared refs`, () => {
    const v = unpickle(hex(h), noGlobals) as Map<string, unknown>;
    assert.ok(v instanceof Map);
    assert.deepEqual([...v.keys()], ['a', 'b', 'n', 'm', 'big', 'same']);
    const a = v.get('a') as unknown[];
    assert.deepEqual(a.slice(0, 9), [1, -2, 2n ** 70n, -(2n ** 70n), 1.5, null, true, false, 'ü']);
    assert.deepEqual(a.slice(9).map((t) => [...(t as unknown[])]), [[1, 2], [], [3], [4, 5, 6], [7, 8, 9, 10]]);
    for (const t of a.slice(9)) assert.ok(Object.isFrozen(t), 'tuples come back frozen');
    assert.ok(!Object.isFrozen(a), 'lists stay mutable');
    assert.equal(v.get('n'), -(2 ** 31));
    assert.equal(v.get('m'), 65535);
    assert.equal(v.get('big'), 2n ** 53n + 1n, 'ints beyond 2^53 stay exact as bigint');
    assert.equal(v.get('same'), v.get('b'), 'memo references give the same object');
    assert.deepEqual(v.get('b'), new Map([['k', []]]));
  });
}

test('intsAsBigInt returns every int as bigint', () => {
  const v = unpickle(hex(PICKLES[2]!), { ...noGlobals, intsAsBigInt: true }) as Map<string, unknown>;
  assert.deepEqual((v.get('a') as unknown[]).slice(0, 2), [1n, -2n]);
  assert.equal(v.get('m'), 65535n);
  assert.equal((v.get('a') as unknown[])[4], 1.5);
});

test('refuses globals outside the whitelist (GLOBAL and STACK_GLOBAL), naming them and the file', () => {
  // pickle.dumps(builtins.eval, protocol=4) and protocol=0
  for (const h of ['80049515000000000000008c086275696c74696e73948c046576616c9493942e', '635f5f6275696c74696e5f5f0a6576616c0a70300a2e']) {
    assert.throws(() => unpickle(hex(h), noGlobals), (e: Error) => {
      assert.ok(e instanceof UnpicklingError);
      assert.match(e.message, /^test\.pkl: refusing to load global '(builtins|__builtin__)\.eval'/);
      return true;
    });
  }
});

test('a whitelisted callable is called through REDUCE; a non-callable REDUCE is refused', () => {
  const calls: unknown[][] = [];
  const findGlobal = (m: string, n: string) => (m === 'demo' && n === 'pair' ? new PyCallable('demo.pair', (a) => { calls.push(a); return 'made'; }) : undefined);
  // cdemo\npair\n K1 K2 TUPLE2 REDUCE STOP
  const ok = new Uint8Array([...Buffer.from('cdemo\npair\n'), 0x4b, 1, 0x4b, 2, 0x86, 0x52, 0x2e]);
  assert.equal(unpickle(ok, { label: 'x', findGlobal }), 'made');
  assert.deepEqual(calls.map((c) => [...c]), [[1, 2]]);
  // 'X' string then EMPTY_TUPLE REDUCE: calling a string must not work
  const bad = new Uint8Array([0x58, 1, 0, 0, 0, 0x41, 0x29, 0x52, 0x2e]);
  assert.throws(() => unpickle(bad, { label: 'x', findGlobal }), /not a whitelisted callable/);
});

test('refuses INST/OBJ/EXT opcodes and reports truncation and unknown opcodes', () => {
  assert.throws(() => unpickle(new Uint8Array([0x28, 0x69, ...Buffer.from('os\nsystem\n'), 0x2e]), noGlobals), /refusing pickle opcode INST/);
  assert.throws(() => unpickle(new Uint8Array([0x82, 1, 0x2e]), noGlobals), /extension-registry/);
  assert.throws(() => unpickle(new Uint8Array([0x80, 2, 0x4a, 1, 2]), noGlobals), /test\.pkl: pickle truncated/);
  assert.throws(() => unpickle(new Uint8Array([0x80, 2, 0xff]), noGlobals), /unknown or unsupported pickle opcode 0xff at byte 2/);
  assert.throws(() => unpickle(new Uint8Array([0x80, 2, 0x51, 0x2e]), noGlobals), /stack underflow/);
});

test('Pickler output reads back (ints of every width, floats, strings, containers)', () => {
  const p = new Pickler();
  const ints = [0n, 255n, 256n, 65535n, 65536n, -1n, -(2n ** 31n), 2n ** 31n - 1n, 2n ** 31n, -(2n ** 31n) - 1n, 2n ** 63n, -(2n ** 100n), 128n, -128n];
  p.proto();
  p.emptyList();
  p.mark();
  for (const i of ints) p.int(i);
  p.float(-0.1);
  p.str('Zürich ✓');
  p.none();
  p.bool(true);
  p.mark(); p.int(7n); p.tuple();
  p.emptyDict(); p.mark(); p.str('k'); p.float(2); p.setitems();
  p.appends();
  p.stop();
  const v = unpickle(p.bytes(), { ...noGlobals, intsAsBigInt: true }) as unknown[];
  assert.deepEqual(v.slice(0, ints.length), ints);
  assert.deepEqual(v.slice(ints.length, ints.length + 4), [-0.1, 'Zürich ✓', null, true]);
  assert.deepEqual([...(v[ints.length + 4] as unknown[])], [7n]);
  assert.deepEqual(v[ints.length + 5], new Map([['k', 2]]));
});
