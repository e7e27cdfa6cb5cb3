// A place-recognition network: backbone (local features) → aggregation head (global descriptor),
// assembled from a typed config. State-dict names are `backbone.*` and `aggregation.*`, with the
// torchvision names inside the backbone.
import { nn, tidy, Tensor, inferenceMode, inFloat32, atLeastFloat32, withPrecision, type Precision } from '../torch/index.ts';
import { freezeModules, type Backbone, type AggregationHead } from './types.ts';
import { ResNetTrunk, loadResNetWeights, type ResNetName, type Cut, type ResNetFlavour } from './resnet.ts';
import { MobileNetV2 } from './mobilenetv2.ts';
import { Vgg16, loadVggWeights } from './vgg.ts';
import { loadKerasWeights } from './weights/keras-mobilenetv2.ts';
import { readResNetWeights } from './weights/keras-resnet50.ts';
import { HEADS, AGGREGATION_NAMES, takesGlobalToken, type AggregationName, type HeadOptions } from './aggregation/index.ts';
import { VisionTransformer, VIT_B16, loadViTWeightsFile } from './vit.ts';
import { CCT, CCT_14_7X2, loadCCTWeightsFile } from './cct.ts';
import type { TransformerConfig } from './transformer.ts';

export const BACKBONE_FREEZE = ['reference', 'none', 'all'] as const;
export type BackboneFreeze = (typeof BACKBONE_FREEZE)[number];

export const BACKBONE_NAMES = [
  'resnet18conv4', 'resnet18conv5', 'resnet50conv4', 'resnet50conv5', 'vgg16', 'mobilenetv2', 'vit', 'vit384', 'cct224', 'cct384',
] as const;
export type BackboneName = (typeof BACKBONE_NAMES)[number];

export interface NetworkConfig {
  backbone: BackboneName;
  aggregation: AggregationName;
  head?: HeadOptions;
  /** Narrower ResNet widths (tests and tiny experiments); default torchvision's. */
  resnetWidths?: number[];
  /** ResNet block variant and input the weights need (src/models/resnet.ts); default torchvision. */
  resnetFlavour?: ResNetFlavour;
  /** Transformer backbones: truncation, freezing, a smaller shape (src/models/transformer.ts). */
  transformer?: TransformerConfig;
}

interface BackboneEntry {
  create(config: NetworkConfig): Backbone;
  /** A transformer: honours config.transformer and can output its global token (the cls head). */
  transformer?: true;
  /** Loads ImageNet weights from a local file or folder into the backbone. */
  loadPretrained(backbone: Backbone, path: string): Promise<void>;
}

function resnet(arch: ResNetName, cut: Cut): BackboneEntry {
  return {
    create: (c) => new ResNetTrunk(arch, cut, { widths: c.resnetWidths, flavour: c.resnetFlavour }),
    loadPretrained: async (b, path) => {
      const { stateDict, flavour } = await readResNetWeights(path);
      loadResNetWeights(b as ResNetTrunk, stateDict, path, flavour);
    },
  };
}

/** A transformer outputs its global token for the cls head, else its patch tokens as a map. */
const tokenOutput = (c: NetworkConfig) => (takesGlobalToken(c.aggregation) ? 'token' as const : 'grid' as const);

/** Backbones by name: the CLI, trainer and evaluator read this table and nothing else. */
export const BACKBONES: Record<BackboneName, BackboneEntry> = {
  resnet18conv4: resnet('resnet18', 'conv4'),
  resnet18conv5: resnet('resnet18', 'conv5'),
  resnet50conv4: resnet('resnet50', 'conv4'),
  resnet50conv5: resnet('resnet50', 'conv5'),
  vgg16: {
    create: () => new Vgg16(),
    loadPretrained: async (b, path) => {
      await loadVggWeights(b as Vgg16, path);
    },
  },
  mobilenetv2: {
    create: () => new MobileNetV2(),
    loadPretrained: async (b, path) => {
      await loadKerasWeights(b as MobileNetV2, path);
    },
  },
  // ViT-B/16 with position embeddings for 224 (timm's vit_base_patch16_224) or 384 (_384); both run
  // at any input size. The reference's `vit` loads one or the other by --resize.
  vit: {
    transformer: true,
    create: (c) => new VisionTransformer(VIT_B16, { ...c.transformer, output: tokenOutput(c) }),
    loadPretrained: async (b, path) => {
      await loadViTWeightsFile(b as VisionTransformer, path);
    },
  },
  vit384: {
    transformer: true,
    create: (c) => new VisionTransformer({ ...VIT_B16, imageSize: 384 }, { ...c.transformer, output: tokenOutput(c) }),
    loadPretrained: async (b, path) => {
      await loadViTWeightsFile(b as VisionTransformer, path);
    },
  },
  // CCT-14/7x2 with position embeddings for 224 or 384 (the reference's cct384, the authors' ImageNet models).
  cct224: {
    transformer: true,
    create: (c) => new CCT({ ...CCT_14_7X2, imageSize: 224 }, { ...c.transformer, output: tokenOutput(c) }),
    loadPretrained: async (b, path) => {
      await loadCCTWeightsFile(b as CCT, path);
    },
  },
  cct384: {
    transformer: true,
    create: (c) => new CCT(CCT_14_7X2, { ...c.transformer, output: tokenOutput(c) }),
    loadPretrained: async (b, path) => {
      await loadCCTWeightsFile(b as CCT, path);
    },
  },
};

/** The transformer options set in a config (empty when none is). */
function transformerOptionsSet(c: NetworkConfig): string[] {
  const t = c.transformer ?? {};
  return [['truncate', '--trunc-te'], ['freeze', '--freeze-te'], ['dims', '--transformer-dims']]
    .filter(([k]) => t[k as keyof TransformerConfig] !== undefined).map(([, flag]) => flag);
}

export class GeoLocalizationNet extends nn.Module {
  readonly backbone: Backbone;
  readonly aggregation: AggregationHead;
  constructor(readonly config: NetworkConfig) {
    super();
    const entry = BACKBONES[config.backbone] as BackboneEntry | undefined;
    if (!entry) throw new Error(`unknown backbone '${config.backbone}' (known: ${BACKBONE_NAMES.join(', ')})`);
    const head = HEADS[config.aggregation];
    if (!head) throw new Error(`unknown aggregation '${config.aggregation}' (known: ${AGGREGATION_NAMES.join(', ')})`);
    if (!entry.transformer) {
      const transformers = BACKBONE_NAMES.filter((n) => BACKBONES[n].transformer).join(', ');
      if (takesGlobalToken(config.aggregation)) {
        throw new Error(`aggregation '${config.aggregation}' uses a transformer's global token, which ${config.backbone} does not have; choose a transformer backbone (${transformers})`);
      }
      const set = transformerOptionsSet(config);
      if (set.length > 0) throw new Error(`${set.join(', ')}: for transformer backbones (${transformers}), not ${config.backbone}`);
    }
    this.backbone = this.module('backbone', entry.create(config));
    for (const m of this.backbone.float32Modules?.() ?? []) nn.keepFloat32(m);
    this.aggregation = this.module('aggregation', head(this.backbone.outChannels, config.head ?? {}));
  }
  get dim(): number {
    return this.aggregation.dim;
  }
  get inputNormalization(): Backbone['inputNormalization'] {
    return this.backbone.inputNormalization;
  }
  /**
   * Images [B, 3, H, W] → descriptors [B, D] (unit length, except shallow heads under --l2 before_pool / none).
   * Under bf16 autocast the backbone computes in bf16 (but for the modules its precision policy keeps
   * in fp32, float32Modules); the head always in fp32 (aggregate).
   */
  forward(images: Tensor): Tensor {
    return tidy(() => this.aggregate(this.backbone.forward(images)));
  }
  /**
   * The head on the backbone's maps, in fp32 whatever they were computed in: NetVLAD's soft assignment
   * and every normalisation stay fp32 (autocast would leave a softmax of bf16 maps in bf16), and the
   * descriptors handed to losses, search and recall are fp32. The head costs little beside the backbone.
   */
  private aggregate(maps: Tensor): Tensor {
    return inFloat32(() => this.aggregation.forward(atLeastFloat32(maps)));
  }
  /** Local feature maps [B, C, h, w] (for NetVLAD's k-means initialisation). */
  features(images: Tensor): Tensor {
    return this.backbone.forward(images);
  }
  async loadPretrained(path: string): Promise<void> {
    await BACKBONES[this.config.backbone].loadPretrained(this.backbone, path);
  }
  freezeReference(): void {
    this.backbone.freezeReference();
  }
  /**
   * Which backbone layers train: 'reference' (the reference's choice per backbone, e.g. ResNet from
   * layer3, MobileNetV2 from block_13; transformers: --freeze-te, else all train), 'none' frozen (all
   * train), 'all' frozen (only the head trains).
   */
  freezeBackbone(which: BackboneFreeze): void {
    if (which === 'reference') this.backbone.freezeReference();
    else if (which === 'all') freezeModules([this.backbone]);
  }
  summary(): { backbone: BackboneName; aggregation: AggregationName; descriptorDim: number; parameters: number; trainableParameters: number } {
    return {
      backbone: this.config.backbone, aggregation: this.config.aggregation, descriptorDim: this.dim,
      parameters: this.parameterCount(), trainableParameters: this.parameterCount(true),
    };
  }

  /**
   * Runs fn with the fastest inference path: eval mode, inference mode, BatchNorm folded into the
   * convolutions and channels-last inputs; with precision 'bf16', folded weights in bf16 and the
   * backbone under bf16 autocast (the modules its precision policy keeps in fp32 with fp32 weights, the
   * head in fp32, as in forward()). The given forward returns fp32 descriptors, those of forward() up
   * to the precision. The trained weights are untouched; the previous train/eval mode is restored
   * afterwards.
   */
  async fastInference<T>(fn: (forward: (images: Tensor) => Tensor) => T | Promise<T>, options: { precision?: Precision } = {}): Promise<T> {
    const precision = options.precision ?? 'fp32';
    const device = this.parameters()[0]?.device.startsWith('cuda') ? 'cuda' : 'cpu';
    const wasTraining = this.training;
    this.eval();
    const unfold = nn.foldForInference(this.backbone.convBnPairs?.() ?? [], true, precision === 'bf16' ? 'bfloat16' : 'float32');
    const forward = (images: Tensor): Tensor => inferenceMode(() => tidy(() => {
      const maps = withPrecision(precision, () => this.backbone.forward(nn.toChannelsLast(images)).contiguous(), device);
      return this.aggregate(maps);
    }));
    try {
      return await fn(forward);
    } finally {
      unfold();
      this.train(wasTraining);
    }
  }

  /** This network as evaluation sees it, computing with the fast inference path (inside fastInference). */
  asDescriptorModel(forward: (images: Tensor) => Tensor): { forward: (images: Tensor) => Tensor; dim: number; inputNormalization: Backbone['inputNormalization']; eval: () => void } {
    return { forward, dim: this.dim, inputNormalization: this.inputNormalization, eval: () => undefined };
  }
}

export function buildNetwork(config: NetworkConfig): GeoLocalizationNet {
  return new GeoLocalizationNet(config);
}
