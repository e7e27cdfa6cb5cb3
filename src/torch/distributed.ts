// torch.distributed for vgl: libtorch's c10d process groups (Gloo on CPUs) through the addon, with
// torchrun's conventions for joining them (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
// Collectives block until every rank has joined, or fail after the group's timeout with an error that
// names this rank: a rank that dies stops the others instead of hanging them.
import { native } from './native.ts';
import { Tensor, wrap } from './tensor.ts';

interface GroupHandle { readonly __brand: 'ProcessGroup' }

interface DistributedAddon {
  backends: string;
  initProcessGroup(o: { rank: number; worldSize: number; timeoutMs: number; store: 'tcp' | 'file'; host?: string; port?: number; path?: string; prefix?: string }): GroupHandle;
  allReduce(g: GroupHandle, tensors: unknown[]): void;
  broadcast(g: GroupHandle, tensors: unknown[], root: number): void;
  allGather(g: GroupHandle, tensor: unknown): unknown[];
  barrier(g: GroupHandle): void;
  destroyProcessGroup(g: GroupHandle): void;
}

function addon(): DistributedAddon {
  const d = (native as unknown as { distributed?: DistributedAddon }).distributed;
  if (!d) throw new Error('torch.distributed: the addon was built without Gloo; install libgloo-dev (apt-get install libgloo-dev) and rebuild it (make setup)');
  return d;
}

/** Whether this build of the addon has process groups (it needs gloo's headers: libgloo-dev). */
export const distributedAvailable = (): boolean => (native as unknown as { distributed?: unknown }).distributed !== undefined;

/** Where the ranks meet: torchrun's TCP store on rank 0's host and port, or a file every rank can reach (one machine). */
export type Rendezvous = { host: string; port: number } | { file: string };

export interface InitOptions {
  rank: number;
  worldSize: number;
  rendezvous: Rendezvous;
  /** Every collective (and the rendezvous) fails after this long without all ranks (default 5 minutes). */
  timeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 5 * 60_000;

/** A process group of `worldSize` ranks; this process is `rank`. */
export class ProcessGroup {
  #handle: GroupHandle | null;
  private constructor(handle: GroupHandle, readonly rank: number, readonly worldSize: number) {
    this.#handle = handle;
  }

  /** Joins the group (blocks until every rank has): torch.distributed.init_process_group('gloo'). */
  static init(o: InitOptions): ProcessGroup {
    const { rank, worldSize } = o;
    if (!Number.isInteger(worldSize) || worldSize < 1) throw new Error(`torch.distributed: world size must be an integer >= 1, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new Error(`torch.distributed: rank ${rank} is not in [0, ${worldSize})`);
    const store = 'file' in o.rendezvous
      ? { store: 'file' as const, path: o.rendezvous.file }
      : { store: 'tcp' as const, host: o.rendezvous.host, port: o.rendezvous.port };
    const h = addon().initProcessGroup({ rank, worldSize, timeoutMs: o.timeoutMs ?? DEFAULT_TIMEOUT_MS, ...store });
    return new ProcessGroup(h, rank, worldSize);
  }

  private get h(): GroupHandle {
    if (this.#handle === null) throw new Error(`torch.distributed: rank ${this.rank}: the process group was destroyed`);
    return this.#handle;
  }

  /** Sums each tensor over the ranks, in place (contiguous CPU tensors; one collective each: flatten many small ones first). */
  allReduceSum(tensors: readonly Tensor[]): void {
    for (const t of tensors) addon().allReduce(this.h, [t.h]);
  }

  /** Averages each tensor over the ranks, in place: DDP's gradient reduction. */
  allReduceMean(tensors: readonly Tensor[]): void {
    this.allReduceSum(tensors);
    if (this.worldSize > 1) for (const t of tensors) t.div_(this.worldSize);
  }

  /** Rank `root`'s values into every rank's tensors, in place (initial weights, k-means centroids). */
  broadcast(tensors: readonly Tensor[], root = 0): void {
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize) throw new Error(`torch.distributed: broadcast root ${root} is not a rank of ${this.worldSize}`);
    for (const t of tensors) addon().broadcast(this.h, [t.h], root);
  }

  /** Every rank's tensor (each the same shape and dtype), in rank order. */
  allGather(tensor: Tensor): Tensor[] {
    return addon().allGather(this.h, tensor.h).map(wrap);
  }

  /** Returns once every rank has called it. */
  barrier(): void {
    addon().barrier(this.h);
  }

  destroy(): void {
    if (this.#handle === null) return;
    addon().destroyProcessGroup(this.#handle);
    this.#handle = null;
  }
}

/** torchrun's environment: this process's place in a run of several (undefined when not launched so). */
export interface LaunchEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  host: string;
  port: number;
  /** VGL_DIST_TIMEOUT (seconds), how long a collective waits for a peer before failing; default DEFAULT_TIMEOUT_MS. */
  timeoutMs?: number;
}

/**
 * Reads WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT as torchrun sets them, and
 * VGL_DIST_TIMEOUT (init_process_group's timeout, in seconds); errors name the variable.
 */
export function launchEnv(env: NodeJS.ProcessEnv = process.env): LaunchEnv | undefined {
  if (env.WORLD_SIZE === undefined) return undefined;
  const int = (name: string, fallback?: number): number => {
    const v = env[name];
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new Error(`torch.distributed: ${name} is not set (WORLD_SIZE is; torchrun sets both)`);
    }
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`torch.distributed: ${name}=${JSON.stringify(v)} is not a non-negative integer`);
    return n;
  };
  const worldSize = int('WORLD_SIZE');
  const rank = int('RANK');
  if (worldSize < 1 || rank >= worldSize) throw new Error(`torch.distributed: RANK=${rank} is not in [0, WORLD_SIZE=${worldSize})`);
  const port = int('MASTER_PORT', 29500);
  if (port < 1 || port > 65535) throw new Error(`torch.distributed: MASTER_PORT=${port} is not a port`);
  const timeout = env.VGL_DIST_TIMEOUT === undefined ? undefined : Number(env.VGL_DIST_TIMEOUT);
  if (timeout !== undefined && !(Number.isFinite(timeout) && timeout > 0)) throw new Error(`torch.distributed: VGL_DIST_TIMEOUT=${JSON.stringify(env.VGL_DIST_TIMEOUT)} is not a number of seconds > 0`);
  return { rank, worldSize, localRank: int('LOCAL_RANK', rank), host: env.MASTER_ADDR ?? '127.0.0.1', port, ...(timeout === undefined ? {} : { timeoutMs: timeout * 1000 }) };
}
