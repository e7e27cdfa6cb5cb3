// `vgl bench model`: the seed workload against PyTorch, side by side in one run.
// ResNet-18 conv4 + NetVLAD: one Adam training step on one triplet tuple (12 images: query, positive,
// 10 negatives; margin 0.1; vgl trains channels-last, as vgl train does; PyTorch eager and
// channels-last), and descriptor extraction in ms per image (vgl's fast inference path:
// folded BatchNorm, channels-last, inference mode — vs PyTorch eager under inference_mode, and vs
// PyTorch with the same optimisations, so both ratios are visible). vgl runs in the precision asked
// (fp32, or bf16: the backbone under bf16 autocast, head and loss in fp32); PyTorch runs both in fp32
// and under bf16 autocast, so each vgl time stands beside both.
import { fileURLToPath } from 'node:url';
import * as torch from '../torch/index.ts';
import { optim, withPrecision, type Precision } from '../torch/index.ts';
import { buildNetwork } from '../models/network.ts';
import { splitTuples, tripletLoss } from '../train/losses.ts';
import { medianMs, runReference, ratio, bestOf } from './timing.ts';

export interface ModelBenchOptions {
  iters: number;
  /** Alternating reference/vgl rounds; each side's best median is kept (default 2). */
  rounds?: number;
  height: number;
  width: number;
  extractBatch: number;
  /** What vgl computes in (default fp32). */
  precision?: Precision;
  /** Where both sides compute (default cpu); on cuda every timing waits for the GPU. */
  device?: torch.Device;
}

/** The goals for vgl in bf16: at most these ratios to PyTorch. */
export const BF16_GOALS = { extractVsFp32Eager: 0.3, extractVsBf16: 1.0, trainVsFp32: 0.6, trainVsBf16: 1.0 } as const;

export interface ModelBench {
  threads: number;
  device: torch.Device;
  size: [number, number];
  precision: Precision;
  train_ms: number;
  extract_ms_per_image: number;
  reference: {
    train_ms: number; extract_ms_per_image: number; extract_optimised_ms_per_image: number;
    train_bf16_ms: number; extract_bf16_ms_per_image: number; extract_bf16_optimised_ms_per_image: number; torch: string; device: string; gpu?: string;
    train_channels_last_ms: number; train_bf16_channels_last_ms: number;
  };
  /**
   * vgl / PyTorch: training step (vs fp32, vs bf16 autocast), extraction vs eager, vs PyTorch folded +
   * channels-last, and the same two under bf16 autocast.
   */
  ratio: {
    train: number; trainBf16: number; trainChannelsLast: number; trainBf16ChannelsLast: number;
    extract: number; extractOptimised: number; extractBf16: number; extractBf16Optimised: number;
  };
}

export async function benchModel(o: ModelBenchOptions): Promise<ModelBench> {
  const threads = torch.getNumThreads();
  const precision = o.precision ?? 'fp32';
  const device = o.device ?? 'cpu';
  torch.manualSeed(0);
  const net = buildNetwork({ backbone: 'resnet18conv4', aggregation: 'netvlad' });
  if (device !== 'cpu') net.to(device);
  net.freezeReference();
  net.toChannelsLast();
  const opt = new optim.Adam(net.trainableParameters(), { lr: 1e-5 });
  const images = torch.keep(torch.randn([12, 3, o.height, o.width], { device }));
  const batch = torch.keep(torch.randn([o.extractBatch, 3, o.height, o.width], { device }));
  // A GPU queues its kernels: a time counts only once they have run.
  const timed = (fn: () => void) => () => {
    fn();
    if (device !== 'cpu') torch.synchronize();
  };
  const references: ModelBench['reference'][] = [];
  const ours: { train_ms: number; extract_ms_per_image: number }[] = [];
  for (let round = 0; round < (o.rounds ?? 2); round++) {
    references.push(runReference<ModelBench['reference']>(fileURLToPath(new URL('./reference/model.py', import.meta.url)),
      [threads, o.iters, o.height, o.width, o.extractBatch, device].map(String)));
    const train_ms = medianMs(timed(() => torch.tidy(() => {
      net.train();
      opt.zeroGrad();
      const { query, positive, negatives } = splitTuples(withPrecision(precision, () => net.forward(images), device), 1);
      tripletLoss(query, positive, negatives, { margin: 0.1 }).backward();
      opt.step();
    })), o.iters, 1);
    const extract = await net.fastInference((forward) => medianMs(timed(() => torch.tidy(() => { forward(batch); })), o.iters, 1), { precision });
    ours.push({ train_ms, extract_ms_per_image: extract / o.extractBatch });
  }
  const reference = bestOf(references);
  const { train_ms: trainMs, extract_ms_per_image: extractMs } = bestOf(ours);
  for (const t of [images, batch]) t.dispose();
  opt.dispose();
  net.dispose();
  return {
    threads, device, size: [o.height, o.width], precision, train_ms: trainMs, extract_ms_per_image: extractMs, reference,
    ratio: {
      train: ratio(trainMs, reference.train_ms), trainBf16: ratio(trainMs, reference.train_bf16_ms),
      trainChannelsLast: ratio(trainMs, reference.train_channels_last_ms), trainBf16ChannelsLast: ratio(trainMs, reference.train_bf16_channels_last_ms),
      extract: ratio(extractMs, reference.extract_ms_per_image), extractOptimised: ratio(extractMs, reference.extract_optimised_ms_per_image),
      extractBf16: ratio(extractMs, reference.extract_bf16_ms_per_image), extractBf16Optimised: ratio(extractMs, reference.extract_bf16_optimised_ms_per_image),
    },
  };
}

/** The goals of a bf16 run, each with its ratio and whether it is met (extraction against PyTorch's faster bf16 variant). */
export function bf16Goals(r: ModelBench): { goal: string; ratio: number; limit: number; met: boolean }[] {
  const g = (goal: string, value: number, limit: number) => ({ goal, ratio: value, limit, met: value <= limit });
  return [
    g('extraction vs PyTorch fp32 eager', r.ratio.extract, BF16_GOALS.extractVsFp32Eager),
    g('extraction vs PyTorch bf16 autocast (its faster variant)', Math.max(r.ratio.extractBf16, r.ratio.extractBf16Optimised), BF16_GOALS.extractVsBf16),
    g('train step vs PyTorch fp32', r.ratio.train, BF16_GOALS.trainVsFp32),
    g('train step vs PyTorch bf16 autocast', r.ratio.trainBf16, BF16_GOALS.trainVsBf16),
    g('train step vs PyTorch bf16 autocast, channels-last (its faster variant)', r.ratio.trainBf16ChannelsLast, BF16_GOALS.trainVsBf16),
  ];
}
