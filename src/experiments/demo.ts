// The demo: vgl's main job on its embedded default. Render the synthetic city (and a second city in
// another style, standing in for St Lucia), then for GeM and NetVLAD on MobileNetV2 (ImageNet weights):
// evaluate untrained, train, evaluate trained — on the city's test split and on the other style.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as torch from '../torch/index.ts';
import { loadCheckpoint } from '../torch/checkpoint.ts';
import { ensureCity } from '../data/synth/generate.ts';
import { DEMO_CITY_NAME } from '../data/synth/options.ts';
import { openDataset, type GeoDataset } from '../data/dataset.ts';
import type { GeoLocalizationNet } from '../models/network.ts';
import { MOBILENETV2_035_WEIGHTS_DIR as MOBILENETV2_WEIGHTS } from '../models/weights/keras-mobilenetv2.ts';
import { evaluate } from '../eval/evaluate.ts';
import type { Recalls } from '../eval/recall.ts';
import { TrainConfigSchema, type TrainConfig } from '../train/config.ts';
import { train, networkFor, initialiseHead } from '../train/train.ts';


export interface DemoOptions {
  datasetsFolder: string;
  outputFolder: string;
  heads: ('gem' | 'netvlad')[];
  epochs: number;
  queriesPerEpoch: number;
  seed: number;
  progress: boolean;
  log: (line: string) => void;
}

export interface DemoRow {
  model: string;
  dataset: string;
  untrained: Recalls;
  trained: Recalls;
}

// The demo's datasets: the synthetic city, and a city in another style for cross-dataset tests.
const CITY = DEMO_CITY_NAME;
const OTHER = 'synth-stlucia';

function demoConfig(o: DemoOptions, head: 'gem' | 'netvlad'): TrainConfig {
  return TrainConfigSchema.parse({
    datasetsFolder: o.datasetsFolder, datasetName: CITY, outputFolder: join(o.outputFolder, `mobilenetv2-${head}`),
    backbone: 'mobilenetv2', aggregation: head, netvladClusters: 32, weights: MOBILENETV2_WEIGHTS,
    resize: [120, 160], lr: 1e-3, epochs: o.epochs, patience: o.epochs, queriesPerEpoch: o.queriesPerEpoch,
    cacheRefreshRate: o.queriesPerEpoch, negSamplesNum: 300, inferBatchSize: 32, seed: o.seed,
  });
}

async function recallsOf(net: GeoLocalizationNet, ds: GeoDataset, config: TrainConfig, outDir: string, progress: boolean): Promise<Recalls> {
  const r = await net.fastInference((forward) => evaluate(net.asDescriptorModel(forward), ds, {
    size: { height: config.resize[0], width: config.resize[1] }, batchSize: config.inferBatchSize, device: torch.defaultDevice(),
    radius: config.valPositiveDistThreshold, recallValues: config.recallValues, outDir, progress,
    images: { sample: 8, wrong: 8, topN: 5 },
  }));
  return r.recalls;
}

export async function runDemo(o: DemoOptions): Promise<DemoRow[]> {
  const t0 = Date.now();
  const since = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
  await mkdir(o.outputFolder, { recursive: true });
  const city = await ensureCity({ out: o.datasetsFolder, name: CITY, size: 'demo', seed: o.seed, progress: o.progress });
  const other = await ensureCity({ out: o.datasetsFolder, name: OTHER, style: 'stlucia', size: 'demo', splits: ['test'], seed: o.seed + 1, progress: o.progress });
  o.log(`datasets: ${city.dir} (${city.reused ? 'reused' : 'rendered'}), ${other.dir} (${other.reused ? 'reused' : 'rendered'}) [${since()}]`);
  const tests: [string, GeoDataset][] = [
    [`${CITY} test`, await openDataset(o.datasetsFolder, CITY, 'test')],
    [`${OTHER} test`, await openDataset(o.datasetsFolder, OTHER, 'test')],
  ];
  const rows: DemoRow[] = [];
  for (const head of o.heads) {
    const config = demoConfig(o, head);
    const name = `MobileNetV2 + ${head === 'gem' ? 'GeM' : 'NetVLAD'}`;
    // Untrained: ImageNet backbone; NetVLAD clusters from k-means, as the trainer initialises them.
    torch.manualSeed(config.seed);
    const untrained = networkFor(config);
    await untrained.loadPretrained(MOBILENETV2_WEIGHTS);
    untrained.to(torch.defaultDevice());
    await initialiseHead(untrained, await openDataset(o.datasetsFolder, CITY, 'train'), config, o.log);
    const before: Recalls[] = [];
    for (const [label, ds] of tests) before.push(await recallsOf(untrained, ds, config, join(config.outputFolder, 'untrained', label.split(' ')[0]), o.progress));
    untrained.dispose();
    o.log(`${name}: untrained evaluated [${since()}]`);

    await train(config, { progress: o.progress, log: o.log, test: false }); // the demo tests below, on two cities
    o.log(`${name}: trained [${since()}]`);
    const trained = networkFor(config);
    const best = await loadCheckpoint(join(config.outputFolder, 'best.pth'));
    torch.loadStateDict(trained, best.stateDict, { source: join(config.outputFolder, 'best.pth') });
    trained.to(torch.defaultDevice());
    tests.forEach(([label], i) => rows.push({ model: name, dataset: label, untrained: before[i], trained: {} }));
    for (let i = 0; i < tests.length; i++) {
      const [label, ds] = tests[i];
      rows[rows.length - tests.length + i].trained = await recallsOf(trained, ds, config, join(config.outputFolder, 'trained', label.split(' ')[0]), o.progress);
    }
    trained.dispose();
  }
  const table = formatTable(rows);
  await writeFile(join(o.outputFolder, 'results.json'), `${JSON.stringify({ rows, seconds: (Date.now() - t0) / 1000 }, null, 2)}\n`);
  await writeFile(join(o.outputFolder, 'results.md'), `${table}\n`);
  o.log(`demo finished in ${since()}`);
  return rows;
}

/** A Markdown table: recall@1/5/10 untrained → trained, per model and test set. */
export function formatTable(rows: DemoRow[]): string {
  const ns = [1, 5, 10];
  const head = `| model | test set | ${ns.map((n) => `R@${n} untrained → trained`).join(' | ')} |`;
  const rule = `|---|---|${ns.map(() => '---|').join('')}`;
  const body = rows.map((r) => `| ${r.model} | ${r.dataset} | ${ns.map((n) => {
    const a = r.untrained[n], b = r.trained[n];
    return `${a.toFixed(1)} → ${b.toFixed(1)} (${b - a >= 0 ? '+' : ''}${(b - a).toFixed(1)})`;
  }).join(' | ')} |`);
  return [head, rule, ...body].join('\n');
}
