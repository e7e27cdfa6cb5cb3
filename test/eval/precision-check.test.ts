// The bf16 descriptor check: its error is the one between the two precisions' descriptors. The real
// ImageNet MobileNetV2-0.35 on real night photos failed it when all of it ran in bf16 (10-15% off: what
// made 'auto' check at all); with its precision policy it is within 1% and 'auto' runs bf16. Where the
// check fails (here under a tighter limit) 'auto' runs fp32, an explicit 'bf16' bf16 with a warning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.ts';
import { buildNetwork } from '../../src/models/network.ts';
import { MOBILENETV2_035_WEIGHTS_DIR } from '../../src/models/weights/keras-mobilenetv2.ts';
import { extractDescriptors } from '../../src/eval/extract.ts';
import { BF16_MAX_DESCRIPTOR_ERROR, checkBf16Descriptors, choosePrecision, spreadSample } from '../../src/eval/precision-check.ts';

const NIGHT = 'assets/real/gardens_point/night_right';
const photos = readdirSync(NIGHT).filter((f) => f.endsWith('.jpg')).sort().map((f) => join(NIGHT, f));
const size = { height: 120, width: 160 };

test('spreadSample: evenly spread picks, all when there are fewer', () => {
  assert.deepEqual(spreadSample([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 4), [0, 2, 5, 7]);
  assert.deepEqual(spreadSample([1, 2], 8), [1, 2]);
  assert.deepEqual(spreadSample([], 3), []);
});

test('bf16 check on the real MobileNetV2-0.35 and night photos: the error is that of the two precisions\' descriptors, within the limit with the precision policy; auto → bf16; failing a limit, auto → fp32, bf16 → bf16 with a warning', async () => {
  const net = buildNetwork({ backbone: 'mobilenetv2', aggregation: 'gem' });
  await net.loadPretrained(MOBILENETV2_035_WEIGHTS_DIR);
  try {
    const check = await checkBf16Descriptors(net, photos, size);
    assert.equal(check.images, 8);
    // Independently: the same 8 photos described in each precision, the mean relative difference.
    const sample = spreadSample(photos, 8);
    const describe = (precision: torch.Precision) => net.fastInference((forward) =>
      extractDescriptors(net.asDescriptorModel(forward), sample, { size, batchSize: 3, progress: false }), { precision });
    const [fp32, bf16] = [await describe('fp32'), await describe('bf16')];
    const a = fp32.toFloat32Array(), b = bf16.toFloat32Array();
    const dim = fp32.size(1);
    const errors = Array.from({ length: 8 }, (_, i) => {
      let d = 0, n = 0;
      for (let j = i * dim; j < (i + 1) * dim; j++) { d += (b[j] - a[j]) ** 2; n += a[j] ** 2; }
      return Math.sqrt(d / n);
    });
    torch.dispose(fp32, bf16);
    const mean = errors.reduce((s, e) => s + e, 0) / 8;
    assert.ok(Math.abs(check.meanError - mean) < 1e-6, `${check.meanError} vs ${mean}`);
    assert.ok(Math.abs(check.maxError - Math.max(...errors)) < 1e-6);
    // Measured 0.36% (all in bf16: 10%); the aim is 1%, the limit 2%.
    assert.ok(check.meanError < 0.01 && check.passed, `MobileNetV2's bf16 error ${check.meanError}`);
    assert.ok(BF16_MAX_DESCRIPTOR_ERROR === 0.02);

    const saved = process.env.VGL_BF16;
    process.env.VGL_BF16 = '1'; // as on a machine with bf16 units, whatever this one has
    try {
      // As where bf16 extracts twice as fast (the timing is the next test's).
      const timePass = async (_n: unknown, s: { height: number; width: number }, images: number, workload: torch.Workload) => ({ workload, images, size: s, fp32Ms: 20, bf16Ms: 10 });
      const auto = await choosePrecision('auto', net, photos, size, { device: 'cpu', timePass });
      assert.deepEqual([auto.precision, auto.searchPrecision, auto.check?.passed], ['bf16', 'bf16', true]);
      assert.match(auto.reason, /^auto: VGL_BF16=1 treats bf16 as available; an extraction of 8 images at 120x160 took 10 ms in bf16, 20 ms in fp32; its bf16 descriptors are \d+\.\d% off fp32 on 8 of its images \(limit 2\.0%\)$/);
      // A limit the error is over (0.1%): auto falls back to fp32, an explicit bf16 runs with a warning.
      const strict = await choosePrecision('auto', net, photos, size, { device: 'cpu', limit: 0.001, timePass });
      assert.deepEqual([strict.precision, strict.searchPrecision, strict.check?.passed], ['fp32', 'bf16', false]);
      assert.match(strict.reason, /^auto: VGL_BF16=1 treats bf16 as available; an extraction .* in fp32, but its bf16 descriptors are \d+\.\d% off fp32 on 8 of its images \(limit 0\.1%\): fp32 keeps its recall$/);
      const asked = await choosePrecision('bf16', net, photos, size, { device: 'cpu', limit: 0.001 });
      assert.equal(asked.precision, 'bf16');
      assert.match(asked.reason, /warning: its bf16 descriptors are .* recall may differ from fp32 \(auto would run fp32\)/);
      // No bf16 units: fp32, no check run.
      process.env.VGL_BF16 = '0';
      const none = await choosePrecision('auto', net, photos, size, { device: 'cpu' });
      assert.deepEqual([none.precision, none.searchPrecision, none.check], ['fp32', 'fp32', undefined]);
    } finally {
      if (saved === undefined) delete process.env.VGL_BF16;
      else process.env.VGL_BF16 = saved;
    }
    await assert.rejects(checkBf16Descriptors(net, [], size), /no images/);
  } finally {
    net.dispose();
  }
});

test("auto on a CPU: bf16 only when a timed pass (training, or extraction) is 1.1x faster than fp32; the training pass leaves BatchNorm's statistics and no gradients behind", async () => {
  const { timePass } = await import('../../src/eval/precision-check.ts');
  torch.manualSeed(0);
  const net = buildNetwork({ backbone: 'resnet18conv4', resnetWidths: [8, 8, 16, 16], aggregation: 'gem' });
  const size = { height: 32, width: 32 };
  try {
    const before = [...net.namedBuffers()].map(([n, t]) => [n, Array.from(t.toFloat32Array())]);
    const timing = await timePass(net, size, 4, 'train', 'cpu');
    assert.ok(timing.fp32Ms > 0 && timing.bf16Ms > 0 && timing.images === 4);
    assert.deepEqual([...net.namedBuffers()].map(([n, t]) => [n, Array.from(t.toFloat32Array())]), before, 'BatchNorm statistics unchanged');
    assert.ok(net.trainableParameters().every((p) => p.grad === null), 'no gradient left');
    assert.equal(await timePass(net, size, 4, 'train', 'cpu'), timing, 'remembered for the same network, size, batch and workload');
    net.freezeBackbone('all');
    assert.notEqual(await timePass(net, size, 4, 'train', 'cpu'), timing, 'timed again once fewer of its layers train');
    const extraction = await timePass(net, size, 4, 'inference', 'cpu');
    assert.ok(extraction.workload === 'inference' && extraction.fp32Ms > 0 && extraction.bf16Ms > 0);

    const saved = process.env.VGL_BF16;
    process.env.VGL_BF16 = '1';
    try {
      const times = (fp32Ms: number, bf16Ms: number) => async (_n: unknown, s: typeof size, images: number, workload: torch.Workload) => ({ workload, images, size: s, fp32Ms, bf16Ms });
      const fast = await choosePrecision('auto', net, photos, size, { device: 'cpu', workload: 'train', timePass: times(300, 100) });
      assert.equal(fast.precision, 'bf16');
      assert.match(fast.reason, /a training pass of 12 images at 32x32 took 100 ms in bf16, 300 ms in fp32/);
      const slow = await choosePrecision('auto', net, photos, size, { device: 'cpu', workload: 'train', trainImages: 48, timePass: times(105, 100) });
      assert.equal(slow.precision, 'fp32');
      assert.match(slow.reason, /a training pass of 24 images at 32x32 took 100 ms in bf16, 105 ms in fp32: bf16 is not 1\.1x faster here/);
      assert.equal(slow.check, undefined, 'no descriptor check once the timing said fp32');
      const slowExtraction = await choosePrecision('auto', net, photos, size, { device: 'cpu', timePass: times(10, 12) });
      assert.equal(slowExtraction.precision, 'fp32');
      assert.match(slowExtraction.reason, /an extraction of 8 images at 32x32 took 12 ms in bf16, 10 ms in fp32: bf16 is not 1\.1x faster here/);
      const asked = await choosePrecision('bf16', net, photos, size, { device: 'cpu', workload: 'train', timePass: () => { throw new Error('an explicit bf16 is not timed'); } });
      assert.equal(asked.precision, 'bf16');
    } finally {
      if (saved === undefined) delete process.env.VGL_BF16;
      else process.env.VGL_BF16 = saved;
    }
  } finally {
    net.dispose();
  }
});
