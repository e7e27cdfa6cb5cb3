// The one codec of aggregation names: `<head>` or `<block>+<head>`, and the spec's (head, attention
// kind) pair, each the inverse of the other over every registered name; CBAM keeps its old name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AGGREGATION_NAMES, BASE_HEADS, formatAggregationName, parseAggregationName } from '../../src/models/aggregation/index.ts';
import { ATTENTION_KINDS, aggregationNameOf, aggregationSpecOf } from '../../src/models/assemble.ts';

test('aggregation names: parse and format are inverse over every name; the spec pair round-trips; CBAM is attention+', () => {
  assert.deepEqual(parseAggregationName('gem'), { head: 'gem' });
  assert.deepEqual(parseAggregationName('soa+cls'), { block: 'soa', head: 'cls' });
  for (const name of AGGREGATION_NAMES) {
    assert.equal(formatAggregationName(parseAggregationName(name)), name);
    assert.equal(aggregationNameOf(aggregationSpecOf(name)), name);
  }
  assert.deepEqual(aggregationSpecOf('attention+netvlad'), { aggregation: 'netvlad', attention: 'cbam' });
  assert.equal(aggregationNameOf({ aggregation: 'gem', attention: 'nonlocal' }), 'nonlocal+gem');
  // Every (head, attention kind) pair names a registered head.
  for (const head of BASE_HEADS) for (const attention of ATTENTION_KINDS) assert.ok(AGGREGATION_NAMES.includes(aggregationNameOf({ aggregation: head, attention })));
});
