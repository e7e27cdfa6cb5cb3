// Whether bf16 keeps a network's descriptors, measured before a run relies on it. bf16 autocast is
// as exact as fp32 for some backbones and not for others: on the Gardens Point night photos ImageNet
// ResNet-50 + GeM descriptors come out 0.7% off fp32 in bf16 (recall unchanged), the demo's
// MobileNetV2-0.35 + GeM 12% off when all of it runs in bf16 (top-1 changed for 17 of 52 queries,
// R@1 −7.7); its precision policy (src/models/mobilenetv2.ts: all but its last convolution in fp32)
// brings that to 0.3-0.45%. So the precision a run asks for is checked on a few of its own images: the
// same images described in fp32 and in bf16 (with the network's policy), the descriptors compared.
import * as torch from '../torch/index.ts';
import type { Tensor } from '../torch/index.ts';
import type { GeoLocalizationNet } from '../models/network.ts';
import type { ImageSize } from '../data/image.ts';
import { extractDescriptors } from './extract.ts';

/**
 * The largest mean relative descriptor error ‖d_bf16 − d_fp32‖ / ‖d_fp32‖ that 'auto' accepts. Between
 * the two measured cases (0.7%: recall kept; 12%: recall moved by several points), with room for
 * backbones a little worse than ResNet-50.
 */
export const BF16_MAX_DESCRIPTOR_ERROR = 0.02;
/** Images the check describes twice (spread over the list it is given). */
export const BF16_CHECK_IMAGES = 8;

export interface Bf16Check {
  images: number;
  /** Mean and largest ‖d_bf16 − d_fp32‖ / ‖d_fp32‖ over the images. */
  meanError: number;
  maxError: number;
  limit: number;
  passed: boolean;
}

/** `count` paths spread evenly over `paths` (all of them when there are fewer). */
export function spreadSample<T>(paths: readonly T[], count: number): T[] {
  if (paths.length <= count) return [...paths];
  return Array.from({ length: count }, (_, i) => paths[Math.floor((i * paths.length) / count)]);
}

/** The check itself: the images described by the fast inference path in fp32 and in bf16. */
export async function checkBf16Descriptors(net: GeoLocalizationNet, paths: readonly string[], size: ImageSize,
  options: { device?: torch.Device; limit?: number } = {}): Promise<Bf16Check> {
  const sample = spreadSample(paths, BF16_CHECK_IMAGES);
  if (sample.length === 0) throw new Error('bf16 check: no images to describe');
  const limit = options.limit ?? BF16_MAX_DESCRIPTOR_ERROR;
  const describe = (precision: torch.Precision) => net.fastInference((forward) => extractDescriptors(net.asDescriptorModel(forward), sample,
    { size, batchSize: sample.length, device: options.device, progress: false }), { precision });
  const fp32 = await describe('fp32');
  let bf16: Tensor | null = null;
  try {
    bf16 = await describe('bf16');
    const errors = torch.tidy(() => bf16!.sub(fp32).norm(2, 1).div(fp32.norm(2, 1).clampMin(1e-12)).toNumbers());
    const meanError = errors.reduce((s, e) => s + e, 0) / errors.length;
    return { images: sample.length, meanError, maxError: Math.max(...errors), limit, passed: meanError <= limit };
  } finally {
    torch.dispose(fp32, ...(bf16 ? [bf16] : []));
  }
}

/** A pass of the network (training: forward and backward; inference: the fast extraction path) timed in each precision, best of three. */
export interface PassTiming {
  workload: torch.Workload;
  images: number;
  size: ImageSize;
  fp32Ms: number;
  bf16Ms: number;
}

/** How much faster bf16 must run than fp32 for 'auto' to take it on a CPU (the timing's noise, and the rounding's risk). */
export const BF16_MIN_SPEEDUP = 1.1;

/** Whether bf16 is fast enough for 'auto': BF16_MIN_SPEEDUP faster than fp32. */
export const bf16Pays = (fp32Ms: number, bf16Ms: number): boolean => fp32Ms >= BF16_MIN_SPEEDUP * bf16Ms;

const timings = new Map<string, PassTiming>();

/**
 * Times a pass of `net` on `images` random images at `size` in fp32 and in bf16, one warm-up and the
 * best of three each (the machine may be busy): for training, forward and backward of the descriptors' sum, in eval mode (BatchNorm's
 * statistics do not move) with the gradients cleared after; for inference, the fast inference path
 * (folded BatchNorm, channels-last, the backbone's precision policy). Remembered per network (its
 * config and how many of its parameters train), size, batch and workload in this process (the runner
 * evaluates one model on several test sets).
 */
export async function timePass(net: GeoLocalizationNet, size: ImageSize, images: number, workload: torch.Workload,
  device: torch.Device = torch.defaultDevice()): Promise<PassTiming> {
  // The network as built (backbone, head and their options) and what of it trains: the pass's cost.
  const key = `${JSON.stringify(net.config)}/${net.parameterCount(true)}/${size.height}x${size.width}/${images}/${workload}/${device}`;
  const known = timings.get(key);
  if (known) return known;
  const x = torch.keep(torch.randn([images, 3, size.height, size.width], { device }));
  const best = async (time: () => number) => {
    time();
    return Math.min(time(), time(), time());
  };
  try {
    let fp32Ms: number, bf16Ms: number;
    if (workload === 'train') {
      const wasTraining = net.training;
      net.eval();
      const params = net.trainableParameters();
      const pass = (precision: torch.Precision) => () => {
        const t = performance.now();
        torch.tidy(() => torch.withPrecision(precision, () => net.forward(x), device).float().sum().backward());
        torch.synchronize();
        for (const p of params) p.grad = null;
        return performance.now() - t;
      };
      try {
        [fp32Ms, bf16Ms] = [await best(pass('fp32')), await best(pass('bf16'))];
      } finally {
        if (wasTraining) net.train();
      }
    } else {
      const pass = (precision: torch.Precision) => net.fastInference((forward) => best(() => {
        const t = performance.now();
        torch.tidy(() => forward(x).sum().item()); // item(): waits for the result
        return performance.now() - t;
      }), { precision });
      [fp32Ms, bf16Ms] = [await pass('fp32'), await pass('bf16')];
    }
    const timing = { workload, images, size, fp32Ms, bf16Ms };
    timings.set(key, timing);
    return timing;
  } finally {
    x.dispose();
  }
}

export interface ChosenPrecision extends torch.ResolvedPrecision {
  /**
   * The search's: the option resolved on this machine, not checked (the bf16 search returns the fp32
   * search's top-N whatever the descriptors; it pays off where bf16 runs on fast units).
   */
  searchPrecision: torch.Precision;
  /** The descriptor check, when bf16 was in question. */
  check?: Bf16Check;
  /** 'auto' on a CPU: a pass timed in both precisions. */
  timing?: PassTiming;
}

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

/**
 * The precision a run computes in: `option` resolved on this machine (resolvePrecision), then, where
 * that is bf16, checked on `paths`. 'auto' falls back to fp32 when the check fails; an explicit 'bf16'
 * stays bf16 and the reason says what the check found.
 */
export async function choosePrecision(option: torch.PrecisionOption, net: GeoLocalizationNet, paths: readonly string[], size: ImageSize,
  o: { device?: torch.Device; limit?: number; workload?: torch.Workload; trainImages?: number; timePass?: typeof timePass } = {}): Promise<ChosenPrecision> {
  const { device = torch.defaultDevice(), limit = BF16_MAX_DESCRIPTOR_ERROR, workload = 'inference' } = o;
  const hardware = torch.resolvePrecision(option, { device, workload });
  let resolved: ChosenPrecision = { ...hardware, searchPrecision: hardware.precision };
  if (resolved.precision === 'fp32') return resolved;
  // On a CPU, whether bf16 pays depends on its units (AMX, or AVX512-BF16 alone), the network, its
  // precision policy and the size, so 'auto' times a pass in both and keeps bf16 only if it is faster.
  if (option === 'auto' && device === 'cpu') {
    const images = workload === 'train' ? Math.max(1, Math.min(o.trainImages ?? 12, 24)) : 8;
    const timing = await (o.timePass ?? timePass)(net, size, images, workload, device);
    const measured = `${workload === 'train' ? 'a training pass' : 'an extraction'} of ${timing.images} images at ${size.height}x${size.width} took ${timing.bf16Ms.toFixed(0)} ms in bf16, ${timing.fp32Ms.toFixed(0)} ms in fp32`;
    if (!bf16Pays(timing.fp32Ms, timing.bf16Ms)) {
      return { ...resolved, precision: 'fp32', reason: `${resolved.reason}, but ${measured}: bf16 is not ${BF16_MIN_SPEEDUP}x faster here`, timing };
    }
    resolved = { ...resolved, reason: `${resolved.reason}; ${measured}`, timing };
  }
  const check = await checkBf16Descriptors(net, paths, size, { device, limit });
  const found = `its bf16 descriptors are ${percent(check.meanError)} off fp32 on ${check.images} of its images (limit ${percent(check.limit)})`;
  if (check.passed) return { ...resolved, reason: `${resolved.reason}; ${found}`, check };
  if (option === 'auto') return { ...resolved, precision: 'fp32', reason: `${resolved.reason}, but ${found}: fp32 keeps its recall`, check };
  return { ...resolved, reason: `${resolved.reason}; warning: ${found}, so recall may differ from fp32 (auto would run fp32)`, check };
}
