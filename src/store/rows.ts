/** Row shapes of the SQL store and their mapping to domain types. */
import { latestOf } from '../core/aggregation.ts';
import type {
  Channel,
  DeliveryJob,
  DeliveryState,
  InboxDelivery,
  InboxItem,
  JobUser,
  JsonValue,
  Lane,
  Priority,
  UserProfile,
} from '../core/types.ts';

export interface UserRow {
  id: string;
  email: string | null;
  phone: string | null;
  timezone: string | null;
  locale: string | null;
  webhook_url: string | null;
  chat_webhook_url: string | null;
}

export function toUser(r: UserRow): UserProfile {
  return { ...toJobUser(r), chatWebhookUrl: r.chat_webhook_url };
}

/** The user columns herald_take returns; `chatWebhookUrl` is not among them (see JobUser). */
function toJobUser(r: Omit<UserRow, 'chat_webhook_url'>): JobUser {
  return {
    id: r.id,
    email: r.email,
    phone: r.phone,
    timezone: r.timezone,
    locale: r.locale,
    webhookUrl: r.webhook_url,
  };
}

export interface JobRow {
  id: string;
  lease_token: string;
  attempts: number;
  channel: Channel;
  lane: Lane;
  user_id: string;
  notification_id: string;
  category: string;
  priority: Priority;
  title: string | null;
  body: string | null;
  data: JsonValue;
  group_key: string | null;
  created_at: Date;
  u_id: string | null;
  email: string | null;
  phone: string | null;
  timezone: string | null;
  locale: string | null;
  webhook_url: string | null;
  unless: 'read' | 'delivered' | null;
}

export function toJob(r: JobRow): DeliveryJob {
  return {
    ...(r.unless ? { unless: r.unless } : {}),
    deliveryId: r.id,
    leaseToken: r.lease_token,
    attempt: r.attempts,
    channel: r.channel,
    lane: r.lane,
    userId: r.user_id,
    notification: {
      id: r.notification_id,
      category: r.category,
      priority: r.priority,
      title: r.title,
      body: r.body,
      data: r.data,
      groupKey: r.group_key,
      createdAt: r.created_at,
    },
    user:
      r.u_id === null
        ? null
        : toJobUser({
            id: r.u_id,
            email: r.email,
            phone: r.phone,
            timezone: r.timezone,
            locale: r.locale,
            webhook_url: r.webhook_url,
          }),
  };
}

/** A row of DeliveryStore.startAttempts: a leased job (`seq` null) or a completed in-app delivery. */
export interface StartedRow extends JobRow {
  seq: string | number | null;
}

export function toInboxDelivery(r: StartedRow, seq: number): InboxDelivery {
  return {
    deliveryId: r.id,
    userId: r.user_id,
    lane: r.lane,
    attempt: r.attempts,
    item: toItem({ ...r, id: r.notification_id, seq, read_at: null }),
  };
}

/** An inbox entry joined with its notification; an aggregated one (migration 0014) with its count and the seq it replaces. */
export interface InboxRow {
  seq: number;
  read_at: Date | null;
  id: string;
  category: string;
  priority: Priority;
  title: string | null;
  body: string | null;
  data: JsonValue;
  created_at: Date;
  group_count?: number | null;
  replaces?: number | null;
}

export function toItem(r: InboxRow): InboxItem {
  const item: InboxItem = {
    id: r.id,
    seq: r.seq,
    category: r.category,
    priority: r.priority,
    title: r.title,
    body: r.body,
    data: r.data,
    createdAt: r.created_at,
    readAt: r.read_at,
  };
  if (r.group_count == null) return item;
  item.count = r.group_count;
  item.latest = latestOf(item);
  if (r.replaces != null) item.replaces = Number(r.replaces);
  return item;
}

export interface DeliveryRow {
  id: string;
  notification_id: string;
  user_id: string;
  channel: Channel;
  state: DeliveryState;
  attempts: number;
  last_error: string | null;
  reason: string | null;
  next_attempt_at: Date;
  updated_at: Date;
}

/** Keyset cursors are opaque to clients: base64url of the last key seen. */
export function encodeCursor(parts: (string | number)[]): string {
  return Buffer.from(JSON.stringify(parts)).toString('base64url');
}

export function decodeCursor(cursor: string | null | undefined): (string | number)[] | null {
  if (!cursor) return null;
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === 'string' || typeof x === 'number') ? v : null;
  } catch {
    return null;
  }
}
