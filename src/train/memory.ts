// The memory a training run needs at its largest step (models/memory.ts estimates per image).
import { activationBytesPerImage, availableMemory, checkMemory, inferenceMemory, BACKWARD_FACTOR, type MemoryEstimate } from '../models/memory.ts';
import type { GeoLocalizationNet } from '../models/network.ts';
import type { TrainConfig } from './config.ts';

/** The run's largest step, estimated from the model at the config's sizes and batches. */
export function estimateRunMemory(net: GeoLocalizationNet, config: TrainConfig, available = availableMemory()): MemoryEstimate {
  const [height, width] = config.data.resize;
  const { training: perImage } = activationBytesPerImage(net, height, width);
  const steps: { bytes: number; what: string }[] = [inferenceMemory(net, height, width, config.eval.inferBatchSize, available)];
  let stepBytes = 0;
  const parts: string[] = [];
  if (config.loss.criterion !== 'none') {
    const images = config.optim.batchSize * (2 + config.mining.negsNumPerQuery);
    stepBytes += perImage * images * BACKWARD_FACTOR;
    parts.push(`${images} tuple images (--batch-size ${config.optim.batchSize} x (2 + --negs-num-per-query ${config.mining.negsNumPerQuery}))`);
  }
  if (config.loss.invarianceWeight > 0) {
    // Teacher and student each see the step's images; the largest drawn size counts.
    const pixels = Math.max(height * width, ...config.loss.invarianceSizes.map(([h, w]) => h * w));
    stepBytes += perImage * (pixels / (height * width)) * config.loss.invarianceBatch * (1 + BACKWARD_FACTOR);
    parts.push(`${config.loss.invarianceBatch} invariance images, twice`);
  }
  if (stepBytes > 0) steps.push({ bytes: stepBytes, what: `a training step of ${parts.join(' and ')}` });
  const largest = steps.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  return { ...largest, available };
}

/** Refuses a run whose largest step would not fit (see checkMemory); warns above half the memory. */
export function checkRunMemory(net: GeoLocalizationNet, config: TrainConfig, log: (line: string) => void, available = availableMemory()): MemoryEstimate {
  return checkMemory(estimateRunMemory(net, config, available), config.data.resize, log);
}
