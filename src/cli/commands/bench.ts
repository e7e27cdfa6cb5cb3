// `vgl bench <what>`: benchmarks that run the Debian PyTorch (or faiss) reference side by side and print
// ratios (vgl time / reference time: below 1, vgl is faster).
import type { Command } from 'commander';
import { z } from 'zod';
import { parseFlags, imageSizeFlag, UsageError } from '../flags.ts';
import { PRECISIONS } from '../../torch/precision.ts';
import { cpus } from 'node:os';

const iters = z.coerce.number().int().min(1).max(1000);
const count = z.coerce.number().int().positive();
const precision = z.enum(PRECISIONS).default('auto');
const PRECISION_HELP = `vgl's precision: ${PRECISIONS.join(' | ')} (auto: bf16 where the CPU has AMX / AVX512-BF16, VGL_BF16=0 to say it has not; runs also time bf16 against fp32 first)`;

/** The precision a benchmark runs vgl in, said on stderr with the reason. */
async function resolveForBench(option: z.output<typeof precision>) {
  const { resolvePrecision, describePrecision } = await import('../../torch/precision.ts');
  const r = resolvePrecision(option);
  console.error(`vgl runs in ${describePrecision(r)}`);
  return r.precision;
}

const BenchFlags = z.object({
  iters,
  contention: z.boolean().optional(),
  json: z.boolean().optional(),
});

const SearchFlags = z.object({
  database: count.optional(),
  queries: count.optional(),
  dim: count.optional(),
  k: count.optional(),
  full: z.boolean().optional(),
  iters: iters.default(3),
  precision,
  json: z.boolean().optional(),
});

const size = imageSizeFlag(32);

/** The CPU's model name, for benchmark output (benchmarks name the CPU they ran on). */
const cpuModel = (): string => cpus()[0]?.model.trim() ?? 'unknown CPU';

const EpochFlags = z.object({
  datasetsFolder: z.string().min(1),
  aggregation: z.string().min(1),
  mining: z.enum(['full', 'partial', 'random']),
  // fp32 unless asked: the demo's MobileNetV2-0.35 trains slower in bf16 (its small convolutions' bf16 backward).
  precision: z.enum(PRECISIONS).default('fp32'),
  nprocPerNode: z.coerce.number().int().min(2).optional(),
  json: z.boolean().optional(),
});

const ModelFlags = z.object({
  iters: iters.default(5),
  resize: size.default([480, 640]),
  extractBatch: count.max(256).default(8),
  precision,
  device: z.string().regex(/^(cpu|cuda(:\d+)?)$/, 'cpu, cuda or cuda:N').default('cpu'),
  json: z.boolean().optional(),
});

const PrecisionFlags = z.object({
  iters: iters.default(3),
  trainImages: count.max(64).default(12),
  extractBatch: count.max(64).default(8),
  sizes: z.string().optional().transform((v, ctx) => {
    if (v === undefined) return undefined;
    const sizes = v.split(',').map((s) => s.trim().split('x').map(Number));
    if (sizes.some((s) => s.length !== 2 || s.some((n) => !Number.isInteger(n) || n < 16))) {
      ctx.addIssue({ code: 'custom', message: 'expected HxW sizes, comma-separated, e.g. 120x160,240x320' });
      return z.NEVER;
    }
    return sizes as [number, number][];
  }),
  json: z.boolean().optional(),
});

/** Rows of [label, vgl, reference, ratio] as an aligned table. */
export function benchTable(title: string, unit: string, reference: string, rows: [string, number, number, number][]): string {
  const w = Math.max(...rows.map((r) => r[0].length), 8);
  const head = `  ${'workload'.padEnd(w)} ${`vgl ${unit}`.padStart(12)} ${`${reference} ${unit}`.padStart(16)} ${`vgl/${reference}`.padStart(14)}`;
  const lines = rows.map(([label, ours, ref, r]) => `  ${label.padEnd(w)} ${fmt(ours).padStart(12)} ${fmt(ref).padStart(16)} ${r.toFixed(3).padStart(14)}`);
  return [title, head, ...lines].join('\n');
}

const fmt = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

export function register(program: Command): void {
  const bench = program.command('bench').description('benchmarks against the PyTorch / faiss reference, measured side by side (ratio = vgl / reference)');
  bench.command('engine')
    .description('ResNet-18 layer3 on a 1x128x60x80 map: Adam training step and inference forward, vgl vs PyTorch')
    .option('--iters <n>', 'timed iterations (median reported)', '10')
    .option('--contention', 'also measure both sides while another process keeps one core busy')
    .option('--json', 'print JSON only')
    .action(async (raw) => {
      const flags = parseFlags(BenchFlags, raw);
      const { benchEngine } = await import('../../bench/engine.ts');
      const runs = [benchEngine(flags.iters)];
      if (flags.contention) runs.push(benchEngine(flags.iters, 3, true));
      if (flags.json) {
        console.log(JSON.stringify(flags.contention ? runs : runs[0], null, 2));
        return;
      }
      const [idle, busy] = runs;
      const load = (r: typeof idle) => (r.contention ? ', one core busy' : flags.contention ? ', idle' : '');
      console.log(benchTable(`engine benchmark (${idle.threads} threads, OpenMP wait ${idle.waitPolicy}, PyTorch ${idle.pytorch.torch}), best median of ${flags.iters} over 3 alternating rounds:`, 'ms', 'PyTorch',
        runs.flatMap((r) => [
          [`train step (Adam)${load(r)}`, r.vgl.train_ms, r.pytorch.train_ms, r.ratio.train],
          ...(r.vgl.adaptive_train_ms !== undefined
            ? [[`  same, threads adapting (VGL_NUM_THREADS=auto)`, r.vgl.adaptive_train_ms, r.pytorch.train_ms, r.ratio.adaptiveTrain!]] : []),
          [`forward${load(r)}`, r.vgl.forward_ms, r.pytorch.forward_ms, r.ratio.forward],
        ] as [string, number, number, number][])));
      if (busy) {
        const kept = (a: number, b: number) => `${((100 * a) / b).toFixed(0)}%`;
        console.log(`under load, training keeps ${kept(idle.vgl.train_ms, busy.vgl.train_ms)} of its idle speed in vgl, ${kept(idle.pytorch.train_ms, busy.pytorch.train_ms)} in PyTorch` +
          ` (1 of ${idle.threads} cores taken: ${kept(idle.threads - 1, idle.threads)} would be a fair share)`);
      }
    });

  bench.command('search')
    .description('exact nearest-neighbour search of random unit descriptors, vgl vs faiss IndexFlatL2 (same .npy files)')
    .option('--database <n>', 'database descriptors (5000; --full: 10000)')
    .option('--queries <n>', 'query descriptors (2000; --full: 6816)')
    .option('--dim <d>', 'descriptor dimension (4096; --full: 16384)')
    .option('--k <k>', 'neighbours per query (20)')
    .option('--full', 'Pitts30k test sizes: 10000 x 6816 x 16384 (about 10 s per side per run with OpenBLAS)')
    .option('--iters <n>', 'timed runs per side (median reported)', '3')
    .option('--precision <p>', `${PRECISION_HELP}; bf16: a bf16 pre-filter re-ranked in fp32 (auto)`)
    .option('--json', 'print JSON only')
    .action(async (raw) => {
      const flags = parseFlags(SearchFlags, raw);
      const { benchSearch } = await import('../../bench/search.ts');
      const r = await benchSearch({ ...flags, precision: await resolveForBench(flags.precision) });
      if (flags.json) {
        console.log(JSON.stringify(r, null, 2));
        return;
      }
      const s = r.sizes;
      console.log(benchTable(`search benchmark: ${s.queries} queries x ${s.database} database x ${s.dim}-d, top ${s.k}, vgl in ${r.vgl.precision} ` +
        `(${r.threads} threads, faiss ${r.faiss.version}, PyTorch ${r.pytorch.version}), best median of ${flags.iters} over 2 alternating rounds:`, 'ms', 'ref', [
        ['exact search vs faiss IndexFlatL2 (fp32)', r.vgl.search_ms, r.faiss.search_ms, r.ratio],
        ['  same, vs PyTorch fp32', r.vgl.search_ms, r.pytorch.fp32_ms, r.ratioPytorch.fp32],
        ['  same, vs PyTorch bf16 autocast (not re-ranked)', r.vgl.search_ms, r.pytorch.bf16_ms, r.ratioPytorch.bf16],
      ]));
      console.log(`  queries/s: vgl ${r.vgl.queries_per_s.toFixed(0)}, faiss ${r.faiss.queries_per_s.toFixed(0)}`);
      console.log(`  agreement with faiss: same top-1 ${(100 * r.agreement.top1).toFixed(2)}%, same top-${s.k} set ${(100 * r.agreement.topkSets).toFixed(2)}%, ` +
        `largest distance difference ${r.agreement.maxDistanceDiff.toExponential(2)}`);
      if (r.vgl.prefilter) {
        const p = r.vgl.prefilter;
        console.log(`  bf16 pre-filter: ${p.candidates} candidates kept per query, ${p.rescored.toFixed(1)} of them re-scored in fp32 on average; ` +
          `${p.certified} queries' top-${s.k} certified, ${p.fallbacks} searched again in fp32`);
      }
      console.log(`  PyTorch bf16 alone (no re-ranking) vs faiss: same top-1 ${(100 * r.pytorchBf16Agreement.top1).toFixed(2)}%, same top-${s.k} set ${(100 * r.pytorchBf16Agreement.topkSets).toFixed(2)}%`);
    });

  bench.command('model')
    .description('ResNet-18 conv4 + NetVLAD: one Adam step on a 12-image triplet tuple, and descriptor extraction per image, vgl vs PyTorch')
    .option('--iters <n>', 'timed iterations (median reported)', '5')
    .option('--resize <HxW>', 'image size', '480x640')
    .option('--extract-batch <b>', 'images per extraction forward pass', '8')
    .option('--precision <p>', `${PRECISION_HELP} (auto)`)
    .option('--device <d>', 'cpu | cuda: both sides on this device (cpu)')
    .option('--json', 'print JSON only')
    .action(async (raw) => {
      const flags = parseFlags(ModelFlags, raw);
      const torch = await import('../../torch/index.ts');
      if (flags.device !== 'cpu' && !torch.cudaAvailable()) throw new UsageError(`--device ${flags.device}: the linked libtorch has no CUDA device (vgl doctor says what it was built with)`);
      const { benchModel, bf16Goals } = await import('../../bench/model.ts');
      const [height, width] = flags.resize;
      const r = await benchModel({ iters: flags.iters, height, width, extractBatch: flags.extractBatch, precision: await resolveForBench(flags.precision), device: flags.device as 'cpu' | 'cuda' });
      if (flags.json) {
        console.log(JSON.stringify(r, null, 2));
        return;
      }
      const ref = r.reference;
      const where = r.device === 'cpu' ? `${r.threads} threads` : `${r.device}${ref.gpu ? `, ${ref.gpu}` : ''}`;
      console.log(benchTable(`model benchmark: ResNet-18 conv4 + NetVLAD at ${height}x${width}, vgl in ${r.precision} (${where}, PyTorch ${ref.torch}), best median of ${flags.iters} over 2 alternating rounds:`,
        'ms', 'PyTorch', [
          ['train step (12-image tuple), vs PyTorch fp32', r.train_ms, ref.train_ms, r.ratio.train],
          ['  same, vs PyTorch fp32 channels-last', r.train_ms, ref.train_channels_last_ms, r.ratio.trainChannelsLast],
          ['  same, vs PyTorch bf16 autocast', r.train_ms, ref.train_bf16_ms, r.ratio.trainBf16],
          ['  same, vs PyTorch bf16 autocast channels-last', r.train_ms, ref.train_bf16_channels_last_ms, r.ratio.trainBf16ChannelsLast],
          [`extraction per image (batch ${flags.extractBatch}), vs fp32 eager`, r.extract_ms_per_image, ref.extract_ms_per_image, r.ratio.extract],
          ['  same, vs fp32 folded BN + channels-last', r.extract_ms_per_image, ref.extract_optimised_ms_per_image, r.ratio.extractOptimised],
          ['  same, vs bf16 autocast eager', r.extract_ms_per_image, ref.extract_bf16_ms_per_image, r.ratio.extractBf16],
          ['  same, vs bf16 autocast folded BN + channels-last', r.extract_ms_per_image, ref.extract_bf16_optimised_ms_per_image, r.ratio.extractBf16Optimised],
        ]));
      if (r.precision === 'bf16') {
        for (const g of bf16Goals(r)) console.log(`  goal: ${g.goal} <= ${g.limit.toFixed(1)}x: ${g.ratio.toFixed(3)}x, ${g.met ? 'met' : 'NOT met'}`);
      }
    });

  bench.command('precision')
    .description('bf16 vs fp32 on this CPU for MobileNetV2-0.35, ResNet-18 conv4 and ResNet-50 conv4 at 120x160, 240x320, 480x640: training pass, extraction, descriptor error, and what auto takes')
    .option('--iters <n>', 'timed extraction runs (median)', '3')
    .option('--train-images <n>', 'images in the timed training pass', '12')
    .option('--extract-batch <b>', 'images per extraction forward pass', '8')
    .option('--sizes <list>', 'HxW sizes, comma-separated (120x160,240x320,480x640)')
    .option('--json', 'print JSON only')
    .action(async (raw) => {
      const flags = parseFlags(PrecisionFlags, raw);
      const { benchPrecision } = await import('../../bench/precision.ts');
      const { BF16_MAX_DESCRIPTOR_ERROR } = await import('../../eval/precision-check.ts');
      const rows = await benchPrecision({ iters: flags.iters, trainImages: flags.trainImages, extractBatch: flags.extractBatch, sizes: flags.sizes, log: flags.json ? undefined : (l) => console.error(l) });
      if (flags.json) {
        console.log(JSON.stringify(rows, null, 2));
        return;
      }
      console.log(`precision benchmark on ${cpuModel()} (${cpus().length} cores), vgl's training pass of ${flags.trainImages} images (forward + backward, channels-last) and fast extraction; descriptor error of bf16 on 8 Gardens Point night photos (auto's limit ${(100 * BF16_MAX_DESCRIPTOR_ERROR).toFixed(0)}%):`);
      console.log(`  ${'network'.padEnd(40)} ${'size'.padEnd(8)} ${'train fp32'.padStart(10)} ${'bf16 ms'.padStart(8)} ${'x'.padStart(5)} ${'extract fp32'.padStart(12)} ${'bf16 ms'.padStart(8)} ${'x'.padStart(5)} ${'error'.padStart(6)}  auto train/extract`);
      for (const r of rows) {
        console.log(`  ${`${r.network}${r.weights === 'random' ? ' (random weights)' : ''}`.padEnd(40)} ${r.size.padEnd(8)} ${r.fp32.trainMs.toFixed(0).padStart(10)} ${r.bf16.trainMs.toFixed(0).padStart(8)} ${r.speedup.train.toFixed(2).padStart(5)} ` +
          `${r.fp32.extractMsPerImage.toFixed(1).padStart(12)} ${r.bf16.extractMsPerImage.toFixed(1).padStart(8)} ${r.speedup.extract.toFixed(2).padStart(5)} ${`${(100 * r.descriptorError).toFixed(2)}%`.padStart(6)}  ${r.auto.train}/${r.auto.extract}`);
      }
    });

  bench.command('epoch')
    .description('one training epoch on the synthetic demo city (MobileNetV2 + NetVLAD at 120x160), time split into caching, mining, training and evaluation')
    .option('--datasets-folder <dir>', 'where the synthetic city is (rendered when absent)', 'data/datasets')
    .option('--aggregation <name>', 'aggregation head', 'netvlad')
    .option('--mining <method>', 'full | partial | random', 'partial')
    .option('--precision <p>', `${PRECISION_HELP} (fp32: the demo's MobileNetV2 trains slower in bf16 here)`)
    .option('--nproc-per-node <n>', 'also the same epoch in n data-parallel processes (vgl train --nproc-per-node), side by side with one')
    .option('--json', 'print JSON only')
    .action(async (raw) => {
      const flags = parseFlags(EpochFlags, raw);
      const { benchEpoch } = await import('../../bench/epoch.ts');
      const options = { datasetsFolder: flags.datasetsFolder, aggregation: flags.aggregation, mining: flags.mining, precision: flags.precision };
      const r = await benchEpoch(options);
      if (flags.nprocPerNode !== undefined) {
        const n = await benchEpoch({ ...options, nprocPerNode: flags.nprocPerNode });
        if (flags.json) {
          console.log(JSON.stringify({ cpu: cpuModel(), one: r, many: n }, null, 2));
          return;
        }
        console.log(`one epoch on ${cpuModel()} (${r.threads} cores): ${r.model.backbone} + ${r.model.aggregation} at ${r.model.resize.join('x')}, ${r.queriesPerEpoch} queries, ${r.mining} mining`);
        console.log(`  phase            1 process (s)   ${n.processes} processes (s)   ratio`);
        const row = (name: string, a: number, b: number) => console.log(`  ${name.padEnd(14)} ${(a / 1000).toFixed(1).padStart(13)} ${(b / 1000).toFixed(1).padStart(17)} ${(b / a).toFixed(2).padStart(9)}x`);
        for (const name of Object.keys(r.phases) as (keyof typeof r.phases)[]) row(name, r.phases[name].ms, n.phases[name].ms);
        row('total', r.totalMs, n.totalMs);
        console.log(`  val recall@5: ${r.recalls[5]?.toFixed(1)} (1 process), ${n.recalls[5]?.toFixed(1)} (${n.processes})`);
        return;
      }
      if (flags.json) {
        console.log(JSON.stringify(r, null, 2));
        return;
      }
      console.log(`one epoch: ${r.model.backbone} + ${r.model.aggregation} at ${r.model.resize.join('x')} in ${r.precision}, ${r.queriesPerEpoch} queries, ` +
        `${r.mining} mining, ${r.threads} threads (total ${(r.totalMs / 1000).toFixed(1)} s)`);
      console.log(`  phase         seconds   share   images/s`);
      for (const [name, p] of Object.entries(r.phases)) {
        console.log(`  ${name.padEnd(12)} ${(p.ms / 1000).toFixed(1).padStart(8)} ${`${((100 * p.ms) / r.totalMs).toFixed(0)}%`.padStart(7)} ${String(p.imagesPerSecond).padStart(10)}`);
      }
      console.log(`  checkpoints  ${(r.checkpointMs / 1000).toFixed(1).padStart(8)}; other (model, weights, k-means) ${(r.otherMs / 1000).toFixed(1)} s`);
      console.log(`  val recall: ${Object.entries(r.recalls).map(([n, v]) => `R@${n} ${v.toFixed(1)}`).join(', ')}`);
    });
  bench.command('index')
    .description('city-scale search: exact (vgl fp32) vs approximate (usearch HNSW, re-ranked) at 10k, 100k and 1M synthetic descriptors: build time, memory, query time, recall@1/10 against exact')
    .option('--sizes <list>', 'database sizes (10000,100000,1000000)')
    .option('--dim <d>', 'descriptor dimension (256)')
    .option('--queries <n>', 'queries per size, timed in a batch and measured for recall (1000)')
    .option('--quantizations <list>', 'HNSW storages to build: f32, f16, i8 (i8)')
    .option('--connectivity <m>', 'HNSW graph degree (16)')
    .option('--expansion-add <ef>', 'HNSW candidates while building (64)')
    .option('--expansion-search <list>', 'HNSW candidates while searching; each is measured on the same graph (64,256,1024)')
    .option('--json', 'print JSON only')
    .action(async (raw) => {
      const list = z.string().transform((s, ctx) => {
        const v = s.split(',').map((x) => Number(x.trim()));
        if (v.some((x) => !Number.isInteger(x) || x < 1)) {
          ctx.addIssue({ code: 'custom', message: 'expected a comma-separated list of positive integers, e.g. 10000,100000' });
          return z.NEVER;
        }
        return v;
      });
      const flags = parseFlags(z.object({
        sizes: list.optional(), dim: count.max(65536).optional(), queries: count.optional(),
        quantizations: z.string().transform((s) => s.split(',').map((x) => x.trim())).pipe(z.array(z.enum(['f32', 'f16', 'i8'])).min(1)).optional(),
        connectivity: count.max(256).optional(), expansionAdd: count.max(4096).optional(), expansionSearch: list.optional(),
        json: z.boolean().optional(),
      }), raw);
      const { benchIndex, indexBenchTable } = await import('../../bench/index.ts');
      const r = await benchIndex(flags);
      if (flags.json) {
        console.log(JSON.stringify(r, null, 2));
        return;
      }
      console.log(`index benchmark: ${r.dim}-d synthetic place descriptors, top ${r.k}, ${r.threads} threads; HNSW M ${r.hnsw.connectivity}, ` +
        `ef ${r.hnsw.expansionAdd}/${r.hnsw.expansionSearch.join(',')}, ${r.hnsw.candidates} candidates re-ranked in fp32; recall = exact neighbours found; ` +
        `load average ${r.loadAverage[0].toFixed(1)} → ${r.loadAverage[1].toFixed(1)}`);
      console.log(indexBenchTable(r));
    });
}
