/**
 * Push devices in SQL (table `devices`, migration 0007).
 *
 * Registration runs in one transaction under a per-user advisory lock: the check of the per-user
 * cap and the insert cannot interleave with another registration for the same user, so the cap
 * holds and concurrent identical registrations give one row (the unique constraint on user,
 * provider and identity digest would refuse a second one anyway).
 */
import { createHash } from 'node:crypto';
import {
  type Device,
  type DeviceProvider,
  type DeviceToken,
  deviceIdentity,
  parseStoredDeviceToken,
  serialiseDeviceToken,
} from '../core/devices.ts';
import { UUID_RE, uuidv7 } from '../core/ids.ts';
import type { DeviceRegistration, DeviceStore } from '../core/ports.ts';
import type { Sql } from './sql.ts';

/** The first key of the two-key advisory locks on a user's devices ("Dvcs"). */
const DEVICE_LOCK_CLASS = 0x4476_6373;

interface DeviceRow {
  id: string;
  user_id: string;
  provider: DeviceProvider;
  token: string;
  created_at: Date;
  last_used_at: Date | null;
}

const COLUMNS = 'id, user_id, provider, token, created_at, last_used_at';

function toDevice(r: DeviceRow): Device {
  return {
    ...parseStoredDeviceToken(r.provider, r.token),
    id: r.id,
    userId: r.user_id,
    createdAt: new Date(r.created_at),
    lastUsedAt: r.last_used_at === null ? null : new Date(r.last_used_at),
  };
}

export class SqlDeviceStore implements DeviceStore {
  constructor(private readonly sql: Sql) {}

  registerDevice(userId: string, token: DeviceToken, maxPerUser: number): Promise<DeviceRegistration> {
    const identity = createHash('sha256').update(deviceIdentity(token)).digest();
    const stored = serialiseDeviceToken(token);
    return this.sql.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [DEVICE_LOCK_CLASS, userId]);
      const [existing] = await tx.query<DeviceRow>(
        `UPDATE devices SET token = $4 WHERE user_id = $1 AND provider = $2 AND identity_sha256 = $3
         RETURNING ${COLUMNS}`,
        [userId, token.provider, identity, stored],
      );
      if (existing) return { result: 'registered', device: toDevice(existing), created: false };
      const [held] = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM devices WHERE user_id = $1', [
        userId,
      ]);
      if ((held?.n ?? 0) >= maxPerUser) return { result: 'full' };
      const [row] = await tx.query<DeviceRow>(
        `INSERT INTO devices (id, user_id, provider, identity_sha256, token) VALUES ($1, $2, $3, $4, $5)
         RETURNING ${COLUMNS}`,
        [uuidv7(), userId, token.provider, identity, stored],
      );
      return { result: 'registered', device: toDevice(row as DeviceRow), created: true };
    });
  }

  async listDevices(userId: string): Promise<Device[]> {
    const rows = await this.sql.query<DeviceRow>(`SELECT ${COLUMNS} FROM devices WHERE user_id = $1 ORDER BY id`, [
      userId,
    ]);
    return rows.map(toDevice);
  }

  async listDevicesOfUsers(userIds: readonly string[]): Promise<Map<string, Device[]>> {
    const out = new Map<string, Device[]>();
    if (userIds.length === 0) return out;
    const rows = await this.sql.query<DeviceRow>(
      `SELECT ${COLUMNS} FROM devices WHERE user_id = ANY($1::text[]) ORDER BY user_id, id`,
      [[...new Set(userIds)]],
    );
    for (const r of rows) {
      const list = out.get(r.user_id);
      if (list) list.push(toDevice(r));
      else out.set(r.user_id, [toDevice(r)]);
    }
    return out;
  }

  async removeDevice(id: string, userId?: string): Promise<boolean> {
    if (!UUID_RE.test(id)) return false;
    const rows = await this.sql.query(
      'DELETE FROM devices WHERE id = $1 AND ($2::text IS NULL OR user_id = $2) RETURNING id',
      [id, userId ?? null],
    );
    return rows.length > 0;
  }

  async touchDevices(ids: readonly string[]): Promise<void> {
    const valid = ids.filter((id) => UUID_RE.test(id));
    if (valid.length === 0) return;
    await this.sql.query('UPDATE devices SET last_used_at = now() WHERE id = ANY($1::uuid[])', [valid]);
  }
}
