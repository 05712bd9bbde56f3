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
}
