// `vgl doctor`: what it reports is what the engine says, read independently here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { doctor } from '../../src/cli/commands/doctor.ts';
import { native } from '../../src/torch/native.ts';
import { distributedAvailable } from '../../src/torch/distributed.ts';

test('vgl doctor: libtorch and its build, cores, threads, auto precision, Gloo, as the engine reports them', async () => {
  const r = await doctor();
  assert.equal(r.libtorch.version, native.version);
  assert.equal(r.libtorch.cuda, /USE_CUDA=ON/.test(native.config()));
  assert.equal(r.cpu.cores, availableParallelism());
  assert.equal(r.threads.intraOp, native.getNumThreads());
  assert.match(r.cpu.trainingAuto, /^(fp32|bf16) \(auto/);
  assert.match(r.cpu.extractionAuto, /^(fp32|bf16) \(auto/);
  assert.equal(r.distributed.gloo, distributedAvailable());
  assert.ok(r.memory.availableGiB > 0 && r.memory.availableGiB <= r.memory.totalGiB + 0.1);
  const out = execFileSync(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'vgl.js'), 'doctor'], { encoding: 'utf8' });
  assert.match(out, new RegExp(`^libtorch +${native.version.replace(/\./g, '\\.')}: CUDA (yes|no)`, 'm'));
  assert.match(out, /^distributed +Gloo (yes|no)/m);
});
