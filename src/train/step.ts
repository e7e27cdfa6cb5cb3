// One optimizer step: the loss is a weighted sum of terms, each `() => Tensor | null` (null: it has
// nothing this step), e.g. the tuple loss and the camera-invariance term. The reference's step is
// the tuple term alone.
import * as torch from '../torch/index.ts';
import type { optim, Tensor } from '../torch/index.ts';

/** One term of a step's loss and its weight. */
export interface LossTerm {
  weight: number;
  compute: () => Tensor | null;
}

/** A step's loss and the unweighted value of each term that computed one. */
export interface StepValues {
  loss: number;
  terms: Record<string, number>;
}

/**
 * zeroGrad, the weighted sum of the terms, backward, step. A loss that is not finite takes no step
 * (the weights stay as they were): the caller stops the run. With `reduce` (data-parallel training),
 * backward runs first on every rank (a rank whose share of the batch is empty contributes zeros), then
 * `reduce` sums the gradients over the ranks and gives the batch's loss, which decides the step.
 */
export function optimizerStep(opt: optim.Optimizer<object>, terms: Record<string, LossTerm>, reduce?: (loss: Tensor) => number): StepValues {
  return torch.tidy(() => {
    opt.zeroGrad();
    let total: Tensor | null = null;
    const values: Record<string, number> = {};
    for (const [name, term] of Object.entries(terms)) {
      const t = term.compute();
      if (t === null) continue;
      values[name] = t.item();
      const weighted = term.weight === 1 ? t : t.mul(term.weight);
      total = total === null ? weighted : total.add(weighted);
    }
    if (reduce) {
      total?.backward();
      const loss = reduce(total ?? torch.zeros([]));
      if (Number.isFinite(loss)) opt.step();
      return { loss, terms: values };
    }
    if (total === null) throw new Error('optimizerStep: no loss term computed anything this step');
    const loss = total.item();
    if (Number.isFinite(loss)) {
      total.backward();
      opt.step();
    }
    return { loss, terms: values };
  });
}
