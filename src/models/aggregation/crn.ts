// CRN head (Kim, Dunn & Frahm 2017, "Learned Contextual Feature Reweighting"): NetVLAD whose soft
// assignment is multiplied by a spatial mask computed from context. Parameter names follow the
// benchmark's implementation: `crn.filter_3_3`, `crn.filter_5_5`, `crn.filter_7_7`, `crn.acc_w`.
import { nn, tidy, cat, F, type Tensor } from '../../torch/index.ts';
import { netvlad, l2n } from '../functional.ts';
import { NetVLAD, NETVLAD_OPTIONS, type NetVLADOptions } from './netvlad.ts';
import { defineHead } from './entry.ts';
import { checkFeatures } from './check.ts';
import type { AggregationHead } from '../types.ts';

/** Xavier (Glorot) normal: std = √(2 / (fan_in + fan_out)). */
function xavierNormal_(t: Tensor): void {
  const { fanIn, fanOut } = nn.init.fans(t.shape);
  nn.init.normal_(t, 0, Math.sqrt(2 / (fanIn + fanOut)));
}

/** The contextual reweighting network: feature map [B, C, H, W] → mask [B, 1, H, W] (≥ 0). */
export class CRNModule extends nn.Module {
  readonly filter_3_3: nn.Conv2d;
  readonly filter_5_5: nn.Conv2d;
  readonly filter_7_7: nn.Conv2d;
  readonly acc_w: nn.Conv2d;
  constructor(readonly inChannels: number) {
    super();
    this.filter_3_3 = this.module('filter_3_3', new nn.Conv2d(inChannels, 32, 3, { padding: 1 }));
    this.filter_5_5 = this.module('filter_5_5', new nn.Conv2d(inChannels, 32, 5, { padding: 2 }));
    this.filter_7_7 = this.module('filter_7_7', new nn.Conv2d(inChannels, 20, 7, { padding: 3 }));
    this.acc_w = this.module('acc_w', new nn.Conv2d(84, 1, 1));
    for (const f of [this.filter_3_3, this.filter_5_5, this.filter_7_7]) {
      xavierNormal_(f.weight);
      nn.init.constant_(f.bias!, 0);
    }
    // The accumulation weights start as a plain sum of the context responses and stay fixed, as in
    // the reference implementation.
    nn.init.constant_(this.acc_w.weight, 1);
    nn.init.constant_(this.acc_w.bias!, 0);
    this.acc_w.requiresGrad_(false);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [, , h, w] = x.shape;
      // 3x3 average pooling, stride 2, ceil mode: the context is gathered on a half-resolution map.
      const small = F.avgPool2d(x, 3, { stride: 2, ceilMode: true });
      const g = cat([this.filter_3_3.forward(small), this.filter_5_5.forward(small), this.filter_7_7.forward(small)], 1).relu();
      const weights = this.acc_w.forward(g).relu();
      // Back to the input's size (the reference's scale factor 2 gives the same grid for even H, W).
      return F.interpolate(weights, [h, w], 'bilinear', false);
    });
  }
}

export type CRNOptions = NetVLADOptions;

export class CRN extends NetVLAD implements AggregationHead {
  readonly crn: CRNModule;
  constructor(inChannels: number, options: CRNOptions = {}) {
    super(inChannels, options);
    this.crn = this.module('crn', new CRNModule(inChannels));
  }
  override forward(x: Tensor): Tensor {
    checkFeatures(x, this.inChannels, 'CRN');
    return tidy(() => {
      const xn = this.normalizeInput ? l2n(x, 1) : x;
      return netvlad(xn, this.conv.weight, this.centroids, false, this.crn.forward(xn));
    });
  }
  /** The trainable CRN-layer parameters (trained with a higher learning rate than the rest). */
  crnParameters(): Tensor[] {
    return this.crn.trainableParameters();
  }
}

/** Whether a parameter name (as in namedParameters) belongs to CRN layers, at any nesting depth. */
export function isCrnParameterName(name: string): boolean {
  return name.split('.').includes('crn');
}

export const crnHead = defineHead({
  name: 'crn', label: 'CRN', description: 'NetVLAD with contextual feature reweighting (Kim et al. 2017)',
  options: NETVLAD_OPTIONS,
  create: (c, o) => new CRN(c, { clusters: o.netvladClusters }),
  // As the reference trains it: from a trained NetVLAD, the CRN layers at lr_crn_layer, the rest at lr_crn_net.
  training: {
    startsFrom: { head: 'netvlad', label: 'NetVLAD' }, isOwnLayer: isCrnParameterName,
    learningRates: { ownLayers: 'lrCrnLayer', rest: 'lrCrnNet' },
  },
});
