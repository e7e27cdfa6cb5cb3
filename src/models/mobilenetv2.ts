// MobileNetV2 as built by Keras Applications (the ImageNet weights we ship are Keras ones), with
// torchvision's module names so state dicts read like torchvision's `features.*`:
//   features.0            stem: 3x3 stride-2 conv (0), BatchNorm (1), ReLU6           Keras Conv1 / bn_Conv1
//   features.1            expanded_conv: depthwise conv.0.{0,1}, project conv.1 + conv.2   (no expand)
//   features.2..17        block_1..block_16: expand conv.0.{0,1}, depthwise conv.1.{0,1},
//                         project conv.2 + BatchNorm conv.3; residual when stride 1 and channels match
//   features.18           Conv_1: 1x1 conv to 1280 (0), BatchNorm (1), ReLU6
// Keras-specific numbers kept here: stride-2 convs pad one row/column at the bottom/right only
// (TensorFlow 'same' / Keras ZeroPadding2D((0,1),(0,1))), BatchNorm eps 1e-3, no conv biases.
// The Keras name of each module is in src/models/weights/keras-mobilenetv2.ts.
import { F, nn, tidy, Tensor } from '../torch/index.ts';
import { freezeModules, type Backbone } from './types.ts';

/** Keras' `_make_divisible`: round to a multiple of 8, never more than 10% below v. */
export function makeDivisible(v: number, divisor = 8): number {
  const r = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  return r < 0.9 * v ? r + divisor : r;
}

/** Inverted-residual settings of MobileNetV2 (t expansion, c channels at width 1, n repeats, s stride). */
export const INVERTED_RESIDUAL_SETTINGS: ReadonlyArray<{ t: number; c: number; n: number; s: number }> = [
  { t: 1, c: 16, n: 1, s: 1 },
  { t: 6, c: 24, n: 2, s: 2 },
  { t: 6, c: 32, n: 3, s: 2 },
  { t: 6, c: 64, n: 4, s: 2 },
  { t: 6, c: 96, n: 3, s: 1 },
  { t: 6, c: 160, n: 3, s: 2 },
  { t: 6, c: 320, n: 1, s: 1 },
];

/** Keras BatchNormalization(momentum=0.999, epsilon=1e-3); torch's momentum weighs the new batch. */
const KERAS_BN = { eps: 1e-3, momentum: 1 - 0.999 };

/**
 * Conv2d (no bias) that pads like TensorFlow for stride 2: zero row/column at bottom/right only,
 * then a 'valid' convolution. Stride 1 uses ordinary symmetric padding (same as TF for odd kernels).
 */
export class KerasConv2d extends nn.Conv2d {
  constructor(cin: number, cout: number, kernel: number, readonly kerasStride: 1 | 2, groups = 1) {
    super(cin, cout, kernel, { stride: kerasStride, padding: kerasStride === 1 ? (kernel - 1) / 2 : 0, groups, bias: false });
  }
  override forward(x: Tensor): Tensor {
    if (this.kerasStride === 1 || this.kernelSize === 1) return super.forward(x);
    return tidy(() => super.forward(F.pad(x, [0, 1, 0, 1])));
  }
}

/** conv → BatchNorm → ReLU6 (torchvision's Conv2dNormActivation: children 0, 1, 2). */
export class ConvBNReLU6 extends nn.Sequential {
  constructor(cin: number, cout: number, kernel: number, stride: 1 | 2 = 1, groups = 1) {
    super(new KerasConv2d(cin, cout, kernel, stride, groups), new nn.BatchNorm2d(cout, KERAS_BN), new nn.ReLU6());
  }
}

export class InvertedResidual extends nn.Module {
  readonly conv: nn.Sequential;
  readonly useResidual: boolean;
  /** The depthwise 3x3 ConvBNReLU6 (conv.1, or conv.0 without expansion). */
  readonly depthwise: ConvBNReLU6;
  constructor(readonly cin: number, readonly cout: number, readonly stride: 1 | 2, readonly expansion: number) {
    super();
    const hidden = cin * expansion;
    const layers: nn.Module[] = [];
    if (expansion !== 1) layers.push(new ConvBNReLU6(cin, hidden, 1));
    this.depthwise = new ConvBNReLU6(hidden, hidden, 3, stride, hidden);
    layers.push(
      this.depthwise,
      new KerasConv2d(hidden, cout, 1, 1), // project (linear bottleneck: no activation)
      new nn.BatchNorm2d(cout, KERAS_BN),
    );
    this.conv = this.module('conv', new nn.Sequential(...layers));
    this.useResidual = stride === 1 && cin === cout;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const y = this.conv.forward(x);
      return this.useResidual ? y.add(x) : y;
    });
  }
}

export interface MobileNetV2Options {
  /** Width multiplier alpha (Keras `alpha`); the shipped ImageNet weights are 0.35. */
  widthMultiplier?: number;
}

/**
 * The precision policy (float32Modules): the blocks (features index) whose 1x1 convolutions compute in
 * bf16 under autocast — only Conv_1 (features.18: 320α → 1280 channels, the largest matrix product,
 * 10% of the multiply-adds); the stem and blocks 1-17 compute in fp32. Measured on Gardens Point
 * photos (ImageNet weights and the demo's trained GeM and NetVLAD models, 120x160 and 240x320): all in
 * bf16, MobileNetV2-0.35's descriptors are 9-15% off fp32. Its first blocks amplify rounding (the stem's
 * output rounded to bf16 alone moves the descriptors 1.8%); each convolution alone in bf16 moves them
 * 0.3-7% (block 1's most; rounding the folded weights is most of it), and these add up: the 7 least
 * sensitive 1x1 convolutions together (blocks 8-10 and Conv_1) are 0.7-1.1% off and still move recall
 * by up to 3 queries of 300; Conv_1 alone 0.3-0.45%, recall within one query of 300.
 */
export const MOBILENETV2_BF16_BLOCKS: readonly number[] = [18];

/** The last block (features index) frozen by `freezeReference`: block_12 = features.13. */
export const MOBILENETV2_LAST_FROZEN = 13;

/**
 * MobileNetV2 feature extractor (no classifier): [B, 3, H, W] in [-1, 1] → [B, 1280, h, w], each side
 * halved five times as ⌊n/2⌋ (H/32 for multiples of 32). Odd sizes follow model.json's fixed
 * ZeroPadding2D((0,1),(0,1)), not TensorFlow 'same' recomputed for the new size.
 */
export class MobileNetV2 extends nn.Module implements Backbone {
  readonly features: nn.Sequential;
  readonly outChannels: number;
  readonly inputNormalization = 'minus_one_one' as const;
  readonly widthMultiplier: number;
  constructor(options: MobileNetV2Options = {}) {
    super();
    const alpha = options.widthMultiplier ?? 0.35;
    if (!(alpha > 0)) throw new Error(`MobileNetV2: widthMultiplier must be > 0, got ${alpha}`);
    this.widthMultiplier = alpha;
    let cin = makeDivisible(32 * alpha);
    const blocks: nn.Module[] = [new ConvBNReLU6(3, cin, 3, 2)];
    for (const { t, c, n, s } of INVERTED_RESIDUAL_SETTINGS) {
      // Keras truncates before rounding: _make_divisible(int(filters * alpha), 8).
      const cout = makeDivisible(Math.trunc(c * alpha));
      for (let i = 0; i < n; i++) {
        blocks.push(new InvertedResidual(cin, cout, i === 0 ? (s as 1 | 2) : 1, t));
        cin = cout;
      }
    }
    // Keras keeps 1280 channels for alpha <= 1 and widens them only above.
    this.outChannels = alpha > 1 ? makeDivisible(1280 * alpha) : 1280;
    blocks.push(new ConvBNReLU6(cin, this.outChannels, 1));
    this.features = this.module('features', new nn.Sequential(...blocks));
    this.initialise();
  }

  /** Random init for training from scratch (torchvision's choice): He normal fan_out convs, BN 1/0. */
  private initialise(): void {
    for (const [, m] of this.namedModules()) {
      if (m instanceof nn.Conv2d) nn.init.kaimingNormalFanOut_(m.weight);
    }
  }

  forward(images: Tensor): Tensor {
    return tidy(() => this.features.forward(images));
  }

  /** features.0..features.13 (stem, expanded_conv, block_1..block_12) frozen; block_13+ and Conv_1 train. */
  freezeReference(): void {
    freezeModules(this.features.layers.slice(0, MOBILENETV2_LAST_FROZEN + 1));
  }

  /** Its precision policy (types.ts): all but the 1x1 convolutions of MOBILENETV2_BF16_BLOCKS compute in fp32 under autocast. */
  float32Modules(): nn.Module[] {
    return this.features.layers.flatMap((block, i) => {
      if (!MOBILENETV2_BF16_BLOCKS.includes(i)) return [block];
      return block instanceof InvertedResidual ? [block.depthwise] : [];
    });
  }

  /** Every convolution with the BatchNorm that follows it (for folding at inference). */
  convBnPairs(): nn.ConvBn[] {
    const pairs: nn.ConvBn[] = [];
    for (const [, m] of this.namedModules()) {
      if (!(m instanceof nn.Sequential)) continue;
      m.layers.forEach((conv, i) => {
        const bn = m.layers[i + 1];
        if (conv instanceof nn.Conv2d && bn instanceof nn.BatchNorm2d) pairs.push([conv, bn]);
      });
    }
    return pairs;
  }
}
