// TensorFlow.js layers-model weights: `model.json` (topology + weightsManifest) and its `.bin` shards.
// Each manifest group's shards are one byte stream holding the group's weights back to back.
import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { numel, type HostTensor } from '../dtype.ts';
import { halfArrayToFloat32 } from './half.ts';

export interface TfjsLayersModel {
  /** `modelTopology` of model.json, as parsed (Keras layer graph). */
  topology: unknown;
  /** Weights by manifest name (e.g. `Conv1/kernel`), in manifest order; float32 or int32. */
  weights: Map<string, HostTensor>;
}

interface Quantization { dtype: string; scale?: number; min?: number; original_dtype?: string }
interface ManifestWeight { name: string; shape: number[]; dtype: string; quantization?: Quantization }
interface ManifestGroup { paths: string[]; weights: ManifestWeight[] }

const STORED_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

function parseManifest(json: unknown, file: string): { topology: unknown; groups: ManifestGroup[] } {
  const bad = (msg: string): never => { throw new Error(`${file}: ${msg}`); };
  if (typeof json !== 'object' || json === null) bad('not a JSON object');
  const o = json as Record<string, unknown>;
  if (!Array.isArray(o.weightsManifest)) bad('no weightsManifest array (not a TensorFlow.js layers model?)');
  const groups = (o.weightsManifest as unknown[]).map((g, gi) => {
    const group = g as Partial<ManifestGroup>;
    if (!Array.isArray(group.paths) || !group.paths.every((p) => typeof p === 'string')) bad(`weightsManifest[${gi}].paths is not a list of file names`);
    // Shards live beside model.json: no absolute path, no "..", nothing outside the model's folder is opened.
    for (const p of group.paths!) {
      if (p === '' || isAbsolute(p) || p.split(/[\\/]/).some((part) => part === '..')) {
        bad(`weightsManifest[${gi}].paths: "${p}" is not a file name inside the model's folder (refused: absolute or "..")`);
      }
    }
    if (!Array.isArray(group.weights)) bad(`weightsManifest[${gi}].weights is not a list`);
    for (const [wi, w] of group.weights!.entries()) {
      if (typeof w?.name !== 'string' || !Array.isArray(w.shape) || !w.shape.every((s) => Number.isInteger(s) && s >= 0)) {
        bad(`weightsManifest[${gi}].weights[${wi}] needs a name and a shape of non-negative integers`);
      }
      if (w.dtype !== 'float32' && w.dtype !== 'int32' && w.dtype !== 'bool') {
        bad(`weight ${w.name} has dtype '${String(w.dtype)}'; supported: float32, int32, bool`);
      }
      const q = w.quantization;
      if (q && q.dtype !== 'uint8' && q.dtype !== 'uint16' && q.dtype !== 'float16') {
        bad(`weight ${w.name} has quantization dtype '${String(q.dtype)}'; supported: uint8, uint16, float16`);
      }
      if (q && q.dtype !== 'float16' && (typeof q.scale !== 'number' || typeof q.min !== 'number')) {
        bad(`weight ${w.name}: ${q.dtype} quantization needs numeric scale and min`);
      }
    }
    return group as ManifestGroup;
  });
  return { topology: o.modelTopology ?? null, groups };
}

async function readGroup(dir: string, group: ManifestGroup, expected: number, jsonFile: string): Promise<Uint8Array> {
  const files = group.paths.map((p) => join(dir, p));
  const sizes: number[] = [];
  for (const f of files) {
    try {
      sizes.push((await stat(f)).size);
    } catch {
      throw new Error(`${f}: weight shard listed in ${jsonFile} is missing`);
    }
  }
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== expected) {
    const list = files.map((f, i) => `${f} (${sizes[i]} bytes)`).join(', ');
    throw new Error(`${list}: shards hold ${total} bytes but ${jsonFile} describes ${expected} bytes of weights`);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const f of files) {
    const b = await readFile(f);
    out.set(b, off);
    off += b.length;
  }
  return out;
}

function decodeWeight(w: ManifestWeight, bytes: Uint8Array): HostTensor {
  const n = numel(w.shape);
  const own = bytes.slice(); // aligned copy
  const q = w.quantization;
  const asInt = w.dtype === 'int32' || q?.original_dtype === 'int32';
  if (!q) {
    if (w.dtype === 'float32') return { dtype: 'float32', shape: w.shape, data: new Float32Array(own.buffer, 0, n) };
    if (w.dtype === 'int32') return { dtype: 'int32', shape: w.shape, data: new Int32Array(own.buffer, 0, n) };
    return { dtype: 'bool', shape: w.shape, data: own };
  }
  let values: Float32Array;
  if (q.dtype === 'float16') {
    values = halfArrayToFloat32(new Uint16Array(own.buffer, 0, n));
  } else {
    const src = q.dtype === 'uint8' ? own : new Uint16Array(own.buffer, 0, n);
    values = new Float32Array(n);
    for (let i = 0; i < n; i++) values[i] = src[i]! * q.scale! + q.min!;
  }
  if (asInt) return { dtype: 'int32', shape: w.shape, data: Int32Array.from(values, Math.round) };
  return { dtype: 'float32', shape: w.shape, data: values };
}

/**
 * Reads a TensorFlow.js layers model: `dir` is the folder holding model.json (or the model.json
 * path itself). Quantized weights (uint8/uint16 with scale/min, float16) are expanded to float32
 * (int32 when the original dtype was int32).
 */
export async function loadTfjsLayersModel(dir: string): Promise<TfjsLayersModel> {
  const jsonFile = dir.endsWith('.json') ? dir : join(dir, 'model.json');
  const base = dirname(jsonFile);
  let text: string;
  try {
    text = await readFile(jsonFile, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`${jsonFile}: ${code === 'ENOENT' ? 'file not found' : `cannot read (${(err as Error).message})`}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${jsonFile}: invalid JSON (${(err as Error).message})`);
  }
  const { topology, groups } = parseManifest(json, jsonFile);
  const weights = new Map<string, HostTensor>();
  for (const group of groups) {
    const sizes = group.weights.map((w) => numel(w.shape) * STORED_BYTES[w.quantization?.dtype ?? w.dtype]!);
    const bytes = await readGroup(base, group, sizes.reduce((a, b) => a + b, 0), jsonFile);
    let off = 0;
    group.weights.forEach((w, i) => {
      if (weights.has(w.name)) throw new Error(`${jsonFile}: weight ${w.name} appears twice in the manifest`);
      weights.set(w.name, decodeWeight(w, bytes.subarray(off, off + sizes[i]!)));
      off += sizes[i]!;
    });
  }
  return { topology, weights };
}
