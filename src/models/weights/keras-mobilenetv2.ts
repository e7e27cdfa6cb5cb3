// Keras MobileNetV2 weights (TensorFlow.js layers format) → vgl's MobileNetV2 (torchvision names).
// The one place that knows both naming schemes:
//   Conv1, bn_Conv1                                   → features.0.0, features.0.1
//   expanded_conv_depthwise(_BN), expanded_conv_project(_BN) → features.1.conv.0.{0,1}, conv.1, conv.2
//   block_<i>_expand(_BN), _depthwise(_BN), _project(_BN)    → features.<i+1>.conv.0.{0,1}, conv.1.{0,1}, conv.2, conv.3
//   Conv_1, Conv_1_bn                                 → features.18.0, features.18.1
// and the layouts: conv kernels HWIO → OIHW, depthwise kernels HW(C)(mult) → [C·mult, 1, H, W],
// BatchNorm gamma/beta/moving_mean/moving_variance → weight/bias/running_mean/running_var.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadStateDict, nn, type HostTensor } from '../../torch/index.ts';
import { loadTfjsLayersModel } from '../../torch/serialization/index.ts';
import type { MobileNetV2 } from '../mobilenetv2.ts';
import { hwioToOihw, kerasLayerConfigs } from './keras.ts';

/** The ImageNet weights committed to the repository (Keras alpha 0.35, 224 input). */
export const MOBILENETV2_035_WEIGHTS_DIR = fileURLToPath(new URL('../../../weights/mobilenet_v2_0.35_imagenet/', import.meta.url));

export type KerasLayerKind = 'conv' | 'depthwise' | 'batchnorm';
export interface KerasLayerMapping {
  keras: string;
  vgl: string;
  kind: KerasLayerKind;
}

/** Keras layer ↔ vgl module, in network order, for a MobileNetV2 with `blocks` inverted residuals (17). */
export function mobileNetV2KerasLayers(blocks = 17): KerasLayerMapping[] {
  const out: KerasLayerMapping[] = [
    { keras: 'Conv1', vgl: 'features.0.0', kind: 'conv' },
    { keras: 'bn_Conv1', vgl: 'features.0.1', kind: 'batchnorm' },
    { keras: 'expanded_conv_depthwise', vgl: 'features.1.conv.0.0', kind: 'depthwise' },
    { keras: 'expanded_conv_depthwise_BN', vgl: 'features.1.conv.0.1', kind: 'batchnorm' },
    { keras: 'expanded_conv_project', vgl: 'features.1.conv.1', kind: 'conv' },
    { keras: 'expanded_conv_project_BN', vgl: 'features.1.conv.2', kind: 'batchnorm' },
  ];
  for (let b = 1; b < blocks; b++) {
    const p = `features.${b + 1}.conv`;
    const k = `block_${b}`;
    out.push(
      { keras: `${k}_expand`, vgl: `${p}.0.0`, kind: 'conv' },
      { keras: `${k}_expand_BN`, vgl: `${p}.0.1`, kind: 'batchnorm' },
      { keras: `${k}_depthwise`, vgl: `${p}.1.0`, kind: 'depthwise' },
      { keras: `${k}_depthwise_BN`, vgl: `${p}.1.1`, kind: 'batchnorm' },
      { keras: `${k}_project`, vgl: `${p}.2`, kind: 'conv' },
      { keras: `${k}_project_BN`, vgl: `${p}.3`, kind: 'batchnorm' },
    );
  }
  out.push(
    { keras: 'Conv_1', vgl: `features.${blocks + 1}.0`, kind: 'conv' },
    { keras: 'Conv_1_bn', vgl: `features.${blocks + 1}.1`, kind: 'batchnorm' },
  );
  return out;
}

const BN_FIELDS: ReadonlyArray<[string, string]> = [
  ['gamma', 'weight'], ['beta', 'bias'], ['moving_mean', 'running_mean'], ['moving_variance', 'running_var'],
];

/** Depthwise [kh, kw, C, M] → [C·M, 1, kh, kw]; TensorFlow's output channel c·M + m. */
export function depthwiseToTorch(t: HostTensor): HostTensor {
  const [kh, kw, c, m] = t.shape as [number, number, number, number];
  const r = hwioToOihw({ dtype: 'float32', shape: [kh, kw, 1, c * m], data: t.data });
  return { ...r, shape: [c * m, 1, kh, kw] };
}


export interface KerasLoadReport {
  /** vgl parameter/buffer names written. */
  loaded: string[];
  /** Weights in the file that belong to no backbone layer (e.g. a classifier head), left unused. */
  ignored: string[];
}

/**
 * Converts Keras MobileNetV2 weights (by manifest name) to vgl names and layouts, checking every
 * shape against `model`. `source` names the file in errors.
 */
export function kerasToVglMobileNetV2(model: MobileNetV2, weights: Map<string, HostTensor>, source: string): { values: Map<string, HostTensor>; ignored: string[] } {
  const own = model.stateDict();
  const blocks = model.features.length - 2;
  const layers = mobileNetV2KerasLayers(blocks);
  const values = new Map<string, HostTensor>();
  const missing: string[] = [];
  const mismatched: string[] = [];
  const used = new Set<string>();
  const take = (kerasName: string, vglName: string, convert: (t: HostTensor) => HostTensor): void => {
    const t = weights.get(kerasName);
    if (!t) { missing.push(kerasName); return; }
    used.add(kerasName);
    if (t.dtype !== 'float32') { mismatched.push(`${kerasName}: dtype ${t.dtype}, expected float32`); return; }
    const expected = own.get(vglName)!.shape;
    const v = convert(t);
    if (v.shape.length !== expected.length || v.shape.some((s, i) => s !== expected[i])) {
      mismatched.push(`${kerasName} [${t.shape}] → ${vglName} [${v.shape}], model has [${expected}]`);
      return;
    }
    values.set(vglName, v);
  };
  for (const l of layers) {
    if (l.kind === 'batchnorm') {
      for (const [k, v] of BN_FIELDS) take(`${l.keras}/${k}`, `${l.vgl}.${v}`, (t) => t);
      values.set(`${l.vgl}.num_batches_tracked`, { dtype: 'int64', shape: [], data: new BigInt64Array(1) });
    } else if (l.kind === 'conv') {
      take(`${l.keras}/kernel`, `${l.vgl}.weight`, (t) => (t.shape.length === 4 ? hwioToOihw(t) : t));
    } else {
      take(`${l.keras}/depthwise_kernel`, `${l.vgl}.weight`, (t) => (t.shape.length === 4 ? depthwiseToTorch(t) : t));
    }
  }
  const problems: string[] = [];
  const list = (title: string, items: string[]): void => {
    if (items.length > 0) problems.push(`  ${title} (${items.length}): ${items.slice(0, 20).join('; ')}${items.length > 20 ? `; ... (${items.length - 20} more)` : ''}`);
  };
  list('missing Keras weights', missing);
  list('shape mismatches', mismatched);
  if (problems.length > 0) {
    throw new Error(`${source}: not the Keras MobileNetV2 (alpha ${model.widthMultiplier}) that vgl builds:\n${problems.join('\n')}`);
  }
  return { values, ignored: [...weights.keys()].filter((k) => !used.has(k)) };
}

/** Checks strides and BatchNorm epsilons of the file's layer graph against `model`. */
function checkTopology(topology: unknown, model: MobileNetV2, source: string): void {
  const configs = kerasLayerConfigs(topology);
  if (configs.size === 0) return; // weights-only file: nothing to compare
  const modules = new Map(model.namedModules());
  const wrong: string[] = [];
  for (const l of mobileNetV2KerasLayers(model.features.length - 2)) {
    const c = configs.get(l.keras)?.config;
    if (!c) {
      wrong.push(`layer ${l.keras} is not in the layer graph`);
      continue;
    }
    const stride = (c.strides as number[] | undefined)?.[0];
    const m = modules.get(l.vgl);
    const s = m instanceof nn.Conv2d ? m.config.stride ?? 1 : undefined;
    const ours = typeof s === 'number' ? s : s?.[0];
    if (ours !== undefined && stride !== undefined && stride !== ours) {
      wrong.push(`${l.keras} has stride ${stride}, ${l.vgl} has ${ours}`);
    }
    if (l.kind === 'batchnorm' && typeof c.epsilon === 'number' && Math.abs(c.epsilon - 1e-3) > 1e-9) {
      wrong.push(`${l.keras} has epsilon ${c.epsilon}, expected 0.001`);
    }
  }
  if (wrong.length > 0) {
    throw new Error(`${source}: layer graph differs from Keras MobileNetV2: ${wrong.slice(0, 20).join('; ')}${wrong.length > 20 ? ` (${wrong.length} problems)` : ''}`);
  }
}

/**
 * Loads Keras ImageNet MobileNetV2 weights from a TensorFlow.js layers folder (model.json +
 * shards) into `model`. Errors name the file and list every missing or mismatched weight; weights
 * of other layers (a classifier head on top) are returned as `ignored`.
 */
export async function loadKerasWeights(model: MobileNetV2, dir: string = MOBILENETV2_035_WEIGHTS_DIR): Promise<KerasLoadReport> {
  const source = dir.endsWith('.json') ? dir : join(dir, 'model.json');
  const { topology, weights } = await loadTfjsLayersModel(dir);
  const { values, ignored } = kerasToVglMobileNetV2(model, weights, source);
  checkTopology(topology, model, source);
  const report = loadStateDict(model, values, { source });
  return { loaded: report.loaded, ignored };
}
