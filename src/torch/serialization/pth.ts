// Reading PyTorch `.pth` files (the zip format of torch.save >= 1.6, and the legacy format) with a
// restricted unpickler: only tensors and plain containers come out, no code runs.
import { readFile } from 'node:fs/promises';
import { isLegacyPth, loadLegacyPthBytes } from './legacy.ts';
import { unpickle, type PickleValue } from './pickle.ts';
import { findTorchGlobal, makeStorage, refusedTorchGlobalHint, StorageType, type Storage } from './torch-globals.ts';
import { looksLikeZip, ZipReader } from './zip.ts';

export interface LoadPthOptions {
  /** Return every Python int as bigint (exact int/float round trips through `savePth`). */
  intsAsBigInt?: boolean;
}

/** Reads a whole file; a missing or unreadable file gives an error naming it. */
async function readBytes(path: string): Promise<Uint8Array> {
  try {
    const b = await readFile(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new Error(`${path}: file not found`);
    if (e.code === 'EISDIR') throw new Error(`${path}: is a directory, expected a .pth file`);
    throw new Error(`${path}: cannot read (${e.message})`);
  }
}

function notZipMessage(bytes: Uint8Array, label: string): string {
  const tar = bytes.length > 262 && new TextDecoder('latin1').decode(bytes.subarray(257, 262)) === 'ustar';
  if (tar) return `${label}: uses the tar-based serialization of very old torch versions; re-save it with torch >= 1.6: torch.save(torch.load(old_path), new_path)`;
  const isPickle = bytes.length > 1 && bytes[0] === 0x80 && bytes[1]! <= 5;
  if (isPickle) return `${label}: is a bare pickle, not a torch.save file; re-save it with torch.save (torch >= 1.6)`;
  return `${label}: is not a PyTorch checkpoint (neither a torch.save zip archive nor the legacy torch < 1.6 format)`;
}

/** Parses a `.pth` archive held in memory. `label` (usually the path) names the file in errors. */
export function loadPthBytes(bytes: Uint8Array, label: string, opts: LoadPthOptions = {}): PickleValue {
  if (!looksLikeZip(bytes)) {
    if (isLegacyPth(bytes)) return loadLegacyPthBytes(bytes, label, opts.intsAsBigInt);
    throw new Error(notZipMessage(bytes, label));
  }
  const zip = new ZipReader(bytes, label);
  const names = [...zip.entries.keys()];
  const pkl = names.filter((n) => n === 'data.pkl' || /^[^/]+\/data\.pkl$/.test(n));
  if (pkl.length !== 1) {
    const shown = names.slice(0, 20).join(', ') + (names.length > 20 ? `, ... (${names.length} entries)` : '');
    throw new Error(`${label}: expected exactly one <root>/data.pkl in the archive, found ${pkl.length} (entries: ${shown})`);
  }
  const root = pkl[0]!.slice(0, -'data.pkl'.length);
  const order = zip.entries.has(`${root}byteorder`) ? new TextDecoder().decode(zip.read(`${root}byteorder`)).trim() : 'little';
  if (order !== 'little') throw new Error(`${label}: storages are ${order}-endian; only little-endian files are supported`);
  const torchScript = zip.entries.has(`${root}constants.pkl`) || names.some((n) => n.startsWith(`${root}code/`));

  const storages = new Map<string, Storage>();
  const persistentLoad = (pid: unknown): Storage => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
      throw new Error(`${label}: unsupported persistent id ${JSON.stringify(String(pid))}`);
    }
    const [, type, key, , count] = pid as unknown[];
    if (!(type instanceof StorageType)) throw new Error(`${label}: persistent id names no storage class`);
    if (typeof key !== 'string') throw new Error(`${label}: persistent id with a non-string key`);
    const cached = storages.get(key);
    if (cached) return cached;
    const record = `${root}data/${key}`;
    if (!zip.entries.has(record)) throw new Error(`${label}: storage record ${record} is missing from the archive`);
    let storage: Storage;
    try {
      storage = makeStorage(key, type.storageDtype, zip.read(record), Number(count));
    } catch (err) {
      throw new Error(`${label}: ${(err as Error).message}`);
    }
    storages.set(key, storage);
    return storage;
  };
  return unpickle(zip.read(pkl[0]!), {
    label: `${label} (${pkl[0]})`,
    findGlobal: findTorchGlobal,
    persistentLoad,
    intsAsBigInt: opts.intsAsBigInt,
    refusedGlobalHint: refusedTorchGlobalHint(torchScript),
  }) as PickleValue;
}

/**
 * Loads a `.pth` file: the zip format of torch >= 1.6, or the legacy format of older torch.save
 * (published weights such as older torchvision files). Tensors → HostTensor (contiguous, row-major), dict/OrderedDict → Map,
 * list → array, tuple → frozen array, int → number (bigint beyond 2^53), float → number.
 * Only whitelisted globals are accepted; anything else is refused with an error naming it.
 */
export async function loadPth(path: string, opts: LoadPthOptions = {}): Promise<PickleValue> {
  return loadPthBytes(await readBytes(path), path, opts);
}
