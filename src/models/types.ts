// The two halves of a place-recognition network and the contracts between them.
// A backbone maps images [B, 3, H, W] to a local feature map [B, C, h, w]; an aggregation head maps
// that map to one global descriptor per image [B, D] (L2-normalised by the network).
import { nn, type Tensor } from '../torch/index.ts';
import type { Normalization } from '../data/image.ts';

export interface Backbone extends nn.Module {
  /**
   * Images → [B, C, h, w]. Transformers (vit.ts, cct.ts) give their patch tokens as this map, or, built
   * for the cls head, their global token as a [B, C, 1, 1] map.
   */
  forward(images: Tensor): Tensor;
  /** Channels C of the feature map. */
  readonly outChannels: number;
  /** Freezes the layers the reference keeps fixed (requires_grad off, frozen BatchNorm in eval; transformers: --freeze-te). */
  freezeReference(): void;
  /** How input pixels are expected: ImageNet mean/std, scaled to [-1, 1] (Keras MobileNetV2), or 0-255 minus the mean (caffe: Keras' ResNet50). */
  readonly inputNormalization: Exclude<Normalization, 'unit'>;
  /** Convolutions and their BatchNorms, for folding at inference (optional). */
  convBnPairs?(): nn.ConvBn[];
  /**
   * Its precision policy: the modules that compute in fp32 under bf16 autocast, their inputs widened
   * (the network applies nn.keepFloat32 to each). Absent: every module autocasts (ResNet, VGG, the
   * transformers).
   */
  float32Modules?(): nn.Module[];
}

export interface AggregationHead extends nn.Module {
  forward(features: Tensor): Tensor;
  /** Descriptor dimension D for the channel count given at construction. */
  readonly dim: number;
}

/** Heads that need data before training (NetVLAD's clusters) implement this. */
export interface DataInitialisedHead extends AggregationHead {
  /** Initialises from local descriptors [N, C] sampled from training images. */
  initFromDescriptors(descriptors: Tensor, seed: number): void;
}

export function isDataInitialised(h: AggregationHead): h is DataInitialisedHead {
  return typeof (h as DataInitialisedHead).initFromDescriptors === 'function';
}

/** Stops training of these modules: parameters stop requiring grad, BatchNorm keeps running statistics. */
export function freezeModules(modules: nn.Module[]): void {
  for (const m of modules) {
    m.requiresGrad_(false);
    for (const [, sub] of m.namedModules()) {
      if (sub instanceof nn.BatchNorm2d) {
        sub.frozen = true;
        sub.training = false;
      }
    }
  }
}
