// Where a training step's time goes: the seed's step (ResNet-18 conv4 + NetVLAD, one 12-image triplet
// tuple, Adam) run by vgl and by PyTorch (Debian's python3-torch), either by oneDNN primitive
// (--by onednn: ONEDNN_VERBOSE=1, each primitive's time summed per kind, implementation and direction)
// or by op (--by ops: libtorch's profiler on both sides, each op's self time).
//   node --import tsx scripts/profile-step.mts [--by onednn|ops] [--size 240x320] [--precision bf16] [--layout nchw|channels-last] [--steps 3]
// Prints one table per side (ms per step, after a warm-up step). docs/precision.md has its output.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({ options: { size: { type: 'string', default: '240x320' }, precision: { type: 'string', default: 'bf16' },
  layout: { type: 'string', default: 'channels-last' }, steps: { type: 'string', default: '3' }, side: { type: 'string' }, by: { type: 'string', default: 'onednn' },
  trace: { type: 'string' } } });
const [H, W] = a.size!.split('x').map(Number);
const steps = Number(a.steps);

if (a.side === 'vgl') {
  // The step itself, in a child process whose stdout carries oneDNN's lines.
  const torch = await import('../src/torch/index.ts');
  const { buildNetwork } = await import('../src/models/network.ts');
  const { splitTuples, tripletLoss } = await import('../src/train/losses.ts');
  torch.manualSeed(0);
  const net = buildNetwork({ backbone: 'resnet18conv4', aggregation: 'netvlad' });
  net.freezeReference();
  if (a.layout === 'channels-last') net.toChannelsLast();
  const opt = new torch.optim.Adam(net.trainableParameters(), { lr: 1e-5 });
  const images = torch.keep(torch.randn([12, 3, H, W]));
  const precision = a.precision as 'bf16' | 'fp32';
  const step = () => torch.tidy(() => {
    net.train();
    opt.zeroGrad();
    const { query, positive, negatives } = splitTuples(torch.withPrecision(precision, () => net.forward(images)), 1);
    tripletLoss(query, positive, negatives, { margin: 0.1 }).backward();
    opt.step();
  });
  step(); // a warm-up step (oneDNN compiles its kernels then)
  console.log('timed');
  const t0 = performance.now();
  const run = () => { for (let i = 0; i < steps; i++) step(); };
  if (a.trace) torch.profile(a.trace, run);
  else run();
  console.log(`step_ms,${(performance.now() - t0) / steps}`);
  process.exit(0);
}

const PYTORCH = `
import sys, time, torch, torch.nn as nn
sys.path.insert(0, ${JSON.stringify(fileURLToPath(new URL('../src/bench/reference/', import.meta.url)))})
from torch_heads import NetVLAD
from torch_resnet import layer
torch.set_num_threads(${Number(process.env.VGL_NUM_THREADS ?? 2)}); torch.manual_seed(0)
b = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1), layer(64, 64, 1), layer(64, 128, 2), layer(128, 256, 2))
for m in list(b.children())[:6]:
    for p in m.parameters(): p.requires_grad = False
model = nn.Sequential(b, NetVLAD(64, 256))
x = torch.randn(12, 3, ${H}, ${W})
if ${JSON.stringify(a.layout)} == 'channels-last':
    model = model.to(memory_format=torch.channels_last); x = x.contiguous(memory_format=torch.channels_last)
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
crit = nn.TripletMarginLoss(margin=0.1, p=2, reduction="sum")
def step():
    model.train()
    for m in list(b.children())[:6]: m.eval()
    opt.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=${a.precision === 'bf16' ? 'True' : 'False'}):
        d = model(x); q, p, n = d[0:1], d[1:2], d[2:]
        loss = crit(q.expand_as(n), p.expand_as(n), n) / n.shape[0]
    loss.backward(); opt.step()
step()
print("timed", flush=True); t = time.perf_counter()
if ${a.by === 'ops' ? 'True' : 'False'}:
    with torch.autograd.profiler.profile() as prof:
        for _ in range(${steps}): step()
    for e in prof.key_averages():
        print(f"op,{e.key},{e.count},{e.self_cpu_time_total / 1000}")
else:
    for _ in range(${steps}): step()
print(f"step_ms,{(time.perf_counter() - t) / ${steps} * 1000}")
`;

function table(label: string, out: string): void {
  const total = new Map<string, { ms: number; n: number }>();
  let stepMs = NaN;
  for (const line of out.split('\n').slice(out.split('\n').indexOf('timed'))) {
    if (line.startsWith('step_ms,')) stepMs = Number(line.split(',')[1]);
    if (!/^(onednn|dnnl)_verbose,exec,/.test(line)) continue;
    const f = line.split(',');
    const key = `${f[3]} ${f[4]} ${f[5] === 'undef' ? '' : f[5]} ${f[6]?.split(':')[0].replace('src_', '') ?? ''}`.replace(/\s+/g, ' ').trim();
    const e = total.get(key) ?? { ms: 0, n: 0 };
    e.ms += Number(f[f.length - 1]);
    e.n++;
    total.set(key, e);
  }
  const rows = [...total].sort((x, y) => y[1].ms - x[1].ms);
  const sum = rows.reduce((s, [, e]) => s + e.ms, 0);
  console.log(`\n${label}: ${stepMs.toFixed(0)} ms per step, of which oneDNN ${(sum / steps).toFixed(0)} ms`);
  console.log('| primitive (kind, implementation, direction, data type) | calls per step | ms per step |\n|---|---|---|');
  for (const [k, e] of rows.slice(0, 10)) console.log(`| ${k} | ${Math.round(e.n / steps)} | ${(e.ms / steps).toFixed(1)} |`);
}

/** Self time per op name (µs → ms per step) from a Chrome trace: each event's duration less its children's, per thread. */
function opTable(label: string, ops: Map<string, { ms: number; n: number }>, stepMs: number): void {
  const rows = [...ops].sort((x, y) => y[1].ms - x[1].ms);
  const sum = rows.reduce((s, [, e]) => s + e.ms, 0);
  console.log(`\n${label}: ${stepMs.toFixed(0)} ms per step (profiled), ops' self time ${(sum / steps).toFixed(0)} ms`);
  console.log('| op | calls per step | self ms per step |\n|---|---|---|');
  for (const [k, e] of rows.slice(0, 14)) console.log(`| ${k} | ${Math.round(e.n / steps)} | ${(e.ms / steps).toFixed(1)} |`);
}

function selfTimes(trace: string): Map<string, { ms: number; n: number }> {
  const events = (JSON.parse(readFileSync(trace, 'utf8')) as { traceEvents?: unknown[] } | unknown[]);
  const list = (Array.isArray(events) ? events : events.traceEvents ?? []) as { name: string; ph: string; ts: number; dur?: number; tid: number | string }[];
  const byThread = new Map<string, typeof list>();
  for (const e of list) if (e.ph === 'X' && e.dur !== undefined) (byThread.get(String(e.tid)) ?? byThread.set(String(e.tid), []).get(String(e.tid))!).push(e);
  const out = new Map<string, { ms: number; n: number }>();
  for (const evs of byThread.values()) {
    evs.sort((x, y) => x.ts - y.ts || y.dur! - x.dur!);
    const stack: { e: (typeof list)[number]; child: number }[] = [];
    const close = (until: number) => {
      while (stack.length > 0 && stack.at(-1)!.e.ts + stack.at(-1)!.e.dur! <= until) {
        const { e, child } = stack.pop()!;
        const o = out.get(e.name) ?? { ms: 0, n: 0 };
        o.ms += (e.dur! - child) / 1000;
        o.n++;
        out.set(e.name, o);
        if (stack.length > 0) stack.at(-1)!.child += e.dur!;
      }
    };
    for (const e of evs) {
      close(e.ts);
      stack.push({ e, child: 0 });
    }
    close(Infinity);
  }
  return out;
}

const stepOf = (out: string) => Number(/step_ms,([\d.]+)/.exec(out)?.[1]);
const python = process.env.VGL_REFERENCE_PYTHON ?? '/usr/bin/python3';
const sideArgs = ['--size', a.size!, '--precision', a.precision!, '--layout', a.layout!, '--steps', a.steps!];
if (a.by === 'ops') {
  const trace = join(mkdtempSync(join(tmpdir(), 'vgl-profile-')), 'trace.json');
  const vgl = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--side', 'vgl', ...sideArgs, '--trace', trace], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (vgl.status !== 0) throw new Error(`vgl side failed: ${vgl.stderr}`);
  opTable(`vgl ${a.precision} ${a.layout} ${a.size}`, selfTimes(trace), stepOf(vgl.stdout));
  const py = spawnSync(python, ['-c', PYTORCH], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (py.status !== 0) throw new Error(`PyTorch side failed: ${py.stderr}`);
  const ops = new Map<string, { ms: number; n: number }>();
  for (const line of py.stdout.split('\n')) {
    const m = /^op,(.*),(\d+),([\d.]+)$/.exec(line);
    if (m) ops.set(m[1], { n: Number(m[2]), ms: Number(m[3]) });
  }
  opTable(`PyTorch ${a.precision} autocast ${a.layout} ${a.size}`, ops, stepOf(py.stdout));
} else {
  const env = { ...process.env, ONEDNN_VERBOSE: '1', DNNL_VERBOSE: '1' };
  const vgl = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--side', 'vgl', ...sideArgs], { env, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (vgl.status !== 0) throw new Error(`vgl side failed: ${vgl.stderr}`);
  table(`vgl ${a.precision} ${a.layout} ${a.size}`, vgl.stdout);
  const py = spawnSync(python, ['-c', PYTORCH], { env, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (py.status !== 0) throw new Error(`PyTorch side failed: ${py.stderr}`);
  table(`PyTorch ${a.precision} autocast ${a.layout} ${a.size}`, py.stdout);
}
