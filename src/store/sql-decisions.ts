/**
 * The decider's reads and the caps' counters in SQL (ADR 13, migrations 0012 and 0016): each is one
 * statement, whatever the number of users or notifications asked about.
 */
import type { CapKey, DecisionContext, DecisionStore } from '../core/ports.ts';
import type { Preferences } from '../core/preferences.ts';
import type { Sql } from './sql.ts';

interface ContextRow {
  user_id: string;
  channels: Preferences['channels'] | null;
  categories: Preferences['categories'] | null;
  quiet_hours: Preferences['quietHours'];
  timezone: string | null;
}

export class SqlDecisionStore implements DecisionStore {
  constructor(private readonly sql: Sql) {}

  async getDecisionContexts(userIds: readonly string[]): Promise<Map<string, DecisionContext>> {
    const out = new Map<string, DecisionContext>();
    if (userIds.length === 0) return out;
    // Users with preferences, and users with a time zone but none (a cron digest needs the zone).
    const rows = await this.sql.query<ContextRow>(
      `SELECT coalesce(p.user_id, u.id) AS user_id, p.channels, p.categories, p.quiet_hours, u.timezone
       FROM (SELECT user_id, channels, categories, quiet_hours FROM preferences WHERE user_id = ANY($1::text[])) p
       FULL JOIN (SELECT id, timezone FROM users WHERE id = ANY($1::text[]) AND timezone IS NOT NULL) u
         ON u.id = p.user_id`,
      [[...new Set(userIds)]],
    );
    for (const r of rows) {
      out.set(r.user_id, {
        preferences: r.channels
          ? { channels: r.channels, categories: r.categories ?? {}, quietHours: r.quiet_hours }
          : null,
        timezone: r.timezone,
      });
    }
    return out;
  }

  async hasAnyDecisionContext(): Promise<boolean> {
    const [r] = await this.sql.query<{ any: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM preferences) OR EXISTS (SELECT 1 FROM users WHERE timezone IS NOT NULL) AS any`,
    );
    return r?.any === true;
  }

  async getExpiries(notificationIds: readonly string[]): Promise<Map<string, Date | null>> {
    const out = new Map<string, Date | null>();
    if (notificationIds.length === 0) return out;
    const rows = await this.sql.query<{ id: string; expires_at: Date | null }>(
      'SELECT id, expires_at FROM notifications WHERE id = ANY($1::uuid[])',
      [[...new Set(notificationIds)]],
    );
    for (const r of rows) out.set(r.id, r.expires_at === null ? null : new Date(r.expires_at));
    return out;
  }

  async countSend(key: CapKey, max: number): Promise<boolean> {
    const rows = await this.sql.query(
      `INSERT INTO cap_counts AS c (user_id, channel, category, window_start, window_end, n)
       VALUES ($1, $2, $3, $4, $5, 1)
       ON CONFLICT (user_id, channel, category, window_start) DO UPDATE SET n = c.n + 1 WHERE c.n < $6
       RETURNING n`,
      [key.userId, key.channel, key.category, key.windowStart, key.windowEnd, max],
    );
    return rows.length > 0;
  }

  async digestOverflow(
    delivery: { id: string; leaseToken: string },
    window: { windowStart: Date; windowEnd: Date },
  ): Promise<boolean> {
    return this.sql.transaction(async (tx) => {
      // The window's digest, created by its first member (as in herald_accept_decided, migration 0012).
      await tx.query(
        `INSERT INTO digests (id, user_id, category, channel, window_start, window_end)
         SELECT gen_random_uuid(), d.user_id, n.category, d.channel, $3, $4
         FROM deliveries d JOIN notifications n ON n.id = d.notification_id
         WHERE d.id = $1 AND d.state = 'processing' AND d.lease_token = $2
         ON CONFLICT (user_id, category, channel, window_start) DO NOTHING`,
        [delivery.id, delivery.leaseToken, window.windowStart, window.windowEnd],
      );
      // A still pending digest, locked FOR SHARE so that a worker taking it waits for this member.
      const rows = await tx.query<{ id: string }>(
        `WITH d AS (
           SELECT d.id, d.user_id, d.channel, d.notification_id, n.category FROM deliveries d
           JOIN notifications n ON n.id = d.notification_id
           WHERE d.id = $1 AND d.state = 'processing' AND d.lease_token = $2
           FOR UPDATE OF d),
         g AS (
           SELECT g.id FROM digests g, d
           WHERE (g.user_id, g.category, g.channel, g.window_start) = (d.user_id, d.category, d.channel, $3::timestamptz)
             AND g.state = 'pending'
           FOR SHARE OF g),
         moved AS (
           UPDATE deliveries x SET state = 'pending', reason = 'digested', digest_id = g.id,
             next_attempt_at = 'infinity', attempts = greatest(x.attempts - 1, 0), lease_token = NULL,
             lease_until = NULL, updated_at = now()
           FROM g WHERE x.id = $1
           RETURNING x.id, x.notification_id, x.user_id, x.channel, x.digest_id)
         INSERT INTO timeline (notification_id, delivery_id, event, detail)
         SELECT m.notification_id, m.id, 'digested',
                jsonb_build_object('userId', m.user_id, 'channel', m.channel, 'reason', 'digested',
                  'overflow', 'capped', 'digestId', m.digest_id, 'windowEnd', $4::timestamptz)
         FROM moved m
         RETURNING delivery_id AS id`,
        [delivery.id, delivery.leaseToken, window.windowStart, window.windowEnd],
      );
      return rows.length > 0;
    });
  }
}
