// Checkpoints: model + optimizer + metadata survive a save/load and training continues exactly as if
// never interrupted; the file is a torch.save archive PyTorch itself reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import * as torch from '../../src/torch/index.ts';
import { nn, optim, Tensor } from '../../src/torch/index.ts';
import { saveCheckpoint, loadCheckpoint, loadWeights } from '../../src/torch/checkpoint.ts';

class Net extends nn.Module {
  readonly body = this.module('body', new nn.Sequential(new nn.Linear(4, 6), new nn.ReLU(), new nn.Linear(6, 2)));
  readonly bn = this.module('bn', new nn.BatchNorm2d(2));
  forward(x: Tensor): Tensor {
    return this.bn.forward(this.body.forward(x).reshape(-1, 2, 1, 1)).flatten(1);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'vgl-ckpt-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function trainSteps(net: Net, opt: optim.Adam, from: number, to: number): number {
  let loss = 0;
  for (let s = from; s < to; s++) {
    loss = torch.tidy(() => {
      torch.manualSeed(1000 + s); // the data of step s, whatever happened before
      opt.zeroGrad();
      const l = net.forward(torch.randn([8, 4])).pow(2).mean();
      l.backward();
      opt.step();
      return l.item();
    });
  }
  return loss;
}

test('resume from a checkpoint equals an uninterrupted run', async () => {
  torch.manualSeed(5);
  const a = new Net();
  const optA = new optim.Adam(a.parameters(), { lr: 0.01 });
  trainSteps(a, optA, 0, 6);

  torch.manualSeed(5);
  const b = new Net();
  const optB = new optim.Adam(b.parameters(), { lr: 0.01 });
  trainSteps(b, optB, 0, 3);
  const path = join(dir, 'last.pth');
  await saveCheckpoint(path, b, optB, { epoch: 3, recalls: { r1: 12.5 } });
  assert.deepEqual(readdirSync(dir), ['last.pth'], 'no temp file is left behind');

  torch.manualSeed(77); // a different model initialisation: the checkpoint must override it
  const c = new Net();
  const optC = new optim.Adam(c.parameters(), { lr: 0.01 });
  const ck = await loadCheckpoint<{ epoch: number; recalls: { r1: number } }>(path);
  assert.deepEqual(ck.meta, { epoch: 3, recalls: { r1: 12.5 } });
  torch.loadStateDict(c, ck.stateDict);
  optC.loadStateDict(ck.optimizer!);
  trainSteps(c, optC, 3, 6);

  for (const [k, t] of a.stateDict()) assert.ok(t.equal(c.stateDict().get(k)!), `${k} differs after resume`);
  for (const x of [a, b, c]) x.dispose();
  for (const o of [optA, optB, optC]) o.dispose();
});

test('loadWeights names the file and the mismatched keys', async () => {
  const net = new Net();
  const path = join(dir, 'net.pth');
  await saveCheckpoint(path, net, null, {});
  class Other extends nn.Module {
    readonly body = this.module('body', new nn.Sequential(new nn.Linear(4, 5)));
    forward(x: Tensor): Tensor { return x; }
  }
  const other = new Other();
  await assert.rejects(loadWeights(other, path), (e: Error) => {
    assert.ok(e.message.includes(path));
    assert.match(e.message, /body\.0\.weight: model \[5,4\] vs file \[6,4\]/);
    assert.match(e.message, /unexpected keys \(\d+\): body\.2\.weight/);
    return true;
  });
  net.dispose();
  other.dispose();
});

const python = '/usr/bin/python3';
const hasTorch = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
test('PyTorch loads a vgl checkpoint (model weights by name, optimizer state, metadata)', { skip: hasTorch ? false : 'Debian python3-torch not installed' }, async () => {
  torch.manualSeed(9);
  const net = new Net();
  const opt = new optim.Adam(net.parameters(), { lr: 0.01 });
  trainSteps(net, opt, 0, 2);
  const path = join(dir, 'for-python.pth');
  await saveCheckpoint(path, net, opt, { epoch: 2 });
  const w = net.body.at(0).stateDict().get('weight')!;
  const script = `
import torch, json, sys
ck = torch.load(sys.argv[1])
sd = ck['state_dict']
print(json.dumps({'keys': list(sd.keys()), 'w': sd['body.0.weight'].flatten().tolist(),
  'nbt': int(sd['bn.num_batches_tracked']), 'meta': json.loads(ck['meta_json']),
  'steps': [int(s['step']) for s in ck['optimizer']['state']]}))`;
  const r = spawnSync(python, ['-c', script, path], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout);
  assert.deepEqual(got.keys, [...net.stateDict().keys()]);
  assert.deepEqual(got.w, Array.from(w.toFloat32Array()));
  assert.equal(got.nbt, 2);
  assert.deepEqual(got.meta, { epoch: 2 });
  assert.deepEqual(got.steps, net.parameters().map(() => 2));
  net.dispose();
  opt.dispose();
});
