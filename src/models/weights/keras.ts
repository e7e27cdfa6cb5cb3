// What the Keras converters (MobileNetV2, ResNet50) share: the layer graph of a TF.js layers model
// read by layer name, and Keras' convolution kernel layout turned into torch's.
import type { HostTensor } from '../../torch/index.ts';

/** [kh, kw, cin, cout] → [cout, cin, kh, kw]. */
export function hwioToOihw(t: HostTensor): HostTensor {
  const [kh, kw, ci, co] = t.shape as [number, number, number, number];
  const src = t.data as Float32Array;
  const dst = new Float32Array(src.length);
  for (let h = 0; h < kh; h++) for (let w = 0; w < kw; w++) for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) {
    dst[((o * ci + i) * kh + h) * kw + w] = src[((h * kw + w) * ci + i) * co + o]!;
  }
  return { dtype: 'float32', shape: [co, ci, kh, kw], data: dst };
}

export type KerasLayerConfig = { class_name?: string; config?: Record<string, unknown> };

/** Keras layer configs by name, found anywhere in a (nested) model topology (none for a weights-only file). */
export function kerasLayerConfigs(topology: unknown): Map<string, KerasLayerConfig> {
  const out = new Map<string, KerasLayerConfig>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) { node.forEach(visit); return; }
    if (typeof node !== 'object' || node === null) return;
    const o = node as { class_name?: string; name?: string; config?: Record<string, unknown> };
    const name = o.name ?? (typeof o.config?.name === 'string' ? o.config.name : undefined);
    if (typeof o.class_name === 'string' && name !== undefined && o.config) out.set(name, o);
    for (const v of Object.values(o)) visit(v);
  };
  visit(topology);
  return out;
}
