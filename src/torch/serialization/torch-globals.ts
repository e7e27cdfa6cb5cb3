// The whitelist of Python globals a `.pth` pickle may name, and what each one builds here.
// Everything is data: storages, tensors, OrderedDict, torch.Size, sets, numpy scalars.
import { BYTES_PER_ELEMENT, numel, typedArrayFor, type DType, type HostTensor } from '../dtype.ts';
import { bfloat16ArrayToFloat32, halfToFloat } from './half.ts';
import { PyCallable, type PyBuildable } from './pickle.ts';

/** Storage class name in `torch.<Name>Storage` → element type. BFloat16 is widened to float32 on load. */
export const STORAGE_CLASS_DTYPE: Record<string, DType | 'bfloat16'> = {
  FloatStorage: 'float32', DoubleStorage: 'float64', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8',
  ByteStorage: 'uint8', BoolStorage: 'bool',
};

export const DTYPE_STORAGE_CLASS: Record<DType, string> = {
  float32: 'FloatStorage', float64: 'DoubleStorage', float16: 'HalfStorage', bfloat16: 'BFloat16Storage', int64: 'LongStorage',
  int32: 'IntStorage', int16: 'ShortStorage', int8: 'CharStorage', uint8: 'ByteStorage', bool: 'BoolStorage',
};

/** A storage class named in a persistent id; never called. */
export class StorageType extends PyCallable {
  constructor(readonly className: string, readonly storageDtype: DType | 'bfloat16') {
    super(`torch.${className}`, () => { throw new Error('storages cannot be constructed inside a pickle'); });
  }
}

/** One storage blob of the archive (`<root>/data/<key>`), already in its final element type. */
export interface Storage {
  key: string;
  dtype: DType;
  bytes: Uint8Array;
  numel: number;
}

/** Makes a storage from the raw record; bfloat16 becomes float32. */
export function makeStorage(key: string, type: DType | 'bfloat16', raw: Uint8Array, count: number): Storage {
  const elsize = type === 'bfloat16' ? 2 : BYTES_PER_ELEMENT[type];
  if (raw.length < count * elsize) {
    throw new Error(`storage data/${key} has ${raw.length} bytes, expected ${count * elsize} (${count} x ${elsize})`);
  }
  if (type === 'bfloat16') {
    const src = aligned(raw.subarray(0, count * 2), 2);
    const halves = new Uint16Array(src.buffer, src.byteOffset, count);
    const f = bfloat16ArrayToFloat32(halves);
    return { key, dtype: 'float32', bytes: new Uint8Array(f.buffer), numel: count };
  }
  return { key, dtype: type, bytes: raw.subarray(0, count * elsize), numel: count };
}

// Bytes whose start is a multiple of `align` in their buffer (a copy when needed).
function aligned(bytes: Uint8Array, align: number): Uint8Array {
  return bytes.byteOffset % align === 0 ? bytes : bytes.slice();
}

function toIntList(x: unknown, what: string): number[] {
  if (!Array.isArray(x)) throw new Error(`${what} is not a tuple`);
  return x.map((v) => {
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new Error(`${what} holds a bad value ${String(v)}`);
    return n;
  });
}

/**
 * A tensor over a storage (torch's `_rebuild_tensor_v2`). A tensor covering its whole storage is
 * a view of the file bytes; a slice is copied (so it does not pin a larger storage), and a strided
 * tensor is gathered into contiguous (row-major) order.
 */
export function rebuildTensor(storage: unknown, offsetArg: unknown, sizeArg: unknown, strideArg: unknown): HostTensor {
  if (!isStorage(storage)) throw new Error('first argument is not a storage');
  const offset = Number(offsetArg);
  if (!Number.isInteger(offset) || offset < 0) throw new Error(`bad storage offset ${String(offsetArg)}`);
  const shape = toIntList(sizeArg, 'size');
  const stride = toIntList(strideArg, 'stride');
  if (shape.length !== stride.length) throw new Error(`size ${shape.length}-d but stride ${stride.length}-d`);
  const n = numel(shape);
  const { dtype } = storage;
  const elsize = BYTES_PER_ELEMENT[dtype];
  if (n === 0) return { dtype, shape, data: typedArrayFor(dtype, new ArrayBuffer(0), 0, 0) };
  let last = offset;
  for (let d = 0; d < shape.length; d++) last += (shape[d]! - 1) * stride[d]!;
  if (last >= storage.numel) {
    throw new Error(`tensor of size [${shape}] stride [${stride}] offset ${offset} reaches past storage ${storage.key} of ${storage.numel} elements`);
  }
  // A view with more elements than its storage (stride 0: an expanded tensor) would be materialised
  // element by element: 835 bytes could ask for gigabytes. Checkpoints hold real tensors, not such views.
  if (n > storage.numel) {
    throw new Error(`tensor of size [${shape}] stride [${stride}] has ${n} elements over storage ${storage.key} of ${storage.numel}: an expanded view, refused (it would be materialised in full)`);
  }
  let contiguous = true;
  let expect = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d]! !== 1 && stride[d]! !== expect) { contiguous = false; break; }
    expect *= shape[d]!;
  }
  if (contiguous) {
    let bytes = storage.bytes.subarray(offset * elsize, (offset + n) * elsize);
    if (!(offset === 0 && n === storage.numel) || bytes.byteOffset % elsize !== 0) bytes = bytes.slice();
    return { dtype, shape, data: typedArrayFor(dtype, bytes.buffer as ArrayBuffer, bytes.byteOffset, n) };
  }
  const out = gather(aligned(storage.bytes, elsize), elsize, offset, shape, stride, n);
  return { dtype, shape, data: typedArrayFor(dtype, out.buffer as ArrayBuffer, 0, n) };
}

function gather(src: Uint8Array, elsize: number, offset: number, shape: number[], stride: number[], n: number): Uint8Array {
  const out = new Uint8Array(n * elsize);
  // Copy in machine words; an 8-byte element is two 4-byte words (keeps NaN payloads intact).
  const words = elsize === 8 ? 2 : 1;
  const Word = elsize === 1 ? Uint8Array : elsize === 2 ? Uint16Array : Uint32Array;
  const s = new Word(src.buffer as ArrayBuffer, src.byteOffset, src.byteLength / Math.min(elsize, 4));
  const o = new Word(out.buffer, 0, (n * elsize) / Math.min(elsize, 4));
  const ndim = shape.length;
  const idx = new Array<number>(ndim).fill(0);
  let p = offset;
  for (let i = 0; i < n; i++) {
    for (let w = 0; w < words; w++) o[i * words + w] = s[p * words + w]!;
    for (let d = ndim - 1; d >= 0; d--) {
      idx[d]!++;
      p += stride[d]!;
      if (idx[d]! < shape[d]!) break;
      p -= stride[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

function isStorage(x: unknown): x is Storage {
  return typeof x === 'object' && x !== null && 'bytes' in x && 'numel' in x && 'key' in x && 'dtype' in x;
}

/** numpy dtype as pickled (`numpy.dtype('f8', False, True)` then BUILD with the byte order). */
class NumpyDType implements PyBuildable {
  byteorder = '=';
  constructor(readonly code: string) {}
  setState(state: unknown): void {
    if (Array.isArray(state) && typeof state[1] === 'string') this.byteorder = state[1];
  }
}

// numpy.core.multiarray.scalar(dtype, bytes): numpy scalars such as a recall stored as np.float64.
function numpyScalar(args: unknown[]): number | bigint | boolean {
  const [dt, raw] = args;
  if (!(dt instanceof NumpyDType)) throw new Error('first argument is not a numpy dtype');
  if (!(raw instanceof Uint8Array)) throw new Error('second argument is not bytes');
  const little = dt.byteorder !== '>';
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const code = dt.code.replace(/^[<>=|]/, '');
  const need: Record<string, number> = { f8: 8, f4: 4, f2: 2, i8: 8, i4: 4, i2: 2, i1: 1, u8: 8, u4: 4, u2: 2, u1: 1, b1: 1 };
  if (!(code in need)) throw new Error(`numpy scalar of dtype '${dt.code}' is not supported`);
  if (raw.length !== need[code]) throw new Error(`numpy scalar '${dt.code}' with ${raw.length} bytes`);
  switch (code) {
    case 'f8': return v.getFloat64(0, little);
    case 'f4': return v.getFloat32(0, little);
    case 'f2': return halfToFloat(v.getUint16(0, little));
    case 'i8': { const b = v.getBigInt64(0, little); return Number.isSafeInteger(Number(b)) ? Number(b) : b; }
    case 'u8': { const b = v.getBigUint64(0, little); return Number.isSafeInteger(Number(b)) ? Number(b) : b; }
    case 'i4': return v.getInt32(0, little);
    case 'u4': return v.getUint32(0, little);
    case 'i2': return v.getInt16(0, little);
    case 'u2': return v.getUint16(0, little);
    case 'i1': return v.getInt8(0);
    case 'u1': return v.getUint8(0);
    default: return v.getUint8(0) !== 0; // b1
  }
}

function orderedDict(args: unknown[]): Map<unknown, unknown> {
  const m = new Map<unknown, unknown>();
  const items = args[0];
  if (items === undefined) return m;
  if (items instanceof Map) return new Map(items);
  if (!Array.isArray(items)) throw new Error('expects a list of pairs');
  for (const pair of items) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new Error('expects a list of pairs');
    m.set(pair[0], pair[1]);
  }
  return m;
}

// Python 3 bytes in a protocol-2 pickle: _codecs.encode(<latin-1 text>, 'latin1').
function codecsEncode(args: unknown[]): Uint8Array {
  const [text, enc] = args;
  if (typeof text !== 'string') throw new Error('expects a string');
  if (enc !== 'latin1' && enc !== 'latin-1' && enc !== undefined) throw new Error(`encoding '${String(enc)}' is not supported`);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 255) throw new Error('text is not latin-1');
    out[i] = c;
  }
  return out;
}

const fixed: Record<string, (args: unknown[]) => unknown> = {
  'collections.OrderedDict': orderedDict,
  'torch._utils._rebuild_parameter': (a) => a[0],
  'torch._utils._rebuild_parameter_with_state': (a) => a[0],
  'torch.Size': (a) => Object.freeze(toIntList(a[0] ?? [], 'torch.Size')),
  'torch.device': (a) => a.map(String).join(':'),
  'builtins.set': (a) => new Set(a[0] as Iterable<unknown> ?? []),
  'builtins.frozenset': (a) => new Set(a[0] as Iterable<unknown> ?? []),
  '__builtin__.set': (a) => new Set(a[0] as Iterable<unknown> ?? []),
  '_codecs.encode': codecsEncode,
  'numpy.dtype': (a) => new NumpyDType(String(a[0])),
  'numpy.core.multiarray.scalar': numpyScalar,
  'numpy._core.multiarray.scalar': numpyScalar,
};

export type RebuildTensor = (storage: unknown, offset: unknown, size: unknown, stride: unknown) => HostTensor;

/**
 * The `findGlobal` of a `.pth` unpickler. `rebuild` builds tensors (the legacy reader defers it
 * until the storages, which follow the pickle in those files, are read).
 */
export function torchGlobals(rebuild: RebuildTensor = rebuildTensor): (module: string, name: string) => PyCallable | undefined {
  return (module, name) => {
    if (module === 'torch' && Object.hasOwn(STORAGE_CLASS_DTYPE, name)) {
      return new StorageType(name, STORAGE_CLASS_DTYPE[name]!);
    }
    const qualname = `${module}.${name}`;
    if (qualname === 'torch._utils._rebuild_tensor_v2' || qualname === 'torch._utils._rebuild_tensor') {
      return new PyCallable(qualname, (a) => rebuild(a[0], a[1], a[2], a[3]));
    }
    const fn = Object.hasOwn(fixed, qualname) ? fixed[qualname] : undefined;
    return fn ? new PyCallable(qualname, fn) : undefined;
  };
}

export const findTorchGlobal = torchGlobals();

/** Why a global was refused, in words a user can act on. */
export function refusedTorchGlobalHint(torchScript: boolean): (module: string, name: string) => string {
  return (module, name) => {
    if (torchScript) return 'this is a TorchScript archive (torch.jit.save); save model.state_dict() with torch.save instead';
    if (module === 'torch' && name.endsWith('Storage')) {
      return `tensors of element type ${name.slice(0, -'Storage'.length)} are not supported; convert them (e.g. .float()) before saving`;
    }
    if (module === 'torch._utils' && name.startsWith('_rebuild_')) {
      return 'only dense CPU-layout tensors are supported (no sparse, quantized or nested tensors)';
    }
    return 'if this file pickles a whole model or custom objects, save model.state_dict() with torch.save instead';
  };
}
