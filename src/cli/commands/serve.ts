// `vgl serve --index DIR`: the localization service and its web page (src/serve/server.ts).
import type { Command } from 'commander';
import { z } from 'zod';
import { parseFlags } from '../flags.ts';

export const ServeFlags = z.object({
  index: z.string({ error: 'required: an index folder (vgl index build)' }).min(1),
  port: z.coerce.number().int().min(0).max(65535).default(8080),
  host: z.string().min(1).default('127.0.0.1'),
  eval: z.string().min(1).optional(),
  maxUploadMb: z.coerce.number().positive().max(1024).default(10),
  maxBatch: z.coerce.number().int().min(1).max(256).default(8),
  maxQueue: z.coerce.number().int().min(1).default(64),
  radius: z.coerce.number().finite().nonnegative().default(25),
  log: z.boolean().default(false),
});

export function register(program: Command): void {
  program.command('serve')
    .description('HTTP localization service with a web page: POST /localize (multipart field "image"), GET /health, GET /index; --eval adds the evaluation explorer')
    .option('--index <dir>', 'the index folder (vgl index build)')
    .option('--port <n>', 'port (8080; 0 picks a free one)')
    .option('--host <address>', 'address to listen on (127.0.0.1; 0.0.0.0 for every interface)')
    .option('--eval <dir>', 'a vgl eval --output-folder to explore (predictions.json, grids/)')
    .option('--max-upload-mb <n>', 'largest photo accepted, MiB (10)')
    .option('--max-batch <n>', 'photos described together when requests wait (8)')
    .option('--max-queue <n>', 'photos waiting at most; beyond, 503 (64)')
    .option('--radius <m>', 'matches within this many metres of the best one vote for the position (25)')
    .option('--log', 'log every request (fastify\'s JSON logger)')
    .action(async (raw: Record<string, unknown>) => {
      const flags = parseFlags(ServeFlags, raw);
      const { startService } = await import('../../serve/server.ts');
      console.error(`loading ${flags.index}…`);
      const s = await startService({
        index: flags.index, port: flags.port, host: flags.host, eval: flags.eval, logger: flags.log,
        limits: { maxUploadBytes: Math.round(flags.maxUploadMb * 1048576) }, maxBatch: flags.maxBatch, maxQueue: flags.maxQueue, radius: flags.radius,
      });
      console.log(`vgl serve: ${s.url} (index ${flags.index}${flags.eval ? `, evaluation ${flags.eval}` : ''}); Ctrl-C stops`);
      const stop = () => {
        void s.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
