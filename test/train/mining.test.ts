// Cache plans and mining checked against brute force in plain JavaScript (float64 distances).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.ts';
import { Rng, deriveSeed } from '../../src/data/random.ts';
import { computePositives, trainingQueries, type TrainingQueries } from '../../src/data/positives.ts';
import { planCacheLoop, sampleLoopQueries, resolveMiningOptions, STREAM, type CachePlan, type MiningOptions } from '../../src/train/cache.ts';
import { mineTriplets, forEachDistanceRow, summarizeTriplets, memoryToJSON, memoryFromJSON, type CachedDescriptors, type NegativeMemory, type Triplet } from '../../src/train/mining.ts';

const D = 16;

interface Scene {
  N: number;
  training: TrainingQueries;
  /** N x D database descriptors, row-major. */
  db: Float32Array;
  /** training.count x D query descriptors. */
  qs: Float32Array;
}

function unitRows(rng: Rng, rows: number): Float32Array {
  const out = new Float32Array(rows * D);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < D; c++) s += (out[r * D + c] = rng.normal()) ** 2;
    for (let c = 0; c < D; c++) out[r * D + c] /= Math.sqrt(s);
  }
  return out;
}

/** Random database and queries in a 300 m square; positives from the data layer (25 m soft, 10 m hard). */
function makeScene(seed: number, N = 400, M = 150, size = 300): Scene {
  const rng = new Rng(seed);
  const pos = (n: number): Float64Array => Float64Array.from({ length: 2 * n }, () => rng.uniform(0, size));
  const dataset = { databasePositions: pos(N), queriesPositions: pos(M), queriesPaths: Array.from({ length: M }, (_, i) => `q${i}.jpg`) };
  const training = trainingQueries(dataset, computePositives(dataset));
  return { N, training, db: unitRows(rng, N), qs: unitRows(rng, training.count) };
}

function rows(src: Float32Array, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(idx.length * D);
  for (let k = 0; k < idx.length; k++) out.set(src.subarray(idx[k] * D, (idx[k] + 1) * D), k * D);
  return out;
}

/** The cache a training loop would extract for `plan`. */
function cacheFor(plan: CachePlan, s: Scene): CachedDescriptors {
  return {
    database: torch.tensor(rows(s.db, plan.database), [plan.database.length, D]),
    queries: torch.tensor(rows(s.qs, plan.queries), [plan.queries.length, D]),
  };
}

function dist2(s: Scene, q: number, d: number): number {
  let acc = 0;
  for (let c = 0; c < D; c++) acc += (s.qs[q * D + c] - s.db[d * D + c]) ** 2;
  return acc;
}

/** Brute force: the k nearest of `candidates` to query q (ties: lower index). */
function bruteNearest(s: Scene, q: number, candidates: Iterable<number>, k: number): number[] {
  return [...new Set(candidates)].map((d) => ({ d, x: dist2(s, q, d) })).sort((a, b) => a.x - b.x || a.d - b.d).slice(0, k).map((e) => e.d);
}

function mine(s: Scene, options: Partial<MiningOptions>, seed: number, queries: ArrayLike<number>, memory?: NegativeMemory): { plan: CachePlan; triplets: Triplet[] } {
  const plan = planCacheLoop(s.training, s.N, queries, options, seed);
  const triplets = torch.tidy(() => mineTriplets(plan, cacheFor(plan, s), s.training, memory));
  return { plan, triplets };
}

const scene = makeScene(11);
const loopQueries = sampleLoopQueries(scene.training.count, 60, 5);

test('the scene has what the tests need (queries dropped for no hard positive, several positives each)', () => {
  assert.ok(scene.training.dropped > 0 && scene.training.count > 100, `${scene.training.count} kept, ${scene.training.dropped} dropped`);
  assert.ok(scene.training.softPositives.some((p) => p.length >= 3));
  assert.ok(scene.training.hardPositives.some((p) => p.length >= 2));
});

test('sampleLoopQueries: distinct training-query indices, seeded, all of them when there are fewer', () => {
  assert.equal(loopQueries.length, 60);
  assert.equal(new Set(loopQueries).size, 60);
  assert.ok(loopQueries.every((q) => q >= 0 && q < scene.training.count));
  assert.deepEqual(sampleLoopQueries(scene.training.count, 60, 5), loopQueries);
  assert.notDeepEqual(sampleLoopQueries(scene.training.count, 60, 6), loopQueries);
  assert.deepEqual([...sampleLoopQueries(7, 1000, 1)].sort(), [0, 1, 2, 3, 4, 5, 6]);
  assert.throws(() => sampleLoopQueries(0, 10, 1), /need at least one training query/);
});

test('sampleLoopQueries balanced over groups: equal shares, a small group gives all it has', () => {
  // 3 groups of 5, 100 and 1,000 queries; a loop of 90: group 0 gives its 5, the other two 42 and 43.
  const groups = Int32Array.from([...Array(5).fill(0), ...Array(100).fill(1), ...Array(1000).fill(2)]);
  const picked = sampleLoopQueries(groups.length, 90, 3, groups);
  assert.equal(picked.length, 90);
  assert.equal(new Set(picked).size, 90);
  const per = [0, 0, 0];
  for (const q of picked) per[groups[q]]++;
  assert.deepEqual(per, [5, 42, 43]);
  assert.deepEqual(sampleLoopQueries(groups.length, 90, 3, groups), picked);
  // Without groups the same loop is proportional: group 0 would get 90 * 5/1105 < 1 on average.
  assert.throws(() => sampleLoopQueries(10, 5, 1, new Int32Array(3)), /3 group labels for 10 queries/);
});

test('cache plan: which database images each method extracts', () => {
  const hardUnion = new Set(Array.from(loopQueries, (q) => [...scene.training.hardPositives[q]]).flat());
  const full = planCacheLoop(scene.training, scene.N, loopQueries, { method: 'full' }, 1);
  assert.deepEqual(Array.from(full.database), Array.from({ length: scene.N }, (_, i) => i));
  assert.equal(full.sharedNegatives, null);

  const random = planCacheLoop(scene.training, scene.N, loopQueries, { method: 'random' }, 1);
  assert.deepEqual(Array.from(random.database), [...hardUnion].sort((a, b) => a - b));

  const partial = planCacheLoop(scene.training, scene.N, loopQueries, { method: 'partial', negSamplesNum: 100 }, 1);
  const shared = Array.from(partial.sharedNegatives!);
  assert.equal(shared.length, 100);
  assert.equal(new Set(shared).size, 100);
  assert.deepEqual(shared, [...shared].sort((a, b) => a - b));
  assert.deepEqual(Array.from(partial.database), [...new Set([...shared, ...hardUnion])].sort((a, b) => a - b));
  for (const p of [full, random, partial]) assert.deepEqual(p.queries, loopQueries);

  // The shared set is drawn per loop: another seed, another set; the same seed, the same set.
  assert.deepEqual(planCacheLoop(scene.training, scene.N, loopQueries, { negSamplesNum: 100 }, 1).sharedNegatives, partial.sharedNegatives);
  assert.notDeepEqual(planCacheLoop(scene.training, scene.N, loopQueries, { negSamplesNum: 100 }, 2).sharedNegatives, partial.sharedNegatives);
  // Fewer database images than negSamplesNum: the shared set is the whole database.
  assert.equal(planCacheLoop(scene.training, scene.N, loopQueries, { negSamplesNum: 5000 }, 1).sharedNegatives!.length, scene.N);
});

test('cache plan: bad input is refused with a message naming it', () => {
  const t = scene.training;
  assert.throws(() => planCacheLoop(t, scene.N, [0, 3, 0], {}, 1), /query 0 appears twice/);
  assert.throws(() => planCacheLoop(t, scene.N, [t.count], {}, 1), new RegExp(`query ${t.count} \\(position 0 of the loop\\) is not a training-query index`));
  assert.throws(() => planCacheLoop(t, scene.N, [], {}, 1), /no queries/);
  assert.throws(() => planCacheLoop(t, 3, [0], {}, 1), /hard positive \d+ of query 0 is outside the database \[0, 3\)/);
  assert.throws(() => resolveMiningOptions({ method: 'hardest' as 'full' }), /method must be one of full, partial, random, got 'hardest'/);
  assert.throws(() => resolveMiningOptions({ negsNumPerQuery: 0 }), /negsNumPerQuery must be an integer >= 1, got 0/);
  assert.throws(() => resolveMiningOptions({ negSamplesNum: 5, negsNumPerQuery: 10 }), /negSamplesNum \(5\) must be >= negsNumPerQuery \(10\)/);
  assert.deepEqual(resolveMiningOptions(), { method: 'partial', negSamplesNum: 1000, negsNumPerQuery: 10 });
});

test('distance rows equal brute force, whatever the chunk size', () => {
  torch.tidy(() => {
    const dbIdx = [5, 0, 399, 17, 200];
    const qIdx = [3, 1, 4, 1, 5, 9, 2];
    const got: number[][] = [];
    for (const chunk of [undefined, 1, 3]) {
      got.length = 0;
      forEachDistanceRow(torch.tensor(rows(scene.qs, qIdx), [qIdx.length, D]), torch.tensor(rows(scene.db, dbIdx), [dbIdx.length, D]),
        (j, row) => got.push(Array.from(row)), chunk);
      assert.equal(got.length, qIdx.length);
      got.forEach((row, j) => row.forEach((x, i) => assert.ok(Math.abs(x - dist2(scene, qIdx[j], dbIdx[i])) < 1e-5, `chunk ${chunk}: [${j}, ${i}]`)));
    }
  });
});

for (const method of ['full', 'partial', 'random'] as const) {
  test(`${method}: best positive is the nearest hard positive; negatives are never soft positives`, () => {
    const { triplets } = mine(scene, { method, negSamplesNum: 100 }, 3, loopQueries, new Map());
    assert.equal(triplets.length, loopQueries.length);
    triplets.forEach((t, j) => {
      assert.equal(t.query, loopQueries[j]);
      const hard = Array.from(scene.training.hardPositives[t.query]);
      assert.equal(t.positive, bruteNearest(scene, t.query, hard, 1)[0]);
      assert.ok(Math.abs(t.positiveDistance - dist2(scene, t.query, t.positive)) < 1e-5);
      assert.equal(t.negatives.length, 10);
      assert.equal(new Set(t.negatives).size, 10, 'distinct negatives');
      const soft = new Set(scene.training.softPositives[t.query]);
      for (const n of t.negatives) {
        assert.ok(!soft.has(n), `negative ${n} of query ${t.query} is a soft positive`);
        assert.ok(n >= 0 && n < scene.N);
      }
    });
  });
}

test('partial: negatives are exactly the 10 nearest of the one shared set minus soft positives', () => {
  const { plan, triplets } = mine(scene, { method: 'partial', negSamplesNum: 100 }, 3, loopQueries);
  const shared = Array.from(plan.sharedNegatives!);
  let hadSoftInShared = 0;
  for (const t of triplets) {
    const soft = new Set(scene.training.softPositives[t.query]);
    if (shared.some((d) => soft.has(d))) hadSoftInShared++;
    assert.deepEqual(Array.from(t.negatives), bruteNearest(scene, t.query, shared.filter((d) => !soft.has(d)), 10), `query ${t.query}`);
    t.negativeDistances!.forEach((x, k) => assert.ok(Math.abs(x - dist2(scene, t.query, t.negatives[k])) < 1e-5));
  }
  assert.ok(hadSoftInShared > 0, 'some shared sets contained soft positives, so their removal was exercised');
});

test('full: negatives are the 10 nearest of the query\'s own sample (minus soft positives) plus its memory', () => {
  const memory: NegativeMemory = new Map();
  const seed = 21;
  const { triplets } = mine(scene, { method: 'full', negSamplesNum: 100 }, seed, loopQueries, memory);
  const samples: number[][] = [];
  for (const t of triplets) {
    // The documented stream: deriveSeed(loop seed, STREAM.queryNegatives, training-query index).
    const sample = new Rng(deriveSeed(seed, STREAM.queryNegatives, t.query)).sample(scene.N, 100);
    samples.push(sample);
    const soft = new Set(scene.training.softPositives[t.query]);
    assert.deepEqual(Array.from(t.negatives), bruteNearest(scene, t.query, sample.filter((d) => !soft.has(d)), 10), `query ${t.query}`);
    assert.deepEqual(memory.get(t.query), t.negatives, 'remembered');
  }
  assert.notDeepEqual(samples[0], samples[1], 'each query has its own sample');

  // Second loop, another seed: the candidates are the new sample plus the remembered negatives.
  const previous = new Map(memory);
  const again = mine(scene, { method: 'full', negSamplesNum: 100 }, seed + 1, loopQueries, memory).triplets;
  let keptSome = 0;
  for (const t of again) {
    const sample = new Rng(deriveSeed(seed + 1, STREAM.queryNegatives, t.query)).sample(scene.N, 100);
    const soft = new Set(scene.training.softPositives[t.query]);
    const old = Array.from(previous.get(t.query)!);
    assert.deepEqual(Array.from(t.negatives), bruteNearest(scene, t.query, [...sample.filter((d) => !soft.has(d)), ...old], 10));
    if (old.some((d) => t.negatives.includes(d) && !sample.includes(d))) keptSome++;
  }
  assert.ok(keptSome > 0, 'some negatives came only from the memory');
});

test('full: remembered negatives that are still the hardest are kept (and a fresh memory would not find them)', () => {
  // Memory = the 10 nearest non-soft images of the whole database: no sample can beat them.
  const memory: NegativeMemory = new Map();
  const global = new Map<number, number[]>();
  for (const q of loopQueries) {
    const soft = new Set(scene.training.softPositives[q]);
    const best = bruteNearest(scene, q, Array.from({ length: scene.N }, (_, d) => d).filter((d) => !soft.has(d)), 10);
    global.set(q, best);
    memory.set(q, Int32Array.from(best).reverse()); // order in memory does not matter
  }
  const withMemory = mine(scene, { method: 'full', negSamplesNum: 50 }, 8, loopQueries, memory).triplets;
  for (const t of withMemory) assert.deepEqual(Array.from(t.negatives), global.get(t.query));
  const fresh = mine(scene, { method: 'full', negSamplesNum: 50 }, 8, loopQueries, new Map()).triplets;
  assert.ok(fresh.some((t) => t.negatives.join() !== global.get(t.query)!.join()), 'a sample of 50 alone misses some global hardest');
});

test('random: 10 uniform non-positives, no distances, not biased towards low indices', () => {
  const { triplets } = mine(scene, { method: 'random' }, 4, loopQueries);
  let sum = 0, count = 0;
  const seen = new Set<number>();
  for (const t of triplets) {
    assert.equal(t.negativeDistances, null);
    for (const n of t.negatives) {
      sum += n;
      count++;
      seen.add(n);
    }
  }
  // 600 draws from 400 images: mean ≈ 199.5 (sd of the mean ≈ 4.7); ≈ 400·(1 − e^−1.5) ≈ 310 distinct.
  assert.ok(Math.abs(sum / count - (scene.N - 1) / 2) < 25, `mean index ${sum / count}`);
  assert.ok(seen.size > 250, `${seen.size} distinct negatives`);
});

test('same seed → same triplets; another seed → others; query order does not matter', () => {
  for (const method of ['full', 'partial', 'random'] as const) {
    const a = mine(scene, { method, negSamplesNum: 100 }, 9, loopQueries, new Map()).triplets;
    const b = mine(scene, { method, negSamplesNum: 100 }, 9, loopQueries, new Map()).triplets;
    assert.deepEqual(a, b, method);
    const c = mine(scene, { method, negSamplesNum: 100 }, 10, loopQueries, new Map()).triplets;
    assert.notDeepEqual(a.map((t) => t.negatives), c.map((t) => t.negatives), method);
    const reversed = mine(scene, { method, negSamplesNum: 100 }, 9, Int32Array.from(loopQueries).reverse(), new Map()).triplets;
    // Indices must match; distances may differ in the last float32 bit (BLAS blocks rows differently).
    const picks = (ts: Triplet[]): unknown[] => ts.map((t) => [t.query, t.positive, Array.from(t.negatives)]);
    assert.deepEqual(picks(reversed.reverse()), picks(a), `${method}: triplets depend on the query, not its position`);
  }
});

/** A tiny hand-made split: database 0..N-1 on a line; positives given directly. */
function tinyScene(N: number, soft: number[][], hard: number[][]): Scene {
  const rng = new Rng(1);
  const training = { count: soft.length, softPositives: soft.map((s) => Int32Array.from(s)), hardPositives: hard.map((h) => Int32Array.from(h)), originalIndices: Int32Array.from(soft, (_, i) => 100 + i) } as TrainingQueries;
  return { N, training, db: unitRows(rng, N), qs: unitRows(rng, soft.length) };
}

test('too few non-positives: an error naming the query and why', () => {
  const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
  // Query 1 has 25 of 30 database images as soft positives: only 5 negatives exist.
  const s = tinyScene(30, [[0, 1], range(0, 25)], [[0], [1]]);
  for (const method of ['full', 'partial', 'random'] as const) {
    assert.throws(() => mine(s, { method, negSamplesNum: 30 }, 1, [0, 1], new Map()),
      /training query 1 \(query 101 of the split\) has 25 positives among 30 database images, so only 5 can be negatives; 10 are needed/);
  }
  // Partial: enough non-positives exist, but not among the shared set.
  const p = tinyScene(60, [range(0, 45)], [[3]]);
  assert.throws(() => {
    // 45 of 60 are soft positives, so a shared set of 12 holds about 9 of them.
    mine(p, { method: 'partial', negSamplesNum: 12 }, 1, [0]);
  }, /training query 0 \(query 100 of the split\): only \d of the loop's 12 shared database images are not soft positives; 10 negatives are needed/);
});

test('full: a sample with too few non-positives is topped up with random non-positives', () => {
  const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
  const s = tinyScene(40, [range(0, 25)], [[0]]);
  const { triplets } = mine(s, { method: 'full', negSamplesNum: 12 }, 2, [0], new Map());
  const sample = new Rng(deriveSeed(2, STREAM.queryNegatives, 0)).sample(40, 12).filter((d) => d >= 25);
  assert.ok(sample.length < 10, 'the sample alone is short');
  const negatives = Array.from(triplets[0].negatives);
  assert.equal(new Set(negatives).size, 10);
  assert.ok(negatives.every((d) => d >= 25 && d < 40));
  for (const d of sample) assert.ok(negatives.includes(d), `sampled non-positive ${d} is kept`);
});

test('errors: cache that does not match the plan; full mining without memory', () => {
  torch.tidy(() => {
    const plan = planCacheLoop(scene.training, scene.N, loopQueries, { method: 'partial', negSamplesNum: 100 }, 1);
    const good = cacheFor(plan, scene);
    assert.throws(() => mineTriplets(plan, { ...good, database: good.database.narrow(0, 1, 10) }, scene.training),
      new RegExp(`cached database descriptors must be \\[${plan.database.length}, D\\]`));
    assert.throws(() => mineTriplets(plan, { ...good, queries: good.queries.narrow(1, 0, 8) }, scene.training), /database descriptors have 16 dimensions but query descriptors 8/);
    // A random-mining plan caches no negatives: using it for partial mining misses images.
    const randomPlan = planCacheLoop(scene.training, scene.N, loopQueries, { method: 'random' }, 1);
    const wrong = { ...randomPlan, options: plan.options, sharedNegatives: plan.sharedNegatives };
    assert.throws(() => mineTriplets(wrong, cacheFor(randomPlan, scene), scene.training), /database image \d+ needed for training query \d+ .*is not in the cache/);
    const fullPlan = planCacheLoop(scene.training, scene.N, loopQueries, { method: 'full' }, 1);
    assert.throws(() => mineTriplets(fullPlan, cacheFor(fullPlan, scene), scene.training), /full mining needs a NegativeMemory/);
  });
});

test('mining releases its tensors', () => {
  const before = torch.liveTensors();
  const plan = planCacheLoop(scene.training, scene.N, loopQueries, { method: 'full' }, 1);
  const cache = cacheFor(plan, scene);
  mineTriplets(plan, cache, scene.training, new Map());
  torch.dispose(cache);
  assert.equal(torch.liveTensors(), before);
});

test('summary of mined tuples equals the hand count', () => {
  const t = (p: number, negs: number[] | null): Triplet => ({ query: 0, positive: 0, negatives: new Int32Array(negs?.length ?? 0), positiveDistance: p, negativeDistances: negs && Float32Array.from(negs) });
  // Pairs nearer than their positive: 0.5 < 1 (first), none in the second → 1 of 4.
  assert.deepEqual(summarizeTriplets([t(1, [0.5, 2]), t(0.5, [1, 1.5])]), { triplets: 2, meanPositiveDistance: 0.75, meanHardestNegativeDistance: 0.75, violatingShare: 0.25 });
  assert.deepEqual(summarizeTriplets([t(1, null), t(2, null)]), { triplets: 2, meanPositiveDistance: 1.5, meanHardestNegativeDistance: null, violatingShare: null });
});

test('negative memory survives a JSON round trip (checkpoint resume) and bad JSON is named', () => {
  const memory: NegativeMemory = new Map();
  mine(scene, { method: 'full', negSamplesNum: 100 }, 30, loopQueries, memory);
  const restored = memoryFromJSON(JSON.parse(JSON.stringify(memoryToJSON(memory))));
  assert.deepEqual(restored, memory);
  const a = mine(scene, { method: 'full', negSamplesNum: 100 }, 31, loopQueries, memory).triplets;
  const b = mine(scene, { method: 'full', negSamplesNum: 100 }, 31, loopQueries, restored).triplets;
  assert.deepEqual(a.map((t) => Array.from(t.negatives)), b.map((t) => Array.from(t.negatives)));
  assert.throws(() => memoryFromJSON({ '1.5': [1] }, 'last.pth'), /last.pth: key '1.5' is not a training-query index/);
  assert.throws(() => memoryFromJSON({ 3: [1, -2] }, 'last.pth'), /last.pth: negatives of query 3 must be a list of database indices/);
  assert.throws(() => memoryFromJSON([], 'last.pth'), /last.pth: expected an object/);
});

test('a hard radius beyond the soft one (train threshold 50 m, val 25 m): no positive is ever mined as a negative', () => {
  const rng = new Rng(23);
  const N = 300, M = 120;
  const pos = (n: number): Float64Array => Float64Array.from({ length: 2 * n }, () => rng.uniform(0, 250));
  const dataset = { databasePositions: pos(N), queriesPositions: pos(M), queriesPaths: Array.from({ length: M }, (_, i) => `q${i}.jpg`) };
  const training = trainingQueries(dataset, computePositives(dataset, { valPositiveDistThreshold: 25, trainPositivesDistThreshold: 50 }));
  const s: Scene = { N, training, db: unitRows(rng, N), qs: unitRows(rng, training.count) };
  // The scene must contain what the test is about: hard positives farther than the soft radius.
  const beyondSoft = training.hardPositives.reduce((n, h, q) => n + h.filter((d) => !training.softPositives[q].includes(d)).length, 0);
  assert.ok(beyondSoft > 100, `${beyondSoft} hard positives beyond 25 m`);
  for (const method of ['full', 'partial', 'random'] as const) {
    const queries = sampleLoopQueries(training.count, 80, 3);
    const { triplets } = mine(s, { method, negsNumPerQuery: 10, negSamplesNum: 200 }, 7, queries, new Map());
    for (const t of triplets) {
      // Brute force on positions: every negative lies beyond both radii.
      for (const n of t.negatives) {
        const q = training.originalIndices[t.query];
        const d = Math.hypot(dataset.queriesPositions[2 * q] - dataset.databasePositions[2 * n], dataset.queriesPositions[2 * q + 1] - dataset.databasePositions[2 * n + 1]);
        assert.ok(d > 50, `${method}: query ${q} got negative ${n} at ${d.toFixed(1)} m`);
      }
    }
  }
});

test('the miners registry: options composed from the entries, each check applied to the miners that declare it', async () => {
  const { MINER_ENTRIES, MINING_OPTIONS, minerNamed } = await import('../../src/train/miners.ts');
  assert.deepEqual(MINER_ENTRIES.map((m) => m.name), ['full', 'partial', 'random']);
  assert.deepEqual(Object.keys(MINING_OPTIONS), ['method', 'negsNumPerQuery', 'negSamplesNum']);
  // random samples no candidate set, so negSamplesNum < negsNumPerQuery is no contradiction there.
  assert.deepEqual(resolveMiningOptions({ method: 'random', negSamplesNum: 5, negsNumPerQuery: 10 }), { method: 'random', negSamplesNum: 5, negsNumPerQuery: 10 });
  assert.equal(minerNamed('full').remembers, true);
  // What each miner asks the cache for, beyond the queries' hard positives.
  const o = resolveMiningOptions({ negSamplesNum: 4, negsNumPerQuery: 2 });
  assert.equal(minerNamed('full').cache(10, o, 1).database, 'all');
  assert.deepEqual(minerNamed('random').cache(10, o, 1).database, []);
  const partial = minerNamed('partial').cache(10, o, 1);
  assert.equal(partial.sharedNegatives!.length, 4);
  assert.deepEqual(Array.from(partial.sharedNegatives!), [...partial.sharedNegatives!].sort((a, b) => a - b));
  assert.throws(() => minerNamed('hardest'), /method must be one of full, partial, random, got 'hardest'/);
});
