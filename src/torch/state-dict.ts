// Loading named tensors into a Module by parameter name (torchvision layout), with one clear error
// that lists every missing, unexpected and shape-mismatched key.
import { Tensor } from './tensor.ts';
import { fromHost, noGrad } from './factory.ts';
import { tidy } from './scope.ts';
import type { HostTensor } from './dtype.ts';
import type { Module } from './nn/module.ts';

export interface LoadReport {
  loaded: string[];
  missing: string[];
  unexpected: string[];
  mismatched: { key: string; expected: number[]; got: number[] }[];
}

export interface LoadOptions {
  /** Throw when anything is missing, unexpected or mismatched (default true). */
  strict?: boolean;
  /** Where the values came from, for error messages (a file path). */
  source?: string;
}

function isTensor(v: Tensor | HostTensor): v is Tensor {
  return v instanceof Tensor;
}

/**
 * Copies values by name into the module's own parameters and buffers (so optimizers stay valid).
 * The values of a `.pth` file: `readStateDict` in src/torch/serialization.
 */
export function loadStateDict(module: Module, values: Map<string, Tensor | HostTensor>, options: LoadOptions = {}): LoadReport {
  const own = module.stateDict();
  const report: LoadReport = { loaded: [], missing: [], unexpected: [], mismatched: [] };
  for (const key of own.keys()) if (!values.has(key)) report.missing.push(key);
  for (const [key, v] of values) {
    const target = own.get(key);
    if (target === undefined) {
      report.unexpected.push(key);
      continue;
    }
    const shape = v.shape;
    const expected = target.shape;
    if (shape.length !== expected.length || shape.some((s, i) => s !== expected[i])) {
      report.mismatched.push({ key, expected, got: shape });
    }
  }
  const strict = options.strict ?? true;
  const bad = report.missing.length + report.unexpected.length + report.mismatched.length;
  if (bad > 0 && (strict || report.mismatched.length > 0)) {
    throw new Error(describeLoadProblems(report, module.constructor.name, options.source));
  }
  tidy(() => noGrad(() => {
    for (const [key, v] of values) {
      const target = own.get(key);
      if (target === undefined) continue;
      const src = isTensor(v) ? v : fromHost(v);
      target.copy_(src); // copy_ converts dtype (float64 → float32, etc.)
      report.loaded.push(key);
    }
  }));
  return report;
}

export function describeLoadProblems(r: LoadReport, what: string, source?: string): string {
  const lines = [`cannot load ${source ? `'${source}' ` : ''}into ${what}:`];
  const list = (title: string, keys: string[]): void => {
    if (keys.length === 0) return;
    lines.push(`  ${title} (${keys.length}): ${keys.slice(0, 20).join(', ')}${keys.length > 20 ? `, ... (${keys.length - 20} more)` : ''}`);
  };
  list('missing keys', r.missing);
  list('unexpected keys', r.unexpected);
  if (r.mismatched.length > 0) {
    lines.push(`  shape mismatches (${r.mismatched.length}):`);
    for (const m of r.mismatched.slice(0, 20)) lines.push(`    ${m.key}: model [${m.expected}] vs file [${m.got}]`);
  }
  return lines.join('\n');
}

/** Copies of the module's tensors as host arrays (for saving). */
export function stateDictToHost(module: Module): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [k, t] of module.stateDict()) out.set(k, t.toHost());
  return out;
}
