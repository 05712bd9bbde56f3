import { describe, expect, it } from 'vitest';
import { DIGEST_ITEMS, digestBody, digestJob, digestTitle } from './digest-text.ts';
import type { DigestWork } from './ports.ts';
import type { DigestItem, Priority } from './types.ts';

const item = (title: string | null, body: string | null, priority: Priority = 'normal'): DigestItem => ({
  id: `n-${title ?? body}`,
  title,
  body,
  data: { k: title },
  createdAt: '2026-12-07T09:00:00.000Z',
  category: 'c',
  priority,
});

const work = (items: DigestItem[], count = items.length): DigestWork => ({
  id: '0190d0c0-0000-7000-8000-000000000001',
  leaseToken: 'token',
  attempt: 2,
  userId: 'ann',
  category: 'c',
  channel: 'email',
  windowStart: new Date('2026-12-07T08:00:00Z'),
  windowEnd: new Date('2026-12-07T09:00:00Z'),
  user: null,
  count,
  items,
});

describe('digest text', () => {
  it('counts in the title, one line per item in the body, and says how many are not shown', () => {
    expect(digestTitle(1)).toBe('1 new notification');
    expect(digestTitle(3)).toBe('3 new notifications');
    expect(digestBody({ count: 3, items: [item('b', 'x'), item(null, 'only body'), item(null, null)] })).toBe(
      'b\nonly body',
    );
    expect(digestBody({ count: 97, items: [item('a', null)] })).toBe('a\n… and 96 more');
    expect(DIGEST_ITEMS).toBe(50);
  });

  it("is sent under the digest's id, with the most urgent item's priority and the digest as data", () => {
    const job = digestJob(work([item('a', null, 'bulk'), item('b', null, 'high')], 4));
    expect(job.deliveryId).toBe('0190d0c0-0000-7000-8000-000000000001');
    expect(job.notification).toMatchObject({
      id: job.deliveryId,
      title: '4 new notifications',
      body: 'a\nb\n… and 2 more',
      priority: 'high',
      createdAt: new Date('2026-12-07T09:00:00Z'),
    });
    expect(job.lane).toBe('high');
    expect(job.attempt).toBe(2);
    expect(job.digest).toEqual({
      id: job.deliveryId,
      count: 4,
      items: [item('a', null, 'bulk'), item('b', null, 'high')],
      windowStart: '2026-12-07T08:00:00.000Z',
      windowEnd: '2026-12-07T09:00:00.000Z',
    });
    expect(job.notification.data).toEqual({ digest: job.digest });
    expect(digestJob(work([])).notification.priority).toBe('normal');
  });
});
