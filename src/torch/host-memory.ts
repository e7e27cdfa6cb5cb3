// The memory this process may still take: the kernel's MemAvailable, or VGL_MEMORY_AVAILABLE_MB
// (tests, machines shared with other work). Loaders and the memory guard refuse what would exceed it.
import { freemem } from 'node:os';

export function availableMemory(env: NodeJS.ProcessEnv = process.env): number {
  const forced = env.VGL_MEMORY_AVAILABLE_MB;
  if (forced !== undefined && forced !== '') {
    const mb = Number(forced);
    if (!Number.isFinite(mb) || mb <= 0) throw new Error(`VGL_MEMORY_AVAILABLE_MB "${forced}": expected a positive number of megabytes`);
    return mb * 1024 * 1024;
  }
  return freemem();
}
