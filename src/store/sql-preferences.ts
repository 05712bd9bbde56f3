/** Users' preferences in SQL: one row per user, each part as jsonb (migration 0011). */
import type { PreferenceStore } from '../core/ports.ts';
import type { ChannelSwitches, Preferences } from '../core/preferences.ts';
import { CHANNELS, type Channel } from '../core/types.ts';
import type { Sql } from './sql.ts';

interface PreferenceRow {
  channels: ChannelSwitches;
  categories: Preferences['categories'];
  quiet_hours: Preferences['quietHours'];
}

const toPreferences = (r: PreferenceRow): Preferences => ({
  channels: r.channels,
  categories: r.categories,
  quietHours: r.quiet_hours,
});

export class SqlPreferenceStore implements PreferenceStore {
  constructor(private readonly sql: Sql) {}

  async getPreferences(userId: string): Promise<Preferences | null> {
    const [row] = await this.sql.query<PreferenceRow>(
      'SELECT channels, categories, quiet_hours FROM preferences WHERE user_id = $1',
      [userId],
    );
    return row ? toPreferences(row) : null;
  }

  async getPreferencesOfUsers(userIds: readonly string[]): Promise<Map<string, Preferences>> {
    const out = new Map<string, Preferences>();
    if (userIds.length === 0) return out;
    const rows = await this.sql.query<PreferenceRow & { user_id: string }>(
      'SELECT user_id, channels, categories, quiet_hours FROM preferences WHERE user_id = ANY($1::text[])',
      [[...new Set(userIds)]],
    );
    for (const r of rows) out.set(r.user_id, toPreferences(r));
    return out;
  }

  async putPreferences(userId: string, p: Preferences): Promise<Preferences> {
    const [row] = await this.sql.query<PreferenceRow>(
      `INSERT INTO preferences (user_id, channels, categories, quiet_hours) VALUES ($1, $2::jsonb, $3::jsonb, $4::jsonb)
       ON CONFLICT (user_id) DO UPDATE SET channels = EXCLUDED.channels, categories = EXCLUDED.categories,
         quiet_hours = EXCLUDED.quiet_hours, updated_at = now()
       RETURNING channels, categories, quiet_hours`,
      [userId, JSON.stringify(p.channels), JSON.stringify(p.categories), p.quietHours && JSON.stringify(p.quietHours)],
    );
    return toPreferences(row as PreferenceRow);
  }

  async optOut(userId: string, category: string, channel: Channel): Promise<void> {
    // What `true` (every channel on) becomes: every channel on but this one.
    const allButThis = Object.fromEntries(CHANNELS.map((c) => [c, c !== channel]));
    await this.sql.query(
      `INSERT INTO preferences (user_id, categories)
       VALUES ($1, jsonb_build_object($2::text, jsonb_build_object($3::text, false)))
       ON CONFLICT (user_id) DO UPDATE SET
         categories = preferences.categories || jsonb_build_object($2::text,
           CASE
             WHEN preferences.categories -> $2::text = 'false'::jsonb THEN 'false'::jsonb
             WHEN preferences.categories -> $2::text = 'true'::jsonb THEN $4::jsonb
             WHEN jsonb_typeof(preferences.categories -> $2::text) = 'object'
               THEN (preferences.categories -> $2::text) || jsonb_build_object($3::text, false)
             ELSE jsonb_build_object($3::text, false)
           END),
         updated_at = now()`,
      [userId, category, channel, JSON.stringify(allButThis)],
    );
  }
}
