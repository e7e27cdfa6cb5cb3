// `vgl experiment run|status|table`: a plan's runs in sequence (resumable), where they stand, and
// their statistics (src/experiments/).
import { join } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { parseFlags } from '../flags.ts';

const defaultDir = (plan: { name: string }) => join('runs', 'experiments', plan.name);

const TableFlags = z.object({ format: z.enum(['md', 'csv', 'json']) });

export function register(program: Command): void {
  const cmd = program.command('experiment').description('run a study from a plan (experiments/*.yaml): variants x seeds, each trained once and tested on every test set');
  cmd.command('run <plan>')
    .description('train and evaluate every run of the plan not done yet (a killed run resumes; a finished one is skipped)')
    .option('--out <dir>', 'experiment folder (default runs/experiments/<plan name>)')
    .option('--progress', 'progress bars')
    .action(async (planPath: string, raw: { out?: string; progress?: boolean }) => {
      const { readPlan, comparisonsOf } = await import('../../experiments/plan.ts');
      const { runExperiment } = await import('../../experiments/runner.ts');
      const { experimentTable, tableMarkdown } = await import('../../experiments/table.ts');
      const plan = readPlan(planPath);
      const dir = raw.out ?? defaultDir(plan);
      const records = await runExperiment(planPath, dir, { progress: raw.progress ?? false });
      console.log(tableMarkdown(experimentTable(records, comparisonsOf(plan))));
      console.error(`tables: ${dir}/table.{md,csv,json}`);
    });
  cmd.command('status <plan>')
    .description('each run of the plan: done, started (a checkpoint to resume), pending, or stale (finished with options the plan no longer asks)')
    .option('--out <dir>', 'experiment folder (default runs/experiments/<plan name>)')
    .action(async (planPath: string, raw: { out?: string }) => {
      const { readPlan, expandPlan } = await import('../../experiments/plan.ts');
      const { runState, staleChanges, estimateRemaining } = await import('../../experiments/runner.ts');
      const { readRecords } = await import('../../experiments/record.ts');
      const plan = readPlan(planPath);
      const runs = expandPlan(plan, raw.out ?? defaultDir(plan), { planFile: planPath });
      const states = runs.map((r) => runState(r));
      for (const [i, r] of runs.entries()) {
        const stale = states[i] === 'stale' ? ` — ${staleChanges(r).join('; ')}` : '';
        console.log(`${states[i]!.padEnd(8)} ${r.id}${r.source ? ` (model of ${r.source.plan.name}/${r.source.run.id})` : ''}${stale}`);
      }
      const finished = runs.filter((_, i) => states[i] === 'done');
      const records = readRecords(finished);
      const done = new Map(finished.map((r, i) => [r, records[i]!] as const));
      console.log(`${done.size} of ${runs.length} runs done`);
      if (done.size < runs.length) {
        const left = estimateRemaining(runs, done);
        const load = left.highestLoad === undefined ? '' : `; the finished runs saw loads up to ${left.highestLoad.toFixed(1)}`;
        if (left.unknown === runs.length - done.size) console.log('no time estimate yet: no run of these kinds has finished');
        else console.log(`about ${Math.ceil(left.minutes)} min left at the finished runs' pace${left.unknown > 0 ? `, and ${left.unknown} run(s) of a kind not run yet` : ''}${load}`);
      }
    });
  cmd.command('table <dir>')
    .description('recall@N per variant and test set: mean ± std over seeds, n queries, paired bootstrap against each variant\'s comparison (default the first variant)')
    .option('--format <f>', 'md | csv | json', 'md')
    .action(async (dir: string, raw: { format: string }) => {
      const { format } = parseFlags(TableFlags, raw);
      const { comparisonsOf } = await import('../../experiments/plan.ts');
      const { readExperimentFolder } = await import('../../experiments/record.ts');
      const { experimentTable, tableMarkdown, tableCsv } = await import('../../experiments/table.ts');
      const { plan, records } = readExperimentFolder(dir);
      const t = experimentTable(records, comparisonsOf(plan));
      console.log(format === 'md' ? tableMarkdown(t) : format === 'csv' ? tableCsv(t) : JSON.stringify(t, null, 2));
    });
}
