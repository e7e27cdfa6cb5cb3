// A restricted Python unpickler. It never runs code: a global (module.name) resolves only through
// the caller's whitelist, and anything else stops the load with an error naming the global.
// Covers the opcodes of protocols 0-5 that data (not arbitrary objects) needs.
import type { HostTensor } from '../dtype.ts';

/**
 * Values a pickle can hold here. Python lists → arrays; tuples → frozen arrays
 * (`Object.isFrozen(x)`); dict/OrderedDict → Map (insertion order kept); bytes → Uint8Array;
 * int → number when |n| ≤ 2^53, else bigint (or always bigint with `intsAsBigInt`); float → number.
 */
export type PickleValue =
  | null | boolean | number | bigint | string | Uint8Array | HostTensor
  | PickleValue[] | readonly PickleValue[] | Map<PickleValue, PickleValue> | Set<PickleValue>;

/** A whitelisted Python callable (class or function) as it sits on the unpickler's stack. */
export class PyCallable {
  constructor(readonly qualname: string, readonly call: (args: unknown[]) => unknown) {}
}

/** Objects made by whitelisted callables may accept BUILD (`__setstate__`). */
export interface PyBuildable {
  setState(state: unknown): void;
}

export class UnpicklingError extends Error {}

export interface UnpickleOptions {
  /** Names the file in errors, e.g. `weights.pth (archive/data.pkl)`. */
  label: string;
  /** Returns the callable for module.name, or undefined to refuse it. */
  findGlobal: (module: string, name: string) => PyCallable | undefined;
  /** Resolves a persistent id (BINPERSID/PERSID). Without it persistent ids are refused. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Return every Python int as bigint (exact round trips). Default: number when safe. */
  intsAsBigInt?: boolean;
  /** Extra hint appended to the error for a refused global. */
  refusedGlobalHint?: (module: string, name: string) => string;
}

function isBuildable(x: unknown): x is PyBuildable {
  return typeof x === 'object' && x !== null && typeof (x as PyBuildable).setState === 'function';
}

/** Unpickles one pickle that fills `bytes` (trailing bytes are ignored). */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): unknown {
  return unpickleAt(bytes, 0, opts).value;
}

/** Unpickles the pickle starting at `start`; `end` is the byte after its STOP (files may hold several). */
export function unpickleAt(bytes: Uint8Array, start: number, opts: UnpickleOptions): { value: unknown; end: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  let pos = start;
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();

  const fail = (msg: string): never => {
    throw new UnpicklingError(`${opts.label}: ${msg}`);
  };
  const need = (n: number): void => {
    if (pos + n > bytes.length) fail(`pickle truncated at byte ${pos} (needs ${n} more)`);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const u8 = (): number => { need(1); return bytes[pos++]!; };
  const u16 = (): number => { need(2); const v = view.getUint16(pos, true); pos += 2; return v; };
  const i32 = (): number => { need(4); const v = view.getInt32(pos, true); pos += 4; return v; };
  const u32 = (): number => { need(4); const v = view.getUint32(pos, true); pos += 4; return v; };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('length out of range');
    return Number(v);
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('pickle truncated inside a text field');
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const str = (n: number): string => {
    try {
      return utf8.decode(take(n));
    } catch {
      return fail(`invalid UTF-8 string at byte ${pos}`);
    }
  };
  const int = (v: bigint): number | bigint => {
    if (opts.intsAsBigInt) return v;
    return v >= -BigInt(Number.MAX_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const small = (v: number): number | bigint => (opts.intsAsBigInt ? BigInt(v) : v);
  const pop = (): unknown => {
    if (stack.length === 0) fail(`stack underflow at byte ${pos - 1}`);
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail(`stack underflow at byte ${pos - 1}`);
    return stack[stack.length - 1];
  };
  // Callers must not write `stack.push(popMark())`: `stack` would be read before popMark swaps it.
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) return fail(`no MARK on the stack at byte ${pos - 1}`);
    stack = prev;
    return items;
  };
  const tuple = (items: unknown[]): readonly unknown[] => Object.freeze(items);
  const global = (module: string, name: string): PyCallable => {
    const g = opts.findGlobal(module, name);
    if (!g) {
      fail(`refusing to load global '${module}.${name}': only tensors and plain containers are allowed`
        + (opts.refusedGlobalHint ? ` (${opts.refusedGlobalHint(module, name)})` : ''));
    }
    return g!;
  };
  const call = (fn: unknown, args: unknown): unknown => {
    if (!(fn instanceof PyCallable)) return fail(`REDUCE on a value that is not a whitelisted callable at byte ${pos - 1}`);
    if (!Array.isArray(args)) return fail(`${fn.qualname}: arguments are not a tuple`);
    try {
      return fn.call(args as unknown[]);
    } catch (err) {
      if (err instanceof UnpicklingError) throw err;
      return fail(`${fn.qualname}: ${(err as Error).message}`);
    }
  };
  const setItems = (dict: unknown, items: unknown[]): void => {
    if (!(dict instanceof Map)) fail(`SETITEM(S) on a value that is not a dict at byte ${pos - 1}`);
    if (items.length % 2 !== 0) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (dict as Map<unknown, unknown>).set(items[i], items[i + 1]);
  };
  const appendItems = (list: unknown, items: unknown[]): void => {
    if (!Array.isArray(list) || Object.isFrozen(list)) fail(`APPEND(S) on a value that is not a list at byte ${pos - 1}`);
    for (const x of items) (list as unknown[]).push(x);
  };
  const persid = (pid: unknown): unknown => {
    if (!opts.persistentLoad) return fail('unexpected persistent id');
    return opts.persistentLoad(pid);
  };
  const memoGet = (i: number): unknown => {
    if (!memo.has(i)) fail(`memo key ${i} not found`);
    return memo.get(i);
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const proto = u8();
        if (proto > 5) fail(`unsupported pickle protocol ${proto}`);
        break;
      }
      case 0x95: u64(); break; // FRAME: framing is only a read-ahead hint
      case 0x2e: { // STOP
        const value = pop();
        return { value, end: pos };
      }
      case 0x28: metastack.push(stack); stack = []; break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(small(i32())); break; // BININT
      case 0x4b: stack.push(small(u8())); break; // BININT1
      case 0x4d: stack.push(small(u16())); break; // BININT2
      case 0x8a: case 0x8b: { // LONG1, LONG4: little-endian two's complement
        const n = op === 0x8a ? u8() : u32();
        const b = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
        if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(int(v));
        break;
      }
      case 0x49: { // INT (text); "00"/"01" are protocol-0 booleans
        const s = line();
        if (s === '00') stack.push(false);
        else if (s === '01') stack.push(true);
        else if (/^[+-]?\d+$/.test(s)) stack.push(int(BigInt(s)));
        else fail(`bad INT '${s}'`);
        break;
      }
      case 0x4c: { // LONG (text)
        const s = line().replace(/L$/, '');
        if (!/^[+-]?\d+$/.test(s)) fail(`bad LONG '${s}'`);
        stack.push(int(BigInt(s)));
        break;
      }
      case 0x47: { need(8); stack.push(view.getFloat64(pos, false)); pos += 8; break; } // BINFLOAT (big-endian)
      case 0x46: { // FLOAT (text)
        const s = line();
        const v = Number(s);
        if (Number.isNaN(v) && !/nan/i.test(s)) fail(`bad FLOAT '${s}'`);
        stack.push(v);
        break;
      }
      case 0x58: stack.push(str(u32())); break; // BINUNICODE
      case 0x8c: stack.push(str(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(str(u64())); break; // BINUNICODE8
      case 0x56: stack.push(line().replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, // UNICODE (raw-unicode-escape)
        (_m, a: string | undefined, b: string | undefined) => String.fromCodePoint(parseInt(a ?? b!, 16)))); break;
      case 0x54: stack.push(latin1.decode(take(i32()))); break; // BINSTRING (Python 2 str)
      case 0x55: stack.push(latin1.decode(take(u8()))); break; // SHORT_BINSTRING
      case 0x53: { // STRING (quoted repr)
        const s = line();
        if (s.length < 2 || s[0] !== s[s.length - 1] || (s[0] !== "'" && s[0] !== '"')) fail(`bad STRING at byte ${at}`);
        stack.push(s.slice(1, -1).replace(/\\x([0-9a-fA-F]{2})|\\(['"\\])|\\n/g,
          (m, h: string | undefined, q: string | undefined) => (h ? String.fromCharCode(parseInt(h, 16)) : q ?? (m === '\\n' ? '\n' : m))));
        break;
      }
      case 0x42: stack.push(take(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(take(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: stack.push(take(u64()).slice()); break; // BINBYTES8
      case 0x96: stack.push(take(u64()).slice()); break; // BYTEARRAY8
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: { const items = popMark(); stack.push(items); break; } // LIST
      case 0x61: { const x = pop(); appendItems(top(), [x]); break; } // APPEND
      case 0x65: { const items = popMark(); appendItems(top(), items); break; } // APPENDS
      case 0x29: stack.push(tuple([])); break; // EMPTY_TUPLE
      case 0x74: { const items = popMark(); stack.push(tuple(items)); break; } // TUPLE
      case 0x85: stack.push(tuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push(tuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(tuple([a, b, c])); break; } // TUPLE3
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x64: { const m = new Map(); setItems(m, popMark()); stack.push(m); break; } // DICT
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail('ADDITEMS on a value that is not a set');
        for (const x of items) (s as Set<unknown>).add(x);
        break;
      }
      case 0x91: { const items = popMark(); stack.push(new Set(items)); break; } // FROZENSET
      case 0x63: { const module = line(); const name = line(); stack.push(global(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL with non-string names');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(); const fn = pop(); stack.push(call(fn, args)); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop(); stack.push(call(cls, args)); break; } // NEWOBJ
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (kwargs instanceof Map && kwargs.size > 0) fail('NEWOBJ_EX with keyword arguments is not supported');
        stack.push(call(cls, args));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof Map) {
          // An OrderedDict subclass's attributes (a state_dict's `_metadata`): not data, dropped.
          break;
        }
        if (isBuildable(obj)) {
          try {
            obj.setState(state);
          } catch (err) {
            fail(`BUILD: ${(err as Error).message}`);
          }
          break;
        }
        fail(`BUILD on an unsupported object at byte ${at}`);
        break;
      }
      case 0x51: stack.push(persid(pop())); break; // BINPERSID
      case 0x50: stack.push(persid(line())); break; // PERSID
      case 0x70: memo.set(Number(line()), top()); break; // PUT
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x67: stack.push(memoGet(Number(line()))); break; // GET
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x69: case 0x6f: // INST, OBJ: instantiate arbitrary classes
        fail(`refusing pickle opcode ${op === 0x69 ? 'INST' : 'OBJ'} at byte ${at} (builds arbitrary objects)`);
        break;
      case 0x82: case 0x83: case 0x84: // EXT1/2/4: extension registry globals
        fail(`refusing pickle extension-registry opcode at byte ${at}`);
        break;
      default:
        fail(`unknown or unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at}`);
    }
  }
}
