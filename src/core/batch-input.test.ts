import { describe, expect, it } from 'vitest';
import { parseBatchRequest } from './batch-input.ts';
import { HeraldError } from './errors.ts';

const item = { to: ['alice'], category: 'comment.reply' };

describe('parseBatchRequest', () => {
  it('parses each item alone, keeping its key; null or absent is no key', () => {
    const items = parseBatchRequest({
      notifications: [{ ...item, idempotencyKey: 'k-1' }, { ...item, idempotencyKey: null }, item],
    });
    expect(items.map((it) => (it.ok ? it.idempotencyKey : 'refused'))).toEqual(['k-1', null, null]);
  });

  it('names the item fields, the key and the body fields together', () => {
    const [it] = parseBatchRequest({ notifications: [{ to: [], category: 'x', idempotencyKey: '' }] });
    if (it?.ok !== false) throw new Error('expected a refusal');
    const fields = (it.error.details as { field: string }[]).map((d) => d.field);
    expect([...new Set(fields)]).toEqual(['idempotencyKey', 'to']);
  });

  it.each([
    [{}, 'notifications'],
    [{ notifications: [] }, 'notifications'],
    [{ notifications: Array.from({ length: 1_001 }, () => item) }, 'notifications'],
    [{ notifications: [item], more: 1 }, '(body)'],
    [[item], '(body)'],
  ])('refuses the whole request: %#', (body, field) => {
    let error: unknown;
    try {
      parseBatchRequest(body);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(HeraldError);
    expect(((error as HeraldError).details as { field: string }[])[0]?.field).toBe(field);
  });
});
