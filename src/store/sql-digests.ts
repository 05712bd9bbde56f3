/**
 * Digests in SQL (migrations 0012 and 0015): taking due digests with a lease, reading their members,
 * recording an attempt's outcome for the digest and all its members in one statement, and giving
 * expired leases back.
 */
import type { DigestOutcome, DigestStore, DigestWork } from '../core/ports.ts';
import type { Channel, DigestItem, JobUser, JsonValue, Priority } from '../core/types.ts';
import type { Sql } from './sql.ts';

interface TakenRow {
  id: string;
  lease_token: string;
  attempts: number;
  user_id: string;
  category: string;
  channel: Channel;
  window_start: Date;
  window_end: Date;
}

interface MemberRow {
  digest_id: string;
  total: string | number;
  notification_id: string;
  title: string | null;
  body: string | null;
  data: JsonValue;
  created_at: Date;
  category: string;
  priority: Priority;
}

interface UserRow {
  id: string;
  email: string | null;
  phone: string | null;
  timezone: string | null;
  locale: string | null;
  webhook_url: string | null;
}

export class SqlDigestStore implements DigestStore {
  constructor(private readonly sql: Sql) {}

  async takeDigests(max: number, leaseMs: number, graceMs: number, items: number): Promise<DigestWork[]> {
    if (max <= 0) return [];
    // The take commits by itself: from then on no accept adds a member (migration 0015), so the
    // members read next are final for this attempt.
    const taken = await this.sql.query<TakenRow>('SELECT * FROM herald_take_digests($1, $2, $3)', [
      max,
      Math.round(leaseMs),
      Math.round(graceMs),
    ]);
    if (!taken.length) return [];
    const ids = taken.map((t) => t.id);
    await this.sql.query('SELECT herald_expire_digest_members($1::uuid[])', [ids]);
    const [members, users] = await Promise.all([
      this.sql.query<MemberRow>(
        `SELECT m.digest_id, m.total, n.id AS notification_id, n.title, n.body, n.data, n.created_at, n.category,
                n.priority
         FROM (SELECT d.digest_id, d.notification_id, count(*) OVER w AS total,
                      row_number() OVER (w ORDER BY d.id DESC) AS k
               FROM deliveries d WHERE d.digest_id = ANY($1::uuid[]) AND d.state = 'pending'
               WINDOW w AS (PARTITION BY d.digest_id)) m
         JOIN notifications n ON n.id = m.notification_id
         WHERE m.k <= $2
         ORDER BY m.digest_id, m.k`,
        [ids, items],
      ),
      this.sql.query<UserRow>(
        'SELECT id, email, phone, timezone, locale, webhook_url FROM users WHERE id = ANY($1::text[])',
        [[...new Set(taken.map((t) => t.user_id))]],
      ),
    ]);
    const byDigest = new Map<string, { total: number; items: DigestItem[] }>();
    for (const m of members) {
      let entry = byDigest.get(m.digest_id);
      if (!entry) {
        entry = { total: Number(m.total), items: [] };
        byDigest.set(m.digest_id, entry);
      }
      entry.items.push({
        id: m.notification_id,
        title: m.title,
        body: m.body,
        data: m.data,
        createdAt: m.created_at.toISOString(),
        category: m.category,
        priority: m.priority,
      });
    }
    const userById = new Map(users.map((u) => [u.id, u]));
    return taken.map((t) => {
      const u = userById.get(t.user_id);
      const user: JobUser | null = u
        ? {
            id: u.id,
            email: u.email,
            phone: u.phone,
            timezone: u.timezone,
            locale: u.locale,
            webhookUrl: u.webhook_url,
          }
        : null;
      const m = byDigest.get(t.id);
      return {
        id: t.id,
        leaseToken: t.lease_token,
        attempt: t.attempts,
        userId: t.user_id,
        category: t.category,
        channel: t.channel,
        windowStart: t.window_start,
        windowEnd: t.window_end,
        user,
        count: m?.total ?? 0,
        items: m?.items ?? [],
      };
    });
  }

  async finishDigest(o: DigestOutcome): Promise<{ recorded: boolean; seq: number | null }> {
    const state = o.result === 'retry' ? 'pending' : o.result;
    const error = o.result === 'sent' ? null : o.error;
    const inbox = o.result === 'sent' ? o.inbox : undefined;
    const [row] = await this.sql.query<{ recorded: boolean; seq: string | number | null }>(
      'SELECT * FROM herald_finish_digest($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)',
      [
        o.digestId,
        o.leaseToken,
        state,
        error,
        o.result === 'skipped' ? o.reason : null,
        // The delay, not the instant: the retry is due on the database's clock, like every digest time.
        o.result === 'retry' ? Math.max(0, o.nextAttemptAt.getTime() - Date.now()) : null,
        o.result === 'sent' && o.detail ? JSON.stringify(o.detail) : null,
        inbox?.notificationId ?? null,
        inbox?.title ?? null,
        inbox?.body ?? null,
      ],
    );
    return { recorded: row?.recorded === true, seq: row?.seq == null ? null : Number(row.seq) };
  }

  async reclaimExpiredDigests(limit: number, options: { unexpired?: boolean } = {}): Promise<number> {
    const rows = await this.sql.query<{ id: string }>(
      `UPDATE digests SET state = 'pending', lease_token = NULL, lease_until = NULL, updated_at = now()
       WHERE id IN (SELECT id FROM digests WHERE state = 'processing' AND (lease_until < now() OR $2)
                    ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED)
         AND state = 'processing' AND (lease_until < now() OR $2)
       RETURNING id`,
      [limit, options.unexpired === true],
    );
    return rows.length;
  }
}
