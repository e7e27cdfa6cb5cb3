// Creating tensors, and engine-wide settings (seed, threads, grad mode, autocast, device).
import { native, call, OP } from './native.ts';
import { Tensor, wrap } from './tensor.ts';
import { SCALAR_TYPE, type DType, type AnyTypedArray, type HostTensor, numel } from './dtype.ts';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
export interface Options {
  dtype?: DType;
  device?: Device;
}

function code(o?: Options): number {
  return SCALAR_TYPE[o?.dtype ?? 'float32'];
}
function dev(o?: Options): string | null {
  return o?.device ?? null;
}

type Nested = number | boolean | Nested[];

function flattenNested(v: Nested, shape: number[], depth: number, out: number[]): void {
  if (Array.isArray(v)) {
    if (shape.length <= depth) shape.push(v.length);
    else if (shape[depth] !== v.length) throw new Error(`tensor(): ragged nested array at depth ${depth}`);
    for (const x of v) flattenNested(x, shape, depth + 1, out);
  } else {
    if (depth !== shape.length) throw new Error('tensor(): ragged nested array');
    out.push(Number(v));
  }
}

function dtypeOfArray(a: AnyTypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Int16Array) return 'int16';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Uint16Array) return 'float16';
  return 'uint8';
}

function arrayOf(dtype: DType, values: ArrayLike<number>): AnyTypedArray {
  switch (dtype) {
    case 'float32': return Float32Array.from(values);
    case 'float64': return Float64Array.from(values);
    case 'int64': return BigInt64Array.from(Array.from(values, (x) => BigInt(Math.trunc(x))));
    case 'int32': return Int32Array.from(values);
    case 'int16': return Int16Array.from(values);
    case 'int8': return Int8Array.from(values);
    case 'uint8': case 'bool': return Uint8Array.from(values, (x) => (dtype === 'bool' ? (x ? 1 : 0) : x));
    case 'float16': case 'bfloat16': return Float32Array.from(values); // cast by the engine (tensor())
  }
}

const isHalf = (d: DType): boolean => d === 'float16' || d === 'bfloat16';

/**
 * A tensor from values: a typed array (copied; shape defaults to 1-D, dtype from the array type unless
 * given) or nested number arrays (dtype float32 unless given). A Uint16Array holds raw float16 bits, or
 * bfloat16 bits with { dtype: 'bfloat16' }; numbers given for either 16-bit float are rounded by the engine.
 */
export function tensor(values: AnyTypedArray | Nested, shape?: number[], options: Options = {}): Tensor {
  let data: AnyTypedArray;
  let dims: number[];
  let dtype: DType;
  if (ArrayBuffer.isView(values)) {
    const natural = dtypeOfArray(values);
    dtype = options.dtype ?? natural;
    const same = dtype === natural || (dtype === 'bool' && natural === 'uint8') || (isHalf(dtype) && natural === 'float16');
    data = same ? values : arrayOf(dtype, Array.from(values as ArrayLike<number>, Number));
    dims = shape ?? [values.length];
  } else {
    const flat: number[] = [];
    const found: number[] = [];
    flattenNested(values, found, 0, flat);
    dtype = options.dtype ?? 'float32';
    data = arrayOf(dtype, flat);
    dims = shape ?? found;
  }
  if (numel(dims) !== data.length) {
    throw new Error(`tensor(): ${data.length} values do not fill shape [${dims}]`);
  }
  const rounded = isHalf(dtype) && !(data instanceof Uint16Array); // numbers for a 16-bit float: float32, then cast
  let t = wrap(native.fromArray(data, dims, SCALAR_TYPE[rounded ? 'float32' : dtype]));
  if (rounded) {
    const cast = t.to(dtype);
    t.dispose();
    t = cast;
  }
  if (options.device && options.device !== 'cpu') {
    const moved = t.to(options.device);
    t.dispose();
    return moved;
  }
  return t;
}

export function fromHost(h: HostTensor): Tensor {
  return wrap(native.fromArray(h.data, h.shape, SCALAR_TYPE[h.dtype]));
}

export const zeros = (shape: number[], o?: Options): Tensor => wrap(call(OP.zeros, shape, code(o), dev(o)));
export const ones = (shape: number[], o?: Options): Tensor => wrap(call(OP.ones, shape, code(o), dev(o)));
export const empty = (shape: number[], o?: Options): Tensor => wrap(call(OP.empty, shape, code(o), dev(o)));
export const full = (shape: number[], value: number, o?: Options): Tensor =>
  wrap(call(OP.full, shape, value, code(o), dev(o)));
export const scalar = (value: number, o?: Options): Tensor => full([], value, o);
export const arange = (start: number, end: number, step = 1, o: Options = { dtype: 'int64' }): Tensor =>
  wrap(call(OP.arange, start, end, step, code(o), dev(o)));
export const linspace = (start: number, end: number, steps: number, o?: Options): Tensor =>
  wrap(call(OP.linspace, start, end, steps, code(o), dev(o)));
export const eye = (n: number, o?: Options): Tensor => wrap(call(OP.eye, n, code(o), dev(o)));
/** Uniform [0, 1). */
export const rand = (shape: number[], o?: Options): Tensor => wrap(call(OP.rand, shape, code(o), dev(o)));
/** Standard normal. */
export const randn = (shape: number[], o?: Options): Tensor => wrap(call(OP.randn, shape, code(o), dev(o)));
/** Integers in [low, high). */
export const randint = (low: number, high: number, shape: number[], o: Options = { dtype: 'int64' }): Tensor =>
  wrap(call(OP.randint, low, high, shape, code(o), dev(o)));
export const randperm = (n: number, o: Options = { dtype: 'int64' }): Tensor => wrap(call(OP.randperm, n, code(o), dev(o)));
/** Samples n indices per row of non-negative weights. */
export const multinomial = (weights: Tensor, n: number, replacement = false): Tensor =>
  wrap(call(OP.multinomial, weights.h, n, replacement));

export const cat = (ts: Tensor[], dim = 0): Tensor => wrap(call(OP.cat, ts.map((t) => t.h), dim));
export const stack = (ts: Tensor[], dim = 0): Tensor => wrap(call(OP.stack, ts.map((t) => t.h), dim));
export const where = (cond: Tensor, a: Tensor, b: Tensor): Tensor => wrap(call(OP.where, cond.h, a.h, b.h));
export const einsum = (equation: string, ...ts: Tensor[]): Tensor => wrap(call(OP.einsum, equation, ts.map((t) => t.h)));

// ---- engine settings ---------------------------------------------------------------------------

export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
}
export function cudaAvailable(): boolean {
  return native.cudaAvailable();
}
/** CUDA devices the linked libtorch sees (0 without CUDA). */
export function cudaDeviceCount(): number {
  return native.cudaDeviceCount();
}
/**
 * Records every op fn runs with libtorch's profiler (as torch.autograd.profiler.profile) and writes
 * them to `path` as a Chrome trace (chrome://tracing, or parse its events: name, ts, dur in µs).
 */
export function profile<T>(path: string, fn: () => T): T {
  native.profileStart(path);
  try {
    return fn();
  } finally {
    native.profileStop();
  }
}
/** Waits for the work queued on the CUDA devices (like torch.cuda.synchronize(); a no-op without CUDA): GPU timings need it. */
export function synchronize(): void {
  native.cudaSynchronize();
}
/** The device to compute on: CUDA when the linked libtorch has it (and VGL_DEVICE does not say cpu). */
export function defaultDevice(): Device {
  const wanted = process.env.VGL_DEVICE;
  if (wanted === 'cpu') return 'cpu';
  return native.cudaAvailable() ? 'cuda' : 'cpu';
}
export const torchVersion = native.version;

/** Runs fn with autograd recording off (like torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}
export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

/**
 * Runs fn in inference mode (like torch.inference_mode()): no autograd bookkeeping at all, the fastest
 * way to extract descriptors. Tensors made here cannot later take part in autograd.
 */
export function inferenceMode<T>(fn: () => T): T {
  native.enterInferenceMode();
  try {
    return fn();
  } finally {
    native.exitInferenceMode();
  }
}

/** The lower-precision dtypes autocast computes in (the CPU: bfloat16 only). */
export type AutocastDType = 'bfloat16' | 'float16';
export type AutocastDevice = 'cpu' | 'cuda';

let autocastDepth = 0;

/**
 * Runs fn under autocast (like torch.autocast(device, dtype)): the ops autocast lists for the device —
 * convolutions, linear layers, matrix products — cast their inputs to `dtype` and compute in it (on
 * this CPU: its AMX / AVX512-BF16 units); other ops run in their inputs' dtype. Parameters keep their
 * own dtype (fp32 master weights); gradients flow back through the casts to them in fp32.
 * `false` turns autocast off inside an autocast scope, for code that must stay in fp32 (losses,
 * normalisations): it widens its bf16 inputs (precision.ts inFloat32, atLeastFloat32). Scopes nest and are synchronous;
 * when the outermost ends, the weights it cast are forgotten (the next step casts the updated ones).
 */
export function autocast<T>(dtype: AutocastDType | false, fn: () => T, device: AutocastDevice = 'cpu'): T {
  if (dtype !== false && device === 'cpu' && dtype !== 'bfloat16') {
    throw new Error(`autocast: the CPU computes in bfloat16 only, not ${dtype}`);
  }
  const wasEnabled = native.setAutocastEnabled(device, dtype !== false);
  const previousDtype = dtype === false ? null : native.setAutocastDtype(device, SCALAR_TYPE[dtype]);
  autocastDepth++;
  try {
    const result = fn();
    if (result instanceof Promise) throw new Error('autocast: fn returned a Promise; autocast scopes are synchronous');
    return result;
  } finally {
    autocastDepth--;
    if (autocastDepth === 0) native.clearAutocastCache();
    native.setAutocastEnabled(device, wasEnabled);
    if (previousDtype !== null) native.setAutocastDtype(device, previousDtype);
  }
}

/** Whether autocast is on for a device, and the dtype it computes in. */
export function autocastState(device: AutocastDevice = 'cpu'): { enabled: boolean; dtype: DType } {
  const code = native.autocastDtype(device);
  const dtype = (Object.keys(SCALAR_TYPE) as DType[]).find((d) => SCALAR_TYPE[d] === code)!;
  return { enabled: native.isAutocastEnabled(device), dtype };
}
