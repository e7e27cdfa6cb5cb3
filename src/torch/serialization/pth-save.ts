// Writing `.pth` files in the layout torch.save uses: a zip whose `archive/data.pkl` is a protocol-2
// pickle (tensors via torch._utils._rebuild_tensor_v2) and one `archive/data/<key>` record per storage.
import { BYTES_PER_ELEMENT, numel, type AnyTypedArray, type DType, type HostTensor } from '../dtype.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { isHostTensor } from './host-tensor.ts';
import { Pickler } from './pickler.ts';
import { DTYPE_STORAGE_CLASS } from './torch-globals.ts';
import { ZipWriter } from './zip.ts';

/**
 * What `savePth` writes. Python types: Map or plain object → dict (→ `collections.OrderedDict` when
 * every value is a tensor, i.e. a state dict); array → list; frozen array (`Object.freeze([...])`)
 * → tuple; **bigint → int; number → float**; string → str; boolean → bool; null → None;
 * HostTensor → torch.Tensor (float16 stays half, bool stays bool).
 */
export type SaveValue =
  | null | boolean | number | bigint | string | HostTensor
  | readonly SaveValue[]
  | Map<string | number | bigint | boolean, SaveValue>
  | { readonly [key: string]: SaveValue };

/** A tuple for `savePth` (Python tuple, e.g. Adam's betas). */
export function tuple<T extends SaveValue>(...items: T[]): readonly T[] {
  return Object.freeze(items);
}

function tensorBytes(t: HostTensor, where: string): Uint8Array {
  const n = numel(t.shape);
  if (!t.shape.every((s) => Number.isInteger(s) && s >= 0)) throw new Error(`${where}: bad shape [${t.shape}]`);
  const data: AnyTypedArray = t.data;
  if (data.length !== n) throw new Error(`${where}: ${t.dtype} tensor of shape [${t.shape}] has ${data.length} values, expected ${n}`);
  if (data.BYTES_PER_ELEMENT !== BYTES_PER_ELEMENT[t.dtype]) {
    throw new Error(`${where}: dtype ${t.dtype} but data is a ${data.constructor.name}`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Encodes a value as `.pth` archive chunks (for `writeFileAtomic` or a stream). */
export function encodePth(value: SaveValue, label = 'value'): Uint8Array[] {
  const p = new Pickler();
  const storageKeys = new Map<HostTensor, string>();
  const records: Array<[string, Uint8Array]> = [];
  const open = new Set<object>();

  const writeKey = (k: unknown, where: string): void => {
    if (typeof k === 'string') p.str(k);
    else if (typeof k === 'bigint') p.int(k);
    else if (typeof k === 'number') p.float(k);
    else if (typeof k === 'boolean') p.bool(k);
    else throw new Error(`${where}: dict key of type ${typeof k} cannot be saved`);
  };

  const writeTensor = (t: HostTensor, where: string): void => {
    let key = storageKeys.get(t);
    if (key === undefined) {
      key = String(storageKeys.size);
      storageKeys.set(t, key);
      records.push([key, tensorBytes(t, where)]);
    }
    const dtype: DType = t.dtype;
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.mark();
    {
      p.mark(); // persistent id: ('storage', torch.<X>Storage, key, 'cpu', numel)
      p.str('storage');
      p.global('torch', DTYPE_STORAGE_CLASS[dtype]);
      p.str(key);
      p.str('cpu');
      p.int(BigInt(numel(t.shape)));
      p.tuple();
      p.binpersid();
    }
    p.int(0n); // storage offset
    p.mark();
    for (const s of t.shape) p.int(BigInt(s));
    p.tuple();
    p.mark();
    let stride = 1;
    const strides: number[] = [];
    for (let d = t.shape.length - 1; d >= 0; d--) { strides[d] = stride; stride *= t.shape[d]!; }
    for (const s of strides) p.int(BigInt(s));
    p.tuple();
    p.bool(false); // requires_grad
    p.global('collections', 'OrderedDict'); // backward hooks (always empty)
    p.emptyTuple();
    p.reduce();
    p.tuple();
    p.reduce();
  };

  const writeDict = (entries: Array<[unknown, unknown]>, where: string): void => {
    const stateDict = entries.length > 0 && entries.every(([, v]) => isHostTensor(v));
    if (stateDict) {
      p.global('collections', 'OrderedDict');
      p.emptyTuple();
      p.reduce();
    } else {
      p.emptyDict();
    }
    if (entries.length === 0) return;
    p.mark();
    for (const [k, v] of entries) {
      writeKey(k, where);
      write(v, `${where}.${String(k)}`);
    }
    p.setitems();
  };

  const write = (v: unknown, where: string): void => {
    if (v === null) return p.none();
    switch (typeof v) {
      case 'boolean': return p.bool(v);
      case 'bigint': return p.int(v);
      case 'number': return p.float(v);
      case 'string': return p.str(v);
      case 'object': break;
      default: throw new Error(`${where}: values of type ${typeof v} cannot be saved`);
    }
    if (isHostTensor(v)) return writeTensor(v, where);
    if (open.has(v)) throw new Error(`${where}: cyclic structure cannot be saved`);
    open.add(v);
    if (Array.isArray(v)) {
      if (Object.isFrozen(v)) {
        p.mark();
        v.forEach((x, i) => write(x, `${where}[${i}]`));
        p.tuple();
      } else {
        p.emptyList();
        if (v.length > 0) {
          p.mark();
          v.forEach((x, i) => write(x, `${where}[${i}]`));
          p.appends();
        }
      }
    } else if (v instanceof Map) {
      writeDict([...v.entries()], where);
    } else if (ArrayBuffer.isView(v)) {
      throw new Error(`${where}: a bare typed array cannot be saved; wrap it as a tensor {dtype, shape, data}`);
    } else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
      writeDict(Object.entries(v as object), where);
    } else {
      throw new Error(`${where}: objects of class ${(v as object).constructor?.name ?? '?'} cannot be saved`);
    }
    open.delete(v);
  };

  p.proto();
  write(value, label);
  p.stop();

  // Same layout as torch.save: data.pkl first (readers take the root folder from entry 0).
  const zip = new ZipWriter(label);
  zip.add('archive/data.pkl', p.bytes());
  zip.add('archive/byteorder', new TextEncoder().encode('little'));
  for (const [key, bytes] of records) zip.add(`archive/data/${key}`, bytes);
  zip.add('archive/version', new TextEncoder().encode('3\n'));
  return zip.finish();
}

/**
 * Writes `value` as a `.pth` file that `torch.load` reads, atomically (temp file, fsync, rename).
 * See `SaveValue` for the type mapping (bigint = int, number = float).
 */
export async function savePth(path: string, value: SaveValue): Promise<void> {
  await writeFileAtomic(path, encodePth(value, path));
}
