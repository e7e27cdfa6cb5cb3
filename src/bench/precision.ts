// `vgl bench precision`: bf16 against fp32 for the networks the demo and the studies train, at the
// sizes they use, on this CPU: a training pass (forward and backward of 12 images, channels-last and
// with the layers that train in their runs, as vgl train runs it; the pass `auto` times), extraction
// per image (the fast inference path), and how far the bf16
// descriptors are from fp32 ones on real night photos (the check `auto` makes, with each backbone's
// precision policy) — and so which precision `auto` takes for each.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../torch/index.ts';
import { buildNetwork, type NetworkConfig } from '../models/network.ts';
import { MOBILENETV2_035_WEIGHTS_DIR } from '../models/weights/keras-mobilenetv2.ts';
import { RESNET50_KERAS_WEIGHTS } from '../models/weights/keras-resnet50.ts';
import { checkBf16Descriptors, timePass, bf16Pays } from '../eval/precision-check.ts';
import { medianMs } from './timing.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const NIGHT_PHOTOS = join(REPO, 'assets/real/gardens_point/night_right');

export interface PrecisionCase {
  label: string;
  network: NetworkConfig;
  /** ImageNet weights (descriptor errors on random weights say little), when on disk. */
  weights?: string;
  /** Which layers train, as its runs train them. */
  freeze: 'reference' | 'none';
}

export const PRECISION_CASES: PrecisionCase[] = [
  { label: 'MobileNetV2-0.35 + NetVLAD (the demo)', network: { backbone: 'mobilenetv2', aggregation: 'netvlad', netvladClusters: 32 }, weights: MOBILENETV2_035_WEIGHTS_DIR, freeze: 'none' },
  { label: 'ResNet-18 conv4 + NetVLAD (the seed)', network: { backbone: 'resnet18conv4', aggregation: 'netvlad' }, freeze: 'reference' },
  { label: 'ResNet-50 conv4 + GeM (real places)', network: { backbone: 'resnet50conv4', aggregation: 'gem', resnetFlavour: 'keras' }, weights: RESNET50_KERAS_WEIGHTS, freeze: 'reference' },
];
export const PRECISION_SIZES: [number, number][] = [[120, 160], [240, 320], [480, 640]];

export interface PrecisionRow {
  network: string;
  size: string;
  weights: 'imagenet' | 'random';
  trainImages: number;
  fp32: { trainMs: number; extractMsPerImage: number };
  bf16: { trainMs: number; extractMsPerImage: number };
  /** fp32 time / bf16 time. */
  speedup: { train: number; extract: number };
  /** Mean ‖d_bf16 − d_fp32‖ / ‖d_fp32‖ over 8 night photos (the check `auto` makes). */
  descriptorError: number;
  /** What `auto` takes: bf16 when it is within the check's limit and fast enough (bf16Pays). */
  auto: { train: torch.Precision; extract: torch.Precision };
}

export async function benchPrecision(o: { iters: number; trainImages: number; extractBatch: number; cases?: PrecisionCase[]; sizes?: [number, number][]; log?: (s: string) => void }): Promise<PrecisionRow[]> {
  const photos = existsSync(NIGHT_PHOTOS) ? (await readdir(NIGHT_PHOTOS)).filter((f) => f.endsWith('.jpg')).sort().map((f) => join(NIGHT_PHOTOS, f)) : [];
  if (photos.length === 0) throw new Error(`bench precision: no photos in ${NIGHT_PHOTOS} (the descriptor check describes them)`);
  const rows: PrecisionRow[] = [];
  for (const c of o.cases ?? PRECISION_CASES) {
    torch.manualSeed(0);
    const net = buildNetwork(c.network);
    const imagenet = c.weights !== undefined && existsSync(c.weights);
    if (imagenet) await net.loadPretrained(c.weights!);
    net.freezeBackbone(c.freeze);
    net.toChannelsLast();
    try {
      for (const [height, width] of o.sizes ?? PRECISION_SIZES) {
        const size = { height, width };
        const pass = await timePass(net, size, o.trainImages, 'train', 'cpu');
        const batch = torch.keep(torch.randn([o.extractBatch, 3, height, width]));
        const extract = async (precision: torch.Precision) => net.fastInference((forward) => medianMs(() => torch.tidy(() => { forward(batch); }), o.iters, 1), { precision });
        const [e32, e16] = [await extract('fp32'), await extract('bf16')];
        batch.dispose();
        const check = await checkBf16Descriptors(net, photos, size);
        const row: PrecisionRow = {
          network: c.label, size: `${height}x${width}`, weights: imagenet ? 'imagenet' : 'random', trainImages: o.trainImages,
          fp32: { trainMs: pass.fp32Ms, extractMsPerImage: e32 / o.extractBatch },
          bf16: { trainMs: pass.bf16Ms, extractMsPerImage: e16 / o.extractBatch },
          speedup: { train: pass.fp32Ms / pass.bf16Ms, extract: e32 / e16 },
          descriptorError: check.meanError,
          auto: {
            train: check.passed && bf16Pays(pass.fp32Ms, pass.bf16Ms) ? 'bf16' : 'fp32',
            extract: check.passed && bf16Pays(e32, e16) ? 'bf16' : 'fp32',
          },
        };
        o.log?.(`${row.network} ${row.size}: train ${row.fp32.trainMs.toFixed(0)} / ${row.bf16.trainMs.toFixed(0)} ms, extract ${row.fp32.extractMsPerImage.toFixed(1)} / ${row.bf16.extractMsPerImage.toFixed(1)} ms, error ${(100 * row.descriptorError).toFixed(2)}%`);
        rows.push(row);
      }
    } finally {
      net.dispose();
    }
  }
  return rows;
}

