// `vgl demo`: the main job on the embedded default (the synthetic city), see src/experiments/demo.ts.
import type { Command } from 'commander';
import { z } from 'zod';
import { parseFlags } from '../flags.ts';

const DemoFlags = z.object({
  datasetsFolder: z.string().min(1),
  outputFolder: z.string().min(1),
  heads: z.string().transform((s) => s.split(',')).pipe(z.array(z.enum(['gem', 'netvlad'])).min(1)),
  epochs: z.coerce.number().int().min(1).max(100),
  queriesPerEpoch: z.coerce.number().int().min(4),
  seed: z.coerce.number().int().min(0),
});

export function register(program: Command): void {
  program.command('demo')
    .description('render the synthetic city, train MobileNetV2 + GeM and + NetVLAD, and print untrained vs trained recall')
    .option('--datasets-folder <dir>', 'where the synthetic cities go', 'data/datasets')
    .option('--output-folder <dir>', 'runs, predictions and results', 'runs/demo')
    .option('--heads <list>', 'aggregation heads to train', 'gem,netvlad')
    .option('--epochs <n>', 'training epochs per model', '5')
    .option('--queries-per-epoch <n>', 'training queries per epoch', '400')
    .option('--seed <n>', 'random seed', '0')
    .action(async (raw) => {
      const flags = parseFlags(DemoFlags, raw);
      const { runDemo, formatTable } = await import('../../experiments/demo.ts');
      const rows = await runDemo({ ...flags, progress: Boolean(process.stderr.isTTY), log: (s) => console.error(s) });
      console.log(`\nrecall@N on the test sets (percent), untrained → trained:\n\n${formatTable(rows)}\n`);
      console.log(`results: ${flags.outputFolder}/results.json, predictions and grids under ${flags.outputFolder}/*/`);
    });
}
