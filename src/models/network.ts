// A place-recognition network: backbone (local features) → aggregation head (global descriptor),
// assembled from a typed config. State-dict names are `backbone.*` and `aggregation.*`, with the
// torchvision names inside the backbone.
import { nn, tidy, Tensor, inferenceMode, inFloat32, atLeastFloat32, withPrecision, type Precision } from '../torch/index.ts';
import { freezeModules, type Backbone, type AggregationHead } from './types.ts';
import { z } from 'zod';
import { ResNetTrunk, loadResNetWeights, RESNET_FLAVOURS, type ResNetName, type Cut } from './resnet.ts';
import { MobileNetV2 } from './mobilenetv2.ts';
import { Vgg16, loadVggWeights } from './vgg.ts';
import { loadKerasWeights } from './weights/keras-mobilenetv2.ts';
import { readResNetWeights } from './weights/keras-resnet50.ts';
import { HEADS, AGGREGATION_NAMES, takesGlobalToken, type AggregationName, type HeadOptionValues } from './aggregation/index.ts';
import { VisionTransformer, VIT_B16, loadViTWeightsFile } from './vit.ts';
import { CCT, CCT_14_7X2, loadCCTWeightsFile } from './cct.ts';
import { mergeOptions, namesOf, optionsFor, componentsDeclaring, type Component, type OptionShape } from '../util/components.ts';
import { OptionError } from '../errors.ts';

export const BACKBONE_FREEZE = ['reference', 'none', 'all'] as const;
export type BackboneFreeze = (typeof BACKBONE_FREEZE)[number];

/** The options of the ResNet backbones, declared once. */
const RESNET_OPTIONS = {
  resnetWidths: z.array(z.number().int().positive()).length(4).optional().describe('narrower ResNet stage widths, e.g. 16,32,64,128 (tests, tiny experiments)'),
  resnetFlavour: z.enum(RESNET_FLAVOURS).optional()
    .describe("ResNet variant: torchvision (stride on the 3x3, ImageNet mean/std) or keras (Keras' ResNet50: stride on the first 1x1, caffe input); default: what the weights file declares (make weights writes a keras one), else torchvision"),
};

/** The options of the transformer backbones (the reference's --trunc_te, --freeze_te), declared once. */
const TRANSFORMER_OPTIONS = {
  truncTe: z.number().int().positive().optional().describe("transformer backbones (vit*, cct*): keep encoder blocks 0..N-1 only (the reference's --trunc_te)"),
  freezeTe: z.number().int().min(0).optional()
    .describe("transformer backbones: freeze the embeddings, encoder blocks 0..N and the final norm, train the blocks after N (the reference's --freeze_te; with --freeze-backbone reference)"),
  transformerDims: z.array(z.number().int().positive()).length(3).optional().describe('smaller transformer: depth,width,heads, e.g. 2,32,4 (tests, tiny experiments)'),
};

type ResNetOptionValues = z.output<z.ZodObject<typeof RESNET_OPTIONS>>;
type TransformerOptionValues = z.output<z.ZodObject<typeof TRANSFORMER_OPTIONS>>;

/** A backbone's registry entry: its name, its options (declared once), how to build it and load ImageNet weights. */
interface BackboneEntry<N extends string = string, O extends OptionShape = OptionShape> extends Component<N, O> {
  /** Builds it for a head (a transformer outputs its global token for a head that takes it). */
  create(options: z.output<z.ZodObject<O>>, aggregation: AggregationName): Backbone;
  /** A transformer: can output its global token (the cls head). */
  transformer?: true;
  /** Loads ImageNet weights from a local file or folder into the backbone. */
  loadPretrained(backbone: Backbone, path: string): Promise<void>;
}

const defineBackbone = <N extends string, O extends OptionShape>(e: BackboneEntry<N, O>): BackboneEntry<N, O> => e;

function resnet<N extends string>(name: N, arch: ResNetName, cut: Cut) {
  return defineBackbone({
    name, options: RESNET_OPTIONS,
    create: (o) => new ResNetTrunk(arch, cut, { widths: o.resnetWidths, flavour: o.resnetFlavour }),
    loadPretrained: async (b, path) => {
      const { stateDict, flavour } = await readResNetWeights(path);
      loadResNetWeights(b as ResNetTrunk, stateDict, path, flavour);
    },
  });
}

/** A transformer outputs its global token for the cls head, else its patch tokens as a map. */
const transformerOptions = (o: TransformerOptionValues, aggregation: AggregationName) =>
  ({ truncate: o.truncTe, freeze: o.freezeTe, dims: o.transformerDims, output: takesGlobalToken(aggregation) ? 'token' as const : 'grid' as const });

function transformer<N extends string>(name: N, create: (o: ReturnType<typeof transformerOptions>) => Backbone, load: (b: Backbone, path: string) => Promise<void>) {
  return defineBackbone({
    name, options: TRANSFORMER_OPTIONS, transformer: true,
    create: (o, aggregation) => create(transformerOptions(o, aggregation)),
    loadPretrained: load,
  });
}

/** The backbones, one line each: the CLI, trainer and evaluator read this table and nothing else. */
export const BACKBONE_ENTRIES = [
  resnet('resnet18conv4', 'resnet18', 'conv4'),
  resnet('resnet18conv5', 'resnet18', 'conv5'),
  resnet('resnet50conv4', 'resnet50', 'conv4'),
  resnet('resnet50conv5', 'resnet50', 'conv5'),
  defineBackbone({ name: 'vgg16', options: {}, create: () => new Vgg16(), loadPretrained: (b, path) => loadVggWeights(b as Vgg16, path).then(() => undefined) }),
  defineBackbone({ name: 'mobilenetv2', options: {}, create: () => new MobileNetV2(), loadPretrained: (b, path) => loadKerasWeights(b as MobileNetV2, path).then(() => undefined) }),
  // ViT-B/16 with position embeddings for 224 (timm's vit_base_patch16_224) or 384 (_384); both run
  // at any input size. The reference's `vit` loads one or the other by --resize.
  transformer('vit', (o) => new VisionTransformer(VIT_B16, o), loadViT),
  transformer('vit384', (o) => new VisionTransformer({ ...VIT_B16, imageSize: 384 }, o), loadViT),
  // CCT-14/7x2 with position embeddings for 224 or 384 (the reference's cct384, the authors' ImageNet models).
  transformer('cct224', (o) => new CCT({ ...CCT_14_7X2, imageSize: 224 }, o), loadCCT),
  transformer('cct384', (o) => new CCT(CCT_14_7X2, o), loadCCT),
] as const;

async function loadViT(b: Backbone, path: string): Promise<void> {
  await loadViTWeightsFile(b as VisionTransformer, path);
}
async function loadCCT(b: Backbone, path: string): Promise<void> {
  await loadCCTWeightsFile(b as CCT, path);
}

export const BACKBONE_NAMES = namesOf<(typeof BACKBONE_ENTRIES)[number]['name']>(BACKBONE_ENTRIES);
export type BackboneName = (typeof BACKBONE_NAMES)[number];
export const BACKBONES = Object.fromEntries(BACKBONE_ENTRIES.map((e) => [e.name, e])) as unknown as Record<BackboneName, BackboneEntry>;

/** Every backbone's options as specs, configs and flags spell them (ModelSpecShape spreads this shape). */
export const BACKBONE_OPTIONS = mergeOptions(BACKBONE_ENTRIES, 'backbones');
export type BackboneOptionValues = ResNetOptionValues & TransformerOptionValues;

/**
 * The backbone options set in `values` that `backbone` does not declare (e.g. resnetWidths for a VGG):
 * each with the backbones it applies to. The network refuses them; a config reports them when parsed.
 */
export function foreignBackboneOptions(backbone: BackboneName, values: Record<string, unknown>): { key: string; message: string }[] {
  return Object.keys(BACKBONE_OPTIONS).filter((key) => values[key] !== undefined && !(key in BACKBONES[backbone].options)).map((key) => {
    const owners = componentsDeclaring(BACKBONE_ENTRIES, key);
    return { key, message: `applies to ${owners.join(', ')} only, not ${backbone}` };
  });
}

/** The network a config describes: a backbone, a head (`<block>+<head>`), and their options as specs spell them. */
export type NetworkConfig = { backbone: BackboneName; aggregation: AggregationName } & Partial<BackboneOptionValues> & Partial<HeadOptionValues>;

export class GeoLocalizationNet extends nn.Module {
  readonly backbone: Backbone;
  readonly aggregation: AggregationHead;
  constructor(readonly config: NetworkConfig) {
    super();
    const entry = BACKBONES[config.backbone] as BackboneEntry | undefined;
    if (!entry) throw new Error(`unknown backbone '${config.backbone}' (known: ${BACKBONE_NAMES.join(', ')})`);
    const head = HEADS[config.aggregation];
    if (!head) throw new Error(`unknown aggregation '${config.aggregation}' (known: ${AGGREGATION_NAMES.join(', ')})`);
    if (!entry.transformer && takesGlobalToken(config.aggregation)) {
      const transformers = BACKBONE_ENTRIES.filter((e) => 'transformer' in e).map((e) => e.name).join(', ');
      throw new Error(`aggregation '${config.aggregation}' uses a transformer's global token, which ${config.backbone} does not have; choose a transformer backbone (${transformers})`);
    }
    const foreign = foreignBackboneOptions(config.backbone, config);
    if (foreign.length > 0) throw new OptionError(foreign[0].key, foreign[0].message);
    this.backbone = this.module('backbone', entry.create(optionsFor(entry, config), config.aggregation));
    for (const m of this.backbone.float32Modules?.() ?? []) nn.keepFloat32(m);
    this.aggregation = this.module('aggregation', head(this.backbone.outChannels, config));
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
    return tidy(() => this.aggregate(this.#channelsLast ? this.backbone.forward(images.contiguous(true)).contiguous() : this.backbone.forward(images)));
  }
  #channelsLast = false;
  /**
   * A convolutional backbone's 4-D weights put in channels-last order, in place (optimizers keep their
   * tensors), and forward() feeding it channels-last images, as PyTorch's
   * model.to(memory_format=torch.channels_last): oneDNN's convolutions then run on the tensors as they
   * are, without converting NCHW to their blocked layout and back around every convolution (a quarter
   * of a bf16 training step of ResNet-18 conv4 at 480x640; docs/precision.md). Checkpoints are written
   * in the usual order. No-op for transformers. Returns whether the network is now channels-last.
   */
  toChannelsLast(): boolean {
    if (BACKBONES[this.config.backbone].transformer === true) return false;
    for (const [, t] of [...this.namedParameters(), ...this.namedBuffers()]) if (t.shape.length === 4 && !t.isContiguous(true)) t.setData_(t.contiguous(true));
    this.#channelsLast = true;
    return true;
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
    return this.#channelsLast ? tidy(() => this.backbone.forward(images.contiguous(true)).contiguous()) : this.backbone.forward(images);
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
