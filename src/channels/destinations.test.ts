import { describe, expect, it } from 'vitest';
import type { DeliveryJob, UserProfile } from '../core/types.ts';
import { destinationOf, destinationResolver } from './destinations.ts';

function job(channel: DeliveryJob['channel'], user: DeliveryJob['user']): DeliveryJob {
  return {
    deliveryId: 'd1',
    leaseToken: 't1',
    attempt: 1,
    channel,
    lane: 'normal',
    userId: 'u1',
    notification: {
      id: 'n1',
      category: 'c',
      priority: 'normal',
      title: 't',
      body: 'b',
      data: null,
      groupKey: null,
      createdAt: new Date(),
    },
    user,
  };
}

const profile = (over: Partial<UserProfile> = {}): UserProfile => ({
  id: 'u1',
  email: null,
  phone: null,
  timezone: null,
  locale: null,
  webhookUrl: null,
  chatWebhookUrl: null,
  ...over,
});

describe('destinations', () => {
  it('is the origin of the URL: scheme, host and port, with the default port left out', () => {
    expect(destinationOf('https://Hooks.Example.com:443/a/b?x=1')).toBe('https://hooks.example.com');
    expect(destinationOf('http://127.0.0.1:8080/hook')).toBe('http://127.0.0.1:8080');
    expect(destinationOf('https://user:secret@hooks.example.com/x')).toBe('https://hooks.example.com');
    expect(destinationOf('not a url')).toBeNull();
    expect(destinationOf(null)).toBeNull();
  });

  it('limits webhook deliveries by the webhookUrl in the job, without reading the profile', async () => {
    const resolve = destinationResolver({
      getUser: () => Promise.reject(new Error('not expected')),
    });
    const j = job('webhook', { ...profile({ webhookUrl: 'https://a.example/hook' }) });
    expect(await resolve(j)).toEqual({ job: j, destination: 'https://a.example' });
  });

  it('reads the chatWebhookUrl and hands it on in the job, so the provider does not read it again', async () => {
    const { chatWebhookUrl: _, ...taken } = profile();
    const resolve = destinationResolver({
      getUser: async () => profile({ chatWebhookUrl: 'https://chat.example/T/B/x' }),
    });
    const out = await resolve(job('chat', taken));
    expect(out.destination).toBe('https://chat.example');
    expect(out.job.user?.chatWebhookUrl).toBe('https://chat.example/T/B/x');
  });

  it('does not limit channels whose providers the operator configured', async () => {
    const resolve = destinationResolver({ getUser: async () => profile() });
    for (const channel of ['email', 'sms', 'push'] as const) {
      expect((await resolve(job(channel, profile({ webhookUrl: 'https://a.example/' })))).destination).toBeNull();
    }
  });
});
