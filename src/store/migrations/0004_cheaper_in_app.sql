-- Cheaper in-app deliveries. Completing a single-recipient in-app notification in its accepting
-- statement cost PostgreSQL 2,138 bytes of WAL and ~82 µs of CPU (713 bytes and ~21 µs without the
-- in-app part); with the changes below but the last 1,400 bytes and ~49 µs, and with the last
-- 1,344 bytes and ~8 µs less (store.accept in a loop, batches of 50, alternating runs of the code
-- before and after on a 2-core VM).
--
-- * In-app deliveries completed by the accepting statement are inserted as 'sent' (attempt 1) instead
--   of inserted 'pending' and then updated by herald_take: one row version, indexes written once.
-- * A user's unread count is kept on their counter row (inbox_counters.unread), which every append
--   already locks and writes, instead of counted through a partial index on inbox that every entry
--   and every read had to maintain. Reading the count is now one row, however many are unread.
-- * inbox.delivery_id loses its unique index: nothing looks entries up by it, and a delivery reaches
--   the inbox once because only the transaction that moves it out of 'pending' appends it.
-- * timeline's primary key is (notification_id, id), the order it is read in: one index, not two.
-- * inbox.delivered_at goes: it only made a repeated ack a no-op, which the delivery's own state
--   (no longer `sent`) already does; an ack now writes the delivery and its timeline event only.
-- * deliveries.notification_id loses its foreign key: its check ran a query and took a row lock
--   (a WAL record) on the notification for every delivery inserted, ~8 µs each (13 % of the accept
--   statement, measured as above), for a relation Herald's own statements guarantee: a delivery is
--   only ever inserted by the statement that inserts its notification, and neither is deleted.
--
-- The inbox append (seqs, inbox rows, unread count, timeline) that both herald_accept and
-- herald_take do is one function, herald_append_inbox. herald_accept now returns only each completed
-- delivery's id and seq: the caller has the rest in memory.

ALTER TABLE inbox_counters ADD COLUMN unread bigint NOT NULL DEFAULT 0;
UPDATE inbox_counters c SET unread = (SELECT count(*) FROM inbox i WHERE i.user_id = c.user_id AND i.read_at IS NULL);
DROP INDEX inbox_unread;
ALTER TABLE inbox DROP CONSTRAINT inbox_delivery_id_key;
ALTER TABLE timeline DROP CONSTRAINT timeline_pkey;
ALTER TABLE timeline ADD PRIMARY KEY (notification_id, id);
DROP INDEX timeline_by_notification;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_notification_id_fkey;
ALTER TABLE inbox DROP COLUMN delivered_at;

-- p_ids: in-app deliveries already marked 'sent' in this transaction. Gives each the user's next
-- seq, appends its inbox entry (unread) and its 'sent' timeline event. A user's next seqs come from
-- their counter row, upserted in user order (so concurrent transactions cannot deadlock) and locked
-- to commit (so for one user a higher seq never commits before a lower one); a user's deliveries
-- get them in id order (UUIDv7: creation order).
-- Two statements, so that the second reads the counters the first wrote through their primary key:
-- joined inside one statement, the counters are a CTE the planner can only scan in a nested loop
-- (it cannot estimate them), which made taking 1,000 in-app deliveries of 1,000 users cost
-- 1,000 × 1,000 comparisons (180 ms of a 196 ms take, measured with auto_explain).
CREATE FUNCTION herald_append_inbox(p_ids uuid[])
RETURNS TABLE (id uuid, attempts int, lane text, user_id text, notification_id uuid, seq bigint)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
BEGIN
  INSERT INTO inbox_counters AS c (user_id, last_seq, unread)
  SELECT d.user_id, count(*), count(*) FROM deliveries d WHERE d.id = ANY(p_ids) GROUP BY d.user_id ORDER BY d.user_id
  ON CONFLICT ON CONSTRAINT inbox_counters_pkey
  DO UPDATE SET last_seq = c.last_seq + EXCLUDED.last_seq, unread = c.unread + EXCLUDED.unread;

  -- A user's k-th delivery of this call (in id order) of n gets last_seq - n + k.
  RETURN QUERY
  WITH s AS (
    SELECT d.id, d.attempts, d.lane, d.user_id, d.notification_id,
           count(*) OVER w AS n, row_number() OVER (w ORDER BY d.id) AS k
    FROM deliveries d WHERE d.id = ANY(p_ids)
    WINDOW w AS (PARTITION BY d.user_id)),
  seqs AS (
    SELECT s.id, s.attempts, s.lane, s.user_id, s.notification_id, c.last_seq - s.n + s.k AS seq
    FROM s JOIN inbox_counters c ON c.user_id = s.user_id),
  appended AS (
    INSERT INTO inbox (user_id, seq, notification_id, delivery_id)
    SELECT q.user_id, q.seq, q.notification_id, q.id FROM seqs q),
  events AS (
    INSERT INTO timeline (notification_id, delivery_id, event, detail)
    SELECT q.notification_id, q.id, 'sent',
           jsonb_build_object('userId', q.user_id, 'channel', 'in_app', 'attempt', q.attempts, 'seq', q.seq)
    FROM seqs q)
  SELECT q.id, q.attempts, q.lane, q.user_id, q.notification_id, q.seq FROM seqs q;
END
$$;

-- p_notifications, p_deliveries: JSON arrays of rows (SqlNotificationStore); a delivery with
-- "sent": true is an in-app one completed here (NotificationStore.accept's inAppUpTo).
DROP FUNCTION herald_accept(json, json, uuid[]);

CREATE FUNCTION herald_accept(p_notifications json, p_deliveries json)
RETURNS TABLE (id uuid, seq bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  sent uuid[];
BEGIN
  INSERT INTO notifications (id, category, priority, channels, title, body, data, send_at, group_key, recipients, created_at)
  SELECT * FROM json_to_recordset(p_notifications) AS r(id uuid, category text, priority text, channels text[],
    title text, body text, data jsonb, send_at timestamptz, group_key text, recipients int, created_at timestamptz);
  WITH r AS (
    SELECT * FROM json_to_recordset(p_deliveries) AS r(id uuid, notification_id uuid, user_id text, channel text,
      lane text, next_attempt_at timestamptz, sent boolean)),
  inserted AS (
    INSERT INTO deliveries (id, notification_id, user_id, channel, lane, state, attempts, next_attempt_at, updated_at)
    SELECT r.id, r.notification_id, r.user_id, r.channel, r.lane,
           CASE WHEN r.sent THEN 'sent' ELSE 'pending' END, CASE WHEN r.sent THEN 1 ELSE 0 END,
           r.next_attempt_at, now()
    FROM r
    RETURNING id, state)
  SELECT array_agg(i.id) FILTER (WHERE i.state = 'sent') INTO sent FROM inserted i;
  IF sent IS NOT NULL THEN
    RETURN QUERY SELECT a.id, a.seq FROM herald_append_inbox(sent) a;
  END IF;
END
$$;

-- herald_take's in-app completion, now through herald_append_inbox (same signature and rows); the
-- leased ones are told apart by their channel, not by membership in the in-app array (which cost
-- taken × in-app comparisons).
CREATE OR REPLACE FUNCTION herald_take(p_lease_ms double precision, p_ids uuid[], p_lane text, p_max int)
RETURNS TABLE (
  id uuid, lease_token uuid, attempts int, channel text, lane text, user_id text, notification_id uuid,
  seq bigint, category text, priority text, title text, body text, data jsonb, group_key text,
  created_at timestamptz, u_id text, email text, phone text, timezone text, locale text, webhook_url text
)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
  taken uuid[];
  in_app uuid[];
BEGIN
  -- See migration 0002 for why the compare is a CASE and why the plans are pinned to indexes.
  IF p_ids IS NOT NULL THEN
    SELECT array_agg(d.id ORDER BY d.id), array_agg(d.id ORDER BY d.id) FILTER (WHERE d.channel = 'in_app')
    INTO taken, in_app
    FROM (SELECT x.id, x.channel FROM deliveries x
          WHERE x.id = ANY(p_ids)
            AND CASE WHEN x.state = 'pending' THEN x.next_attempt_at <= now() ELSE false END
          FOR UPDATE SKIP LOCKED) d;
  ELSE
    SELECT array_agg(d.id ORDER BY d.id), array_agg(d.id ORDER BY d.id) FILTER (WHERE d.channel = 'in_app')
    INTO taken, in_app
    FROM (SELECT x.id, x.channel FROM deliveries x
          WHERE x.lane = p_lane AND x.state = 'pending' AND x.next_attempt_at <= now()
          ORDER BY x.next_attempt_at LIMIT p_max
          FOR UPDATE SKIP LOCKED) d;
  END IF;
  IF taken IS NULL THEN
    RETURN;
  END IF;
  in_app := coalesce(in_app, '{}');

  -- Leased: everything but in-app.
  RETURN QUERY
  WITH l AS (
    UPDATE deliveries d SET state = 'processing', attempts = d.attempts + 1, lease_token = gen_random_uuid(),
      lease_until = now() + p_lease_ms * interval '1 millisecond', updated_at = now()
    WHERE d.id = ANY(taken) AND d.channel <> 'in_app'
    RETURNING d.id, d.lease_token, d.attempts, d.channel, d.lane, d.user_id, d.notification_id)
  SELECT l.id, l.lease_token, l.attempts, l.channel, l.lane, l.user_id, l.notification_id, NULL::bigint,
         n.category, n.priority, n.title, n.body, n.data, n.group_key, n.created_at,
         u.id, u.email, u.phone, u.timezone, u.locale, u.webhook_url
  FROM l JOIN notifications n ON n.id = l.notification_id LEFT JOIN users u ON u.id = l.user_id;

  IF cardinality(in_app) = 0 THEN
    RETURN;
  END IF;
  -- Completed: in-app.
  UPDATE deliveries d SET state = 'sent', attempts = d.attempts + 1, last_error = NULL, updated_at = now()
  WHERE d.id = ANY(in_app);
  RETURN QUERY
  SELECT q.id, NULL::uuid, q.attempts, 'in_app'::text, q.lane, q.user_id, q.notification_id, q.seq,
         n.category, n.priority, n.title, n.body, n.data, n.group_key, n.created_at,
         NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text
  FROM herald_append_inbox(in_app) q JOIN notifications n ON n.id = q.notification_id;
END
$$;
