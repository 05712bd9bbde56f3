/** Users (contact points, time zone, locale) in SQL. */
import type { UserStore } from '../core/ports.ts';
import type { UserProfile } from '../core/types.ts';
import { toUser, type UserRow } from './rows.ts';
import type { Sql } from './sql.ts';

export class SqlUserStore implements UserStore {
  constructor(private readonly sql: Sql) {}

  async upsertUser(p: UserProfile): Promise<UserProfile> {
    const [row] = await this.sql.query<UserRow>(
      `INSERT INTO users (id, email, phone, timezone, locale, webhook_url, chat_webhook_url)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, phone = EXCLUDED.phone, timezone = EXCLUDED.timezone,
         locale = EXCLUDED.locale, webhook_url = EXCLUDED.webhook_url, chat_webhook_url = EXCLUDED.chat_webhook_url,
         updated_at = now()
       RETURNING id, email, phone, timezone, locale, webhook_url, chat_webhook_url`,
      [p.id, p.email, p.phone, p.timezone, p.locale, p.webhookUrl, p.chatWebhookUrl],
    );
    return toUser(row as UserRow);
  }

  async getUser(id: string): Promise<UserProfile | null> {
    const [row] = await this.sql.query<UserRow>(
      'SELECT id, email, phone, timezone, locale, webhook_url, chat_webhook_url FROM users WHERE id = $1',
      [id],
    );
    return row ? toUser(row) : null;
  }
}
