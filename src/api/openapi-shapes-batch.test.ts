import { describe, expect, it } from 'vitest';
import { parseBatchRequest } from '../core/batch-input.ts';
import { BATCH_EXAMPLES, BATCH_SHAPES } from './openapi-shapes-batch.ts';

describe('the batch examples', () => {
  it('the answer example has exactly the documented shape, strictly', () => {
    const shape = BATCH_SHAPES.batchResults;
    const r = shape.schema.safeParse(shape.example);
    expect(r.success ? [] : r.error.issues).toEqual([]);
    const extra = { results: [{ ...shape.example.results[0], extra: 1 }] };
    expect(shape.schema.safeParse(extra).success).toBe(false);
  });

  it('the request example is a batch Herald takes, and its items fare as the answer example says', () => {
    const items = parseBatchRequest(BATCH_EXAMPLES.batchRequest);
    const expected = BATCH_SHAPES.batchResults.example.results.map((x) => x.status === 202);
    expect(items.map((it) => it.ok)).toEqual(expected);
    const third = items[2];
    if (third?.ok !== false) throw new Error('the third item should be refused');
    expect(third.error.toJSON().error).toEqual(BATCH_SHAPES.batchResults.example.results[2]?.error);
  });
});
