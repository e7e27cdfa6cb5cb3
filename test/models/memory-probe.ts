// Child process of memory.test.ts: one real training step (forward + backward) of a model, with the
// guard's estimate and the measured growth of peak resident memory (VmHWM), as JSON on stdout.
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.ts';
import { buildModel } from '../../src/models/assemble.ts';
import { TrainConfigSchema } from '../../src/train/config.ts';
import { estimateRunMemory } from '../../src/train/memory.ts';

const [backbone, aggregation, height, width, batchSize] = process.argv.slice(2);
const status = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
const config = TrainConfigSchema.parse({
  datasetsFolder: '/nonexistent', datasetName: 'none', outputFolder: '/nonexistent', backbone, aggregation, netvladClusters: 64,
  resize: [Number(height), Number(width)], batchSize: Number(batchSize), negsNumPerQuery: 10, inferBatchSize: 1,
});
torch.manualSeed(0);
const net = buildModel(config.model);
net.train();
const estimate = estimateRunMemory(net, config, 1e15).bytes;
const images = config.optim.batchSize * (2 + config.mining.negsNumPerQuery);
const before = status('VmRSS');
torch.tidy(() => net.forward(torch.randn([images, 3, config.data.resize[0], config.data.resize[1]])).pow(2).sum().backward());
console.log(JSON.stringify({ estimate, measured: status('VmHWM') - before }));
