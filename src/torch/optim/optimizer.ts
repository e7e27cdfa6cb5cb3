// Optimizer base: parameter groups with their own hyper-parameters, per-parameter state tensors,
// and a state dict for checkpoints. Updates are in-place ops on the parameters, outside autograd.
import { Tensor } from '../tensor.ts';
import { noGrad } from '../factory.ts';
import { tidy, keep } from '../scope.ts';
import type { HostTensor } from '../dtype.ts';
import { fromHost, type Device } from '../factory.ts';

export interface ParamGroup<H> {
  params: Tensor[];
  options: H;
}
/** Either a flat list of parameters or groups each overriding some hyper-parameters. */
export type ParamsInput<H> = Tensor[] | { params: Tensor[]; options?: Partial<H> }[];

export interface OptimizerState {
  kind: string;
  groups: { options: Record<string, number | boolean>; size: number }[];
  /** Per parameter, in group order: its state tensors and step count. */
  state: { step: number; tensors: Record<string, HostTensor> }[];
}

/** A host-loaded state tensor placed next to its parameter (CUDA parameters keep CUDA state). */
function onDeviceOf(p: Tensor, t: Tensor): Tensor {
  if (p.device === 'cpu') return t;
  const moved = t.to(p.device as Device);
  t.dispose();
  return moved;
}

export abstract class Optimizer<H extends object> {
  readonly groups: ParamGroup<H>[];
  protected readonly state = new Map<Tensor, { step: number; tensors: Record<string, Tensor> }>();
  abstract readonly kind: string;

  constructor(params: ParamsInput<H>, defaults: H) {
    const groups = params.length > 0 && !(params[0] instanceof Tensor)
      ? (params as { params: Tensor[]; options?: Partial<H> }[])
      : [{ params: params as Tensor[] }];
    this.groups = groups.map((g) => ({ params: g.params, options: { ...defaults, ...('options' in g ? g.options : {}) } }));
    for (const g of this.groups) {
      for (const p of g.params) {
        if (!p.requiresGrad) throw new Error(`${this.constructor.name}: a parameter of shape [${p.shape}] does not require grad`);
      }
    }
  }

  /** Updates one parameter given its gradient, state and group options (inside noGrad + tidy). */
  protected abstract update(p: Tensor, grad: Tensor, s: { step: number; tensors: Record<string, Tensor> }, o: H): void;

  step(): void {
    noGrad(() => {
      for (const g of this.groups) {
        for (const p of g.params) {
          tidy(() => {
            const grad = p.grad;
            if (grad === null) return;
            let s = this.state.get(p);
            if (s === undefined) {
              s = { step: 0, tensors: {} };
              this.state.set(p, s);
            }
            s.step++;
            this.update(p, grad, s, g.options);
          });
        }
      }
    });
  }

  /** State tensors are created lazily; they must outlive the step's scope. */
  protected stateTensor(s: { tensors: Record<string, Tensor> }, name: string, init: () => Tensor): Tensor {
    return (s.tensors[name] ??= keep(init()));
  }

  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) p.grad = null;
  }

  setLearningRate(lr: number, group?: number): void {
    const gs = group === undefined ? this.groups : [this.groups[group]];
    for (const g of gs) (g.options as { lr: number }).lr = lr;
  }

  stateDict(): OptimizerState {
    return {
      kind: this.kind,
      groups: this.groups.map((g) => ({ options: { ...(g.options as Record<string, number | boolean>) }, size: g.params.length })),
      state: this.groups.flatMap((g) => g.params.map((p) => {
        const s = this.state.get(p);
        return {
          step: s?.step ?? 0,
          tensors: Object.fromEntries(Object.entries(s?.tensors ?? {}).map(([k, t]) => [k, t.toHost()])),
        };
      })),
    };
  }

  loadStateDict(sd: OptimizerState): void {
    if (sd.kind !== this.kind) throw new Error(`optimizer state is for ${sd.kind}, this optimizer is ${this.kind}`);
    if (sd.groups.length !== this.groups.length || sd.groups.some((g, i) => g.size !== this.groups[i].params.length)) {
      throw new Error(`optimizer state has groups of sizes [${sd.groups.map((g) => g.size)}], ` +
        `this optimizer [${this.groups.map((g) => g.params.length)}]`);
    }
    let k = 0;
    this.groups.forEach((g, gi) => {
      Object.assign(g.options as object, sd.groups[gi].options);
      for (const p of g.params) {
        const saved = sd.state[k++];
        const old = this.state.get(p);
        if (old) for (const t of Object.values(old.tensors)) t.dispose();
        this.state.set(p, {
          step: saved.step,
          tensors: Object.fromEntries(Object.entries(saved.tensors).map(([name, h]) => [name, keep(onDeviceOf(p, fromHost(h)))])),
        });
      }
    });
  }

  dispose(): void {
    for (const s of this.state.values()) for (const t of Object.values(s.tensors)) t.dispose();
    this.state.clear();
  }
}
