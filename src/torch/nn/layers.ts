// The standard layers, with torch.nn's parameter names and defaults.
import { Tensor } from '../tensor.ts';
import { empty, zeros, ones, scalar } from '../factory.ts';
import * as F from '../functional.ts';
import { Module } from './module.ts';
import { defaultUniform_, fans } from './init.ts';

type Pair = number | [number, number];

export interface Conv2dConfig extends F.Conv2dOptions {
  bias?: boolean;
}
export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  /** Inference-only replacements (BatchNorm folded in, channels-last); see fold.ts. */
  inference: { weight: Tensor; bias: Tensor } | null = null;
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: Pair, readonly config: Conv2dConfig = {}) {
    super();
    const [kh, kw] = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
    const groups = config.groups ?? 1;
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new Error(`Conv2d: channels ${inChannels}->${outChannels} not divisible by groups=${groups}`);
    }
    this.weight = this.param('weight', empty([outChannels, inChannels / groups, kh, kw]));
    const fanIn = fans(this.weight.shape).fanIn;
    defaultUniform_(this.weight, fanIn);
    this.bias = this.param('bias', config.bias === false ? null : defaultUniform_(empty([outChannels]), fanIn));
  }
  forward(x: Tensor): Tensor {
    if (this.inference) return F.conv2d(x, this.inference.weight, this.inference.bias, this.config);
    return F.conv2d(x, this.weight, this.bias, this.config);
  }
}

export interface BatchNormConfig {
  eps?: number;
  momentum?: number;
}
export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  readonly numBatchesTracked: Tensor;
  readonly eps: number;
  readonly momentum: number;
  /** When frozen, the layer stays in eval mode (running statistics fixed) whatever train() says. */
  frozen = false;
  /** Set while folded into the preceding convolution (fold.ts): the layer passes x through. */
  folded = false;
  constructor(readonly numFeatures: number, config: BatchNormConfig = {}) {
    super();
    this.eps = config.eps ?? 1e-5;
    this.momentum = config.momentum ?? 0.1;
    this.weight = this.param('weight', ones([numFeatures]));
    this.bias = this.param('bias', zeros([numFeatures]));
    this.runningMean = this.buffer('running_mean', zeros([numFeatures]))!;
    this.runningVar = this.buffer('running_var', ones([numFeatures]))!;
    this.numBatchesTracked = this.buffer('num_batches_tracked', scalar(0, { dtype: 'int64' }))!;
  }
  protected override setTraining(on: boolean): void {
    this.training = on && !this.frozen;
  }
  forward(x: Tensor): Tensor {
    if (this.folded) return x;
    if (this.training) this.numBatchesTracked.add_(1);
    return F.batchNorm(x, this.runningMean, this.runningVar, {
      weight: this.weight, bias: this.bias, training: this.training, momentum: this.momentum, eps: this.eps,
    });
  }
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = true) {
    super();
    this.weight = this.param('weight', defaultUniform_(empty([outFeatures, inFeatures]), inFeatures));
    this.bias = this.param('bias', bias ? defaultUniform_(empty([outFeatures]), inFeatures) : null);
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

export interface LayerNormConfig {
  /** Added to the variance (torch's 1e-5; timm's ViT uses 1e-6). */
  eps?: number;
}
/** LayerNorm over the last dimension, with torch.nn's `weight` (1) and `bias` (0). */
export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly eps: number;
  constructor(readonly normalizedShape: number, config: LayerNormConfig = {}) {
    super();
    this.eps = config.eps ?? 1e-5;
    this.weight = this.param('weight', ones([normalizedShape]));
    this.bias = this.param('bias', zeros([normalizedShape]));
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, [this.normalizedShape], this.weight, this.bias, this.eps);
  }
}

export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.gelu(x, this.approximate);
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}
export class ReLU6 extends Module {
  forward(x: Tensor): Tensor {
    return x.relu6();
  }
}
export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return x.sigmoid();
  }
}
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}
export class Flatten extends Module {
  constructor(readonly start = 1, readonly end = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.flatten(this.start, this.end);
  }
}
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }
}
export class MaxPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly options: F.PoolOptions = {}) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, this.options);
  }
}
export class AvgPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly options: F.PoolOptions = {}) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.avgPool2d(x, this.kernelSize, this.options);
  }
}
export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.adaptiveAvgPool2d(x, this.outputSize);
  }
}

/**
 * Children run in order and are named "0", "1", ... (torchvision's `features.28.weight`).
 * Intermediate results are freed as soon as the next layer has consumed them — unless autograd
 * needs them, in which case libtorch keeps its own reference.
 */
export class Sequential extends Module {
  readonly layers: Module[];
  constructor(...layers: Module[]) {
    super();
    this.layers = layers.map((m, i) => this.module(String(i), m));
  }
  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this.layers) {
      const next = (m.forward as (t: Tensor) => Tensor)(y);
      if (y !== x && next !== y) y.dispose();
      y = next;
    }
    return y;
  }
  get length(): number {
    return this.layers.length;
  }
  at(i: number): Module {
    return this.layers[i < 0 ? this.layers.length + i : i];
  }
}
