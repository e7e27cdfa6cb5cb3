// `vgl experiment run`: the runs of a plan in sequence. A run whose evaluation.json exists is done and
// skipped; one with a checkpoint resumes (the trainer's own resumption); each run folder records its
// config (config.json), the git commit, the machine, wall times, time per training phase, and for
// every test set recall@N with each query's first correct rank (what the statistics resample); the
// experiment folder gets the tables (table.md/csv/json). A reused
// variant's model is trained by its source plan (in that plan's folder, if not done yet) and only
// evaluated here.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as torch from '../torch/index.ts';
import { Pca } from '../models/pca.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { openDatasets, type GeoDataset } from '../data/dataset.ts';
import { modelFromCheckpoint, reportedCheckpointOf } from '../models/assemble.ts';
import { evaluateNet } from '../eval/evaluate-net.ts';
import { imageSize } from '../data/image.ts';
import { withPca } from '../eval/pca.ts';
import { extractDescriptors } from '../eval/extract.ts';
import { choosePrecision } from '../eval/precision-check.ts';
import { searchTimes, type SearchTime } from '../eval/search-time.ts';
import { datasetNames } from '../train/config.ts';
import { train, type LogEntry } from '../train/train.ts';
import { trainedConfigChanges } from '../train/resume.ts';
import { FINAL_SPLIT } from '../data/splits.ts';
import { FINAL_LEDGER, appendFinalEvaluation, sizedName, untrainedNetwork } from './demo.ts';
import { experimentTable, ownTime, tableCsv, tableMarkdown } from './table.ts';
import { comparisonsOf, expandPlan, readPlan, type Plan, type PlanEvaluation, type PlanTest, type PlannedRun } from './plan.ts';
import { UsageError } from '../errors.ts';
import { gitCommit } from '../util/provenance.ts';
import { RUN_RECORD, readRecords, readRunRecord, type RunRecord, type TestResult } from './record.ts';


export const testKey = (t: PlanTest): string => sizedName(`${t.dataset}${t.split === 'test' ? '' : `/${t.split}`}`, t.size);

/** Time per phase, summed from a run's log, and the number of epochs it trained. */
export function phasesOf(outputFolder: string): Pick<RunRecord, 'phasesMs' | 'epochs'> {
  const phasesMs = { cache: 0, mine: 0, train: 0, validate: 0 };
  let epochs = 0;
  const file = join(outputFolder, 'log.jsonl');
  if (!existsSync(file)) return { phasesMs, epochs };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line) as LogEntry;
    if (e.event === 'loop') {
      phasesMs.cache += e.cacheMs;
      phasesMs.mine += e.mineMs;
      phasesMs.train += e.trainMs;
    } else if (e.event === 'validation') {
      phasesMs.validate += e.validateMs;
      epochs++;
    }
  }
  return { phasesMs, epochs };
}

export type RunProgress = 'done' | 'started' | 'pending' | 'stale';

/**
 * What the model of a finished run (or of the finished source run it reuses) was trained with that the
 * plan no longer asks — the plan was edited after it ran, and its results are not the plan's. Empty
 * when the run is the plan's, or nothing is finished yet (a started run's resume checks its own).
 */
export function staleChanges(run: PlannedRun): string[] {
  const recordFile = join(run.folder, RUN_RECORD);
  // The model a finished record evaluated: its own training, another plan's, or the untrained network.
  if (existsSync(recordFile)) {
    const record = readRunRecord(recordFile);
    const was = record.model === 'untrained' ? 'the untrained network' : record.trainedBy ? `the model of ${record.trainedBy}` : 'its own training';
    const now = run.untrained ? 'the untrained network' : run.source ? `the model of ${run.source.plan.name}/${run.source.run.id}` : 'its own training';
    if (was !== now) return [`evaluated ${was}, the plan now asks ${now}`];
  }
  if (run.untrained) return [];
  const trainer = run.source?.run ?? run;
  if (!existsSync(recordFile) && !existsSync(join(trainer.folder, RUN_RECORD))) return [];
  return trainedConfigChanges(trainer.config.run.outputFolder, trainer.config);
}

export function runState(run: PlannedRun): RunProgress {
  if (staleChanges(run).length > 0) return 'stale';
  if (existsSync(join(run.folder, RUN_RECORD))) return 'done';
  if (run.untrained) return 'pending';
  if (run.source && runState(run.source.run) === 'done') return 'started';
  return existsSync(join(run.config.run.outputFolder, 'last.pth')) ? 'started' : 'pending';
}

export interface ExperimentOptions {
  log?: (line: string) => void;
  progress?: boolean;
  /** Stop after this many runs have been made in this call (tests: a run killed between runs). */
  maxRuns?: number;
}

/** Trains and evaluates every run of the plan not done yet; returns the records of all done runs. */
export async function runExperiment(planPath: string, experimentDir: string, o: ExperimentOptions = {}): Promise<RunRecord[]> {
  const log = o.log ?? ((s: string) => console.error(s));
  const plan = readPlan(planPath);
  const runs = expandPlan(plan, experimentDir, { planFile: planPath });
  const stale = runs.map((r) => ({ r, changes: staleChanges(r) })).filter((x) => x.changes.length > 0);
  if (stale.length > 0) {
    throw new UsageError(`${experimentDir}: ${stale.length} finished run(s) made otherwise than ${planPath} now asks (edited after they ran?); `
      + `their results are not this plan's:\n${stale.map(({ r, changes }) => `  ${r.id}${r.source ? ` (model of ${r.source.plan.name}/${r.source.run.id})` : ''}: ${changes.join('; ')}`).join('\n')}\n`
      + `Move their folder away (or run the plan into another folder with --out) to train them as the plan says.`);
  }
  await writePlanCopy(plan, experimentDir);
  const tests = new TestSets();
  let made = 0;
  for (const [i, run] of runs.entries()) {
    const state = runState(run);
    if (state === 'done') {
      log(`[${i + 1}/${runs.length}] ${run.id}: done, skipped`);
      continue;
    }
    if (o.maxRuns !== undefined && made >= o.maxRuns) break;
    const progress = o.progress ?? false;
    if (run.source) {
      const { source } = run;
      if (runState(source.run) !== 'done') {
        log(`[${i + 1}/${runs.length}] ${run.id}: made by ${source.plan.name}/${source.run.id} first`);
        await writePlanCopy(source.plan, source.experimentDir);
        await makeRun(source.plan, source.run, tests, progress, log);
      }
      log(`[${i + 1}/${runs.length}] ${run.id}: evaluating the model of ${source.plan.name}/${source.run.id}`);
      const trained = readRunRecord(join(source.run.folder, RUN_RECORD));
      await evaluateRun(plan, run, tests, { ...trained, trainedBy: `${source.plan.name}/${source.run.id}` }, log);
    } else if (run.untrained) {
      log(`[${i + 1}/${runs.length}] ${run.id}: evaluating the untrained network`);
      const cost = startCost();
      const net = await untrainedNetwork(run.config, (s) => log(`  ${s}`));
      const untrained = { model: 'untrained', ...trainCost(cost), phasesMs: { cache: 0, mine: 0, train: 0, validate: 0 }, epochs: 0 };
      await evaluateRun(plan, run, tests, untrained, log, net);
    } else {
      log(`[${i + 1}/${runs.length}] ${run.id}: ${state === 'started' ? 'resuming' : 'training'}`);
      await makeRun(plan, run, tests, progress, log);
    }
    made++;
    await writeTables(plan, runs, experimentDir);
  }
  return writeTables(plan, runs, experimentDir);
}

/** table.md, table.csv and table.json of the runs done so far, in the experiment folder (rewritten after every run). */
async function writeTables(plan: Plan, runs: readonly PlannedRun[], dir: string): Promise<RunRecord[]> {
  const records = readRecords(runs);
  if (records.length === 0) return records;
  const table = experimentTable(records, comparisonsOf(plan));
  await writeFileAtomic(join(dir, 'table.md'), `${tableMarkdown(table)}\n`);
  await writeFileAtomic(join(dir, 'table.csv'), tableCsv(table));
  await writeFileAtomic(join(dir, 'table.json'), `${JSON.stringify(table, null, 2)}\n`);
  return records;
}

/** The plan as run, in the experiment folder (what `vgl experiment table` reads). */
async function writePlanCopy(plan: Plan, experimentDir: string): Promise<void> {
  await mkdir(experimentDir, { recursive: true });
  await writeFileAtomic(join(experimentDir, 'plan.json'), `${JSON.stringify(plan, null, 2)}\n`);
}

/** Each test split opened once per experiment (every run and evaluation variant tests on it). */
class TestSets {
  #opened = new Map<string, Promise<{ ds: GeoDataset }>>();
  get(folder: string, t: PlanTest): Promise<{ ds: GeoDataset }> {
    const key = JSON.stringify([folder, t.dataset, t.split]);
    let found = this.#opened.get(key);
    if (!found) {
      found = openDatasets(folder, datasetNames({ data: { datasetName: t.dataset } }), t.split).then((ds) => ({ ds }));
      this.#opened.set(key, found);
    }
    return found;
  }
}

async function makeRun(plan: Plan, run: PlannedRun, sets: TestSets, progress: boolean, log: (s: string) => void): Promise<void> {
  const cost = startCost();
  await train(run.config, { progress, log: (s) => log(`  ${s}`), test: false });
  const trained = { model: modelPathOf(run), ...trainCost(cost), ...phasesOf(run.config.run.outputFolder) };
  await evaluateRun(plan, run, sets, trained, log);
}

/** Wall time, CPU time and load of a phase, from its start. */
interface CostStart { wall: number; cpu: NodeJS.CpuUsage; load: number }
const startCost = (): CostStart => ({ wall: performance.now(), cpu: process.cpuUsage(), load: loadavg()[0]! });
function endCost(start: CostStart): { wallMs: number; cpuMs: number; load: number } {
  const cpu = process.cpuUsage(start.cpu);
  return {
    wallMs: Math.round(performance.now() - start.wall), cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    load: Math.round(Math.max(start.load, loadavg()[0]!) * 100) / 100,
  };
}
type TrainCost = Pick<RunRecord, 'cpuMs' | 'load'> & { wallMs: { train: number } };
function trainCost(start: CostStart): Required<TrainCost> {
  const c = endCost(start);
  return { wallMs: { train: c.wallMs }, cpuMs: { train: c.cpuMs, evaluate: 0 }, load: { train: c.load, evaluate: 0 } };
}

const modelPathOf = (run: PlannedRun) => reportedCheckpointOf(run.config.run.outputFolder, run.config.optim.averageWeights).path;

/** Evaluates a run's model (its checkpoint, or `net` when given) on every test set and evaluation variant of the plan; writes its record. */
async function evaluateRun(plan: Plan, run: PlannedRun, sets: TestSets,
  trained: Pick<RunRecord, 'model' | 'phasesMs' | 'epochs' | 'trainedBy'> & TrainCost, log: (s: string) => void,
  given?: Net): Promise<void> {
  const net = given ?? (await modelFromCheckpoint(trained.model)).net;
  const start = startCost();
  const tests: TestResult[] = [];
  // A PCA to as many dimensions as the descriptor has, or more, is no reduction: skipped for this model.
  const evaluations = plan.evaluations.filter((e) => e.pcaDim === undefined || e.pcaDim < net.dim);
  const skipped = plan.evaluations.filter((e) => !evaluations.includes(e));
  if (skipped.length > 0) log(`  ${skipped.map((e) => e.name).join(', ')}: PCA to at least the descriptor's ${net.dim} dimensions, skipped`);
  const pcas = new PcaFits(run, net, Math.max(0, ...evaluations.map((e) => e.pcaDim ?? 0)));
  try {
    for (const [i, t] of plan.tests.entries()) {
      const set = await sets.get(run.config.data.datasetsFolder, t);
      tests.push(await testOn(net, run, t, set, pcas));
      // Evaluation-only variants: the same trained model, evaluated another way (no retraining).
      // Search time depends on the descriptor and the database size, not on the test set: timed on the
      // first test set only (a variant that only times the search is skipped on the others).
      for (const { searchSizes, ...e } of evaluations) {
        if (i === 0) tests.push(await testOn(net, run, t, set, pcas, { ...e, searchSizes }));
        else if (Object.keys(e).length > 1) tests.push(await testOn(net, run, t, set, pcas, e));
      }
    }
  } finally {
    await pcas.dispose();
    net.dispose();
  }
  const record: RunRecord = {
    id: run.id, variant: run.variant, seed: run.seed, options: run.options, model: given ? trained.model : resolve(trained.model),
    ...(trained.trainedBy ? { trainedBy: trained.trainedBy } : {}), commit: gitCommit(),
    machine: { cpus: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), threads: torch.getNumThreads(), device: torch.defaultDevice(), node: process.version },
    ...costRecord(trained, endCost(start)),
    phasesMs: trained.phasesMs,
    epochs: trained.epochs,
    tests,
  };
  await mkdir(run.folder, { recursive: true });
  await writeFileAtomic(join(run.folder, RUN_RECORD), `${JSON.stringify(record)}\n`);
  const final = tests.filter((t) => t.split === FINAL_SPLIT);
  if (final.length > 0) {
    // The run folder is <experiment>/<variant>/seed-<s>: the ledger is the experiment's.
    await appendFinalEvaluation(join(dirname(dirname(run.folder)), FINAL_LEDGER), {
      model: run.variant, seed: run.seed, config: run.config,
      r1: Object.fromEntries(final.map((t) => [t.key, { trained: t.recalls[1]! }])),
    });
  }
  log(`  ${tests.map((t) => `${t.key} R@1 ${t.recalls[1]?.toFixed(1)}`).join(', ')}`);
}

/** The record's times: training's as measured (or as its source run measured them), evaluation's now. */
function costRecord(trained: TrainCost, evaluation: ReturnType<typeof endCost>): Pick<RunRecord, 'wallMs' | 'cpuMs' | 'load'> {
  return {
    wallMs: { train: trained.wallMs.train, evaluate: evaluation.wallMs },
    // A source run recorded before CPU time was measured has none: this record's training CPU is unknown too.
    ...(trained.cpuMs ? { cpuMs: { train: trained.cpuMs.train, evaluate: evaluation.cpuMs } } : {}),
    ...(trained.load ? { load: { train: trained.load.train, evaluate: evaluation.load } } : {}),
  };
}

type Net = Awaited<ReturnType<typeof modelFromCheckpoint>>['net'];

/**
 * A run's PCAs, on its training dataset's train database (the reference's choice), described once at
 * the training size: one fit at the largest dimension the plan asks for, each variant its leading
 * components (principal components nest), whitened or not as the variant says.
 */
class PcaFits {
  #fit: Promise<Pca> | undefined;
  #leading = new Map<string, Pca>();
  constructor(private readonly run: PlannedRun, private readonly net: Net, private readonly largestDim: number) {}
  async get(e: PlanEvaluation & { pcaDim: number }): Promise<Pca> {
    const full = await (this.#fit ??= this.#fitLargest());
    let pca = this.#leading.get(e.name);
    if (!pca) this.#leading.set(e.name, pca = full.leading(e.pcaDim, e.pcaWhiten ?? false));
    return pca;
  }
  async #fitLargest(): Promise<Pca> {
    const { config } = this.run;
    const train = await openDatasets(config.data.datasetsFolder, datasetNames(config), 'train');
    const database = await this.net.fastInference((forward) => extractDescriptors(this.net.asDescriptorModel(forward), train.databasePaths, {
      size: imageSize(config.data.resize), batchSize: config.eval.inferBatchSize, label: 'PCA database',
    }));
    try {
      return Pca.fit(database, { dim: this.largestDim, seed: config.run.seed });
    } finally {
      database.dispose();
    }
  }
  async dispose(): Promise<void> {
    for (const pca of this.#leading.values()) pca.dispose();
    (await this.#fit?.catch(() => undefined))?.dispose();
  }
}

async function testOn(net: Net, run: PlannedRun, t: PlanTest, { ds }: { ds: GeoDataset }, pcas: PcaFits,
  e?: PlanEvaluation): Promise<TestResult> {
  const { config } = run;
  const size = e?.size ?? t.size ?? config.data.resize;
  const radius = config.data.valPositiveDistThreshold;
  const pca = e?.pcaDim !== undefined ? await pcas.get({ ...e, pcaDim: e.pcaDim }) : undefined;
  // The precision is checked outside the timed evaluation; the search stays fp32 (search-time variants time fp32).
  const precision = await choosePrecision(e?.precision ?? config.run.precision, net, ds.databasePaths, imageSize(size));
  const t0 = performance.now();
  const r = await evaluateNet(net, ds, {
    size: imageSize(size), batchSize: config.eval.inferBatchSize, radius, recallValues: config.eval.recallValues, progress: false, images: false,
    method: e?.testMethod, extraRadii: e?.radii, returnDescriptors: e?.searchSizes !== undefined,
    precision: { precision: precision.precision, searchPrecision: 'fp32' }, transform: pca ? (model) => withPca(model, pca) : undefined,
  });
  const ms = Math.round(performance.now() - t0);
  let times: SearchTime[] | undefined;
  if (r.descriptors) {
    try {
      times = searchTimes(r.descriptors.database, r.descriptors.queries, e!.searchSizes!, { k: Math.max(...config.eval.recallValues), seed: config.run.seed });
    } finally {
      r.descriptors.database.dispose();
      r.descriptors.queries.dispose();
    }
  }
  const dim = pca?.outputDim ?? net.dim;
  return {
    key: `${testKey(t)}${e ? `#${e.name}` : ''}`, dataset: t.dataset, split: t.split, size, queries: r.queriesCount, radius, recalls: r.recalls,
    ...(e?.radii ? { recallsByRadius: r.recallsByRadius } : {}),
    ranks: Array.from(r.firstCorrectRanks),
    descriptor: { dim, bytes: dim * 4, ...(pca ? { pca: { whiten: pca.whiten, explainedVariance: pca.explainedVarianceRatio().reduce((a, b) => a + b, 0) } } : {}) },
    ...(times ? { searchTimes: times } : {}),
    ...(precision.precision !== 'fp32' ? { precision: { precision: precision.precision, reason: precision.reason } } : {}),
    ms,
  };
}


/** How long the runs not done yet should take, at the pace of the finished ones. */
export interface RemainingEstimate {
  minutes: number;
  /** Runs with no finished run of their kind to go by (not in `minutes`). */
  unknown: number;
  /** The highest load the finished runs recorded (their pace depends on it), when they recorded it. */
  highestLoad?: number;
}

/**
 * Each unfinished run costs what the finished runs of the same variant and kind took on average (wall
 * time), or else those of its kind in the plan: a trained run its training and evaluation, a reused or
 * untrained one its evaluation (plus its source's training when the source is not done either).
 */
export function estimateRemaining(runs: readonly PlannedRun[], done: ReadonlyMap<PlannedRun, RunRecord>): RemainingEstimate {
  const kindOf = (r: PlannedRun) => (r.untrained ? 'untrained' : r.source ? 'reused' : 'trained');
  const costOf = (r: RunRecord) => ownTime(r, r.wallMs);
  const mean = (xs: number[]) => (xs.length === 0 ? undefined : xs.reduce((a, b) => a + b, 0) / xs.length);
  const finished = runs.filter((r) => done.has(r));
  const paceOf = (r: PlannedRun): number | undefined => mean(finished.filter((f) => kindOf(f) === kindOf(r) && f.variant === r.variant).map((f) => costOf(done.get(f)!)))
    ?? mean(finished.filter((f) => kindOf(f) === kindOf(r)).map((f) => costOf(done.get(f)!)));
  const trainedPace = mean(finished.filter((f) => kindOf(f) === 'trained').map((f) => done.get(f)!.wallMs.train));
  let ms = 0;
  let unknown = 0;
  for (const r of runs) {
    if (done.has(r)) continue;
    let pace = paceOf(r);
    if (pace !== undefined && r.source && !existsSync(join(r.source.run.folder, RUN_RECORD))) pace = trainedPace === undefined ? undefined : pace + trainedPace;
    if (pace === undefined) unknown++;
    else ms += pace;
  }
  const loads = finished.map((f) => done.get(f)!.load).filter((l) => l !== undefined).map((l) => Math.max(l!.train, l!.evaluate));
  return { minutes: ms / 60_000, unknown, ...(loads.length > 0 ? { highestLoad: Math.max(...loads) } : {}) };
}
