/**
 * A notification as ingest prepares it (NewNotification), for tests that hand notifications to the
 * store or the decider directly: a `normal` in-app notification titled "Hello", to nobody, due now,
 * with a fresh id and no idempotency key. `overrides` set the rest (recipients, channels, topic…).
 */
import { uuidv7 } from '../../src/core/ids.ts';
import type { NewNotification } from '../../src/core/types.ts';

export function newNotification(overrides: Partial<NewNotification> = {}): NewNotification {
  return {
    id: uuidv7(),
    to: [],
    category: 'test',
    priority: 'normal',
    channels: ['in_app'],
    steps: null,
    title: 'Hello',
    body: null,
    data: null,
    sendAt: null,
    groupKey: null,
    createdAt: new Date(),
    idempotencyKey: null,
    requestHash: null,
    ...overrides,
  };
}
