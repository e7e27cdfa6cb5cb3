// `vgl report <experiments dir>`: the brief's report (PDF and HTML, figures as SVG and PNG) from a
// study's run files (src/report/).
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { z } from 'zod';
import { parseFlags } from '../flags.ts';

const ReportFlags = z.object({
  out: z.string().min(1),
  quick: z.boolean().default(false),
  examples: z.string().min(1).optional(),
  datasetFigures: z.boolean().default(true),
});

export function register(program: Command): void {
  program.command('report <dir>')
    .description('write report.pdf, report.html and figures/ from an experiments folder (runs/experiments: every plan folder in it, or one plan\'s folder)')
    .option('--out <dir>', 'output folder', 'report')
    .option('--quick', 'the study was the reduced one (experiments/quick): the report says so', false)
    .option('--examples <dir>', 'saved evaluations with prediction grids to show (default runs/demo when it exists)')
    .option('--no-dataset-figures', 'skip the dataset figures (they need the datasets on disk)')
    .action(async (dir: string, raw: Record<string, unknown>) => {
      const f = parseFlags(ReportFlags, raw);
      const { buildReport } = await import('../../report/report.ts');
      const examples = f.examples ?? (existsSync('runs/demo') ? 'runs/demo' : undefined);
      const r = await buildReport(dir, { out: f.out, quick: f.quick, examples, datasetFigures: f.datasetFigures, log: (s) => console.error(s) });
      console.log(`report: ${r.pdf}\n        ${r.html}\n        ${r.figures.length} figure files in ${f.out}/figures`);
    });
}
