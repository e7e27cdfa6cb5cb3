// `vgl`: the command line. Each command lives in commands/<name>.ts and validates its own flags;
// the engine (libtorch addon) is imported lazily so data commands run without it.
import { Command } from 'commander';
import { UsageError } from './flags.ts';
import { commandLineMessage } from '../errors.ts';
import * as synth from './commands/synth.ts';
import * as importCmd from './commands/import.ts';
import * as dataset from './commands/dataset.ts';
import * as bench from './commands/bench.ts';
import * as demo from './commands/demo.ts';
import * as trainCmd from './commands/train.ts';

const program = new Command('vgl')
  .description('visual geo-localization: train and evaluate place-recognition models on libtorch')
  .version('0.1.0')
  .showHelpAfterError()
  .enablePositionalOptions(); // a subcommand's options (vgl demo curves --epochs) are its own, not its parent's

for (const c of [synth, importCmd, dataset, trainCmd, demo, bench]) c.register(program);
(await import('./commands/eval.ts')).register(program);
(await import('./commands/experiment.ts')).register(program);
(await import('./commands/index.ts')).register(program);
(await import('./commands/localize.ts')).register(program);
(await import('./commands/serve.ts')).register(program);
(await import('./commands/report.ts')).register(program);
(await import('./commands/doctor.ts')).register(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (process.env.VGL_DEBUG) throw e;
  console.error(`vgl: ${commandLineMessage(e)}`);
  process.exitCode = e instanceof UsageError ? 2 : 1;
}
