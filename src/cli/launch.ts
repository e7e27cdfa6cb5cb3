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

/**
 * Runs `args` (this CLI's arguments, without the launcher's) as `n` ranks; resolves when all exit
 * cleanly, rejects naming the first rank that failed (the others are stopped: they would wait for it).
 */
export async function launchRanks(n: number, args: readonly string[], log: (s: string) => void = (s) => console.error(s)): Promise<void> {
  const port = process.env.MASTER_PORT ?? String(await freePort());
  const threads = process.env.VGL_NUM_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / n)));
  log(`launching ${n} processes on this machine (rendezvous 127.0.0.1:${port}, ${threads} thread(s) each)`);
  const children: ChildProcess[] = [];
  const exits = Array.from({ length: n }, (_, rank) => new Promise<{ rank: number; code: number | null; signal: string | null }>((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...args], {
      env: { ...process.env, WORLD_SIZE: String(n), RANK: String(rank), LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, VGL_NUM_THREADS: threads },
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
  if (f !== null) throw new Error(`rank ${f.rank} of ${n} ${f.signal ? `was killed (${f.signal})` : `exited with code ${f.code}`}; the other ranks were stopped`);
}
