// The pre-1.6 `torch.save` format (still used by many published weights, e.g. older torchvision
// files): five pickles back to back — magic number, protocol version, system info, the object
// (persistent ids name storages), the list of storage keys — then each storage's data as an int64
// element count followed by its raw little-endian bytes, in that list's order.
import type { HostTensor } from '../dtype.ts';
import { BYTES_PER_ELEMENT } from '../dtype.ts';
import { unpickleAt, type PickleValue, type UnpickleOptions } from './pickle.ts';
import { makeStorage, rebuildTensor, refusedTorchGlobalHint, StorageType, torchGlobals, type Storage } from './torch-globals.ts';

const MAGIC = 0x1950a86a20f9469cfc6cn;
const PROTOCOL_VERSION = 1001;

/** True when the bytes start with the pickled legacy magic number (any pickle protocol). */
export function isLegacyPth(bytes: Uint8Array): boolean {
  if (bytes.length < 2 || bytes[0] !== 0x80) return false;
  try {
    return unpickleAt(bytes.subarray(0, 64), 0, { label: '', findGlobal: () => undefined }).value === MAGIC;
  } catch {
    return false;
  }
}

interface PendingStorage {
  storage: Storage; // bytes filled once the data section is read
  type: StorageType;
  numel: number;
  views: Array<{ storage: Storage; offset: number; numel: number }>;
}

export function loadLegacyPthBytes(bytes: Uint8Array, label: string, intsAsBigInt?: boolean): PickleValue {
  const fail = (msg: string): never => { throw new Error(`${label}: ${msg} (legacy torch < 1.6 format)`); };
  const roots = new Map<string, PendingStorage>();
  const fixups: Array<() => void> = [];

  const persistentLoad = (pid: unknown): Storage => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 6) {
      return fail(`unsupported persistent id ${String(Array.isArray(pid) ? pid[0] : pid)}; only tensors can be loaded`);
    }
    const [, type, rootKey, , count, view] = pid as unknown[];
    if (!(type instanceof StorageType)) return fail('persistent id names no storage class');
    const key = String(rootKey);
    let root = roots.get(key);
    if (!root) {
      const dtype = type.storageDtype === 'bfloat16' ? 'float32' : type.storageDtype;
      root = {
        storage: { key, dtype, bytes: new Uint8Array(0), numel: Number(count) },
        type, numel: Number(count), views: [],
      };
      roots.set(key, root);
    }
    if (view === null || view === undefined) return root.storage;
    if (!Array.isArray(view) || view.length !== 3) return fail(`bad storage view of ${key}`);
    const [viewKey, offset, size] = view.map(Number) as [number, number, number];
    const storage: Storage = { key: `${key}[view ${viewKey}]`, dtype: root.storage.dtype, bytes: new Uint8Array(0), numel: size };
    root.views.push({ storage, offset, numel: size });
    return storage;
  };

  // Tensors are built after the data section is read: hand out the object now, fill it in later.
  const deferredRebuild = (storage: unknown, offset: unknown, size: unknown, stride: unknown): HostTensor => {
    const t: HostTensor = { dtype: 'float32', shape: [], data: new Float32Array(0) };
    fixups.push(() => Object.assign(t, rebuildTensor(storage, offset, size, stride)));
    return t;
  };
  const opts: UnpickleOptions = {
    label,
    findGlobal: torchGlobals(deferredRebuild),
    persistentLoad,
    intsAsBigInt,
    refusedGlobalHint: refusedTorchGlobalHint(false),
  };
  const plain: UnpickleOptions = { label, findGlobal: () => undefined };

  let pos = 0;
  const next = (o: UnpickleOptions): unknown => {
    const r = unpickleAt(bytes, pos, o);
    pos = r.end;
    return r.value;
  };
  if (next(plain) !== MAGIC) fail('bad magic number');
  if (next(plain) !== PROTOCOL_VERSION) fail('unsupported protocol version');
  const sysInfo = next(plain);
  if (sysInfo instanceof Map && sysInfo.get('little_endian') === false) fail('big-endian files are not supported');
  const value = next(opts) as PickleValue;
  const keys = next(plain);
  if (!Array.isArray(keys)) return fail('storage key list missing');

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const k of keys) {
    const root = roots.get(String(k));
    if (!root) return fail(`data for unknown storage ${String(k)}`);
    if (pos + 8 > bytes.length) fail(`file truncated before storage ${String(k)}`);
    const count = Number(view.getBigInt64(pos, true));
    pos += 8;
    if (count !== root.numel) fail(`storage ${String(k)} holds ${count} elements, expected ${root.numel}`);
    const elsize = root.type.storageDtype === 'bfloat16' ? 2 : BYTES_PER_ELEMENT[root.type.storageDtype];
    if (pos + count * elsize > bytes.length) fail(`file truncated inside storage ${String(k)}`);
    let made: Storage;
    try {
      made = makeStorage(root.storage.key, root.type.storageDtype, bytes.subarray(pos, pos + count * elsize), count);
    } catch (err) {
      return fail((err as Error).message);
    }
    pos += count * elsize;
    root.storage.bytes = made.bytes;
    const outSize = BYTES_PER_ELEMENT[made.dtype];
    for (const v of root.views) {
      if (v.offset + v.numel > count) fail(`storage view past the end of ${String(k)}`);
      v.storage.bytes = made.bytes.subarray(v.offset * outSize, (v.offset + v.numel) * outSize);
    }
  }
  for (const [k, r] of roots) if (r.storage.bytes.length === 0 && r.numel > 0) fail(`no data for storage ${k}`);
  try {
    for (const f of fixups) f();
  } catch (err) {
    fail((err as Error).message);
  }
  return value;
}
