// `vgl bench engine`: the engine against PyTorch on the same machine, in one run. Workload: ResNet-18
// layer3 on the conv3 map of a 480x640 image (1x128x60x80): Adam training step, and inference forward.
import { fileURLToPath } from 'node:url';
import * as torch from '../torch/index.ts';
import { optim, nn } from '../torch/index.ts';
import { BasicBlock } from '../models/resnet.ts';
import { medianMs, runReference, ratio, bestOf, withBusyCore } from './timing.ts';

export interface EngineBench {
  threads: number;
  /** Measured while another process kept one core busy. */
  contention: boolean;
  /** The OpenMP wait policy vgl's engine runs with (see src/torch/native.ts). */
  waitPolicy: string;
  /** adaptive_train_ms: with the thread count following the load (VGL_NUM_THREADS=auto). */
  vgl: { train_ms: number; forward_ms: number; adaptive_train_ms?: number };
  pytorch: { train_ms: number; forward_ms: number; torch: string };
  ratio: { train: number; forward: number; adaptiveTrain?: number };
}

/**
 * `rounds` alternate the reference and vgl; each side's best median is kept. With contention, both
 * sides run while another process keeps one core busy.
 */
export function benchEngine(iters = 10, rounds = 3, contention = false): EngineBench {
  return contention ? withBusyCore(() => measureEngine(iters, rounds, true)) : measureEngine(iters, rounds, false);
}

function measureEngine(iters: number, rounds: number, contention: boolean): EngineBench {
  const threads = torch.getNumThreads();
  torch.manualSeed(0);
  const layer = new nn.Sequential(new BasicBlock(128, 256, 2), new BasicBlock(256, 256, 1));
  const opt = new optim.Adam(layer.parameters(), { lr: 1e-5 });
  const x = torch.keep(torch.randn([1, 128, 60, 80]));
  const references: EngineBench['pytorch'][] = [];
  const ours: EngineBench['vgl'][] = [];
  for (let round = 0; round < rounds; round++) {
    references.push(runReference<EngineBench['pytorch']>(
      fileURLToPath(new URL('./reference/engine.py', import.meta.url)), [String(threads), String(iters)]));
    layer.train();
    const trainStep = () => torch.tidy(() => {
      opt.zeroGrad();
      layer.forward(x).pow(2).mean().backward();
      opt.step();
    });
    const train_ms = medianMs(trainStep, iters);
    const adaptive_train_ms = contention ? adaptiveMs(trainStep, iters) : undefined;
    layer.eval();
    const forward_ms = medianMs(() => torch.tidy(() => torch.inferenceMode(() => { layer.forward(x); })), iters);
    ours.push({ train_ms, forward_ms, ...(adaptive_train_ms !== undefined ? { adaptive_train_ms } : {}) });
  }
  const reference = bestOf(references);
  const { train_ms: train, forward_ms: forward, adaptive_train_ms } = bestOf(ours);
  opt.dispose();
  layer.dispose();
  x.dispose();
  return {
    threads,
    contention,
    waitPolicy: process.env.OMP_WAIT_POLICY ?? 'default',
    vgl: { train_ms: train, forward_ms: forward, ...(adaptive_train_ms !== undefined ? { adaptive_train_ms } : {}) },
    pytorch: reference,
    ratio: {
      train: ratio(train, reference.train_ms), forward: ratio(forward, reference.forward_ms),
      ...(adaptive_train_ms !== undefined ? { adaptiveTrain: ratio(adaptive_train_ms, reference.train_ms) } : {}),
    },
  };
}

/** Median step time with a ThreadAdapter choosing the count (after it has had time to choose). */
function adaptiveMs(step: () => void, iters: number): number {
  const threads = torch.getNumThreads();
  const adapter = new torch.ThreadAdapter({ period: 10, trial: 3 });
  try {
    for (let i = 0; i < 20; i++) adapter.step(step);
    return medianMs(() => adapter.step(step), iters, 0);
  } finally {
    torch.setNumThreads(threads);
  }
}
