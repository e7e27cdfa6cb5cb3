// "Evaluate this network on this split": the one entry point every caller uses (vgl eval, training's
// validation and test, the demo, the experiment runner, the precision comparison). The precision is
// chosen (and bf16 checked on the split's database images) or given, the network's fast inference
// path is set up (folded BatchNorm, channels-last, autocast), its descriptors optionally transformed
// (PCA), and evaluate() does the rest.
import * as torch from '../torch/index.ts';
import type { GeoDataset } from '../data/dataset.ts';
import type { ImageSize } from '../data/image.ts';
import type { GeoLocalizationNet } from '../models/network.ts';
import type { DescriptorModel } from './extract.ts';
import { evaluate, type EvaluateOptions, type EvaluateResult } from './evaluate.ts';
import { choosePrecision, type ChosenPrecision } from './precision-check.ts';

/** A precision already chosen (a run's, checked when it started): used as it is. */
export interface GivenPrecision {
  precision: torch.Precision;
  searchPrecision: torch.Precision;
}

export interface NetEvaluationOptions extends Omit<EvaluateOptions, 'size' | 'searchPrecision'> {
  size: ImageSize;
  /** An option to resolve and check here (default fp32), or a precision already chosen. */
  precision?: torch.PrecisionOption | GivenPrecision;
  /** Transforms the network's descriptor model inside the inference set-up (e.g. fits and applies PCA). */
  transform?: (model: DescriptorModel) => DescriptorModel | Promise<DescriptorModel>;
}

export interface NetEvaluation extends EvaluateResult {
  /** What extraction and search computed in, and why. */
  precision: ChosenPrecision | GivenPrecision;
}

/** Evaluates `net` on `dataset` in the precision asked, through its fast inference path. */
export async function evaluateNet(net: GeoLocalizationNet, dataset: GeoDataset, o: NetEvaluationOptions): Promise<NetEvaluation> {
  const { precision: asked, transform, ...options } = o;
  const device = options.device ?? torch.defaultDevice();
  const precision = typeof asked === 'object' ? asked : await choosePrecision(asked ?? 'fp32', net, dataset.databasePaths, options.size, { device });
  const result = await net.fastInference(async (forward) => {
    const model = net.asDescriptorModel(forward);
    return evaluate(transform ? await transform(model) : model, dataset, { ...options, device, searchPrecision: precision.searchPrecision });
  }, { precision: precision.precision });
  return { ...result, precision };
}
