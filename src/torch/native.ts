// Loads the libtorch addon (native/) once and names its ops. Everything else in src/torch goes
// through `call(OP.name, ...)`.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

// OpenMP workers that finish early spin, waiting for their siblings. On a machine where another process
// holds a core, a sibling is preempted and the spinners burn the time it needs: a 2-thread training
// step took 1.5x longer than a 1-thread one (`vgl bench engine --contention`). Sleeping waiters keep
// 2 threads near 1-thread speed under load and cost nothing measurable when idle. libgomp reads this
// when it loads, with the addon below; a user's own setting wins.
process.env.OMP_WAIT_POLICY ??= 'PASSIVE';

/** Opaque handle to an at::Tensor owned by the addon. */
export type Handle = { readonly __brand: 'TensorHandle' };
export type Arg = Handle | number | boolean | string | null | undefined | readonly number[] | readonly Handle[];

interface Addon {
  call(op: number, ...args: Arg[]): unknown;
  opNames(): string[];
  fromArray(data: ArrayBufferView, shape: readonly number[], scalarType: number): Handle;
  toArray(h: Handle): ArrayBuffer;
  dispose(h: Handle): void;
  isDisposed(h: Handle): boolean;
  enterInferenceMode(): void;
  exitInferenceMode(): void;
  setGradEnabled(on: boolean): boolean;
  isGradEnabled(): boolean;
  setAutocastEnabled(device: 'cpu' | 'cuda', on: boolean): boolean;
  isAutocastEnabled(device: 'cpu' | 'cuda'): boolean;
  setAutocastDtype(device: 'cpu' | 'cuda', scalarType: number): number;
  autocastDtype(device: 'cpu' | 'cuda'): number;
  clearAutocastCache(): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  manualSeed(seed: number): void;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaSynchronize(): void;
  profileStart(path: string): void;
  profileStop(): void;
  config(): string;
  version: string;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const addonPath = join(root, 'native', 'build', 'Release', 'vgl_torch.node');

function load(): Addon {
  if (!existsSync(addonPath)) {
    throw new Error(`vgl: the libtorch addon is not built (${addonPath} is missing). Run 'make setup' in ${root}.`);
  }
  try {
    return createRequire(import.meta.url)(addonPath) as Addon;
  } catch (e) {
    throw new Error(`vgl: cannot load the libtorch addon ${addonPath}: ${(e as Error).message}\n` +
      `Is libtorch installed (apt-get install libtorch-dev libopenblas0-pthread) or LIBTORCH set? Then run 'make setup'.`);
  }
}

export const native: Addon = load();

// The ops this TypeScript layer uses: the names of native/ops.cc's table (checked at load).
const OP_NAMES = [
  'zeros', 'ones', 'empty', 'full', 'arange', 'linspace', 'eye', 'rand', 'randn', 'randint',
  'randperm', 'multinomial', 'bernoulli', 'sizes', 'strides', 'dtype', 'device', 'numel', 'requires_grad',
  'is_leaf', 'is_contiguous', 'item', 'same_storage', 'to_dtype', 'to_device', 'contiguous', 'clone',
  'detach', 'requires_grad_', 'backward', 'grad', 'set_grad', 'retain_grad', 'add', 'sub', 'mul', 'div',
  'add_scalar', 'mul_scalar', 'div_scalar', 'rsub_scalar', 'rdiv_scalar', 'pow_scalar', 'pow', 'maximum',
  'minimum', 'clamp', 'neg', 'abs', 'sign', 'sqrt', 'rsqrt', 'reciprocal', 'exp', 'log', 'log1p', 'tanh',
  'sigmoid', 'relu', 'relu6', 'leaky_relu', 'softplus', 'floor', 'round', 'eq', 'ne', 'lt', 'le', 'gt', 'ge',
  'eq_scalar', 'ne_scalar', 'lt_scalar', 'le_scalar', 'gt_scalar', 'ge_scalar', 'logical_and', 'logical_or',
  'logical_not', 'where', 'isfinite', 'allclose', 'equal', 'sum', 'mean', 'amax', 'amin', 'max_dim',
  'min_dim', 'max_all', 'min_all', 'argmax', 'argmin', 'norm', 'var', 'logsumexp', 'cumsum', 'softmax',
  'log_softmax', 'any', 'all', 'matmul', 'mm', 'bmm', 'linear', 'einsum', 'cdist', 'conv2d', 'batch_norm',
  'max_pool2d', 'avg_pool2d', 'adaptive_avg_pool2d', 'adaptive_max_pool2d', 'upsample_bilinear2d',
  'upsample_nearest2d', 'upsample_bicubic2d', 'layer_norm', 'gelu', 'dropout', 'constant_pad_nd',
  'reshape', 'view', 'permute', 'transpose', 'flatten',
  'squeeze', 'unsqueeze', 'expand', 'repeat', 'slice', 'narrow', 'select', 'index_select', 'gather',
  'scatter', 'masked_fill', 'masked_select', 'nonzero', 'cat', 'stack', 'split', 'flip', 'topk', 'sort', 'linalg_eigh',
  'argsort', 'add_', 'add_scalar_', 'mul_', 'mul_scalar_', 'div_', 'div_scalar_', 'addcmul_', 'addcdiv_', 'lerp_', 'sqrt_', 'relu_',
  'clamp_', 'copy_', 'set_data', 'zero_', 'fill_', 'index_copy_',
] as const;
export type OpName = (typeof OP_NAMES)[number];

function opIds(): Record<OpName, number> {
  const ids = new Map(native.opNames().map((n, i) => [n, i]));
  const missing = OP_NAMES.filter((n) => !ids.has(n));
  if (missing.length > 0) {
    throw new Error(`vgl: the built addon lacks ops ${missing.join(', ')}; rebuild it with 'make setup'.`);
  }
  return Object.fromEntries(OP_NAMES.map((n) => [n, ids.get(n)!])) as Record<OpName, number>;
}

/** Op ids by name, e.g. OP.conv2d. */
export const OP = opIds();

export function call(op: number, ...args: Arg[]): unknown {
  return native.call(op, ...args);
}

// libtorch starts with one intra-op thread here; use every core unless told otherwise.
native.setNumThreads(Number(process.env.VGL_NUM_THREADS) || availableParallelism());
