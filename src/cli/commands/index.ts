// `vgl index build|add|info`: the index folder `vgl localize` and `vgl serve` search (src/serve/).
import type { Command } from 'commander';
import { z } from 'zod';
import { parseFlags, UsageError, flagName, addSchemaOptions } from '../flags.ts';
import { QUANTIZATIONS } from '../../eval/approximate.ts';
import { MODEL_AND_SPLIT_FLAGS, NETWORK_OPTION_FLAGS, refuseNetworkFlagsWithRun } from './eval.ts';

const positiveInt = z.coerce.number().int().positive();

export const IndexBuildFlags = z.object({
  ...MODEL_AND_SPLIT_FLAGS,
  out: z.string({ error: 'required: the index folder to write' }).min(1),
  // --approximate alone means f16 storage
  approximate: z.union([z.literal(true).transform(() => 'f16' as const), z.enum(QUANTIZATIONS)]).optional(),
  connectivity: positiveInt.max(256).optional(),
  expansionAdd: positiveInt.max(4096).optional(),
  expansionSearch: positiveInt.max(4096).optional(),
  targetRecall: z.coerce.number().gt(0).max(1).optional(),
  inferBatchSize: positiveInt.optional(),
  overwrite: z.boolean().default(false),
  progress: z.boolean().optional(),
  json: z.boolean().default(false),
});
export type IndexBuildFlags = z.output<typeof IndexBuildFlags>;

export const IndexAddFlags = z.object({
  index: z.string({ error: 'required: the index folder to add to' }).min(1),
  inferBatchSize: positiveInt.optional(),
  progress: z.boolean().optional(),
  json: z.boolean().default(false),
});

/** `vgl index build` with parsed flags. */
export async function runIndexBuild(flags: IndexBuildFlags, log: (s: string) => void = (s) => console.error(s)) {
  refuseNetworkFlagsWithRun(flags);
  if (flags.approximate === undefined) {
    const hnsw = (['connectivity', 'expansionAdd', 'expansionSearch', 'targetRecall'] as const).filter((k) => flags[k] !== undefined);
    if (hnsw.length > 0) throw new UsageError(`${hnsw.map(flagName).join(', ')}: HNSW options; add --approximate [f32|f16|i8]`);
  }
  const { buildIndex } = await import('../../serve/build.ts');
  return buildIndex({ ...flags, approximate: flags.approximate }, log);
}

export function register(program: Command): void {
  const index = program.command('index').description('the index vgl localize and vgl serve search: database descriptors, positions, the model reference');
  const build = index.command('build')
    .description('describe a split\'s database images with a model and write an index folder (exact search; --approximate adds an HNSW graph and measures its recall against exact search)')
    .option('--run <dir>', 'a vgl train run folder (config.json + best.pth)')
    .option('--checkpoint <file>', 'weights to load (default <run>/best.pth); alone, the model comes from the checkpoint\'s config')
    .option('--backbone <name>', 'a network by its parts (ImageNet weights): backbone')
    .option('--aggregation <name>', 'with --backbone: a head not initialised from data (gem, mac, spoc, avg, rmac)')
    .option('--weights <path>', 'with --backbone: ImageNet weights')
    .option('--datasets-folder <dir>', 'root of the datasets_vg layout (default: the run\'s)')
    .option('--dataset-name <name>', 'dataset folder under the root (default: the run\'s)')
    .option('--split <name>', 'split whose database is indexed; its queries measure --approximate (test)')
    .option('--resize <HxW>', 'network input size (default: the run\'s, else 480x640)')
    .option('--out <dir>', 'the index folder to write')
    .option('--approximate [storage]', 'also an HNSW graph (usearch) storing vectors as f32 | f16 | i8 (f16); i8 needs unit-length descriptors')
    .option('--connectivity <m>', `HNSW graph degree (16)`)
    .option('--expansion-add <ef>', 'HNSW candidates while building (64)')
    .option('--expansion-search <ef>', 'HNSW candidates while searching (default: the smallest of 16, 32, … 4096 reaching --target-recall on the split\'s queries)')
    .option('--target-recall <r>', 'without --expansion-search: the recall@1 against exact search the chosen width must reach (0.99)')
    .option('--infer-batch-size <n>', 'images per forward pass (default: the run\'s, else 16)')
    .option('--overwrite', 'replace an index already in --out')
    .option('--progress', 'progress bars on stderr (default: when stderr is a terminal)')
    .option('--json', 'print the index description as JSON')
    .action(async (raw: Record<string, unknown>) => {
      const flags = parseFlags(IndexBuildFlags, raw);
      const s = await runIndexBuild(flags);
      if (flags.json) {
        console.log(JSON.stringify(s, null, 2));
        return;
      }
      const m = s.meta;
      console.log(`${s.dir}: ${m.count} database images of ${m.dataset?.name}/${m.dataset?.split}, ${m.model.backbone} + ${m.model.aggregation} (${m.dim}-d) at ${m.model.resize.join('x')}, ` +
        `${m.search.kind === 'exact' ? 'exact search' : `HNSW ${m.search.quantization}`}; described in ${(s.timings.describeMs / 1000).toFixed(1)} s` +
        (s.timings.graphMs !== undefined ? `, graph in ${(s.timings.graphMs / 1000).toFixed(1)} s` : ''));
      if (m.search.kind === 'hnsw' && m.search.recall && m.search.recall.queries > 0) {
        const r = m.search.recall;
        console.log(`approximate vs exact on ${r.queries} queries: recall@1 ${(100 * r.recallAt1).toFixed(1)}%, recall@10 ${(100 * r.recallAt10).toFixed(1)}% (exact neighbours found); ` +
          `place recall@1 at ${r.placeRecall!.radiusMetres} m ${r.placeRecall!.exact[1].toFixed(1)} (exact) vs ${r.placeRecall!.approximate[1].toFixed(1)} (approximate); ` +
          `search width ${m.search.expansionSearch}${r.tuning ? ` (${r.tuning.reached ? 'the smallest reaching' : 'the widest tried, short of'} recall@1 ${(100 * r.tuning.targetRecallAt1).toFixed(1)}%)` : ''}`);
      }
    });
  addSchemaOptions(build, NETWORK_OPTION_FLAGS, 'with --backbone: ');
  index.command('add')
    .description('append images to an index without rebuilding it (their names carry positions: @UTM_east@UTM_north@...@.jpg); files already in it are skipped')
    .argument('<paths...>', 'image files or folders (searched recursively)')
    .option('--index <dir>', 'the index folder')
    .option('--infer-batch-size <n>', 'images per forward pass (16)')
    .option('--progress', 'progress bars on stderr (default: when stderr is a terminal)')
    .option('--json', 'print the summary as JSON')
    .action(async (paths: string[], raw: Record<string, unknown>) => {
      const flags = parseFlags(IndexAddFlags, raw);
      const { addToIndex } = await import('../../serve/build.ts');
      const s = await addToIndex({ index: flags.index, paths, inferBatchSize: flags.inferBatchSize, progress: flags.progress });
      if (flags.json) console.log(JSON.stringify(s, null, 2));
      else console.log(`${s.dir}: ${s.added} image(s) added${s.skipped ? `, ${s.skipped} already there` : ''}; ${s.count} in all`);
    });
  index.command('info')
    .description('check an index folder and describe it')
    .argument('<dir>', 'the index folder')
    .option('--json', 'print as JSON')
    .action(async (dir: string, raw: { json?: boolean }) => {
      const { openIndex } = await import('../../serve/index-store.ts');
      const ix = await openIndex(dir);
      if (raw.json) {
        console.log(JSON.stringify(ix.meta, null, 2));
        return;
      }
      const m = ix.meta;
      console.log(`${ix.dir}: ${m.count} images, ${m.dim}-d descriptors of ${m.model.backbone} + ${m.model.aggregation} (${m.model.source}: ${[m.model.run, m.model.checkpoint].filter((x) => x !== undefined).join(', ') || 'ImageNet / untrained weights'}), ` +
        `input ${m.model.resize.join('x')} ${m.model.normalization}; ${m.search.kind === 'exact' ? 'exact search' : `HNSW ${m.search.quantization}, M ${m.search.connectivity}`}; ` +
        `built ${m.created}${m.additions.length ? `, ${m.additions.length} addition(s)` : ''}`);
    });
}
