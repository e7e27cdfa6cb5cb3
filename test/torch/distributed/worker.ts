// One rank of the collective tests (test/torch/distributed.test.ts): joins the group named by its
// arguments, runs each collective on values that depend on its rank, and prints what it got as JSON.
// Scenario "die": rank 1 exits right after joining, so rank 0's all-reduce must fail, naming rank 0.
import * as torch from '../../../src/torch/index.ts';
import { ProcessGroup, type Rendezvous } from '../../../src/torch/distributed.ts';

const [rank, worldSize, where, scenario, timeoutMs] = process.argv.slice(2);
const rendezvous: Rendezvous = where.startsWith('tcp:') ? { host: '127.0.0.1', port: Number(where.slice(4)) } : { file: where };
const group = ProcessGroup.init({ rank: Number(rank), worldSize: Number(worldSize), rendezvous, timeoutMs: Number(timeoutMs) });
const r = group.rank;
if (scenario === 'die' && r === 1) process.exit(0);
try {
  const summed = torch.tensor([r + 1, 10 * (r + 1)]);
  const meaned = torch.tensor([[r, 2 * r], [3 * r, 4]]);
  group.allReduceSum([summed]);
  group.allReduceMean([meaned]);
  const broadcast = torch.tensor([r, r, r]);
  group.broadcast([broadcast], 1);
  const gathered = group.allGather(torch.tensor([r * 100, r * 100 + 1], [2], { dtype: 'int64' }));
  group.barrier();
  console.log(JSON.stringify({
    rank: r, summed: Array.from(summed.toFloat32Array()), meaned: Array.from(meaned.toFloat32Array()),
    broadcast: Array.from(broadcast.toFloat32Array()), gathered: gathered.map((t) => Array.from(t.data() as BigInt64Array, Number)),
  }));
  group.destroy();
} catch (e) {
  console.log(JSON.stringify({ rank: r, error: (e as Error).message }));
  process.exitCode = 3;
}
