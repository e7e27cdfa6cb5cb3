// Search time at growing database sizes: each size searched (time > 0), and a size whose database
// would pass the memory budget reported as null rather than allocated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.ts';
import { searchTimes } from '../../src/eval/search-time.ts';

test('search time per query at each database size; over the memory budget: null, nothing allocated', () => {
  torch.manualSeed(0);
  torch.tidy(() => {
    const database = torch.F.normalize(torch.randn([30, 16]));
    const queries = torch.F.normalize(torch.randn([12, 16]));
    const before = torch.liveTensors();
    // 2,000 x 16 float32 = 128,000 bytes: within a 200,000-byte budget; 20,000 rows are not.
    const times = searchTimes(database, queries, [100, 2000, 20_000], { k: 5, memoryBytes: 200_000, repeats: 1 });
    assert.deepEqual(times.map((t) => t.databaseSize), [100, 2000, 20_000]);
    assert.ok(times[0]!.msPerQuery! > 0 && times[1]!.msPerQuery! > 0, JSON.stringify(times));
    assert.equal(times[2]!.msPerQuery, null);
    assert.equal(torch.liveTensors(), before, 'the synthetic databases are freed');
  });
});
