// Modules: parameter naming in the torchvision layout, train/eval, BatchNorm statistics, loading by
// name with a clear error, and tidy scopes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.ts';
import { nn, Tensor } from '../../src/torch/index.ts';

class Block extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly downsample: nn.Sequential;
  constructor() {
    super();
    this.conv1 = this.module('conv1', new nn.Conv2d(3, 4, 3, { padding: 1, bias: false }));
    this.bn1 = this.module('bn1', new nn.BatchNorm2d(4));
    this.downsample = this.module('downsample', new nn.Sequential(new nn.Conv2d(3, 4, 1, { bias: false }), new nn.BatchNorm2d(4)));
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() => this.bn1.forward(this.conv1.forward(x)).add(this.downsample.forward(x)).relu());
  }
}

test('parameter and buffer names follow the torchvision layout', () => {
  const b = new Block();
  assert.deepEqual([...b.stateDict().keys()], [
    'conv1.weight', 'bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var', 'bn1.num_batches_tracked',
    'downsample.0.weight', 'downsample.1.weight', 'downsample.1.bias', 'downsample.1.running_mean',
    'downsample.1.running_var', 'downsample.1.num_batches_tracked',
  ]);
  assert.deepEqual([...b.namedParameters()].map(([n]) => n), ['conv1.weight', 'bn1.weight', 'bn1.bias', 'downsample.0.weight', 'downsample.1.weight', 'downsample.1.bias']);
  assert.equal(b.parameterCount(), 4 * 3 * 9 + 4 + 4 + 4 * 3 + 4 + 4);
  b.dispose();
});

test('BatchNorm2d: training updates running statistics with momentum 0.1; eval and frozen do not', () => {
  torch.tidy(() => {
    const bn = new nn.BatchNorm2d(1);
    // channel values 1, 2, 3, 6: mean 3, unbiased variance (4+1+0+9)/3 = 14/3
    const x = torch.tensor([1, 2, 3, 6], [4, 1, 1, 1]);
    const y = bn.forward(x);
    assert.ok(Math.abs(bn.runningMean.item() - 0.3) < 1e-6);
    assert.ok(Math.abs(bn.runningVar.item() - (0.9 + 0.1 * 14 / 3)) < 1e-6);
    assert.equal(bn.numBatchesTracked.item(), 1);
    // training output uses the biased batch variance 14/4
    const std = Math.sqrt(3.5 + 1e-5);
    y.toNumbers().forEach((v, i) => assert.ok(Math.abs(v - ([1, 2, 3, 6][i] - 3) / std) < 1e-5));
    bn.eval();
    bn.forward(x);
    assert.ok(Math.abs(bn.runningMean.item() - 0.3) < 1e-6);
    bn.frozen = true;
    bn.train();
    assert.equal(bn.training, false, 'a frozen BatchNorm stays in eval mode');
    bn.dispose();
  });
});

test('loadStateDict copies by name and keeps the tensors the optimizer holds', () => {
  torch.tidy(() => {
    const a = new Block();
    const b = new Block();
    const before = b.conv1.weight;
    torch.loadStateDict(b, a.stateDict());
    assert.equal(b.conv1.weight, before);
    assert.ok(b.conv1.weight.equal(a.conv1.weight));
    assert.ok(b.downsample.at(1).stateDict().get('running_var')!.equal(a.downsample.at(1).stateDict().get('running_var')!));
    a.dispose();
    b.dispose();
  });
});

test('loadStateDict names every missing, unexpected and mismatched key, and the source', () => {
  torch.tidy(() => {
    const b = new Block();
    const sd = new Map<string, Tensor>(b.stateDict());
    sd.delete('bn1.bias');
    sd.set('fc.weight', torch.zeros([2, 2]));
    sd.set('conv1.weight', torch.zeros([4, 3, 5, 5]));
    assert.throws(() => torch.loadStateDict(b, sd, { source: 'resnet18.pth' }), (e: Error) => {
      assert.match(e.message, /'resnet18\.pth'/);
      assert.match(e.message, /missing keys \(1\): bn1\.bias/);
      assert.match(e.message, /unexpected keys \(1\): fc\.weight/);
      assert.match(e.message, /conv1\.weight: model \[4,3,3,3\] vs file \[4,3,5,5\]/);
      return true;
    });
    sd.set('conv1.weight', b.conv1.weight);
    const r = torch.loadStateDict(b, sd, { strict: false });
    assert.deepEqual(r.missing, ['bn1.bias']);
    assert.deepEqual(r.unexpected, ['fc.weight']);
    b.dispose();
  });
});

test('tidy frees what it does not return; keep and nested scopes behave', () => {
  const start = torch.liveTensors();
  const kept = torch.tidy(() => {
    const a = torch.ones([3]);
    const b = a.mul(2);
    torch.tidy(() => b.add(1)); // inner result moves to the outer scope, then dies with it
    return { b, n: 1 };
  });
  assert.equal(torch.liveTensors(), start + 1);
  assert.deepEqual(kept.b.toNumbers(), [2, 2, 2]);
  kept.b.dispose();
  assert.equal(torch.liveTensors(), start);
  assert.throws(() => kept.b.shape, /after dispose/);
  assert.throws(() => torch.tidy(() => { torch.ones([1]); throw new Error('boom'); }), /boom/);
  assert.equal(torch.liveTensors(), start, 'tensors are freed when fn throws');
});

test('noGrad and inferenceMode record no graph', () => {
  torch.tidy(() => {
    const w = torch.ones([2]).requiresGrad_(true);
    assert.equal(torch.noGrad(() => w.mul(2)).requiresGrad, false);
    assert.equal(torch.inferenceMode(() => w.mul(2)).requiresGrad, false);
    assert.equal(w.mul(2).requiresGrad, true);
    assert.equal(torch.isGradEnabled(), true);
  });
});

test('engine errors name the op and the problem', () => {
  torch.tidy(() => {
    assert.throws(() => torch.ones([2, 3]).mm(torch.ones([2, 3])), /mm: .*cannot be multiplied/);
    assert.throws(() => torch.tensor([1, 2, 3], [2, 2]), /3 values do not fill shape \[2,2\]/);
  });
});

test('manualSeed makes random draws reproducible', () => {
  torch.tidy(() => {
    torch.manualSeed(42);
    const a = torch.randn([5]).toNumbers();
    torch.manualSeed(42);
    const b = torch.randn([5]).toNumbers();
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, torch.randn([5]).toNumbers());
    assert.equal(torch.randperm(10).toNumbers().sort((x, y) => x - y).join(','), '0,1,2,3,4,5,6,7,8,9');
  });
});

test('Module.to(dtype) casts floating-point parameters and buffers in place; optimizers keep working', () => {
  torch.tidy(() => {
    const b = new Block();
    const opt = new torch.optim.SGD(b.parameters(), { lr: 0.1 });
    const w = b.conv1.weight;
    const before = w.toNumbers();
    b.to('float64');
    assert.equal(b.conv1.weight, w, 'same tensor object');
    assert.equal(w.dtype, 'float64');
    assert.equal(b.bn1.runningVar.dtype, 'float64');
    assert.equal(b.bn1.numBatchesTracked.dtype, 'int64', 'integer buffers are not cast');
    assert.deepEqual(w.toNumbers(), before, 'values survive the cast');
    const x = torch.rand([2, 3, 5, 5], { dtype: 'float64' });
    b.forward(x).sum().backward();
    const g = w.grad!.toNumbers();
    opt.step();
    w.toNumbers().forEach((v, i) => assert.ok(Math.abs(v - (before[i] - 0.1 * g[i])) < 1e-6));
    b.dispose();
  });
});
