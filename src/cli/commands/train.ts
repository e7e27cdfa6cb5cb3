// `vgl train`: the reference's training options as kebab-case flags, or a config file (JSON/YAML)
// holding the same options; flags override the file. The resolved config is saved with the run.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import YAML from 'yaml';
import { TrainConfigSchema, AugmentSchema, FLAT_SHAPE, flatNameOf, trainOptionsFromMapping, type TrainConfig } from '../../train/config.ts';
import { parseFlags, flagsFromShape, flagValue, addSchemaOptions, UsageError, type SchemaFlag } from '../flags.ts';

// Flags, kinds and help come from the schema (defaults in one place); the augmentations, nested under
// `augment` in the config, are top-level flags as in the reference.
// worldSize is recorded, not chosen: the launcher's flags give it.
const { augment: _augment, worldSize: _worldSize, ...TOP_LEVEL } = FLAT_SHAPE;
const FLAGS: SchemaFlag[] = [...flagsFromShape(TOP_LEVEL), ...flagsFromShape(AugmentSchema.shape)];
const AUGMENT = new Set(Object.keys(AugmentSchema.shape));

/** Reads a config file (JSON or YAML; keys camelCase or kebab-case). */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`--config ${path}: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = /\.ya?ml$/i.test(path) ? YAML.parse(text) : JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--config ${path}: not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${(e as Error).message}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new UsageError(`--config ${path}: expected a mapping of options`);
  let out: Record<string, unknown>;
  try {
    out = trainOptionsFromMapping(data as Record<string, unknown>);
  } catch (e) {
    throw new UsageError(`--config ${path}: ${(e as Error).message}`);
  }
  return out;
}

export function register(program: Command): void {
  const cmd = program.command('train').description('train a place-recognition model (resumes when the output folder holds last.pth)')
    .option('--config <file>', 'JSON or YAML file with any of these options (flags override it)')
    .option('--nproc-per-node <n>', "data-parallel training in n processes on this machine (torch.distributed, Gloo), as torchrun's; a process started by torchrun (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT) joins its group")
    .option('--nnodes <n>', 'with --nproc-per-node: machines in the run (1); run the same command on each with its --node-rank')
    .option('--node-rank <i>', "with --nnodes: this machine's index, 0 for rank 0's (0)")
    .option('--master-addr <host>', "with --nnodes: rank 0's machine (its TCP store), the same on every machine")
    .option('--master-port <port>', 'with --nnodes: the rendezvous port, the same on every machine');
  addSchemaOptions(cmd, FLAGS);
  cmd.action(async (raw: Record<string, string | boolean | undefined>) => {
    const config = configFromFlags(raw);
    const nproc = raw.nprocPerNode === undefined ? 1 : Number(raw.nprocPerNode);
    if (!Number.isInteger(nproc) || nproc < 1) throw new UsageError(`--nproc-per-node "${String(raw.nprocPerNode)}": expected a whole number >= 1`);
    const { launchEnv, ProcessGroup } = await import('../../torch/distributed.ts');
    const launched = launchEnv();
    const nnodes = raw.nnodes === undefined ? 1 : Number(raw.nnodes);
    if (launched === undefined && (nproc > 1 || nnodes > 1)) {
      const { launchRanks } = await import('../launch.ts');
      // The ranks run this command without the launcher's own flags.
      const launcherFlags = ['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port'];
      const args = process.argv.slice(2);
      for (let i = args.length - 1; i >= 0; i--) {
        const flag = launcherFlags.find((f) => args[i] === f || args[i].startsWith(`${f}=`));
        if (flag) args.splice(i, args[i].includes('=') ? 1 : 2);
      }
      await launchRanks(nproc, args, undefined, {
        nnodes, nodeRank: raw.nodeRank === undefined ? 0 : Number(raw.nodeRank),
        masterAddr: raw.masterAddr === undefined ? undefined : String(raw.masterAddr), masterPort: raw.masterPort === undefined ? undefined : Number(raw.masterPort),
      });
      return;
    }
    const { train } = await import('../../train/train.ts');
    const group = launched && launched.worldSize > 1
      ? ProcessGroup.init({ rank: launched.rank, worldSize: launched.worldSize, rendezvous: { host: launched.host, port: launched.port }, timeoutMs: launched.timeoutMs }) : undefined;
    try {
      const result = await train(config, { group });
      if (!group || group.rank === 0) console.log(JSON.stringify(result, null, 2));
    } finally {
      group?.destroy();
    }
  });
}

/** The training config of parsed flags (commander's attribute names) over an optional --config file. */
export function configFromFlags(raw: Record<string, string | boolean | undefined>): TrainConfig {
  const options: Record<string, unknown> = raw.config ? readConfigFile(String(raw.config)) : {};
  const augment: Record<string, unknown> = { ...(options.augment as object | undefined) };
  for (const { key, flag, kind } of FLAGS) {
    const v = raw[key];
    if (v === undefined) continue;
    if (AUGMENT.has(key)) augment[key] = flagValue(kind, flag, v);
    else options[key] = flagValue(kind, flag, v);
  }
  options.augment = augment;
  return parseFlags(TrainConfigSchema, options, flatNameOf);
}
