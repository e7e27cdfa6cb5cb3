// A network's precision policy: the modules that compute in fp32 under autocast while the others
// compute in its lower precision (MobileNetV2's, src/models/mobilenetv2.ts). Such a module runs with
// autocast off on its inputs widened to fp32, so its output is fp32; a following module under autocast
// casts that back to bf16 where it computes in bf16. Its weights stay fp32 in the inference fold too.
import { Tensor } from '../tensor.ts';
import { tidy } from '../scope.ts';
import { inFloat32, atLeastFloat32 } from '../precision.ts';
import type { Module } from './module.ts';

/**
 * Makes `module` compute in fp32 under autocast (outside autocast nothing changes): its forward runs
 * with autocast off, its tensor inputs widened to fp32 (bf16 ones cast, fp32 ones as they are). Marks it
 * and every module inside it `keepsFloat32`, which foldForInference reads to keep their folded weights
 * fp32. Gradients flow through it as through any fp32 module (the widening cast is differentiable).
 */
export function keepFloat32<M extends Module>(module: M): M {
  if (module.keepsFloat32) return module;
  for (const [, m] of module.namedModules()) m.keepsFloat32 = true;
  const forward = module.forward.bind(module) as (...inputs: unknown[]) => unknown;
  const widen = (x: unknown) => (x instanceof Tensor ? atLeastFloat32(x) : x);
  Object.defineProperty(module, 'forward', {
    value: (...inputs: unknown[]) => tidy(() => inFloat32(() => forward(...inputs.map(widen)))),
    configurable: true, writable: true,
  });
  return module;
}
