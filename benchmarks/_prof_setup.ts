import pg from 'pg';
import { uuidv7 } from '../src/core/ids.ts';
import { openPostgresStore } from '../src/store/store-sql.ts';
const name = process.argv[2] as string;
const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' });
await admin.connect();
await admin.query(`DROP DATABASE IF EXISTS ${name}`);
await admin.query(`CREATE DATABASE ${name}`);
await admin.end();
const store = await openPostgresStore(`postgres://postgres@127.0.0.1:5432/${name}`, 2);
await store.sql.query(`INSERT INTO topic_subscriptions (topic, user_id, subscribed_at)
  SELECT 'big', 'f-' || lpad(i::text, 8, '0'), now() - interval '1 minute' FROM generate_series(0, 999999) i`);
await store.sql.query(`INSERT INTO topics (name, subscribers) VALUES ('big', 1000000)`);
await store.sql.query('VACUUM ANALYZE topic_subscriptions');
const id = uuidv7();
await store.accept([{ id, to: [], topic: 'big', category: 'news', priority: 'bulk', channels: ['in_app'], title: 't', body: null, data: null, sendAt: null, groupKey: null, createdAt: new Date(), idempotencyKey: null, requestHash: null }], { inAppUpTo: 0, fanoutOnReadAbove: 1e12 });
const job = await store.claimFanout(3_600_000);
console.log(JSON.stringify({ id, token: job?.leaseToken }));
await store.close();
