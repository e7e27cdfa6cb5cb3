// The training loop of the reference, one screen per concern:
//   for each epoch: for each cache loop: sample queries → cache descriptors → mine → train on tuples
//                   → checkpoint;  then validate (recall@N on val) → best checkpoint → early stopping.
// Every random draw derives from (seed, epoch, loop, batch), so a run resumed from its last checkpoint
// (written atomically after every cache loop) continues exactly as if never interrupted.
// log.jsonl gets one line per step, per cache loop (timings, mining statistics) and per validation.
import { existsSync } from 'node:fs';
import { mkdir, writeFile, appendFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as torch from '../torch/index.ts';
import { optim, type Tensor } from '../torch/index.ts';
import { saveCheckpoint, loadCheckpoint } from '../torch/checkpoint.ts';
import { openDatasets, listSplits, partOf, type GeoDataset } from '../data/dataset.ts';
import { computePositives, trainingQueries, type TrainingQueries } from '../data/positives.ts';
import { loadImage, type ImageSize } from '../data/image.ts';
import { loadAugmentedImage } from '../data/augment.ts';
import { loadBatches } from '../data/loader.ts';
import { progressBar } from '../data/progress.ts';
import { Rng, deriveSeed } from '../data/random.ts';
import { buildNetwork, type GeoLocalizationNet } from '../models/network.ts';
import { isDataInitialised } from '../models/types.ts';
import { isCrnParameterName } from '../models/aggregation/index.ts';
import type { AggregationName } from '../models/aggregation/index.ts';
import { extractDescriptors, imageNormalization } from '../eval/extract.ts';
import { evaluate } from '../eval/evaluate.ts';
import type { Recalls } from '../eval/recall.ts';
import { computeLoss, splitTuples, type LossName } from './losses.ts';
import { planCacheLoop, sampleLoopQueries } from './cache.ts';
import { mineTriplets, summarizeTriplets, memoryToJSON, memoryFromJSON, type NegativeMemory, type Triplet } from './mining.ts';
import { datasetNames, type TrainConfig } from './config.ts';

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
  config: TrainConfig;
}

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
  mining: ReturnType<typeof summarizeTriplets>;
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
  | ({ event: 'step'; loss: number } & StepPosition)
  | LoopRecord
  | ValidationRecord
  | ({ event: 'nonfinite-loss'; loss: string; checkpoint: string | null } & StepPosition)
  | ({ event: 'nonfinite-weights'; tensor: string; checkpoint: string | null } & StepPosition)
  | { event: 'test'; epoch: number; recalls: Recalls };

const criterionName = (c: TrainConfig['criterion']): LossName => c.replace('-', '_') as LossName;

/** Where the network computes: CUDA when the linked libtorch has it (VGL_DEVICE=cpu to stay on the CPU). */
const device = torch.defaultDevice();
const toDevice = (x: Tensor): Tensor => (device === 'cpu' ? x : x.to(device));

export function networkFor(config: TrainConfig): GeoLocalizationNet {
  const aggregation = (config.attention ? `attention+${config.aggregation}` : config.aggregation) as AggregationName;
  return buildNetwork({
    backbone: config.backbone,
    aggregation,
    head: { clusters: config.netvladClusters, fcDim: config.fcOutputDim },
    resnetWidths: config.resnetWidths,
  });
}

function optimizerFor(net: GeoLocalizationNet, config: TrainConfig): optim.Optimizer<object> {
  const named = [...net.namedParameters()].filter(([, p]) => p.requiresGrad);
  const crn = named.filter(([n]) => isCrnParameterName(n)).map(([, p]) => p);
  const rest = named.filter(([n]) => !isCrnParameterName(n)).map(([, p]) => p);
  const groups = crn.length > 0 ? [{ params: rest }, { params: crn, options: { lr: config.lrCrn } }] : [{ params: rest }];
  return config.optimizer === 'adam'
    ? new optim.Adam(groups, { lr: config.lr, weightDecay: config.weightDecay ?? 0 })
    : new optim.SGD(groups, { lr: config.lr, momentum: config.momentum, weightDecay: config.weightDecay ?? 1e-3 });
}

/** Recall@N of the model on a split (database vs queries, soft positives at the val radius). */
export async function recallsOn(net: GeoLocalizationNet, ds: GeoDataset, config: TrainConfig, progress: boolean): Promise<Recalls> {
  const result = await net.fastInference((forward) => evaluate(net.asDescriptorModel(forward), ds, {
    size: { height: config.resize[0], width: config.resize[1] }, batchSize: config.inferBatchSize, device, progress,
    radius: config.valPositiveDistThreshold, recallValues: config.recallValues,
  }));
  return result.recalls;
}

/** 500 random database images; of several training datasets, as many from each as it can give (a large one must not set every cluster). */
function headInitImages(ds: GeoDataset, rng: Rng, count = 500): string[] {
  const parts = ds.parts ?? [{ database: [0, ds.databasePaths.length] as const }];
  const groups = parts.map(({ database: [start, end] }) => Array.from({ length: end - start }, (_, i) => start + i));
  return rng.sampleBalanced(groups, count).map((i) => ds.databasePaths[i]);
}

/** NetVLAD-style heads: k-means over local descriptors of random training database images. */
export async function initialiseHead(net: GeoLocalizationNet, ds: GeoDataset, config: TrainConfig, log: (s: string) => void): Promise<void> {
  if (!isDataInitialised(net.aggregation)) return;
  const rng = new Rng(deriveSeed(config.seed, 0x1417));
  const images = headInitImages(ds, rng);
  const size: ImageSize = { height: config.resize[0], width: config.resize[1] };
  const perImage = 100;
  const chunks: Tensor[] = [];
  net.eval();
  for await (const batch of loadBatches(images, (p) => loadImage(p, { size, normalization: imageNormalization(net) }), { batchSize: config.inferBatchSize })) {
    chunks.push(torch.keep(torch.tidy(() => torch.inferenceMode(() => {
      const maps = net.features(toDevice(torch.fromHost(batch.images))); // [B, C, h, w]
      const [b, c, h, w] = maps.shape;
      const locals = maps.permute(0, 2, 3, 1).reshape(b * h * w, c);
      const pick: number[] = [];
      for (let i = 0; i < b; i++) {
        const k = Math.min(perImage, h * w);
        for (const j of rng.sample(h * w, k)) pick.push(i * h * w + j);
      }
      return locals.indexSelect(0, torch.tensor(Int32Array.from(pick), undefined, { dtype: 'int64' })).clone();
    }))));
  }
  const descriptors = torch.cat(chunks, 0);
  torch.dispose(chunks);
  log(`initialising ${net.config.aggregation} from ${descriptors.size(0)} local descriptors of ${images.length} database images`);
  net.aggregation.initFromDescriptors(descriptors, deriveSeed(config.seed, 0x1418));
  descriptors.dispose();
}

/** The first parameter or buffer holding NaN/±inf, or null. A step can break weights (or BatchNorm statistics) with a finite loss. */
export function firstNonFiniteTensor(net: GeoLocalizationNet): string | null {
  return torch.tidy(() => {
    for (const [name, t] of net.stateDict()) if (t.dtype.startsWith('float') && !t.isfinite().all()) return name;
    return null;
  });
}

/** Temp files of checkpoint writes a killed run left behind (the checkpoints themselves are intact: writes are atomic). */
export const STALE_CHECKPOINT_TEMP = /^\.(last|best)\.pth\.\d+\.[0-9a-f]+\.tmp$/;

async function removeStaleTempFiles(out: string, log: (s: string) => void): Promise<void> {
  const stale = (await readdir(out)).filter((f) => STALE_CHECKPOINT_TEMP.test(f));
  for (const f of stale) await rm(join(out, f), { force: true });
  if (stale.length > 0) log(`removed ${stale.length} unfinished checkpoint write(s) of an interrupted run: ${stale.slice(0, 20).join(', ')}`);
}

/** Cache loop: extract the plan's database and query descriptors with the fast inference path. */
async function cacheDescriptors(net: GeoLocalizationNet, ds: GeoDataset, training: TrainingQueries, plan: ReturnType<typeof planCacheLoop>, config: TrainConfig, progress: boolean) {
  const size: ImageSize = { height: config.resize[0], width: config.resize[1] };
  return net.fastInference(async (forward) => {
    const model = net.asDescriptorModel(forward);
    const opts = { size, batchSize: config.inferBatchSize, progress, device };
    const database = await extractDescriptors(model, Array.from(plan.database, (i) => ds.databasePaths[i]), { ...opts, label: 'cache database' });
    const queries = await extractDescriptors(model, Array.from(plan.queries, (j) => training.paths[j]), { ...opts, label: 'cache queries' });
    return { database, queries };
  });
}

export async function train(config: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  const progress = hooks.progress ?? Boolean(process.stderr.isTTY);
  const out = config.outputFolder;
  await mkdir(out, { recursive: true });
  const log = hooks.log ?? ((s: string) => console.error(s));
  const logFile = join(out, 'log.jsonl');
  const record = async (entry: LogEntry) => {
    await appendFile(logFile, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
    hooks.onRecord?.(entry);
  };

  // Data: what exists and where (validated up front, before any model work).
  // Several datasets: their training sets are mixed (tuples never cross datasets), validation covers every val split.
  const names = datasetNames(config);
  const trainDs = await openDatasets(config.datasetsFolder, names, 'train');
  const valDs = await openDatasets(config.datasetsFolder, names, 'val');
  const positives = computePositives(trainDs, {
    valPositiveDistThreshold: config.valPositiveDistThreshold, trainPositivesDistThreshold: config.trainPositivesDistThreshold,
  });
  const training = trainingQueries(trainDs, positives);
  log(`train: ${trainDs.databasePaths.length} database, ${training.count} queries with a hard positive within ${config.trainPositivesDistThreshold} m` +
    ` (${training.dropped} dropped); val: ${valDs.databasePaths.length} database, ${valDs.queriesPaths.length} queries`);
  if (training.count === 0) throw new Error(`no training query of ${trainDs.dir} has a database image within ${config.trainPositivesDistThreshold} m`);

  // Model and optimizer, fresh or resumed.
  torch.manualSeed(config.seed);
  const net = networkFor(config);
  if (config.weights) await net.loadPretrained(config.weights);
  if (device !== 'cpu') net.to(device);
  net.freezeBackbone(config.freezeBackbone);
  const opt = optimizerFor(net, config);
  const lastPath = join(out, 'last.pth');
  const bestPath = join(out, 'best.pth');
  await removeStaleTempFiles(out, log);
  let state: RunState;
  if (existsSync(lastPath)) {
    const ck = await loadCheckpoint<RunState>(lastPath);
    torch.loadStateDict(net, ck.stateDict, { source: lastPath });
    if (ck.optimizer) opt.loadStateDict(ck.optimizer);
    state = ck.meta;
    if (Array.isArray(state.memory)) state.memory = Object.fromEntries(state.memory as [number, number[]][]); // checkpoints written before memoryToJSON
    state.epochLossSum ??= 0;
    state.epochSteps ??= 0;
    log(`resuming ${lastPath}: epoch ${state.epoch}, cache loop ${state.loop}, best R@5 ${state.bestR5.toFixed(2)}`);
  } else {
    await initialiseHead(net, trainDs, config, log);
    state = { epoch: 0, loop: 0, bestR5: -1, bestEpoch: -1, epochsWithoutImprovement: 0, memory: {}, epochLossSum: 0, epochSteps: 0, history: [], config };
    await writeFile(join(out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  }
  const summary = net.summary();
  log(`model: ${summary.backbone} + ${summary.aggregation}, descriptor ${summary.descriptorDim}-d, ` +
    `${summary.trainableParameters.toLocaleString('en')} of ${summary.parameters.toLocaleString('en')} parameters trained`);

  const memory: NegativeMemory = memoryFromJSON(state.memory, `${lastPath} (negative memory)`);
  // Several training datasets, balanced: every cache loop draws its queries equally from each.
  let queryGroups: Int32Array | undefined;
  if (config.mixing === 'balanced' && trainDs.parts) {
    const queryPart = partOf(trainDs, 'queries');
    queryGroups = Int32Array.from(training.originalIndices, (q) => queryPart[q]);
  }
  const loopsPerEpoch = Math.ceil(config.queriesPerEpoch / config.cacheRefreshRate);
  const tuple = 2 + config.negsNumPerQuery;
  const size: ImageSize = { height: config.resize[0], width: config.resize[1] };
  const normalization = imageNormalization(net);
  let loopsRun = 0;
  let stoppedEarly = false;

  const saveLast = () => saveCheckpoint(lastPath, net, opt, { ...state, memory: memoryToJSON(memory) } satisfies RunState);

  const msSince = (t: number) => Math.round(performance.now() - t);
  const result = (): TrainResult => ({ outputFolder: out, bestEpoch: state.bestEpoch, bestR5: state.bestR5, history: state.history, stoppedEarly });

  try {
    while (state.epoch < config.epochs) {
      for (; state.loop < loopsPerEpoch; state.loop++) {
        if (hooks.maxLoops !== undefined && loopsRun >= hooks.maxLoops) return result();
        const loopSeed = deriveSeed(config.seed, state.epoch, state.loop);
        // 1. which queries, 2. cache their descriptors and the database's
        let t = performance.now();
        const queries = sampleLoopQueries(training.count, config.cacheRefreshRate, loopSeed, queryGroups);
        const plan = planCacheLoop(training, trainDs.databasePaths.length, queries,
          { method: config.mining, negSamplesNum: config.negSamplesNum, negsNumPerQuery: config.negsNumPerQuery }, loopSeed);
        const cache = await cacheDescriptors(net, trainDs, training, plan, config, progress);
        const cacheMs = msSince(t);
        // 3. mine best positives and negatives
        t = performance.now();
        let triplets: Triplet[];
        try {
          triplets = mineTriplets(plan, cache, training, memory);
        } finally {
          torch.dispose(cache);
        }
        new Rng(deriveSeed(loopSeed, 0x5eed)).shuffle(triplets);
        const mineMs = msSince(t);

        // 4. train on the tuples: query (augmented), best positive, negatives
        t = performance.now();
        const paths = triplets.flatMap((tr) => [training.paths[tr.query], trainDs.databasePaths[tr.positive], ...Array.from(tr.negatives, (n) => trainDs.databasePaths[n])]);
        const transform = (path: string, i: number) => (i % tuple === 0
          ? loadAugmentedImage(path, deriveSeed(loopSeed, 0xa11, i), { size, normalization, augment: config.augment })
          : loadImage(path, { size, normalization }));
        net.train();
        const batches = Math.ceil(triplets.length / config.batchSize);
        const bar = progressBar(`epoch ${state.epoch} loop ${state.loop + 1}/${loopsPerEpoch}`, batches, { show: progress, unit: 'step', fields: ['loss'] });
        let batchIndex = 0;
        let loopLossSum = 0;
        for await (const batch of loadBatches(paths, transform, { batchSize: config.batchSize * tuple })) {
          const at: StepPosition = { epoch: state.epoch, loop: state.loop, batch: batchIndex };
          const n = batch.indices.length / tuple;
          torch.manualSeed(deriveSeed(loopSeed, 0xba7c, batchIndex));
          hooks.beforeStep?.(net, at);
          const loss = torch.tidy(() => {
            opt.zeroGrad();
            const descriptors = net.forward(toDevice(torch.fromHost(batch.images)));
            const { query, positive, negatives } = splitTuples(descriptors, n);
            const l = computeLoss(criterionName(config.criterion), query, positive, negatives, { margin: config.margin });
            const value = l.item();
            if (!Number.isFinite(value)) return value; // no step: the weights stay as they were
            l.backward();
            opt.step();
            return value;
          });
          if (!Number.isFinite(loss)) {
            bar.stop();
            const saved = existsSync(lastPath);
            await record({ event: 'nonfinite-loss', ...at, loss: String(loss), checkpoint: saved ? lastPath : null });
            throw new NonFiniteLossError(`training stopped: the ${config.criterion} loss became ${loss} at epoch ${at.epoch}, cache loop ${at.loop}, batch ${at.batch}. ` +
              (saved ? `${lastPath} keeps the last good state (before cache loop ${at.loop} of epoch ${at.epoch}); resuming restarts from there. `
                : 'No checkpoint had been written yet. ') +
              `Lower the learning rate (now ${config.lr}) or check the images of this batch.`, loss, at);
          }
          loopLossSum += loss;
          await record({ event: 'step', ...at, loss });
          batchIndex++;
          bar.tick(1, { loss: loss.toFixed(4) });
        }
        bar.stop();
        const trainMs = msSince(t);
        state.epochLossSum += loopLossSum;
        state.epochSteps += batchIndex;

        // 5. checkpoint after every cache loop (resume point), never with broken weights
        t = performance.now();
        const broken = firstNonFiniteTensor(net);
        if (broken !== null) {
          const at: StepPosition = { epoch: state.epoch, loop: state.loop, batch: batchIndex - 1 };
          const saved = existsSync(lastPath);
          await record({ event: 'nonfinite-weights', ...at, tensor: broken, checkpoint: saved ? lastPath : null });
          throw new NonFiniteLossError(`training stopped: ${broken} holds NaN/inf after the last step of epoch ${at.epoch}, cache loop ${at.loop} ` +
            `(the loss was still finite). ${saved ? `${lastPath} keeps the last good state; ` : 'No checkpoint had been written yet; '}` +
            `lower the learning rate (now ${config.lr}).`, NaN, at);
        }
        state.loop++;
        await saveLast();
        state.loop--;
        await record({
          event: 'loop', epoch: state.epoch, loop: state.loop, cacheMs, mineMs, trainMs, checkpointMs: msSince(t),
          cachedImages: plan.database.length + plan.queries.length, images: paths.length, steps: batchIndex,
          meanLoss: batchIndex > 0 ? loopLossSum / batchIndex : NaN, mining: summarizeTriplets(triplets),
        });
        loopsRun++;
        if (hooks.maxLoops !== undefined && loopsRun >= hooks.maxLoops) return result(); // before validation, as a kill here would
      }

      // 6. validate, keep the best, stop early on val R@5
      const t = performance.now();
      const recalls = await recallsOn(net, valDs, config, progress);
      const validateMs = msSince(t);
      const meanLoss = state.epochSteps > 0 ? state.epochLossSum / state.epochSteps : NaN;
      state.history.push({ epoch: state.epoch, recalls, meanLoss });
      await record({ event: 'validation', epoch: state.epoch, recalls, meanLoss, validateMs, images: valDs.databasePaths.length + valDs.queriesPaths.length });
      const r5 = recalls[5] ?? recalls[Math.min(...config.recallValues)];
      log(`epoch ${state.epoch}: mean loss ${meanLoss.toFixed(4)}, val ${Object.entries(recalls).map(([n, r]) => `R@${n} ${r.toFixed(1)}`).join(', ')}`);
      await hooks.afterValidation?.(net, state.epoch, recalls);
      state.epoch++;
      state.loop = 0;
      state.epochLossSum = 0;
      state.epochSteps = 0;
      if (r5 > state.bestR5) {
        state.bestR5 = r5;
        state.bestEpoch = state.epoch - 1;
        state.epochsWithoutImprovement = 0;
        await saveCheckpoint(bestPath, net, null, { epoch: state.bestEpoch, recalls, config });
      } else {
        state.epochsWithoutImprovement++;
      }
      await saveLast();
      if (state.epochsWithoutImprovement >= config.patience) {
        log(`early stop: val R@5 did not improve for ${config.patience} epochs (best ${state.bestR5.toFixed(2)} at epoch ${state.bestEpoch})`);
        stoppedEarly = true;
        break;
      }
    }
    const withTest: string[] = [];
    if (hooks.test !== false && existsSync(bestPath)) {
      for (const name of names) if ((await listSplits(config.datasetsFolder, name)).includes('test')) withTest.push(name);
    }
    if (withTest.length > 0) {
      const testDs = await openDatasets(config.datasetsFolder, withTest, 'test');
      torch.loadStateDict(net, (await loadCheckpoint(bestPath)).stateDict, { source: bestPath });
      const testRecalls = await recallsOn(net, testDs, config, progress);
      await record({ event: 'test', epoch: state.bestEpoch, recalls: testRecalls });
      await writeFile(join(out, 'results.json'), `${JSON.stringify({ bestEpoch: state.bestEpoch, bestValR5: state.bestR5, test: testRecalls, history: state.history }, null, 2)}\n`);
      log(`test (best model, epoch ${state.bestEpoch}): ${Object.entries(testRecalls).map(([n, r]) => `R@${n} ${r.toFixed(1)}`).join(', ')}`);
      return { ...result(), testRecalls };
    }
    return result();
  } finally {
    opt.dispose();
    net.dispose();
  }
}
