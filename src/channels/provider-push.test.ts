/**
 * The `push` channel's fan-out and aggregation, with scripted senders and an in-memory device
 * list: every device is tried through its provider's sender; the delivery's outcome follows the
 * rules in provider-push.ts; dead devices are removed and named; accepted ones are touched.
 */
import { describe, expect, it } from 'vitest';
import type { Device, DeviceProvider } from '../core/devices.ts';
import type { DeliveryJob } from '../core/types.ts';
import { PushProvider } from './provider-push.ts';
import type { PushMessage, PushOutcome, PushSender } from './push-sender.ts';

function dev(id: string, provider: DeviceProvider): Device {
  const base = { id, userId: 'u1', createdAt: new Date(), lastUsedAt: null };
  return provider === 'webpush'
    ? { ...base, provider, token: { endpoint: `https://push.example/${id}`, keys: { p256dh: 'p', auth: 'a' } } }
    : { ...base, provider, token: `tok-${id}` };
}

/** Devices in memory, recording removals and touches. */
function deviceStore(devices: Device[]) {
  const list = [...devices];
  const removed: string[] = [];
  const touched: string[][] = [];
  return {
    removed,
    touched,
    async listDevices(userId: string) {
      return list.filter((d) => d.userId === userId);
    },
    async removeDevice(id: string) {
      const i = list.findIndex((d) => d.id === id);
      if (i < 0) return false;
      list.splice(i, 1);
      removed.push(id);
      return true;
    },
    async touchDevices(ids: readonly string[]) {
      touched.push([...ids]);
    },
  };
}

/** A sender answering per device id; records what it was asked to send. */
function sender(provider: DeviceProvider, answers: Record<string, PushOutcome | (() => never)>) {
  const sent: { device: string; message: PushMessage }[] = [];
  const s: PushSender & { sent: typeof sent } = {
    provider,
    sent,
    async send(device, message) {
      sent.push({ device: device.id, message });
      const a = answers[device.id] ?? { ok: true };
      return typeof a === 'function' ? a() : a;
    },
  };
  return s;
}

const job: DeliveryJob = {
  deliveryId: 'd-1',
  leaseToken: 't',
  attempt: 1,
  channel: 'push',
  lane: 'high',
  userId: 'u1',
  notification: {
    id: 'n-1',
    category: 'comment.reply',
    priority: 'high',
    title: 'Ada replied',
    body: 'Looks good',
    data: { thread: 7 },
    groupKey: null,
    createdAt: new Date(),
  },
  user: null,
};

const DEAD: PushOutcome = { ok: false, permanent: true, reason: 'token_dead', error: 'answered HTTP 410' };
const FLAKY: PushOutcome = { ok: false, permanent: false, error: 'answered HTTP 503', retryAfterMs: 3000 };
const REFUSED: PushOutcome = { ok: false, permanent: true, error: 'answered HTTP 400' };

describe('PushProvider', () => {
  it('sends to every device through its own provider; sent with per-device results and counts', async () => {
    const store = deviceStore([dev('w1', 'webpush'), dev('f1', 'fcm'), dev('w2', 'webpush')]);
    const web = sender('webpush', {});
    const fcm = sender('fcm', {});
    const p = new PushProvider({
      senders: new Map([
        ['webpush', web],
        ['fcm', fcm],
      ] as const),
      devices: store,
    });
    const r = await p.send(job);
    expect(r).toEqual({
      ok: true,
      detail: {
        provider: 'push',
        devices: 3,
        accepted: 3,
        failed: 0,
        removed: 0,
        skipped: 0,
        results: [
          { id: 'w1', provider: 'webpush', result: 'accepted' },
          { id: 'f1', provider: 'fcm', result: 'accepted' },
          { id: 'w2', provider: 'webpush', result: 'accepted' },
        ],
      },
    });
    expect(web.sent.map((s) => s.device)).toEqual(['w1', 'w2']);
    expect(fcm.sent.map((s) => s.device)).toEqual(['f1']);
    expect(web.sent[0]?.message).toEqual({
      notificationId: 'n-1',
      deliveryId: 'd-1',
      category: 'comment.reply',
      priority: 'high',
      title: 'Ada replied',
      body: 'Looks good',
      data: { thread: 7 },
    });
    expect(store.touched).toEqual([['w1', 'f1', 'w2']]);
  });

  it('skips a device whose provider has no sender, and the user when none is left', async () => {
    const store = deviceStore([dev('a1', 'apns'), dev('w1', 'webpush')]);
    const web = sender('webpush', {});
    const p = new PushProvider({ senders: new Map([['webpush', web]]), devices: store });
    expect(await p.send(job)).toMatchObject({ ok: true, detail: { devices: 1, accepted: 1, skipped: 1 } });

    const onlyApns = new PushProvider({
      senders: new Map([['webpush', web]]),
      devices: deviceStore([dev('a1', 'apns')]),
    });
    expect(await onlyApns.send(job)).toEqual({
      ok: false,
      skipped: 'user u1 has no push device with a configured provider (has apns)',
    });
  });

  it('a user without devices is skipped', async () => {
    const p = new PushProvider({ senders: new Map([['webpush', sender('webpush', {})]]), devices: deviceStore([]) });
    expect(await p.send(job)).toEqual({ ok: false, skipped: 'user u1 has no push device' });
  });

  it('one device accepted is enough: sent, the dead one removed and named, the failure in the detail', async () => {
    const store = deviceStore([dev('w1', 'webpush'), dev('w2', 'webpush'), dev('w3', 'webpush')]);
    const web = sender('webpush', { w2: DEAD, w3: FLAKY });
    const r = await new PushProvider({ senders: new Map([['webpush', web]]), devices: store }).send(job);
    expect(r).toMatchObject({
      ok: true,
      detail: {
        devices: 3,
        accepted: 1,
        failed: 1,
        removed: 1,
        removedDevices: [{ id: 'w2', provider: 'webpush', reason: 'answered HTTP 410' }],
        results: [
          { id: 'w1', result: 'accepted' },
          { id: 'w2', result: 'dead', reason: 'answered HTTP 410' },
          { id: 'w3', result: 'transient', error: 'answered HTTP 503' },
        ],
      },
    });
    expect(store.removed).toEqual(['w2']);
    expect(store.touched).toEqual([['w1']]);
    expect((await store.listDevices('u1')).map((d) => d.id)).toEqual(['w1', 'w3']);
  });

  it('a dead token runs the token_dead hook given instead of the default removal', async () => {
    const store = deviceStore([dev('w1', 'webpush'), dev('w2', 'webpush')]);
    const acted: [string, string][] = [];
    const web = sender('webpush', { w2: DEAD });
    const p = new PushProvider({
      senders: new Map([['webpush', web]]),
      devices: store,
      onPermanent: { token_dead: async (d, error) => void acted.push([d.id, error]) },
    });
    expect(await p.send(job)).toMatchObject({ ok: true, detail: { removed: 1 } });
    expect(acted).toEqual([['w2', 'answered HTTP 410']]);
    expect(store.removed).toEqual([]);
  });

  it('none accepted, one transient: transient with the longest Retry-After; a dead one is still removed and named', async () => {
    const store = deviceStore([dev('w1', 'webpush'), dev('w2', 'webpush'), dev('w3', 'webpush')]);
    const web = sender('webpush', {
      w1: DEAD,
      w2: FLAKY,
      w3: { ok: false, permanent: false, error: 'timed out', retryAfterMs: 1000 },
    });
    const r = await new PushProvider({ senders: new Map([['webpush', web]]), devices: store }).send(job);
    expect(r).toMatchObject({ ok: false, permanent: false, retryAfterMs: 3000 });
    const error = (r as { error: string }).error;
    expect(error).toMatch(/w2 \(webpush\) transient: answered HTTP 503/);
    expect(error).toMatch(/removed dead devices: w1 \(webpush\): answered HTTP 410/);
    expect(store.removed).toEqual(['w1']);
    expect(store.touched).toEqual([]);
  });

  it('all permanent or dead: permanent; the dead devices are removed and never tried again', async () => {
    const store = deviceStore([dev('w1', 'webpush'), dev('w2', 'webpush')]);
    const web = sender('webpush', { w1: DEAD, w2: REFUSED });
    const p = new PushProvider({ senders: new Map([['webpush', web]]), devices: store });
    const r = await p.send(job);
    expect(r).toMatchObject({ ok: false, permanent: true });
    expect((r as { error: string }).error).toMatch(/removed dead devices: w1/);

    web.sent.length = 0;
    await p.send(job);
    expect(web.sent.map((s) => s.device)).toEqual(['w2']);
  });

  it('a sender that throws counts as a transient failure of that device', async () => {
    const store = deviceStore([dev('w1', 'webpush')]);
    const web = sender('webpush', {
      w1: () => {
        throw new Error('boom');
      },
    });
    const r = await new PushProvider({ senders: new Map([['webpush', web]]), devices: store }).send(job);
    expect(r).toMatchObject({ ok: false, permanent: false });
    expect((r as { error: string }).error).toMatch(/sender error: boom/);
  });
});

describe('PushProvider store round trips', () => {
  it('reads the devices of deliveries that start together in one call, and touches them in one', async () => {
    const devices = ['u1', 'u2', 'u3'].map((u) => ({ ...dev(`w-${u}`, 'webpush'), userId: u }));
    const store = deviceStore(devices);
    const reads: string[][] = [];
    const batched = {
      ...store,
      async listDevices(): Promise<Device[]> {
        throw new Error('read one user at a time');
      },
      async listDevicesOfUsers(userIds: readonly string[]) {
        reads.push([...userIds]);
        const out = new Map<string, Device[]>();
        for (const u of userIds) {
          const mine = devices.filter((d) => d.userId === u);
          if (mine.length) out.set(u, mine);
        }
        return out;
      },
    };
    const p = new PushProvider({ senders: new Map([['webpush', sender('webpush', {})]]), devices: batched });
    const results = await Promise.all(
      ['u1', 'u2', 'u3', 'u4'].map((userId, i) => p.send({ ...job, deliveryId: `d-${i}`, userId })),
    );
    expect(results.map((r) => (r.ok ? 'sent' : 'skipped' in r ? 'skipped' : 'failed'))).toEqual([
      'sent',
      'sent',
      'sent',
      'skipped',
    ]);
    expect(reads).toEqual([['u1', 'u2', 'u3', 'u4']]);
    expect(store.touched).toEqual([['w-u1', 'w-u2', 'w-u3']]);
  });
});
