// NumPy .npy v1.0 files (little-endian, C order): descriptor matrices (float32, float64 read as
// float32) and neighbour indices (int32) that numpy and faiss read and write. No engine here, so a
// process that only reads an index (the service's main thread) never loads libtorch.
import { open, readFile } from 'node:fs/promises';
import { withAtomicFile } from '../util/atomic.ts';

const NPY_MAGIC = '\x93NUMPY';

/** The .npy v1.0 header for a little-endian float32 C-order array of `shape`. */
export function npyHeader(shape: readonly number[]): Buffer {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  // Magic (6) + version (2) + length (2) + dict + '\n' is padded with spaces to a multiple of 64.
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  dict = dict.padEnd(total - 10 - 1, ' ') + '\n';
  if (dict.length > 65535) throw new Error('npy: header too long for format 1.0');
  const head = Buffer.alloc(10);
  head.write(NPY_MAGIC, 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(dict.length, 8);
  return Buffer.concat([head, Buffer.from(dict, 'latin1')]);
}

/** Writes float32 values of `shape` as a .npy file (numpy.load reads it). */
export async function writeNpy(path: string, data: Float32Array, shape: readonly number[]): Promise<void> {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`npy: ${data.length} values do not fill shape [${shape}] for ${path}`);
  await writeNpyChunks(path, shape, [data]);
}

/** Writes a .npy file from consecutive float32 chunks (C order), so a large matrix need not be copied whole. */
export async function writeNpyChunks(path: string, shape: readonly number[], chunks: Iterable<Float32Array>): Promise<void> {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('npy: big-endian hosts are not supported');
  const count = shape.reduce((a, b) => a * b, 1);
  // Atomic (temp file + rename): a full disk or a kill never leaves a short .npy behind.
  await withAtomicFile(path, async (fh) => {
    let written = 0;
    await fh.write(npyHeader(shape));
    for (const chunk of chunks) {
      written += chunk.length;
      if (written > count) break;
      const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      for (let o = 0; o < bytes.length; o += 1 << 26) await fh.write(bytes.subarray(o, Math.min(bytes.length, o + (1 << 26))));
    }
    if (written !== count) throw new Error(`npy: ${written} values for shape [${shape}] (${count} values)`);
  });
}

/** Header fields and raw data bytes of a C-order .npy file. */
async function readNpyRaw(path: string): Promise<{ shape: number[]; count: number; descr: string; raw: Buffer }> {
  const buf = await readFile(path);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== NPY_MAGIC) throw new Error(`npy: ${path} is not a .npy file (bad magic)`);
  const major = buf[6];
  const headerLength = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLength);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw new Error(`npy: ${path} has an unreadable header: ${header.trim()}`);
  if (fortran === 'True') throw new Error(`npy: ${path} is in Fortran order; save it C-ordered (numpy.ascontiguousarray)`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const raw = buf.subarray(start + headerLength);
  const size = { '<f4': 4, '<f8': 8, '<i4': 4 }[descr];
  if (size !== undefined && raw.length !== count * size) throw new Error(`npy: ${path} holds ${raw.length} data bytes, shape [${shape}] of ${descr} needs ${count * size}`);
  return { shape, count, descr, raw };
}

/** The shape and dtype of a .npy file, read from its header only (a large matrix is not loaded). */
export async function readNpyHeader(path: string): Promise<{ shape: number[]; descr: string; dataBytes: number }> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(Math.min(size, 65536 + 12));
    await fh.read(head, 0, head.length, 0);
    if (head.length < 10 || head.toString('latin1', 0, 6) !== NPY_MAGIC) throw new Error(`npy: ${path} is not a .npy file (bad magic)`);
    const headerLength = head[6] === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
    const start = head[6] === 1 ? 10 : 12;
    const header = head.toString('latin1', start, start + headerLength);
    const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
    const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
    if (descr === undefined || shapeText === undefined) throw new Error(`npy: ${path} has an unreadable header: ${header.trim()}`);
    const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
    return { shape, descr, dataBytes: size - start - headerLength };
  } finally {
    await fh.close();
  }
}

/** Reads a little-endian float32 or float64 C-order .npy file as float32. */
export async function readNpy(path: string): Promise<{ shape: number[]; data: Float32Array }> {
  const { shape, count, descr, raw } = await readNpyRaw(path);
  if (descr === '<f4') {
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(raw);
    return { shape, data };
  }
  if (descr === '<f8') {
    const wide = new Float64Array(count);
    new Uint8Array(wide.buffer).set(raw);
    return { shape, data: Float32Array.from(wide) };
  }
  throw new Error(`npy: ${path} has dtype ${descr}; only little-endian float32 (<f4) or float64 (<f8) are read`);
}

/** Reads a little-endian int32 C-order .npy file (e.g. neighbour indices saved by numpy). */
export async function readNpyInt32(path: string): Promise<{ shape: number[]; data: Int32Array }> {
  const { shape, count, descr, raw } = await readNpyRaw(path);
  if (descr !== '<i4') throw new Error(`npy: ${path} has dtype ${descr}; expected little-endian int32 (<i4)`);
  const data = new Int32Array(count);
  new Uint8Array(data.buffer).set(raw);
  return { shape, data };
}
