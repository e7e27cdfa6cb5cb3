// The training loop of the reference, one screen per concern:
//   for each epoch: for each cache loop: sample queries → cache descriptors → mine → train on tuples
//                   → checkpoint;  then validate (recall@N on val) → best checkpoint → early stopping.
// Every random draw derives from (seed, epoch, loop, batch), so a run resumed from its last checkpoint
// (written atomically after every cache loop) continues exactly as if never interrupted.
// --precision bf16: the forward passes (training steps, caching, validation) compute the backbone
// under bf16 autocast; the head, the losses, the weights and the optimizer state stay fp32.
// log.jsonl gets one line per step, per cache loop (timings, mining statistics) and per validation.
import { existsSync } from 'node:fs';
import { mkdir, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as torch from '../torch/index.ts';
import { optim, describePrecision, withPrecision, type Precision, type Tensor } from '../torch/index.ts';
import { saveCheckpoint, loadCheckpoint } from '../torch/checkpoint.ts';
import { openDatasets, listSplits, partOf, verifyImages, type GeoDataset } from '../data/dataset.ts';
import { computePositives, trainingQueries, type TrainingQueries } from '../data/positives.ts';
import { loadImage, imageSize, type ImageSize, type Float32HostTensor } from '../data/image.ts';
import { loadAugmentedImage } from '../data/augment.ts';
import { loadBatches } from '../data/loader.ts';
import { progressBar } from '../util/progress.ts';
import { Rng, deriveSeed } from '../data/random.ts';
import type { GeoLocalizationNet } from '../models/network.ts';
import { HEAD_TRAINING, splitOwnLayerParameters } from '../models/aggregation/index.ts';
import { buildModel, initialiseHeadFromData, reportedCheckpointOf, RUN_FILES } from '../models/assemble.ts';
import { extractDescriptors, imageNormalization } from '../eval/extract.ts';
import { EFFICIENT_RAM_CHUNK } from '../eval/evaluate.ts';
import { evaluateNet } from '../eval/evaluate-net.ts';
import type { Recalls } from '../eval/recall.ts';
import type { TestMethod } from '../eval/test-methods.ts';
import { choosePrecision, type Bf16Check, type ChosenPrecision } from '../eval/precision-check.ts';
import { tupleLoss, splitTuples, type LossReduction } from './losses.ts';
import { optimizerStep } from './step.ts';
import { planCacheLoop, sampleLoopQueries } from './cache.ts';
import { checkRunMemory } from './memory.ts';
import { mineTriplets, summarizeTriplets, memoryToJSON, memoryFromJSON, type NegativeMemory, type Triplet } from './mining.ts';
import { TrainConfigSchema, datasetNames, withResolvedModel, withOptions, flattenConfig, type TrainConfig, type OptimConfig, type RunConfig } from './config.ts';
import { lockRun } from './run-lock.ts';
import { initOptions, startFrom } from './start.ts';
import { checkResumeConfig, removeStaleTempFiles } from './resume.ts';
import { updateAverage } from './average.ts';
import { invarianceTeacher, invarianceTerm, type InvarianceTeacher } from './invariance.ts';
import { adaptiveStep } from './threads.ts';
import { agreeWithRank0, broadcastWeights, broadcastBuffers, allReduceGradients, checkSameWeights, shardOf, shardedExtractor } from './distributed.ts';
import type { ProcessGroup } from '../torch/distributed.ts';
import { OptionError } from '../errors.ts';

/** The loss (or, after a step, a weight or BatchNorm statistic) went NaN/±inf: the run stops; last.pth keeps the state after the last completed cache loop. */
export class NonFiniteLossError extends Error {
  constructor(message: string, readonly loss: number, readonly at: StepPosition) {
    super(message);
    this.name = 'NonFiniteLossError';
  }
}

/** Where a training step is: epoch, cache loop within the epoch, batch within the loop. */
export interface StepPosition {
  epoch: number;
  loop: number;
  batch: number;
}

/** What a checkpoint's metadata holds besides the weights and the optimizer. */
interface RunState {
  /** Epoch and cache loop to run next. */
  epoch: number;
  loop: number;
  bestR5: number;
  bestEpoch: number;
  epochsWithoutImprovement: number;
  /** Full mining's memory (memoryToJSON): training-query index → previous hardest negatives. */
  memory: Record<string, number[]>;
  /** Loss sum and step count of the current epoch so far (a resumed epoch's mean covers all its steps). */
  epochLossSum: number;
  epochSteps: number;
  history: { epoch: number; recalls: Recalls; meanLoss: number }[];
  /** The run's options by flat name (flattenConfig), as config.json holds them. */
  config: Record<string, unknown>;
  /** What the run computes in, chosen when it started (a resumed run keeps it, whatever a new check would say). */
  precision?: RunPrecision;
}

/** The precisions a run computes in: forward passes (checked, see choosePrecision) and the search. */
export type RunPrecision = Pick<ChosenPrecision, 'precision' | 'searchPrecision'>;
const FP32: RunPrecision = { precision: 'fp32', searchPrecision: 'fp32' };

export interface TrainResult {
  outputFolder: string;
  bestEpoch: number;
  bestR5: number;
  history: RunState['history'];
  stoppedEarly: boolean;
  /** recall@N of the best model on the test split (when the dataset has one and hooks.test is not false). */
  testRecalls?: Recalls;
}

export interface TrainHooks {
  /** Progress bars on stderr (default: when stderr is a TTY). */
  progress?: boolean;
  log?: (line: string) => void;
  /** Test the best model on the test split after training, as the reference does (default true). */
  test?: boolean;
  /** Stop right after this many cache loops (their checkpoints written) in this process (tests: simulate a killed run). */
  maxLoops?: number;
  /** Called with every log.jsonl entry after it is written (benchmarks read the timings from here). */
  onRecord?: (entry: LogEntry) => void;
  /**
   * Called before each training step's forward pass with the network (tests: corrupt a weight to
   * produce a genuinely non-finite loss at a chosen step).
   */
  beforeStep?: (net: GeoLocalizationNet, at: StepPosition) => void;
  /**
   * Called after each epoch's validation with the network as trained so far (experiments: recall on
   * other test sets per epoch). Must not change the weights; it runs before the epoch's checkpoints.
   */
  afterValidation?: (net: GeoLocalizationNet, epoch: number, recalls: Recalls) => Promise<void>;
  /** Where the network computes (default: CUDA when the linked libtorch has it, VGL_DEVICE=cpu to stay on the CPU). */
  device?: torch.Device;
  /** Data-parallel training: this process's group (src/train/distributed.ts); rank 0 writes the run's files. */
  group?: ProcessGroup;
}

/** One cache loop's record in log.jsonl: wall-clock times of its phases, sizes, mining statistics. */
export interface LoopRecord {
  event: 'loop';
  epoch: number;
  loop: number;
  /** Descriptor extraction of the loop's database images and queries (fast inference path). */
  cacheMs: number;
  /** Mining (distances, best positives, negatives). */
  mineMs: number;
  /** Forward, backward and optimizer steps over the loop's tuples, image loading included. */
  trainMs: number;
  /** Checkpoint write. */
  checkpointMs: number;
  /** Images whose descriptors were cached. */
  cachedImages: number;
  /** Images trained on (tuples x (2 + negatives)). */
  images: number;
  steps: number;
  meanLoss: number;
  /** Null when the loop mined nothing (criterion 'none'). */
  mining: ReturnType<typeof summarizeTriplets> | null;
}

/** One validation's record in log.jsonl. */
export interface ValidationRecord {
  event: 'validation';
  epoch: number;
  recalls: Recalls;
  meanLoss: number;
  /** Descriptor extraction of the val database and queries plus the search. */
  validateMs: number;
  /** Val images described (database + queries). */
  images: number;
}

export type LogEntry =
  | ({ event: 'step'; loss: number; flipped?: boolean; invariance?: number; invarianceSize?: string } & StepPosition)
  | LoopRecord
  | ValidationRecord
  | ({ event: 'nonfinite-loss'; loss: string; checkpoint: string | null } & StepPosition)
  | ({ event: 'nonfinite-weights'; tensor: string; checkpoint: string | null } & StepPosition)
  | { event: 'test'; epoch: number; method: TestMethod; recalls: Recalls }
  | { event: 'resume-changes'; changes: string[] }
  | { event: 'precision'; precision: Precision; searchPrecision: Precision; requested: RunConfig['precision']; reason: string; check?: Bf16Check }
  | ({ event: 'threads'; from: number; to: number; stepMs: [number, number] } & StepPosition)
  | { event: 'average'; epoch: number; epochs: number; recalls: Recalls }
  | { event: 'distributed'; worldSize: number; backend: 'gloo' };

const toDevice = (x: Tensor, device: torch.Device): Tensor => (device === 'cpu' ? x : x.to(device));

/** The run's optimizer over the parameters that train (CRN layers in a group of their own). */
export function optimizerFor(net: GeoLocalizationNet, config: TrainConfig): optim.Optimizer<object> {
  // A head's own layers at their learning rate, the rest at its own (CRN as the reference trains it:
  // the CRN layers at lr_crn_layer, the NetVLAD it starts from at lr_crn_net); else one group.
  const rates = HEAD_TRAINING[config.model.aggregation]?.learningRates;
  const { own } = splitOwnLayerParameters(config.model.aggregation, net.aggregation);
  const rest = net.trainableParameters().filter((p) => !own.includes(p));
  const lr = (key: string) => config.optim[key as keyof OptimConfig] as number;
  const groups = rates && own.length > 0 ? [{ params: rest, options: { lr: lr(rates.rest) } }, { params: own, options: { lr: lr(rates.ownLayers) } }] : [{ params: rest }];
  switch (config.optim.optimizer) {
    case 'adam': return new optim.Adam(groups, { lr: config.optim.lr, weightDecay: config.optim.weightDecay ?? 0 });
    case 'adamw': return new optim.Adam(groups, { lr: config.optim.lr, weightDecay: config.optim.weightDecay ?? 1e-2, decoupled: true });
    case 'sgd': return new optim.SGD(groups, { lr: config.optim.lr, momentum: config.optim.momentum, weightDecay: config.optim.weightDecay ?? 1e-3 });
  }
}

/** Recall@N of the model on a split (database vs queries, soft positives at the val radius), in the run's precision. */
export async function recallsOn(net: GeoLocalizationNet, ds: GeoDataset, config: TrainConfig, progress: boolean, method: TestMethod = 'hard_resize',
  device: torch.Device = torch.defaultDevice(), { precision, searchPrecision }: RunPrecision = FP32, group: ProcessGroup | null = null): Promise<Recalls> {
  const result = await evaluateNet(net, ds, {
    extract: group ? shardedExtractor(group) : undefined,
    size: imageSize(config.data.resize), batchSize: config.eval.inferBatchSize, device, progress, method,
    databaseChunk: config.eval.efficientRamTesting ? EFFICIENT_RAM_CHUNK : undefined,
    radius: config.data.valPositiveDistThreshold, recallValues: config.eval.recallValues, majorityWeight: config.eval.majorityWeight,
    precision: { precision, searchPrecision },
  });
  return result.recalls;
}

/** The first parameter or buffer holding NaN/±inf, or null. A step can break weights (or BatchNorm statistics) with a finite loss. */
export function firstNonFiniteTensor(net: GeoLocalizationNet): string | null {
  return torch.tidy(() => {
    for (const [name, t] of net.stateDict()) if (t.dtype.startsWith('float') && !t.isfinite().all()) return name;
    return null;
  });
}

/** Cache loop: extract the plan's database and query descriptors with the fast inference path. */
async function cacheDescriptors(net: GeoLocalizationNet, ds: GeoDataset, training: TrainingQueries, plan: ReturnType<typeof planCacheLoop>, config: TrainConfig,
  progress: boolean, device: torch.Device, precision: Precision, group: ProcessGroup | null) {
  const size = imageSize(config.data.resize);
  return net.fastInference(async (forward) => {
    const model = net.asDescriptorModel(forward);
    const opts = { size, batchSize: config.eval.inferBatchSize, progress, device };
    // Data-parallel: each rank describes its slice of the images, then every rank gathers all.
    const extract = group === null ? extractDescriptors : shardedExtractor(group);
    const database = await extract(model, Array.from(plan.database, (i) => ds.databasePaths[i]), { ...opts, label: 'cache database' });
    const queries = await extract(model, Array.from(plan.queries, (j) => training.paths[j]), { ...opts, label: 'cache queries' });
    return { database, queries };
  }, { precision });
}

/** Everything one run's phases share. */
interface Run {
  config: TrainConfig;
  hooks: TrainHooks;
  progress: boolean;
  log: (s: string) => void;
  record: (entry: LogEntry) => Promise<void>;
  net: GeoLocalizationNet;
  opt: optim.Optimizer<object>;
  state: RunState;
  memory: NegativeMemory;
  trainDs: GeoDataset;
  training: TrainingQueries;
  /** Dataset of each training query (balanced mixing of several datasets), else undefined. */
  queryGroups: Int32Array | undefined;
  invariance: InvarianceTeacher | null;
  size: ImageSize;
  normalization: ReturnType<typeof imageNormalization>;
  lastPath: string;
  bestPath: string;
  device: torch.Device;
  /** What the forward passes and the searches compute in. */
  precision: RunPrecision;
  /** The tuple loss of the run's criterion (unused with criterion 'none'). */
  loss: (query: Tensor, positive: Tensor, negatives: Tensor, reduction: LossReduction) => Tensor;
  /** VGL_NUM_THREADS=auto: the intra-op thread count follows the load (steps timed, counts tried). */
  threads: torch.ThreadAdapter | null;
  /** Data-parallel training's process group (null: one process). */
  group: ProcessGroup | null;
  /** This process writes the run's files (rank 0, or the only process). */
  main: boolean;
}

/** Trains as `config` says; one process per run folder (a second is refused while the first runs). */
export async function train(config: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  await mkdir(config.run.outputFolder, { recursive: true });
  // Data-parallel: rank 0 holds the run's lock, writes its files and logs; the other ranks compute.
  const main = (hooks.group?.rank ?? 0) === 0;
  const log = main ? hooks.log ?? ((s: string) => console.error(s)) : () => {};
  if (!main) return trainLocked(config, hooks, log);
  const lock = await lockRun(config.run.outputFolder, (info) => log(`removed the stale lock of a run that is gone (${info})`));
  try {
    return await trainLocked(config, hooks, log);
  } finally {
    await lock.release();
  }
}

async function trainLocked(given: TrainConfig, hooks: TrainHooks, log: (s: string) => void): Promise<TrainResult> {
  const group = hooks.group && hooks.group.worldSize > 1 ? hooks.group : null;
  // The ResNet flavour a weights file declares is written into the run's config: it rebuilds without
  // the file. So is the number of processes it trains in.
  const config = withResolvedModel(given.run.worldSize === (group?.worldSize ?? 1) ? given : withOptions(given, { worldSize: group?.worldSize ?? 1 }));
  const progress = hooks.progress ?? Boolean(process.stderr.isTTY);
  const out = config.run.outputFolder;
  const logFile = join(out, 'log.jsonl');
  const main = (group?.rank ?? 0) === 0;
  const record = async (entry: LogEntry) => {
    if (!main) return;
    await appendFile(logFile, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
    hooks.onRecord?.(entry);
  };
  if (group) {
    if (config.optim.batchSize < group.worldSize) throw new OptionError('batchSize', `the global batch must give every one of the ${group.worldSize} processes a tuple`, config.optim.batchSize);
    if (config.loss.invarianceWeight > 0 && config.loss.invarianceBatch < group.worldSize) {
      throw new OptionError('invarianceBatch', `the invariance term's images must give every one of the ${group.worldSize} processes one`, config.loss.invarianceBatch);
    }
  }
  const device = hooks.device ?? torch.defaultDevice();

  // Data: what exists and where (validated up front, before any model work).
  // Several datasets: their training sets are mixed (tuples never cross datasets), validation covers every val split.
  const names = datasetNames(config);
  const trainDs = await openDatasets(config.data.datasetsFolder, names, 'train');
  const valDs = await openDatasets(config.data.datasetsFolder, names, 'val');
  const positives = computePositives(trainDs, {
    valPositiveDistThreshold: config.data.valPositiveDistThreshold, trainPositivesDistThreshold: config.data.trainPositivesDistThreshold,
  });
  const training = trainingQueries(trainDs, positives);
  log(`train: ${trainDs.databasePaths.length} database, ${training.count} queries with a hard positive within ${config.data.trainPositivesDistThreshold} m` +
    ` (${training.dropped} dropped); val: ${valDs.databasePaths.length} database, ${valDs.queriesPaths.length} queries`);
  if (training.count === 0) throw new Error(`no training query of ${trainDs.dir} has a database image within ${config.data.trainPositivesDistThreshold} m`);
  // Every image the run reads, checked up front: a corrupt val image would otherwise surface after an epoch.
  const checked = await verifyImages([trainDs, valDs], { progress });
  log(`checked ${checked} images (headers and end markers)`);

  // Model and optimizer, fresh or resumed.
  torch.manualSeed(config.run.seed);
  const net = buildModel(config.model);
  if (config.model.weights) await net.loadPretrained(config.model.weights);
  if (device !== 'cpu') net.to(device);
  net.freezeBackbone(config.optim.freezeBackbone);
  // Before any model work on the data: a size or batch that cannot fit is refused with the size that would.
  const needed = checkRunMemory(net, config, log);
  log(`memory: ${needed.what} needs about ${(needed.bytes / 2 ** 30).toFixed(2)} GiB (${(needed.available / 2 ** 30).toFixed(1)} GiB available)`);
  const opt = optimizerFor(net, config);
  const lastPath = join(out, RUN_FILES.last);
  const bestPath = join(out, RUN_FILES.best);
  if (main) await removeStaleTempFiles(out, log);
  let state: RunState;
  const resuming = existsSync(lastPath);
  if (resuming) {
    const ck = await loadCheckpoint<RunState>(lastPath);
    torch.loadStateDict(net, ck.stateDict, { source: lastPath });
    if (ck.optimizer) opt.loadStateDict(ck.optimizer);
    state = ck.meta;
    // Options added to vgl after the run started take their defaults, as the run did.
    const saved = TrainConfigSchema.safeParse(state.config);
    const { applied } = checkResumeConfig(saved.success ? withResolvedModel(saved.data) : undefined, config, lastPath);
    if (applied.length > 0) {
      state.config = flattenConfig(config);
      if (main) await writeConfigFile(out, config);
      log(`resume with changed options (applied, config.json updated): ${applied.join(', ')}`);
      await record({ event: 'resume-changes', changes: applied });
    }
    if (Array.isArray(state.memory)) state.memory = Object.fromEntries(state.memory as [number, number[]][]); // checkpoints written before memoryToJSON
    state.epochLossSum ??= 0;
    state.epochSteps ??= 0;
    log(`resuming ${lastPath}: epoch ${state.epoch}, cache loop ${state.loop}, best R@5 ${state.bestR5.toFixed(2)}`);
  } else {
    if (config.run.resume !== undefined) await startFrom(net, config, trainDs, log, device);
    else await initialiseHeadFromData(net, trainDs, initOptions(config, log, device));
    if (config.model.weights === undefined && config.run.resume === undefined) {
      log(`WARNING: the ${config.model.backbone} backbone starts from RANDOM weights (no --weights, no --resume): ` +
        'place recognition from scratch needs far more data and epochs than fine-tuning ImageNet weights');
    }
    state = { epoch: 0, loop: 0, bestR5: -1, bestEpoch: -1, epochsWithoutImprovement: 0, memory: {}, epochLossSum: 0, epochSteps: 0, history: [], config: flattenConfig(config) };
    if (main) await writeConfigFile(out, config);
  }
  if (group) {
    // Every rank starts from rank 0's weights (they agree already: same seed, same data; this makes it so).
    broadcastWeights(group, net);
    log(`data-parallel: ${group.worldSize} processes (Gloo), ${config.optim.batchSize} tuples per step shared among them`);
    await record({ event: 'distributed', worldSize: group.worldSize, backend: 'gloo' });
  }
  const summary = net.summary();
  log(`model: ${summary.backbone} + ${summary.aggregation}, descriptor ${summary.descriptorDim}-d, ` +
    `${summary.trainableParameters.toLocaleString('en')} of ${summary.parameters.toLocaleString('en')} parameters trained`);
  // Convolutions on channels-last tensors skip oneDNN's layout conversions (CPU and cuDNN alike).
  net.toChannelsLast();
  // The precision: chosen (and checked on training images) when the run starts, kept when it resumes.
  const size = imageSize(config.data.resize);
  let precision: RunPrecision;
  if (state.precision !== undefined) {
    precision = state.precision;
    log(`precision ${precision.precision}, as the run started (search ${precision.searchPrecision})`);
  } else {
    const chosen = await choosePrecision(config.run.precision, net, trainDs.databasePaths, size,
      { device, workload: 'train', trainImages: config.optim.batchSize * (2 + config.mining.negsNumPerQuery) });
    precision = { precision: chosen.precision, searchPrecision: chosen.searchPrecision };
    state.precision = precision;
    log(describePrecision(chosen) + (chosen.precision === 'bf16' ? ': weights, optimizer state, head and losses in fp32' : ''));
    await record({ event: 'precision', ...chosen });
  }
  const normalization = imageNormalization(net);
  // A fresh run's student is the teacher's starting point: copied, not rebuilt (NetVLAD's k-means once).
  const start = !resuming && config.run.resume === undefined ? net : null;
  const invariance = config.loss.invarianceWeight > 0 ? await invarianceTeacher(config, trainDs, device, size, normalization, start) : null;
  if (invariance) log(`camera invariance: weight ${config.loss.invarianceWeight}, ${config.loss.invarianceBatch} images per step${config.loss.invarianceSizes.length > 0 ? ` at ${config.loss.invarianceSizes.map((s) => s.join('x')).join(' or ')}` : ''}, teacher: the starting backbone${config.model.weights ? ` (${config.model.weights})` : ''}`);
  // Several training datasets, balanced: every cache loop draws its queries equally from each.
  let queryGroups: Int32Array | undefined;
  if (config.data.mixing === 'balanced' && trainDs.parts) {
    const queryPart = partOf(trainDs, 'queries');
    queryGroups = Int32Array.from(training.originalIndices, (q) => queryPart[q]);
  }
  const run: Run = {
    config, hooks, progress, log, record, net, opt, state, trainDs, training, queryGroups, invariance, lastPath, bestPath, device,
    precision, loss: config.loss.criterion === 'none' ? () => { throw new Error("criterion 'none' has no tuple loss"); } : tupleLoss(config.loss.criterion, config.loss),
    memory: memoryFromJSON(state.memory, `${lastPath} (negative memory)`), size, normalization,
    threads: torch.adaptiveThreadsRequested() && device === 'cpu' ? new torch.ThreadAdapter() : null,
    group, main,
  };
  if (run.threads) log(`threads: adapting to the load among ${run.threads.candidates.join(', ')} (VGL_NUM_THREADS=auto; results then depend on the load)`);
  const loopsPerEpoch = config.mining.queriesPerEpoch / config.mining.cacheRefreshRate; // a whole number (validated)
  let loopsRun = 0;
  let stoppedEarly = false;
  const result = (): TrainResult => ({ outputFolder: out, bestEpoch: state.bestEpoch, bestR5: state.bestR5, history: state.history, stoppedEarly });

  try {
    while (state.epoch < config.optim.epochs) {
      for (; state.loop < loopsPerEpoch; state.loop++) {
        if (hooks.maxLoops !== undefined && loopsRun >= hooks.maxLoops) return result();
        const loopSeed = deriveSeed(config.run.seed, state.epoch, state.loop);
        const tuples = config.loss.criterion === 'none' ? null : await cacheAndMine(run, loopSeed); // 1-3. queries, cache, mining
        const trained = await trainSteps(run, loopSeed, tuples); //                                4. train on the tuples
        const checkpointMs = await guardedCheckpoint(run, trained.steps); //                        5. checkpoint (resume point)
        await record({
          event: 'loop', epoch: state.epoch, loop: state.loop, cacheMs: tuples?.cacheMs ?? 0, mineMs: tuples?.mineMs ?? 0, trainMs: trained.ms, checkpointMs,
          cachedImages: tuples?.cachedImages ?? 0, images: trained.images, steps: trained.steps,
          meanLoss: trained.steps > 0 ? trained.lossSum / trained.steps : NaN, mining: tuples ? summarizeTriplets(tuples.triplets) : null,
        });
        loopsRun++;
        if (hooks.maxLoops !== undefined && loopsRun >= hooks.maxLoops) return result(); // before validation, as a kill here would
      }
      if (await validateEpoch(run, valDs)) { //                                                    6. validate, keep the best, stop early
        stoppedEarly = true;
        break;
      }
    }
    // Data-parallel: the test starts once every rank has finished (best.pth is written by then).
    run.group?.barrier();
    const testRecalls = hooks.test === false ? null : await testBest(run, names); //                              7. test the best model
    return testRecalls === null ? result() : { ...result(), testRecalls };
  } finally {
    opt.dispose();
    net.dispose();
    invariance?.teacher.dispose();
  }
}

/** Phases 1-3: the loop's queries, their descriptors and the database's (fast inference path), mined tuples. */
async function cacheAndMine(run: Run, loopSeed: number): Promise<{ triplets: Triplet[]; cacheMs: number; mineMs: number; cachedImages: number }> {
  const { config, net, trainDs, training } = run;
  let t = performance.now();
  const queries = sampleLoopQueries(training.count, config.mining.cacheRefreshRate, loopSeed, run.queryGroups);
  const plan = planCacheLoop(training, trainDs.databasePaths.length, queries,
    { method: config.mining.method, negSamplesNum: config.mining.negSamplesNum, negsNumPerQuery: config.mining.negsNumPerQuery }, loopSeed);
  const cache = await cacheDescriptors(net, trainDs, training, plan, config, run.progress, run.device, run.precision.precision, run.group);
  const cacheMs = msSince(t);
  t = performance.now();
  let triplets: Triplet[];
  try {
    triplets = mineTriplets(plan, cache, training, run.memory);
  } finally {
    torch.dispose(cache);
  }
  new Rng(deriveSeed(loopSeed, 0x5eed)).shuffle(triplets);
  return { triplets, cacheMs, mineMs: msSince(t), cachedImages: plan.database.length + plan.queries.length };
}

/**
 * Phase 4: optimizer steps over the loop's tuples (query augmented, best positive, negatives), each
 * with the invariance term when asked; with criterion 'none', steps of the invariance term alone.
 */
async function trainSteps(run: Run, loopSeed: number, tuples: { triplets: Triplet[] } | null): Promise<{ steps: number; lossSum: number; images: number; ms: number }> {
  const { config, net, opt, state, hooks, invariance } = run;
  const t = performance.now();
  const triplets = tuples?.triplets ?? [];
  const tuple = 2 + config.mining.negsNumPerQuery;
  const batches = tuples ? Math.ceil(triplets.length / config.optim.batchSize) : Math.ceil(config.mining.cacheRefreshRate / config.optim.batchSize);
  // Tuples train BatchNorm as the reference does; invariance steps alone keep its statistics, which
  // would otherwise drift toward the augmented images.
  if (tuples) net.train();
  else net.eval();
  const bar = progressBar(`epoch ${state.epoch} loop ${state.loop + 1}`, batches, { show: run.progress, unit: 'step', fields: ['loss'] });
  const tupleBatches = tuples ? loadTupleBatches(run, loopSeed, triplets) : null;
  // Data-parallel: each step's gradients summed over the ranks, each rank's loss weighted by its share.
  const trainable = run.group ? net.trainableParameters() : [];
  const reduce = run.group ? (loss: Tensor, values: Record<string, number>) => allReduceGradients(run.group!, trainable, loss, values, ['tuples', 'invariance']) : undefined;
  // Data-parallel: this rank's share of each step's invariance images.
  const invarianceShard = run.group ? shardOf(config.loss.invarianceBatch, run.group.rank, run.group.worldSize) : undefined;
  let lossSum = 0;
  let images = 0;
  try {
    for (let batchIndex = 0; batchIndex < batches; batchIndex++) {
      // null: no tuples this step (criterion 'none', or this rank's share of a last, short batch is empty).
      const batch = tupleBatches ? (await tupleBatches.next()).value ?? null : null;
      const at: StepPosition = { epoch: state.epoch, loop: state.loop, batch: batchIndex };
      torch.manualSeed(deriveSeed(loopSeed, 0xba7c, batchIndex));
      hooks.beforeStep?.(net, at);
      // The reference's flip: the whole batch of tuples mirrored, or none of it.
      const flipped = tuples !== null && config.data.horizontalFlip && new Rng(deriveSeed(loopSeed, 0xf11b, batchIndex)).bernoulli(0.5);
      const views = invariance ? await invariance.views(deriveSeed(loopSeed, 0x1a7, batchIndex), invarianceShard) : null;
      // The step's images over every rank: its tuples' (whichever rank loaded them) and the invariance term's.
      const stepTuples = tuples ? Math.min(config.optim.batchSize, triplets.length - batchIndex * config.optim.batchSize) : 0;
      images += stepTuples * tuple + (views ? 2 * config.loss.invarianceBatch : 0);
      // The forward passes in the run's precision; the losses (fp32 by contract) and backward outside it.
      const inPrecision = <T>(fn: () => T): T => withPrecision(run.precision.precision, fn, run.device);
      const terms = {
        tuples: {
          weight: 1,
          part: run.group && batch ? batch.indices.length / (tuple * stepTuples) : 1,
          compute: () => (batch ? tupleTerm(run, batch.images, batch.indices.length, flipped, inPrecision) : null),
        },
        invariance: {
          weight: config.loss.invarianceWeight,
          compute: () => (invariance && views ? invarianceTerm(invariance.teacher, net, toDevice(torch.fromHost(views), run.device), config.loss.invarianceOn, inPrecision, run.group) : null),
        },
      };
      const { loss, terms: values } = await adaptiveStep(run.threads, () => optimizerStep(opt, terms, reduce), (c) => run.record({ event: 'threads', ...at, ...c }));
      // Data-parallel: each rank's BatchNorm saw its share of the batch; all keep rank 0's statistics
      // (DDP's broadcast_buffers), so the next step, the cache, validation and checkpoints agree.
      if (run.group) broadcastBuffers(run.group, net);
      if (!Number.isFinite(loss)) {
        bar.stop();
        throw await nonFiniteLoss(run, at, loss);
      }
      lossSum += loss;
      await run.record({
        event: 'step', ...at, loss, ...(config.data.horizontalFlip && tuples ? { flipped } : {}), ...(values.invariance !== undefined ? { invariance: values.invariance } : {}),
        ...(views && config.loss.invarianceSizes.length > 0 ? { invarianceSize: `${views.shape[2]}x${views.shape[3]}` } : {}),
      });
      bar.tick(1, { loss: loss.toFixed(4) });
      state.epochLossSum += loss;
      state.epochSteps++;
    }
  } finally {
    bar.stop();
    await tupleBatches?.return(undefined);
  }
  return { steps: batches, lossSum, images, ms: msSince(t) };
}

/**
 * The loop's tuples as batches of images, tuple by tuple: the query augmented, its best positive, its
 * negatives. Data-parallel: this rank's share of each batch (shardOf), each image augmented as the
 * whole batch's would be (seeded by its index in the loop), so N processes see what one would.
 */
function loadTupleBatches(run: Run, loopSeed: number, triplets: Triplet[]) {
  const { config, size, normalization, group } = run;
  const tuple = 2 + config.mining.negsNumPerQuery;
  const perStep = config.optim.batchSize;
  const mine: number[] = []; // tuple indices this rank trains on, step after step
  for (let start = 0; start < triplets.length; start += perStep) {
    const n = Math.min(perStep, triplets.length - start);
    const [lo, hi] = group ? shardOf(n, group.rank, group.worldSize) : [0, n];
    for (let k = lo; k < hi; k++) mine.push(start + k);
  }
  const paths = mine.flatMap((t) => {
    const tr = triplets[t];
    return [run.training.paths[tr.query], run.trainDs.databasePaths[tr.positive], ...Array.from(tr.negatives, (n) => run.trainDs.databasePaths[n])];
  });
  const transform = (path: string, i: number) => {
    const inLoop = mine[Math.floor(i / tuple)] * tuple + (i % tuple);
    return i % tuple === 0
      ? loadAugmentedImage(path, deriveSeed(loopSeed, 0xa11, inLoop), { size, normalization, augment: config.data.augment })
      : loadImage(path, { size, normalization });
  };
  const [lo, hi] = group ? shardOf(perStep, group.rank, group.worldSize) : [0, perStep];
  return loadBatches(paths, transform, { batchSize: (hi - lo) * tuple });
}

/** The tuple loss of a batch of images laid out tuple by tuple (mirrored when `flipped`). */
function tupleTerm(run: Run, images: Float32HostTensor, count: number, flipped: boolean, inPrecision: <T>(fn: () => T) => T): Tensor {
  const x = torch.fromHost(images);
  const descriptors = inPrecision(() => run.net.forward(toDevice(flipped ? x.flip(3) : x, run.device)));
  const { query, positive, negatives } = splitTuples(descriptors, count / (2 + run.config.mining.negsNumPerQuery));
  return run.loss(query, positive, negatives, run.config.loss.lossReduction);
}

/** The run stops on a loss that is not finite: logged, and an error that says where the last good state is. */
async function nonFiniteLoss(run: Run, at: StepPosition, loss: number): Promise<NonFiniteLossError> {
  const { config } = run;
  const saved = existsSync(run.lastPath);
  await run.record({ event: 'nonfinite-loss', ...at, loss: String(loss), checkpoint: saved ? run.lastPath : null });
  return new NonFiniteLossError(`training stopped: the ${config.loss.criterion === 'none' ? 'invariance' : config.loss.criterion} loss became ${loss} at epoch ${at.epoch}, cache loop ${at.loop}, batch ${at.batch}. ` +
    (saved ? `${run.lastPath} keeps the last good state (before cache loop ${at.loop} of epoch ${at.epoch}); resuming restarts from there. `
      : 'No checkpoint had been written yet. ') +
    `Lower the learning rate (now ${config.optim.lr}) or check the images of this batch.`, loss, at);
}

/** Phase 5: last.pth after every cache loop (the resume point), never with broken weights. Returns its time. */
async function guardedCheckpoint(run: Run, steps: number): Promise<number> {
  const { net, state, config, lastPath } = run;
  const t = performance.now();
  const broken = firstNonFiniteTensor(net);
  if (broken !== null) {
    const at: StepPosition = { epoch: state.epoch, loop: state.loop, batch: steps - 1 };
    const saved = existsSync(lastPath);
    await run.record({ event: 'nonfinite-weights', ...at, tensor: broken, checkpoint: saved ? lastPath : null });
    throw new NonFiniteLossError(`training stopped: ${broken} holds NaN/inf after the last step of epoch ${at.epoch}, cache loop ${at.loop} ` +
      `(the loss was still finite). ${saved ? `${lastPath} keeps the last good state; ` : 'No checkpoint had been written yet; '}` +
      `lower the learning rate (now ${config.optim.lr}).`, NaN, at);
  }
  await saveLast(run, { loop: state.loop + 1 }); // a resumed run starts at the next cache loop
  return msSince(t);
}

/** last.pth: the weights, the optimizer and the run's state (`next` overrides what a resume starts from); rank 0 writes it. */
async function saveLast(run: Run, next: Partial<RunState> = {}): Promise<void> {
  if (!run.main) return;
  return saveCheckpoint(run.lastPath, run.net, run.opt, { ...run.state, ...next, memory: memoryToJSON(run.memory) } satisfies RunState);
}

/** Phase 6: recall on val, best.pth when R@5 improves, early stopping. Returns whether to stop. */
async function validateEpoch(run: Run, valDs: GeoDataset): Promise<boolean> {
  const { net, state, config, log } = run;
  const t = performance.now();
  const recalls = await recallsOn(net, valDs, config, run.progress, 'hard_resize', run.device, run.precision, run.group);
  const validateMs = msSince(t);
  const meanLoss = state.epochSteps > 0 ? state.epochLossSum / state.epochSteps : NaN;
  state.history.push({ epoch: state.epoch, recalls, meanLoss });
  await run.record({ event: 'validation', epoch: state.epoch, recalls, meanLoss, validateMs, images: valDs.databasePaths.length + valDs.queriesPaths.length });
  const r5 = recalls[5] ?? recalls[Math.min(...config.eval.recallValues)];
  log(`epoch ${state.epoch}: mean loss ${meanLoss.toFixed(4)}, val ${Object.entries(recalls).map(([n, r]) => `R@${n} ${r.toFixed(1)}`).join(', ')}`);
  await run.hooks.afterValidation?.(net, state.epoch, recalls);
  if (config.optim.averageWeights) {
    await updateAverage({
      net, config, epoch: state.epoch, device: run.device, record: run.record, log, group: run.group,
      validate: (average) => recallsOn(average, valDs, config, run.progress, 'hard_resize', run.device, run.precision, run.group),
    });
  }
  state.epoch++;
  state.loop = 0;
  state.epochLossSum = 0;
  state.epochSteps = 0;
  if (r5 > state.bestR5) {
    state.bestR5 = r5;
    state.bestEpoch = state.epoch - 1;
    state.epochsWithoutImprovement = 0;
    if (run.main) await saveCheckpoint(run.bestPath, net, null, { epoch: state.bestEpoch, recalls, config: flattenConfig(config) });
  } else {
    state.epochsWithoutImprovement++;
  }
  await saveLast(run);
  if (run.group) checkSameWeights(run.group, net, state.epoch - 1);
  if (state.epochsWithoutImprovement < config.optim.patience) return false;
  log(`early stop: val R@5 did not improve for ${config.optim.patience} epochs (best ${state.bestR5.toFixed(2)} at epoch ${state.bestEpoch})`);
  return true;
}

/**
 * Phase 7: the best model on the test splits of the training datasets that have one (null: none has).
 * Data-parallel: rank 0's best model is broadcast and every rank describes its shard of the test images.
 */
async function testBest(run: Run, names: string[]): Promise<Recalls | null> {
  const { net, state, config, group } = run;
  const modelPath = reportedCheckpointOf(config.run.outputFolder, config.optim.averageWeights).path;
  const withTest: string[] = [];
  for (const name of names) if ((await listSplits(config.data.datasetsFolder, name)).includes('test')) withTest.push(name);
  // Rank 0's files decide (another machine may not see them).
  const ready = group ? agreeWithRank0(group, run.main && existsSync(modelPath)) : existsSync(modelPath);
  if (!ready || withTest.length === 0) return null;
  const testDs = await openDatasets(config.data.datasetsFolder, withTest, 'test');
  if (run.main) torch.loadStateDict(net, (await loadCheckpoint(modelPath)).stateDict, { source: modelPath });
  if (group) broadcastWeights(group, net);
  const testRecalls = await recallsOn(net, testDs, config, run.progress, config.eval.testMethod, run.device, run.precision, group);
  if (!run.main) return testRecalls;
  await run.record({ event: 'test', epoch: state.bestEpoch, method: config.eval.testMethod, recalls: testRecalls });
  await writeFile(join(config.run.outputFolder, 'results.json'), `${JSON.stringify({ bestEpoch: state.bestEpoch, bestValR5: state.bestR5, test: testRecalls, history: state.history }, null, 2)}\n`);
  run.log(`test (${config.optim.averageWeights ? 'average of the epochs' : `best model, epoch ${state.bestEpoch}`}, ${config.eval.testMethod}): ${Object.entries(testRecalls).map(([n, r]) => `R@${n} ${r.toFixed(1)}`).join(', ')}`);
  return testRecalls;
}

/**
 * config.json: the resolved options by the names flags and config files use (flat, as the reference's
 * arguments), so it is also a valid --config file; TrainConfigSchema reads it back into its slices.
 */
function writeConfigFile(out: string, config: TrainConfig): Promise<void> {
  return writeFile(join(out, RUN_FILES.config), `${JSON.stringify(flattenConfig(config), null, 2)}\n`);
}

const msSince = (t: number) => Math.round(performance.now() - t);


