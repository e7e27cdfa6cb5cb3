// A 2,000-step training loop of a small conv net must hold a flat resident set: native tensor memory
// is released by tidy scopes, not left to V8's garbage collector.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.ts';
import { nn, optim, F, Tensor } from '../../src/torch/index.ts';

class SmallNet extends nn.Module {
  readonly features = this.module('features', new nn.Sequential(
    new nn.Conv2d(3, 16, 3, { padding: 1 }), new nn.BatchNorm2d(16), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(16, 32, 3, { padding: 1 }), new nn.BatchNorm2d(32), new nn.ReLU(),
  ));
  readonly fc = this.module('fc', new nn.Linear(32, 8));
  forward(x: Tensor): Tensor {
    return F.normalize(this.fc.forward(F.adaptiveAvgPool2d(this.features.forward(x), 1).flatten(1)), 2, 1);
  }
}

test('2,000 training steps keep resident memory flat (growth < 50 MB after warm-up)', () => {
  torch.manualSeed(0);
  const net = new SmallNet();
  const opt = new optim.Adam(net.parameters(), { lr: 1e-3 });
  const x = torch.keep(torch.randn([8, 3, 32, 32]));
  const target = torch.keep(F.normalize(torch.randn([8, 8]), 2, 1));
  const step = (): number => torch.tidy(() => {
    opt.zeroGrad();
    const loss = net.forward(x).sub(target).pow(2).sum();
    loss.backward();
    opt.step();
    return loss.item();
  });
  const first = step();
  for (let i = 0; i < 200; i++) step();
  global.gc?.();
  const warm = process.memoryUsage().rss;
  const live = torch.liveTensors();
  let last = 0;
  for (let i = 0; i < 1800; i++) last = step();
  global.gc?.();
  const growth = (process.memoryUsage().rss - warm) / 2 ** 20;
  console.log(`# rss growth over 1,800 steps after warm-up: ${growth.toFixed(1)} MB; loss ${first.toFixed(4)} -> ${last.toFixed(4)}`);
  assert.equal(torch.liveTensors(), live, 'no tensor handle leaks per step');
  assert.ok(growth < 50, `resident memory grew ${growth.toFixed(1)} MB`);
  assert.ok(last < first, 'the loop really trains');
  opt.dispose();
  net.dispose();
  x.dispose();
  target.dispose();
});
