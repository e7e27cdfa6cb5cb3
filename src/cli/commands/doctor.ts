// `vgl doctor`: what this machine gives vgl, for a bug report or before a long run: the libtorch in use
// and how it was built (CUDA, cuDNN, NCCL, oneDNN), the device, threads, the BLAS matrix products go
// through, the CPU's bf16 units and what `auto` picks for training and for extraction, torch.distributed.
import type { Command } from 'commander';
import { realpathSync, existsSync } from 'node:fs';
import { cpus, availableParallelism, totalmem } from 'node:os';

export interface DoctorReport {
  node: string;
  libtorch: { version: string; cuda: boolean; cudnn: boolean; nccl: boolean; mkldnn: boolean; cpuCapability: string | null };
  device: string;
  cpu: { model: string; cores: number; bf16: string; trainingAuto: string; extractionAuto: string };
  threads: { intraOp: number; VGL_NUM_THREADS: string | null; OMP_WAIT_POLICY: string | null };
  blas: string;
  memory: { totalGiB: number; availableGiB: number };
  distributed: { gloo: boolean; nccl: boolean };
}

/** The system BLAS that libtorch's matrix products resolve to (Debian: the libblas.so.3 alternative). */
function systemBlas(): string {
  const lib = '/usr/lib/x86_64-linux-gnu/libblas.so.3';
  if (!existsSync(lib)) return 'not found at /usr/lib/x86_64-linux-gnu/libblas.so.3 (LIBTORCH= builds bring their own)';
  const real = realpathSync(lib);
  return real.includes('openblas') ? `OpenBLAS (${real})` : `${real} — not OpenBLAS: matrix products may run ~60x slower (apt-get install libopenblas0-pthread)`;
}

export async function doctor(): Promise<DoctorReport> {
  const torch = await import('../../torch/index.ts');
  const { native } = await import('../../torch/native.ts');
  const { distributedAvailable } = await import('../../torch/distributed.ts');
  const built = native.config();
  const flag = (name: string) => new RegExp(`${name}=ON`).test(built);
  const auto = (workload: 'train' | 'inference') => {
    const r = torch.resolvePrecision('auto', { workload, device: 'cpu' });
    // A training run times bf16 against fp32 on its own network and size before it keeps bf16.
    const then = workload === 'train' && r.precision === 'bf16' ? '; a run keeps it only if a timed training pass is faster than in fp32' : '';
    return `${r.precision} (${r.reason}${then})`;
  };
  return {
    node: process.version,
    libtorch: {
      version: native.version, cuda: flag('USE_CUDA'), cudnn: flag('USE_CUDNN'), nccl: flag('USE_NCCL'), mkldnn: flag('USE_MKLDNN'),
      cpuCapability: /CPU capability usage: (\S+)/.exec(built)?.[1] ?? null,
    },
    device: `${torch.defaultDevice()}${torch.cudaAvailable() ? ` (${torch.cudaDeviceCount()} CUDA device${torch.cudaDeviceCount() === 1 ? '' : 's'})` : ' (no CUDA device, or a libtorch without CUDA)'}`,
    cpu: {
      model: cpus()[0]?.model.trim() ?? 'unknown', cores: availableParallelism(),
      bf16: torch.bf16Support('cpu').reason, trainingAuto: auto('train'), extractionAuto: auto('inference'),
    },
    threads: { intraOp: native.getNumThreads(), VGL_NUM_THREADS: process.env.VGL_NUM_THREADS ?? null, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? null },
    blas: systemBlas(),
    memory: { totalGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10, availableGiB: Math.round((torch.availableMemory() / 2 ** 30) * 10) / 10 },
    distributed: { gloo: distributedAvailable(), nccl: false },
  };
}

export function register(program: Command): void {
  program.command('doctor')
    .description('what this machine gives vgl: libtorch and its build (CUDA, cuDNN, NCCL), device, threads, BLAS, bf16 units and what auto picks, torch.distributed')
    .option('--json', 'print JSON')
    .action(async (raw: { json?: boolean }) => {
      const r = await doctor();
      if (raw.json) {
        console.log(JSON.stringify(r, null, 2));
        return;
      }
      const yes = (b: boolean) => (b ? 'yes' : 'no');
      console.log([
        `node          ${r.node}`,
        `libtorch      ${r.libtorch.version}: CUDA ${yes(r.libtorch.cuda)}, cuDNN ${yes(r.libtorch.cudnn)}, NCCL ${yes(r.libtorch.nccl)}, oneDNN ${yes(r.libtorch.mkldnn)}, CPU kernels ${r.libtorch.cpuCapability ?? '?'}`,
        `device        ${r.device}`,
        `cpu           ${r.cpu.model}, ${r.cpu.cores} cores; ${r.cpu.bf16}`,
        `auto          training: ${r.cpu.trainingAuto}`,
        `              extraction: ${r.cpu.extractionAuto}`,
        `threads       ${r.threads.intraOp} intra-op (VGL_NUM_THREADS ${r.threads.VGL_NUM_THREADS ?? 'unset'}, OMP_WAIT_POLICY ${r.threads.OMP_WAIT_POLICY ?? 'unset'})`,
        `blas          ${r.blas}`,
        `memory        ${r.memory.availableGiB} of ${r.memory.totalGiB} GiB available`,
        `distributed   Gloo ${yes(r.distributed.gloo)}${r.distributed.gloo ? '' : ' (install libgloo-dev, then make setup)'}, NCCL not bound`,
      ].join('\n'));
    });
}
