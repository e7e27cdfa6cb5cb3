// One process per run folder. `vgl train` holds <run>/.lock (pid, host, start time) while it runs;
// a second one on the same folder is refused, naming the first. A lock whose process is gone (a
// killed run) is stale: it is replaced, and the caller is told.
import { open, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

export interface RunLock {
  path: string;
  release(): Promise<void>;
}

interface LockInfo {
  pid: number;
  host: string;
  started: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** Takes the run folder's lock, or throws naming the process that holds it. `onStale` hears about a lock left by a dead process. */
export async function lockRun(dir: string, onStale: (info: string) => void = () => {}): Promise<RunLock> {
  const path = join(dir, '.lock');
  const mine: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx'); // atomic: fails when the file exists
      await fh.writeFile(`${JSON.stringify(mine)}\n`);
      await fh.close();
      return { path, release: () => rm(path, { force: true }) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`${path}: cannot create the run lock (${(e as Error).message})`);
    }
    let held: LockInfo | null = null;
    try {
      held = JSON.parse(await readFile(path, 'utf8')) as LockInfo;
    } catch { /* unreadable: a writer killed between create and write */ }
    if (held && typeof held.pid === 'number' && (held.host !== mine.host || alive(held.pid))) {
      throw new Error(`${dir} is in use by another vgl train (pid ${held.pid} on ${held.host}, since ${held.started}); ` +
        `wait for it, or use another --output-folder (if that process is gone, delete ${path})`);
    }
    onStale(held ? `pid ${held.pid}, since ${held.started}` : 'unreadable');
    await rm(path, { force: true });
  }
  throw new Error(`${path}: could not take the run lock (another process keeps creating it)`);
}
