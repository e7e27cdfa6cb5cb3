// `vgl demo`: the main job on the embedded default (the synthetic city).
import type { Command } from 'commander';

export function register(program: Command): void {
  program.command('demo')
    .description('generate the synthetic city, train GeM and NetVLAD models, and print a recall table')
    .action(async () => {
      console.log('vgl demo: training is not built yet (issue 5). This run checks the engine and renders the synthetic city.');
      const torch = await import('../../torch/index.ts');
      console.log(`  engine: libtorch ${torch.torchVersion}, ${torch.getNumThreads()} threads, device ${torch.defaultDevice()}`);
    });
}
