// Mixed precision: the float format the heavy ops compute in. 'bf16' runs convolutions and matrix
// products in bfloat16 under autocast — on CPUs with AMX-BF16 or AVX512-BF16, oneDNN's bf16 kernels
// use those units — while master weights, optimizer state, losses and what a caller keeps in fp32
// (inFloat32) stay fp32. 'auto' takes bf16 where the CPU has bf16 units (AMX-BF16 or AVX512-BF16) or
// the GPU runs a bf16 product; a training run then times a pass in both before it trusts bf16
// (src/eval/precision-check.ts), as what bf16 buys differs by CPU, network and size (docs/precision.md).
import { readFileSync } from 'node:fs';
import { autocast, cudaAvailable, defaultDevice, randn, type Device } from './factory.ts';
import { tidy } from './scope.ts';
import type { Tensor } from './tensor.ts';

export const PRECISIONS = ['fp32', 'bf16', 'auto'] as const;
export type PrecisionOption = (typeof PRECISIONS)[number];
/** What runs: fp32 throughout, or bf16 autocast with fp32 master weights. */
export type Precision = Exclude<PrecisionOption, 'auto'>;

export interface Bf16Support {
  available: boolean;
  /** Why, for the log: the CPU flag found, the CUDA probe, or VGL_BF16. */
  reason: string;
  /** The best bf16 CPU flag found (absent on CUDA and under VGL_BF16). */
  cpuFlag?: (typeof BF16_CPU_FLAGS)[number];
}

/** What runs in the precision: training steps (forward and backward) or descriptor extraction. */
export type Workload = 'train' | 'inference';

/** The CPU flags that mean bf16 matrix units, best first. */
export const BF16_CPU_FLAGS = ['amx_bf16', 'avx512_bf16'] as const;

let cpuFlags: Set<string> | null | undefined;

/** The flags of /proc/cpuinfo's first processor (null where there is no /proc/cpuinfo). */
function readCpuFlags(): Set<string> | null {
  if (cpuFlags !== undefined) return cpuFlags;
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => /^flags\s*:/.test(l));
    cpuFlags = new Set(line ? line.replace(/^flags\s*:/, '').trim().split(/\s+/) : []);
  } catch {
    cpuFlags = null;
  }
  return cpuFlags;
}

/**
 * Whether bf16 runs on fast units here. VGL_BF16=0 says no (simulates a machine without them),
 * VGL_BF16=1 says yes without looking; otherwise the CPU's flags (amx_bf16, avx512_bf16) decide, or
 * on CUDA a small bf16 matrix product on the device.
 */
export function bf16Support(device: Device = defaultDevice(), env: NodeJS.ProcessEnv = process.env,
  flags: () => Set<string> | null = readCpuFlags): Bf16Support {
  const forced = env.VGL_BF16;
  if (forced !== undefined && forced !== '') {
    if (forced === '0') return { available: false, reason: 'VGL_BF16=0 treats bf16 as unavailable' };
    if (forced === '1') return { available: true, reason: 'VGL_BF16=1 treats bf16 as available' };
    throw new Error(`VGL_BF16 "${forced}": expected 0 (no bf16 units) or 1 (bf16 units), or unset to detect them`);
  }
  if (device !== 'cpu') return cudaBf16(device);
  const found = flags();
  if (found === null) return { available: false, reason: 'no /proc/cpuinfo to read the CPU flags from' };
  const flag = BF16_CPU_FLAGS.find((f) => found.has(f));
  return flag ? { available: true, reason: `the CPU reports ${flag}`, cpuFlag: flag }
    : { available: false, reason: `the CPU reports neither ${BF16_CPU_FLAGS.join(' nor ')}` };
}

function cudaBf16(device: Device): Bf16Support {
  try {
    tidy(() => {
      const a = randn([8, 8], { device, dtype: 'bfloat16' });
      a.mm(a).item();
    });
    return { available: true, reason: `a bf16 matrix product ran on ${device}` };
  } catch (e) {
    return { available: false, reason: `${device} refused a bf16 matrix product (${(e as Error).message.split('\n')[0]})` };
  }
}

export interface ResolvedPrecision {
  precision: Precision;
  requested: PrecisionOption;
  /** Why this precision, for the log. */
  reason: string;
}

/** Where and what a precision is resolved for (defaults: the default device, this process's environment, /proc/cpuinfo, inference). */
export interface ResolveOptions {
  device?: Device;
  env?: NodeJS.ProcessEnv;
  /** The CPU's flags (tests: another CPU's); null when unknown. */
  cpuFlags?: () => Set<string> | null;
  workload?: Workload;
}

/**
 * The precision an option means here for `workload`: 'auto' → bf16 where bf16Support says so, fp32
 * elsewhere. For training on a CPU this is a candidate: choosePrecision times it against fp32.
 */
export function resolvePrecision(option: PrecisionOption, o: ResolveOptions = {}): ResolvedPrecision {
  const { device = defaultDevice(), env = process.env, cpuFlags: flags } = o;
  if (!(PRECISIONS as readonly string[]).includes(option)) throw new Error(`precision "${String(option)}": expected ${PRECISIONS.join(' | ')}`);
  if (option === 'fp32') return { precision: 'fp32', requested: option, reason: 'asked for fp32' };
  const support = bf16Support(device, env, flags);
  if (option === 'bf16') {
    return { precision: 'bf16', requested: option, reason: support.available ? `asked for bf16; ${support.reason}`
      : `asked for bf16, but ${support.reason}: bf16 is emulated there and likely slower than fp32` };
  }
  return { precision: support.available ? 'bf16' : 'fp32', requested: option, reason: `auto: ${support.reason}` };
}

/** One log line: "precision bf16 (auto: the CPU reports amx_bf16)". */
export const describePrecision = (r: ResolvedPrecision): string => `precision ${r.precision} (${r.reason})`;

const autocastDevice = (device: Device) => (device === 'cpu' ? 'cpu' as const : 'cuda' as const);

/** Runs fn in `precision`: under bf16 autocast on the device for 'bf16', as it is for 'fp32'. */
export function withPrecision<T>(precision: Precision, fn: () => T, device: Device = 'cpu'): T {
  return precision === 'bf16' ? autocast('bfloat16', fn, autocastDevice(device)) : fn();
}

/**
 * Runs fn with autocast off on every device, so that what it computes from fp32 tensors stays fp32:
 * losses, normalisations, soft assignments. Widen 16-bit inputs with atLeastFloat32 inside.
 */
export function inFloat32<T>(fn: () => T): T {
  const cpu = () => autocast(false, fn, 'cpu');
  return cudaAvailable() ? autocast(false, cpu, 'cuda') : cpu();
}

/** A 16-bit float tensor cast to fp32 (a new tensor); any other tensor itself (fp32 and fp64 stay as they are). */
export function atLeastFloat32(t: Tensor): Tensor {
  return t.dtype === 'bfloat16' || t.dtype === 'float16' ? t.float() : t;
}
