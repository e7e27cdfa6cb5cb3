// `vgl bench model`: the seed workload against PyTorch, side by side in one run.
// ResNet-18 conv4 + NetVLAD: one Adam training step on one triplet tuple (12 images: query, positive,
// 10 negatives; margin 0.1), and descriptor extraction in ms per image (vgl's fast inference path:
// folded BatchNorm, channels-last, inference mode — vs PyTorch eager under inference_mode, and vs
// PyTorch with the same optimisations, so both ratios are visible).
import { fileURLToPath } from 'node:url';
import * as torch from '../torch/index.ts';
import { optim } from '../torch/index.ts';
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
}

export interface ModelBench {
  threads: number;
  size: [number, number];
  train_ms: number;
  extract_ms_per_image: number;
  reference: { train_ms: number; extract_ms_per_image: number; extract_optimised_ms_per_image: number; torch: string };
  /** vgl / PyTorch: training step, extraction vs eager, extraction vs PyTorch folded + channels-last. */
  ratio: { train: number; extract: number; extractOptimised: number };
}

export async function benchModel(o: ModelBenchOptions): Promise<ModelBench> {
  const threads = torch.getNumThreads();
  torch.manualSeed(0);
  const net = buildNetwork({ backbone: 'resnet18conv4', aggregation: 'netvlad' });
  net.freezeReference();
  const opt = new optim.Adam(net.trainableParameters(), { lr: 1e-5 });
  const images = torch.keep(torch.randn([12, 3, o.height, o.width]));
  const batch = torch.keep(torch.randn([o.extractBatch, 3, o.height, o.width]));
  const references: ModelBench['reference'][] = [];
  const ours: { train_ms: number; extract_ms_per_image: number }[] = [];
  for (let round = 0; round < (o.rounds ?? 2); round++) {
    references.push(runReference<ModelBench['reference']>(fileURLToPath(new URL('./reference/model.py', import.meta.url)),
      [threads, o.iters, o.height, o.width, o.extractBatch].map(String)));
    const train_ms = medianMs(() => torch.tidy(() => {
      net.train();
      opt.zeroGrad();
      const { query, positive, negatives } = splitTuples(net.forward(images), 1);
      tripletLoss(query, positive, negatives, { margin: 0.1 }).backward();
      opt.step();
    }), o.iters, 1);
    const extract = await net.fastInference((forward) => medianMs(() => torch.tidy(() => { forward(batch); }), o.iters, 1));
    ours.push({ train_ms, extract_ms_per_image: extract / o.extractBatch });
  }
  const reference = bestOf(references);
  const { train_ms: trainMs, extract_ms_per_image: extractMs } = bestOf(ours);
  for (const t of [images, batch]) t.dispose();
  opt.dispose();
  net.dispose();
  return {
    threads, size: [o.height, o.width], train_ms: trainMs, extract_ms_per_image: extractMs, reference,
    ratio: {
      train: ratio(trainMs, reference.train_ms), extract: ratio(extractMs, reference.extract_ms_per_image),
      extractOptimised: ratio(extractMs, reference.extract_optimised_ms_per_image),
    },
  };
}
