// `vgl train --nproc-per-node N`: torchrun's job on one machine. Starts N copies of this command, each
// with torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and its share
// of the cores, waits for them, and stops all when one fails, naming it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';

/** A free TCP port on the loopback (the rendezvous of rank 0's store). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Where this machine's ranks sit among several machines' (torchrun's --nnodes, --node-rank, --master-addr, --master-port). */
export interface Nodes {
  nnodes: number;
  nodeRank: number;
  /** Rank 0's machine (default: this one). */
  masterAddr?: string;
  /** Its rendezvous port (default: a free one; with several machines, give one). */
  masterPort?: number;
}

/**
 * Runs `args` (this CLI's arguments, without the launcher's) as `n` ranks of this machine; resolves
 * when all exit cleanly, rejects naming the first rank that failed (the others are stopped: they
 * would wait for it). With `nodes`, this machine's ranks are nodeRank·n .. nodeRank·n + n - 1 of nnodes·n.
 */
export async function launchRanks(n: number, args: readonly string[], log: (s: string) => void = (s) => console.error(s),
  nodes: Nodes = { nnodes: 1, nodeRank: 0 }): Promise<void> {
  const { nnodes, nodeRank } = nodes;
  if (!(Number.isInteger(nnodes) && nnodes >= 1 && Number.isInteger(nodeRank) && nodeRank >= 0 && nodeRank < nnodes)) {
    throw new Error(`--node-rank ${nodeRank} is not in [0, --nnodes ${nnodes})`);
  }
  if (nnodes > 1 && (nodes.masterAddr === undefined || nodes.masterPort === undefined)) {
    throw new Error('--nnodes > 1: give --master-addr and --master-port (rank 0\'s machine and port), the same on every machine');
  }
  const host = nodes.masterAddr ?? process.env.MASTER_ADDR ?? '127.0.0.1';
  const port = String(nodes.masterPort ?? process.env.MASTER_PORT ?? await freePort());
  const threads = process.env.VGL_NUM_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / n)));
  const world = nnodes * n;
  log(`launching ${n} processes on this machine${nnodes > 1 ? ` (node ${nodeRank} of ${nnodes}, ${world} in all)` : ''} (rendezvous ${host}:${port}, ${threads} thread(s) each)`);
  const children: ChildProcess[] = [];
  const exits = Array.from({ length: n }, (_, local) => new Promise<{ rank: number; code: number | null; signal: string | null }>((resolve) => {
    const rank = nodeRank * n + local;
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...args], {
      env: { ...process.env, WORLD_SIZE: String(world), RANK: String(rank), LOCAL_RANK: String(local), MASTER_ADDR: host, MASTER_PORT: port, VGL_NUM_THREADS: threads },
      // rank 0 speaks for the run; the others' stderr is shown with their rank
      stdio: rank === 0 ? 'inherit' : ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.on('data', (d: Buffer) => process.stderr.write(String(d).replace(/^(?=.)/gm, `[rank ${rank}] `)));
    child.on('exit', (code, signal) => resolve({ rank, code, signal }));
    children.push(child);
  }));
  let failed: { rank: number; code: number | null; signal: string | null } | null = null;
  await Promise.all(exits.map((e) => e.then((r) => {
    if ((r.code !== 0 || r.signal !== null) && failed === null) {
      failed = r;
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    }
  })));
  const f = failed as { rank: number; code: number | null; signal: string | null } | null;
  if (f !== null) throw new Error(`rank ${f.rank} of ${world} ${f.signal ? `was killed (${f.signal})` : `exited with code ${f.code}`}; the other ranks were stopped`);
}
