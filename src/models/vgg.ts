// VGG-16 trunk with torchvision's names (`features.0.weight` ... `features.28.bias`), cut as the
// geo-localization benchmark cuts it: `features[:-2]`, i.e. up to conv5_3 without its ReLU and the
// last max-pool → 512 channels at stride 16.
import { nn, tidy, Tensor, loadStateDict, type HostTensor, type LoadReport } from '../torch/index.ts';
import { readStateDict } from '../torch/serialization/index.ts';
import { freezeModules, type Backbone } from './types.ts';

/** torchvision's configuration 'D' (VGG-16): stage index of each 3x3 conv, 'M' for max-pool. */
const VGG16_LAYOUT: ReadonlyArray<number | 'M'> = [0, 0, 'M', 1, 1, 'M', 2, 2, 2, 'M', 3, 3, 3, 'M', 4, 4, 4, 'M'];
const VGG16_WIDTHS = [64, 128, 256, 512, 512] as const;
/** features[:-2] drops the final ReLU and MaxPool of torchvision's 31 feature layers. */
const CUT = 2;
/** Indices of conv5_1..conv5_3: the only layers the reference trains. */
export const VGG16_CONV5 = [24, 26, 28] as const;

export interface Vgg16Options {
  /** Channels of the five stages; torchvision's [64, 128, 256, 512, 512] by default (narrower for tests). */
  widths?: readonly number[];
}

export class Vgg16 extends nn.Module implements Backbone {
  readonly features: nn.Sequential;
  readonly outChannels: number;
  readonly inputNormalization = 'imagenet' as const;
  constructor(options: Vgg16Options = {}) {
    super();
    const widths = options.widths ?? VGG16_WIDTHS;
    if (widths.length !== 5 || !widths.every((w) => Number.isInteger(w) && w > 0)) {
      throw new Error(`Vgg16: widths must be 5 positive integers, got [${widths.join(', ')}]`);
    }
    const layers: nn.Module[] = [];
    let cin = 3;
    for (const v of VGG16_LAYOUT) {
      if (v === 'M') {
        layers.push(new nn.MaxPool2d(2, { stride: 2 }));
        continue;
      }
      const conv = new nn.Conv2d(cin, widths[v]!, 3, { padding: 1 });
      // torchvision: kaiming_normal_(mode='fan_out', nonlinearity='relu'), bias 0
      nn.init.kaimingNormalFanOut_(conv.weight);
      nn.init.constant_(conv.bias!, 0);
      layers.push(conv, new nn.ReLU());
      cin = widths[v]!;
    }
    this.features = this.module('features', new nn.Sequential(...layers.slice(0, layers.length - CUT)));
    this.outChannels = cin;
  }

  forward(images: Tensor): Tensor {
    return tidy(() => this.features.forward(images));
  }

  /** Only conv5_x (features.24, 26, 28) trains; everything before is frozen. */
  freezeReference(): void {
    freezeModules(this.features.layers.slice(0, VGG16_CONV5[0]));
  }

  /** No BatchNorm in VGG-16: the convolutions alone (biases kept), for channels-last inference. */
  convBnPairs(): nn.ConvBn[] {
    return this.features.layers.filter((m): m is nn.Conv2d => m instanceof nn.Conv2d).map((c) => [c, null] as const);
  }
}

export interface VggLoadReport extends LoadReport {
  /** Keys of the parts the cut removes (torchvision's `classifier.*`), read and left unused. */
  ignored: string[];
}

/**
 * Loads a torchvision VGG-16 state dict (ImageNet `.pth`, or any with the same names) into the
 * trunk. `classifier.*` keys are expected and ignored; anything else missing, unexpected or of the
 * wrong shape is an error naming `source`.
 */
export function loadVggStateDict(model: Vgg16, weights: Map<string, HostTensor>, source: string): VggLoadReport {
  const ignored = [...weights.keys()].filter((k) => k.startsWith('classifier.'));
  const kept = new Map([...weights].filter(([k]) => !k.startsWith('classifier.')));
  return { ...loadStateDict(model, kept, { source }), ignored };
}

/** Reads a `.pth` file (state dict at the top level or under state_dict/model_state_dict/model) and loads it. */
export async function loadVggWeights(model: Vgg16, path: string): Promise<VggLoadReport> {
  return loadVggStateDict(model, await readStateDict(path), path);
}
