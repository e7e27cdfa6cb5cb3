// One optimizer step: the loss is a weighted sum of terms, each `() => Tensor | null` (null: it has
// nothing this step), e.g. the tuple loss and the camera-invariance term. The reference's step is
// the tuple term alone.
import * as torch from '../torch/index.ts';
import type { optim, Tensor } from '../torch/index.ts';

/** One term of a step's loss and its weight. */
export interface LossTerm {
  weight: number;
  compute: () => Tensor | null;
  /**
   * Data-parallel: the share of the term this rank computes (e.g. its share of the batch of a term that
   * is a mean over the batch); the term is the sum of the ranks' parts. Default 1 (one process, or a
   * term already normalised over the whole batch).
   */
  part?: number;
}

/** A step's loss and the unweighted value of each term that computed one. */
export interface StepValues {
  loss: number;
  terms: Record<string, number>;
}

/** Sums a step's loss (and its terms' values) over the ranks after backward, with the gradients. */
export type StepReduce = (loss: Tensor, terms: Record<string, number>) => StepValues;

/**
 * zeroGrad, the weighted sum of the terms, backward, step. A loss that is not finite takes no step
 * (the weights stay as they were): the caller stops the run. With `reduce` (data-parallel training),
 * backward runs first on every rank (a rank with no part of any term contributes zeros), then `reduce`
 * sums the gradients, the loss and the terms' parts over the ranks; the batch's loss decides the step.
 */
export function optimizerStep(opt: optim.Optimizer<object>, terms: Record<string, LossTerm>, reduce?: StepReduce): StepValues {
  return torch.tidy(() => {
    opt.zeroGrad();
    let total: Tensor | null = null;
    const values: Record<string, number> = {};
    for (const [name, term] of Object.entries(terms)) {
      let t = term.compute();
      if (t === null) continue;
      if (term.part !== undefined && term.part !== 1) t = t.mul(term.part);
      values[name] = t.item();
      const weighted = term.weight === 1 ? t : t.mul(term.weight);
      total = total === null ? weighted : total.add(weighted);
    }
    if (reduce) {
      total?.backward();
      const reduced = reduce(total ?? torch.zeros([]), values);
      if (Number.isFinite(reduced.loss)) opt.step();
      return reduced;
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
