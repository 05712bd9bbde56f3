/** A real Herald for the client's integration tests, users with tokens, and recorders of what a client saw. */
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { eventually, startTestHerald, TEST_JWT_SECRET, type TestHerald } from '../../../test/support/herald.ts';
import { HeraldClient } from '../src/client.ts';
import type { ConnectionState, HeraldClientOptions, HeraldNotification } from '../src/types.ts';

export { eventually, type TestHerald };

/** Herald with a 1 s server heartbeat (the smallest it takes), so token expiry is noticed quickly. */
export function startHerald(env: Record<string, string> = {}): Promise<TestHerald> {
  return startTestHerald({ env: { HERALD_WS_HEARTBEAT_MS: '1000', ...env } });
}

let users = 0;
export function newUser(prefix: string): string {
  return `${prefix}-${process.pid}-${++users}`;
}

/** A user token from the API (`POST /v1/users/{id}/tokens`). */
export async function issueToken(h: TestHerald, userId: string): Promise<string> {
  const res = await h.api('POST', `/v1/users/${userId}/tokens`, { ttlSeconds: 3600 });
  if (res.status !== 201) throw new Error(`token for ${userId}: ${res.status} ${JSON.stringify(res.json)}`);
  return res.json.token as string;
}

/** A token signed with the shared secret, expiring `seconds` from now (the API issues 60 s at least). */
export function signToken(userId: string, seconds: number, secret = TEST_JWT_SECRET): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + seconds)
    .sign(new TextEncoder().encode(secret));
}

/** Posts `count` in-app notifications to `userId`, one request each, in order; answers their ids. */
export async function notify(h: TestHerald, userId: string, count: number, label = 'n'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await h.api('POST', '/v1/notifications', {
      to: [userId],
      category: 'client.test',
      title: `${label}${i}`,
      data: { i },
    });
    if (res.status !== 202) throw new Error(`notify ${userId}: ${res.status} ${JSON.stringify(res.json)}`);
    ids.push(res.json.id as string);
  }
  return ids;
}

/** Waits until the user's inbox holds `count` items (they are stored, whoever is connected). */
export async function storedInbox(h: TestHerald, userId: string, count: number): Promise<void> {
  await eventually(async () => {
    const res = await h.api('GET', `/v1/users/${userId}/inbox?limit=200`);
    return res.status === 200 && res.json.items.length >= count;
  }, `${count} items in the inbox of ${userId}`);
}

export interface Recorder {
  client: HeraldClient;
  notifications: HeraldNotification[];
  unread: number[];
  states: ConnectionState[];
  errors: Error[];
  /** Waits until `count` notifications have arrived. */
  received(count: number, timeoutMs?: number): Promise<void>;
  /** Waits until the client has been open `count` times. */
  opened(count: number, timeoutMs?: number): Promise<void>;
}

/** A client on `h` with the `ws` package's WebSocket, recording everything it emits. */
export function recordClient(h: TestHerald, options: Omit<HeraldClientOptions, 'url' | 'WebSocket'>): Recorder {
  const client = new HeraldClient({ url: h.url, WebSocket, ...options });
  const r: Recorder = {
    client,
    notifications: [],
    unread: [],
    states: [],
    errors: [],
    received: (count, timeoutMs) =>
      eventually(() => r.notifications.length >= count, `${count} notifications`, timeoutMs).then(() => {}),
    opened: (count, timeoutMs) =>
      eventually(() => r.states.filter((s) => s.status === 'open').length >= count, `${count} opens`, timeoutMs).then(
        () => {},
      ),
  };
  client.on('notification', (n) => r.notifications.push(n));
  client.on('unread', (n) => r.unread.push(n));
  client.on('connection', (s) => r.states.push(s));
  client.on('error', (e) => r.errors.push(e));
  return r;
}

/** Seqs strictly increasing by one: nothing skipped, nothing twice, in order. */
export function expectContiguous(seqs: number[]): string | null {
  for (let i = 1; i < seqs.length; i++) {
    if (seqs[i] !== (seqs[i - 1] as number) + 1) return `seq ${seqs[i]} after ${seqs[i - 1]} in [${seqs.join(',')}]`;
  }
  return null;
}

/** The server-side sessions of a user, from the gateway's private map (no public handle exists). */
export function serverSessions(h: TestHerald, userId: string): { close(code: number, reason: string): void }[] {
  type Session = { close(code: number, reason: string): void };
  const gateway = (h.herald as unknown as { gateway?: { byUser?: Map<string, Set<{ session: Session }>> } }).gateway;
  const byUser = gateway?.byUser;
  if (!byUser) throw new Error('herald.gateway.byUser is gone: this test needs another way to close server sockets');
  return [...(byUser.get(userId) ?? [])].map((c) => c.session);
}
