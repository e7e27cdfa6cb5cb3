// Module: a tree of named parameters, buffers and children, as in torch.nn.Module. Names compose
// with dots (`layer3.1.conv2.weight`), so state dicts keep the torchvision layout.
import { Tensor } from '../tensor.ts';
import { keep } from '../scope.ts';
import { noGrad, type Device } from '../factory.ts';
import { SCALAR_TYPE, isFloatingPoint, type DType } from '../dtype.ts';

export abstract class Module {
  training = true;
  /** Computes in fp32 under autocast, itself or as part of an enclosing module (keepFloat32 in float32.ts). */
  keepsFloat32 = false;
  readonly #params = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, Tensor | null>();
  readonly #modules = new Map<string, Module>();

  abstract forward(...inputs: never[]): unknown;

  /** Registers a trainable parameter (made a leaf that requires grad, kept out of tidy scopes). */
  protected param(name: string, t: Tensor): Tensor;
  protected param(name: string, t: Tensor | null): Tensor | null;
  protected param(name: string, t: Tensor | null): Tensor | null {
    if (t !== null) keep(t).requiresGrad_(true);
    this.#params.set(name, t);
    return t;
  }
  /** Registers persistent state saved in the state dict (e.g. BatchNorm running statistics). */
  protected buffer(name: string, t: Tensor | null): Tensor | null {
    if (t !== null) keep(t);
    this.#buffers.set(name, t);
    return t;
  }
  /** Registers a child module under name. */
  protected module<M extends Module>(name: string, m: M): M {
    this.#modules.set(name, m);
    return m;
  }

  *children(): IterableIterator<[string, Module]> {
    yield* this.#modules.entries();
  }
  *namedModules(prefix = ''): IterableIterator<[string, Module]> {
    yield [prefix, this];
    for (const [n, m] of this.#modules) yield* m.namedModules(prefix ? `${prefix}.${n}` : n);
  }
  *namedParameters(prefix = ''): IterableIterator<[string, Tensor]> {
    for (const [n, p] of this.#params) if (p !== null) yield [prefix ? `${prefix}.${n}` : n, p];
    for (const [n, m] of this.#modules) yield* m.namedParameters(prefix ? `${prefix}.${n}` : n);
  }
  *namedBuffers(prefix = ''): IterableIterator<[string, Tensor]> {
    for (const [n, b] of this.#buffers) if (b !== null) yield [prefix ? `${prefix}.${n}` : n, b];
    for (const [n, m] of this.#modules) yield* m.namedBuffers(prefix ? `${prefix}.${n}` : n);
  }
  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }
  /** Parameters that currently require grad. */
  trainableParameters(): Tensor[] {
    return this.parameters().filter((p) => p.requiresGrad);
  }

  /** Parameters and buffers by name, in registration order (the tensors themselves, not copies). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const visit = (m: Module, prefix: string): void => {
      for (const [n, p] of m.#params) if (p !== null) out.set(prefix + n, p);
      for (const [n, b] of m.#buffers) if (b !== null) out.set(prefix + n, b);
      for (const [n, c] of m.#modules) visit(c, `${prefix}${n}.`);
    };
    visit(this, '');
    return out;
  }

  train(on = true): this {
    for (const [, m] of this.namedModules()) m.setTraining(on);
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  /** Hook for modules whose mode differs from the tree's (frozen BatchNorm stays in eval). */
  protected setTraining(on: boolean): void {
    this.training = on;
  }

  /**
   * Moves parameters and buffers to a device, or casts the floating-point ones to a dtype, in place:
   * the tensors keep their identity, so an optimizer built before still updates them.
   */
  to(target: DType | Device): this {
    const isDtype = target in SCALAR_TYPE;
    noGrad(() => {
      for (const t of this.stateDict().values()) {
        if (isDtype && !isFloatingPoint(t.dtype)) continue; // counters stay integers
        const moved = t.to(target as DType);
        t.setData_(moved);
        moved.dispose();
      }
    });
    return this;
  }

  requiresGrad_(on = true): this {
    for (const p of this.parameters()) p.requiresGrad_(on);
    return this;
  }
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }
  /** Frees every parameter and buffer of the tree. */
  dispose(): void {
    for (const t of this.stateDict().values()) t.dispose();
  }
  /** Number of elements in all (or only trainable) parameters. */
  parameterCount(trainableOnly = false): number {
    return (trainableOnly ? this.trainableParameters() : this.parameters()).reduce((s, p) => s + p.numel, 0);
  }
  /** Copies values into existing parameters and buffers without recording autograd. */
  protected static assign(target: Tensor, src: Tensor): void {
    noGrad(() => target.copy_(src));
  }
}
