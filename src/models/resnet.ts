// ResNet-18/50 with torchvision's module names (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, ...)
// so ImageNet `.pth` state dicts load by name. `depth` cuts the trunk: 'conv4' ends after layer3,
// 'conv5' after layer4 (the heads of place recognition replace avgpool + fc).
// Two flavours share the names: torchvision's (stride on the 3x3) and Keras' ResNet50 (the original v1
// block, stride on the first 1x1; its weights come from src/models/weights/keras-resnet50.ts).
import { nn, tidy, Tensor, loadStateDict, type LoadReport, type HostTensor } from '../torch/index.ts';
import { freezeModules, type Backbone } from './types.ts';

const conv3x3 = (cin: number, cout: number, stride = 1): nn.Conv2d =>
  new nn.Conv2d(cin, cout, 3, { stride, padding: 1, bias: false });
const conv1x1 = (cin: number, cout: number, stride = 1): nn.Conv2d =>
  new nn.Conv2d(cin, cout, 1, { stride, bias: false });

function downsample(cin: number, cout: number, stride: number): nn.Sequential | null {
  return stride !== 1 || cin !== cout ? new nn.Sequential(conv1x1(cin, cout, stride), new nn.BatchNorm2d(cout)) : null;
}

function downsamplePairs(ds: nn.Sequential | null): nn.ConvBn[] {
  return ds ? [[ds.at(0) as nn.Conv2d, ds.at(1) as nn.BatchNorm2d]] : [];
}

export class BasicBlock extends nn.Module {
  static readonly expansion = 1;
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.BatchNorm2d;
  readonly downsample: nn.Sequential | null;
  constructor(cin: number, planes: number, stride = 1) {
    super();
    this.conv1 = this.module('conv1', conv3x3(cin, planes, stride));
    this.bn1 = this.module('bn1', new nn.BatchNorm2d(planes));
    this.conv2 = this.module('conv2', conv3x3(planes, planes));
    this.bn2 = this.module('bn2', new nn.BatchNorm2d(planes));
    const ds = downsample(cin, planes, stride);
    this.downsample = ds && this.module('downsample', ds);
  }
  convBnPairs(): nn.ConvBn[] {
    return [[this.conv1, this.bn1], [this.conv2, this.bn2], ...downsamplePairs(this.downsample)];
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      // In place where torchvision is (inplace ReLU, out += identity): less memory traffic.
      let out = this.bn1.forward(this.conv1.forward(x)).relu_();
      out = this.bn2.forward(this.conv2.forward(out));
      const identity = this.downsample ? this.downsample.forward(x) : x;
      return out.add_(identity).relu_();
    });
  }
}

export interface BottleneckOptions {
  /**
   * Downsample in the first 1x1 conv (the original ResNet v1, Keras' ResNet50, Caffe's) instead of the
   * 3x3 (torchvision's "v1.5", default). Same parameters, different features: weights trained one way
   * are wrong the other way.
   */
  strideIn1x1?: boolean;
}

export class Bottleneck extends nn.Module {
  static readonly expansion = 4;
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.BatchNorm2d;
  readonly conv3: nn.Conv2d;
  readonly bn3: nn.BatchNorm2d;
  readonly downsample: nn.Sequential | null;
  readonly strideIn1x1: boolean;
  constructor(cin: number, planes: number, stride = 1, options: BottleneckOptions = {}) {
    super();
    const cout = planes * Bottleneck.expansion;
    this.strideIn1x1 = options.strideIn1x1 ?? false;
    const [stride1x1, stride3x3] = this.strideIn1x1 ? [stride, 1] : [1, stride];
    this.conv1 = this.module('conv1', conv1x1(cin, planes, stride1x1));
    this.bn1 = this.module('bn1', new nn.BatchNorm2d(planes));
    this.conv2 = this.module('conv2', conv3x3(planes, planes, stride3x3));
    this.bn2 = this.module('bn2', new nn.BatchNorm2d(planes));
    this.conv3 = this.module('conv3', conv1x1(planes, cout));
    this.bn3 = this.module('bn3', new nn.BatchNorm2d(cout));
    const ds = downsample(cin, cout, stride);
    this.downsample = ds && this.module('downsample', ds);
  }
  convBnPairs(): nn.ConvBn[] {
    return [[this.conv1, this.bn1], [this.conv2, this.bn2], [this.conv3, this.bn3], ...downsamplePairs(this.downsample)];
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let out = this.bn1.forward(this.conv1.forward(x)).relu_();
      out = this.bn2.forward(this.conv2.forward(out)).relu_();
      out = this.bn3.forward(this.conv3.forward(out));
      const identity = this.downsample ? this.downsample.forward(x) : x;
      return out.add_(identity).relu_();
    });
  }
}

export type ResNetName = 'resnet18' | 'resnet50';
export type Cut = 'conv4' | 'conv5';
const LAYERS: Record<ResNetName, { block: typeof BasicBlock | typeof Bottleneck; counts: number[] }> = {
  resnet18: { block: BasicBlock, counts: [2, 2, 2, 2] },
  resnet50: { block: Bottleneck, counts: [3, 4, 6, 3] },
};

/**
 * Which ResNet the weights were trained as. 'torchvision': stride on the 3x3, ImageNet mean/std input.
 * 'keras' (Keras' ResNet50, ResNet-50 only): stride on the first 1x1, Keras' "caffe" input (0–255
 * minus the mean, no std; see `Normalization` in src/data/image.ts).
 */
export const RESNET_FLAVOURS = ['torchvision', 'keras'] as const;
export type ResNetFlavour = (typeof RESNET_FLAVOURS)[number];

/** A stage of blocks (torchvision's `_make_layer`). */
export function makeLayer(
  block: typeof BasicBlock | typeof Bottleneck, cin: number, planes: number, count: number, stride: number, options: BottleneckOptions = {},
): nn.Sequential {
  if (options.strideIn1x1 && block !== Bottleneck) throw new Error('strideIn1x1: only a Bottleneck has a 1x1 conv to stride');
  const make = (c: number, s: number): nn.Module => (block === Bottleneck ? new Bottleneck(c, planes, s, options) : new BasicBlock(c, planes, s));
  const blocks: nn.Module[] = [make(cin, stride)];
  for (let i = 1; i < count; i++) blocks.push(make(planes * block.expansion, 1));
  return new nn.Sequential(...blocks);
}

export interface ResNetOptions {
  /** Narrower stage widths (tests, tiny experiments); default torchvision's [64, 128, 256, 512]. */
  widths?: number[];
  /** Default 'torchvision'. */
  flavour?: ResNetFlavour;
}

/** The ResNet trunk up to layer3 (conv4) or layer4 (conv5), torchvision-initialised. */
export class ResNetTrunk extends nn.Module implements Backbone {
  readonly flavour: ResNetFlavour;
  readonly inputNormalization: 'imagenet' | 'caffe';
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly maxpool = new nn.MaxPool2d(3, { stride: 2, padding: 1 });
  readonly layers: nn.Sequential[] = [];
  readonly outChannels: number;
  constructor(readonly arch: ResNetName, readonly cut: Cut, options: ResNetOptions = {}) {
    super();
    const { block, counts } = LAYERS[arch];
    this.flavour = options.flavour ?? 'torchvision';
    if (this.flavour === 'keras' && arch !== 'resnet50') throw new Error(`the keras ResNet flavour is Keras' ResNet50; ${arch} has no such variant`);
    this.inputNormalization = this.flavour === 'keras' ? 'caffe' : 'imagenet';
    const widths = options.widths ?? [64, 128, 256, 512];
    this.conv1 = this.module('conv1', new nn.Conv2d(3, widths[0], 7, { stride: 2, padding: 3, bias: false }));
    this.bn1 = this.module('bn1', new nn.BatchNorm2d(widths[0]));
    const stages = cut === 'conv4' ? 3 : 4;
    const blockOptions: BottleneckOptions = { strideIn1x1: this.flavour === 'keras' };
    let cin = widths[0];
    for (let i = 0; i < stages; i++) {
      this.layers.push(this.module(`layer${i + 1}`, makeLayer(block, cin, widths[i], counts[i], i === 0 ? 1 : 2, blockOptions)));
      cin = widths[i] * block.expansion;
    }
    this.outChannels = cin;
    for (const [, m] of this.namedModules()) {
      if (m instanceof nn.Conv2d) nn.init.kaimingNormalFanOut_(m.weight);
    }
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let y = this.bn1.forward(this.conv1.forward(x)).relu_();
      y = this.maxpool.forward(y);
      for (const layer of this.layers) y = layer.forward(y);
      return y;
    });
  }
  /** Every convolution with the BatchNorm that follows it (for folding at inference). */
  convBnPairs(): nn.ConvBn[] {
    const pairs: nn.ConvBn[] = [[this.conv1, this.bn1]];
    for (const layer of this.layers) for (const b of layer.layers) pairs.push(...(b as BasicBlock | Bottleneck).convBnPairs());
    return pairs;
  }
  /** The reference recipe trains layer3 (and layer4) only: conv1, bn1, layer1, layer2 are frozen. */
  freezeReference(): void {
    freezeModules([this.conv1, this.bn1, this.layers[0], this.layers[1]]);
  }
}

const FLAVOUR_WORDS: Record<ResNetFlavour, string> = {
  torchvision: 'torchvision flavour (stride on the 3x3, ImageNet mean/std input)',
  keras: "keras flavour (Keras' ResNet50: stride on the first 1x1, caffe input)",
};

/**
 * Loads an ImageNet ResNet state dict into a trunk. Keys of the parts the cut removes (`fc.*`, and
 * `layer4.*` for conv4) are expected and skipped; anything else missing, unexpected or of the wrong
 * shape is an error naming the file. `flavour` is what the file was trained as: the names and shapes
 * of both flavours agree, so only this check stops weights landing in the wrong block variant.
 */
export function loadResNetWeights(trunk: ResNetTrunk, weights: Map<string, HostTensor>, source: string, flavour: ResNetFlavour = 'torchvision'): LoadReport {
  if (flavour !== trunk.flavour) {
    throw new Error(`${source}: ResNet weights of the ${FLAVOUR_WORDS[flavour]}, but the model was built as ${FLAVOUR_WORDS[trunk.flavour]}; `
      + `build it with resnetFlavour '${flavour}' (--resnet-flavour ${flavour}), or leave resnetFlavour unset to follow the weights file`);
  }
  const skipped = trunk.cut === 'conv4' ? ['fc.', 'layer4.'] : ['fc.'];
  const kept = new Map([...weights].filter(([k]) => !skipped.some((p) => k.startsWith(p))));
  return loadStateDict(trunk, kept, { source });
}
