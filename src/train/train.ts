// The training loop of the reference, one screen per concern:
//   for each epoch: for each cache loop: sample queries → cache descriptors → mine → train on tuples
//                   → checkpoint;  then validate (recall@N on val) → best checkpoint → early stopping.
// Every random draw derives from (seed, epoch, loop, batch), so a run resumed from its last checkpoint
// (written atomically after every cache loop) continues exactly as if never interrupted.
import { existsSync } from 'node:fs';
import { mkdir, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import * as torch from '../torch/index.ts';
import { optim, type Tensor } from '../torch/index.ts';
import { saveCheckpoint, loadCheckpoint } from '../torch/checkpoint.ts';
import { openDataset, type GeoDataset } from '../data/dataset.ts';
import { computePositives, trainingQueries, type TrainingQueries } from '../data/positives.ts';
import { loadImage, type ImageSize } from '../data/image.ts';
import { loadAugmentedImage } from '../data/augment.ts';
import { loadBatches } from '../data/loader.ts';
import { Rng, deriveSeed } from '../data/random.ts';
import { buildNetwork, type GeoLocalizationNet } from '../models/network.ts';
import { isDataInitialised } from '../models/types.ts';
import { isCrnParameterName } from '../models/aggregation/index.ts';
import type { AggregationName } from '../models/aggregation/index.ts';
import { extractDescriptors, imageNormalization } from '../eval/extract.ts';
import { searchExact } from '../eval/search.ts';
import { recallAtN, type Recalls } from '../eval/recall.ts';
import { computeLoss, splitTuples, type LossName } from './losses.ts';
import { planCacheLoop, sampleLoopQueries } from './cache.ts';
import { mineTriplets, type NegativeMemory, type Triplet } from './mining.ts';
import type { TrainConfig } from './config.ts';

export class NonFiniteLossError extends Error {}

/** What a checkpoint's metadata holds besides the weights and the optimizer. */
interface RunState {
  /** Epoch and cache loop to run next. */
  epoch: number;
  loop: number;
  bestR5: number;
  bestEpoch: number;
  epochsWithoutImprovement: number;
  /** Full mining's memory: training-query index → previous hardest negatives. */
  memory: [number, number[]][];
  history: { epoch: number; recalls: Recalls; meanLoss: number }[];
  config: TrainConfig;
}

export interface TrainResult {
  outputFolder: string;
  bestEpoch: number;
  bestR5: number;
  history: RunState['history'];
  stoppedEarly: boolean;
}

export interface TrainHooks {
  /** Progress bars on stderr (default: when stderr is a TTY). */
  progress?: boolean;
  log?: (line: string) => void;
  /** Stop after this many cache loops in this process (tests: simulate a killed run). */
  maxLoops?: number;
}

const criterionName = (c: TrainConfig['criterion']): LossName => c.replace('-', '_') as LossName;

export function networkFor(config: TrainConfig): GeoLocalizationNet {
  const aggregation = (config.attention ? `attention+${config.aggregation}` : config.aggregation) as AggregationName;
  return buildNetwork({
    backbone: config.backbone,
    aggregation,
    head: { clusters: config.netvladClusters, fcDim: config.fcOutputDim },
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

function bar(label: string, total: number, show: boolean): SingleBar | null {
  if (!show) return null;
  const b = new SingleBar({
    format: `${label} [{bar}] {value}/{total} | {rate} it/s | ETA {eta_formatted} | loss {loss}`,
    etaBuffer: 20, clearOnComplete: true, stream: process.stderr,
  }, Presets.shades_classic);
  b.start(total, 0, { rate: '-', loss: '-' });
  return b;
}

/** Recall@N of the model on a split (database vs queries, soft positives at the val radius). */
export async function recallsOn(net: GeoLocalizationNet, ds: GeoDataset, config: TrainConfig, progress: boolean): Promise<Recalls> {
  const size: ImageSize = { height: config.resize[0], width: config.resize[1] };
  const softPositives = computePositives(ds, { valPositiveDistThreshold: config.valPositiveDistThreshold }).soft;
  return net.fastInference(async (forward) => {
    const model = net.asDescriptorModel(forward);
    const opts = { size, batchSize: config.inferBatchSize, progress };
    const db = await extractDescriptors(model, ds.databasePaths, { ...opts, label: `${ds.split} database` });
    const q = await extractDescriptors(model, ds.queriesPaths, { ...opts, label: `${ds.split} queries` });
    const k = Math.max(...config.recallValues);
    const neighbours = torch.tidy(() => searchExact(db, q, { k, metric: 'unit' }));
    db.dispose();
    q.dispose();
    return recallAtN(neighbours, softPositives, config.recallValues.filter((n) => n <= Math.max(k, ds.databasePaths.length)));
  });
}

/** NetVLAD-style heads: k-means over local descriptors of random training database images. */
async function initialiseHead(net: GeoLocalizationNet, ds: GeoDataset, config: TrainConfig, log: (s: string) => void): Promise<void> {
  if (!isDataInitialised(net.aggregation)) return;
  const rng = new Rng(deriveSeed(config.seed, 0x1417));
  const images = rng.sample(ds.databasePaths.length, Math.min(500, ds.databasePaths.length)).map((i) => ds.databasePaths[i]);
  const size: ImageSize = { height: config.resize[0], width: config.resize[1] };
  const perImage = 100;
  const chunks: Tensor[] = [];
  net.eval();
  for await (const batch of loadBatches(images, (p) => loadImage(p, { size, normalization: imageNormalization(net) }), { batchSize: config.inferBatchSize })) {
    chunks.push(torch.keep(torch.tidy(() => torch.inferenceMode(() => {
      const maps = net.features(torch.fromHost(batch.images)); // [B, C, h, w]
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

/** Cache loop: extract the plan's database and query descriptors with the fast inference path. */
async function cacheDescriptors(net: GeoLocalizationNet, ds: GeoDataset, training: TrainingQueries, plan: ReturnType<typeof planCacheLoop>, config: TrainConfig, progress: boolean) {
  const size: ImageSize = { height: config.resize[0], width: config.resize[1] };
  return net.fastInference(async (forward) => {
    const model = net.asDescriptorModel(forward);
    const opts = { size, batchSize: config.inferBatchSize, progress };
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
  const record = (entry: Record<string, unknown>) => appendFile(logFile, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);

  // Data: what exists and where (validated up front, before any model work).
  const trainDs = await openDataset(config.datasetsFolder, config.datasetName, 'train');
  const valDs = await openDataset(config.datasetsFolder, config.datasetName, 'val');
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
  net.freezeReference();
  const opt = optimizerFor(net, config);
  const lastPath = join(out, 'last.pth');
  const bestPath = join(out, 'best.pth');
  let state: RunState;
  if (existsSync(lastPath)) {
    const ck = await loadCheckpoint<RunState>(lastPath);
    torch.loadStateDict(net, ck.stateDict, { source: lastPath });
    if (ck.optimizer) opt.loadStateDict(ck.optimizer);
    state = ck.meta;
    log(`resuming ${lastPath}: epoch ${state.epoch}, cache loop ${state.loop}, best R@5 ${state.bestR5.toFixed(2)}`);
  } else {
    await initialiseHead(net, trainDs, config, log);
    state = { epoch: 0, loop: 0, bestR5: -1, bestEpoch: -1, epochsWithoutImprovement: 0, memory: [], history: [], config };
    await writeFile(join(out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  }
  const summary = net.summary();
  log(`model: ${summary.backbone} + ${summary.aggregation}, descriptor ${summary.descriptorDim}-d, ` +
    `${summary.trainableParameters.toLocaleString('en')} of ${summary.parameters.toLocaleString('en')} parameters trained`);

  const memory: NegativeMemory = new Map(state.memory.map(([q, negs]) => [q, Int32Array.from(negs)]));
  const loopsPerEpoch = Math.ceil(config.queriesPerEpoch / config.cacheRefreshRate);
  const tuple = 2 + config.negsNumPerQuery;
  const size: ImageSize = { height: config.resize[0], width: config.resize[1] };
  const normalization = imageNormalization(net);
  let loopsRun = 0;
  let stoppedEarly = false;

  const saveLast = () => saveCheckpoint(lastPath, net, opt, { ...state, memory: [...memory].map(([q, n]) => [q, Array.from(n)]) });

  while (state.epoch < config.epochs) {
    const losses: number[] = [];
    for (; state.loop < loopsPerEpoch; state.loop++) {
      if (hooks.maxLoops !== undefined && loopsRun >= hooks.maxLoops) return finish();
      const loopSeed = deriveSeed(config.seed, state.epoch, state.loop);
      // 1. which queries, 2. cache, 3. mine
      const queries = sampleLoopQueries(training.count, config.cacheRefreshRate, loopSeed);
      const plan = planCacheLoop(training, trainDs.databasePaths.length, queries,
        { method: config.mining, negSamplesNum: config.negSamplesNum, negsNumPerQuery: config.negsNumPerQuery }, loopSeed);
      const cache = await cacheDescriptors(net, trainDs, training, plan, config, progress);
      const triplets: Triplet[] = mineTriplets(plan, cache, training, memory);
      torch.dispose(cache);
      new Rng(deriveSeed(loopSeed, 0x5eed)).shuffle(triplets);

      // 4. train on the tuples: query (augmented), best positive, negatives
      const paths = triplets.flatMap((t) => [training.paths[t.query], trainDs.databasePaths[t.positive], ...Array.from(t.negatives, (n) => trainDs.databasePaths[n])]);
      const transform = (path: string, i: number) => (i % tuple === 0
        ? loadAugmentedImage(path, deriveSeed(loopSeed, 0xa11, i), { size, normalization, augment: config.augment })
        : loadImage(path, { size, normalization }));
      net.train();
      const batches = Math.ceil(triplets.length / config.batchSize);
      const b = bar(`epoch ${state.epoch} loop ${state.loop + 1}/${loopsPerEpoch}`, batches, progress);
      const started = Date.now();
      let batchIndex = 0;
      for await (const batch of loadBatches(paths, transform, { batchSize: config.batchSize * tuple })) {
        const n = batch.indices.length / tuple;
        torch.manualSeed(deriveSeed(loopSeed, 0xba7c, batchIndex));
        const loss = torch.tidy(() => {
          opt.zeroGrad();
          const descriptors = net.forward(torch.fromHost(batch.images));
          const { query, positive, negatives } = splitTuples(descriptors, n);
          const l = computeLoss(criterionName(config.criterion), query, positive, negatives, { margin: config.margin });
          const value = l.item();
          if (!Number.isFinite(value)) return value;
          l.backward();
          opt.step();
          return value;
        });
        if (!Number.isFinite(loss)) {
          await record({ event: 'nonfinite-loss', epoch: state.epoch, loop: state.loop, batch: batchIndex, loss: String(loss) });
          throw new NonFiniteLossError(`loss became ${loss} at epoch ${state.epoch}, cache loop ${state.loop}, batch ${batchIndex}; ` +
            `the run stopped without saving this loop — ${existsSync(lastPath) ? `${lastPath} holds the last good state` : 'no checkpoint was written yet'}. ` +
            'Lower --lr or check the data.');
        }
        losses.push(loss);
        await record({ event: 'step', epoch: state.epoch, loop: state.loop, batch: batchIndex, loss });
        batchIndex++;
        b?.update(batchIndex, { loss: loss.toFixed(4), rate: (batchIndex / ((Date.now() - started) / 1000)).toFixed(2) });
      }
      b?.stop();
      // 5. checkpoint after every cache loop (resume point)
      state.loop++;
      await saveLast();
      state.loop--;
      loopsRun++;
    }

    // 6. validate, keep the best, stop early on val R@5
    const recalls = await recallsOn(net, valDs, config, progress);
    const meanLoss = losses.length ? losses.reduce((a, x) => a + x, 0) / losses.length : NaN;
    state.history.push({ epoch: state.epoch, recalls, meanLoss });
    await record({ event: 'validation', epoch: state.epoch, recalls, meanLoss });
    const r5 = recalls[5] ?? recalls[Math.min(...config.recallValues)];
    log(`epoch ${state.epoch}: mean loss ${meanLoss.toFixed(4)}, val ${Object.entries(recalls).map(([n, r]) => `R@${n} ${r.toFixed(1)}`).join(', ')}`);
    state.epoch++;
    state.loop = 0;
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
  return finish();

  function finish(): TrainResult {
    opt.dispose();
    net.dispose();
    return { outputFolder: out, bestEpoch: state.bestEpoch, bestR5: state.bestR5, history: state.history, stoppedEarly };
  }
}
