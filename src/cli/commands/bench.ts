// `vgl bench <what>`: benchmarks that run the Debian PyTorch reference side by side and print ratios.
import type { Command } from 'commander';
import { z } from 'zod';
import { parseFlags } from '../flags.ts';

const BenchFlags = z.object({
  iters: z.coerce.number().int().min(1).max(1000),
  json: z.boolean().optional(),
});

export function register(program: Command): void {
  const bench = program.command('bench').description('benchmarks against the PyTorch reference, measured side by side');
  bench.command('engine')
    .description('ResNet-18 layer3 on a 1x128x60x80 map: Adam training step and inference forward, vgl vs PyTorch')
    .option('--iters <n>', 'timed iterations (median reported)', '10')
    .option('--json', 'print JSON only')
    .action(async (raw) => {
      const flags = parseFlags(BenchFlags, raw);
      const { benchEngine } = await import('../../bench/engine.ts');
      const r = benchEngine(flags.iters);
      if (flags.json) {
        console.log(JSON.stringify(r, null, 2));
        return;
      }
      console.log(`engine benchmark (${r.threads} threads, PyTorch ${r.pytorch.torch}), median of ${flags.iters}:`);
      console.log(`  workload            vgl ms   PyTorch ms   vgl/PyTorch`);
      console.log(`  train step (Adam) ${r.vgl.train_ms.toFixed(1).padStart(8)} ${r.pytorch.train_ms.toFixed(1).padStart(12)} ${r.ratio.train.toFixed(3).padStart(13)}`);
      console.log(`  forward           ${r.vgl.forward_ms.toFixed(1).padStart(8)} ${r.pytorch.forward_ms.toFixed(1).padStart(12)} ${r.ratio.forward.toFixed(3).padStart(13)}`);
    });
}
