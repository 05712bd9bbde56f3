import { describe, expect, it } from 'vitest';
import { StepConditionGate } from './step-gate.ts';
import type { DeliveryJob, DeliveryState } from './types.ts';

function job(unless?: 'read' | 'delivered'): DeliveryJob {
  return {
    deliveryId: 'd-email',
    leaseToken: 't',
    attempt: 1,
    channel: 'email',
    lane: 'normal',
    userId: 'alice',
    notification: {
      id: 'n-1',
      category: 'comment.reply',
      priority: 'normal',
      title: null,
      body: null,
      data: null,
      groupKey: null,
      createdAt: new Date(),
    },
    user: null,
    ...(unless ? { unless } : {}),
  };
}

function gateOver(state: DeliveryState | null) {
  const asked: unknown[] = [];
  const gate = new StepConditionGate({
    siblingInAppState: async (d) => {
      asked.push(d);
      return state;
    },
  });
  return { gate, asked };
}

describe('StepConditionGate', () => {
  it('does not read anything for a job without a condition', async () => {
    const { gate, asked } = gateOver('read');
    expect(await gate.check(job())).toBeNull();
    expect(asked).toEqual([]);
  });

  it('asks about the in-app delivery beside this one', async () => {
    const { gate, asked } = gateOver('sent');
    expect(await gate.check(job('read'))).toBeNull();
    expect(asked).toEqual([{ id: 'd-email', notificationId: 'n-1', userId: 'alice' }]);
  });

  it.each([
    ['read', 'read', 'read'],
    ['read', 'delivered', null],
    ['read', 'sent', null],
    ['read', 'pending', null],
    ['read', null, null],
    ['delivered', 'delivered', 'delivered'],
    ['delivered', 'read', 'read'],
    ['delivered', 'sent', null],
    ['delivered', 'skipped', null],
    ['delivered', null, null],
  ] as const)('unless %s, in-app %s → skipped with reason %s', async (unless, state, reason) => {
    const verdict = await gateOver(state).gate.check(job(unless));
    if (reason === null) expect(verdict).toBeNull();
    else expect(verdict).toMatchObject({ ok: false, reason, skipped: expect.stringContaining(reason) });
  });
});
