-- Taking due work is Herald's hottest statement. As a function its plan is prepared once per
-- connection instead of planned at every call (planning it cost ~8 ms on PGlite, more than running
-- it). What it does: see SqlDeliveryStore.startAttempts.
--
-- p_ids: take these deliveries (a bus handed them out), or NULL to take up to p_max due rows of
-- p_lane, oldest due first. Rows another taker holds are skipped. In-app deliveries are completed
-- (inbox entry with the user's next seq, state 'sent', timeline 'sent'); every other delivery is
-- leased for p_lease_ms. Returns one row per delivery taken; seq is NULL for leased ones.
CREATE FUNCTION herald_take(p_lease_ms double precision, p_ids uuid[], p_lane text, p_max int)
RETURNS TABLE (
  id uuid, lease_token uuid, attempts int, channel text, lane text, user_id text, notification_id uuid,
  seq bigint, category text, priority text, title text, body text, data jsonb, group_key text,
  created_at timestamptz, u_id text, email text, phone text, timezone text, locale text, webhook_url text
)
LANGUAGE plpgsql
-- Every row is found by key (primary key, or deliveries_due for a lane). The function's plans are
-- cached, and a cached plan made while a table was small (a hash join over a sequential scan of
-- notifications) would otherwise stay as the table grows: each take then reads the whole table.
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
  taken uuid[];
  in_app uuid[];
BEGIN
  -- By ids, the compare (pending and due) is a CASE so that the planner can only find the rows by
  -- primary key: written plainly, a table without fresh statistics (PGlite never autovacuums; a fresh
  -- backlog on PostgreSQL) gets a plan that scans every due row of every lane through
  -- deliveries_due. By lane, that index is the plan.
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
    WHERE d.id = ANY(taken) AND NOT d.id = ANY(in_app)
    RETURNING d.id, d.lease_token, d.attempts, d.channel, d.lane, d.user_id, d.notification_id)
  SELECT l.id, l.lease_token, l.attempts, l.channel, l.lane, l.user_id, l.notification_id, NULL::bigint,
         n.category, n.priority, n.title, n.body, n.data, n.group_key, n.created_at,
         u.id, u.email, u.phone, u.timezone, u.locale, u.webhook_url
  FROM l JOIN notifications n ON n.id = l.notification_id LEFT JOIN users u ON u.id = l.user_id;

  IF cardinality(in_app) = 0 THEN
    RETURN;
  END IF;
  -- Completed: in-app. A user's next seqs come from their counter row, upserted in user order (so
  -- concurrent takes cannot deadlock) and locked to commit (so for one user a higher seq never
  -- commits before a lower one); a user's deliveries get them in id order (UUIDv7: creation order).
  RETURN QUERY
  WITH s AS (
    UPDATE deliveries d SET state = 'sent', attempts = d.attempts + 1, last_error = NULL, updated_at = now()
    WHERE d.id = ANY(in_app)
    RETURNING d.id, d.attempts, d.lane, d.user_id, d.notification_id),
  per_user AS (SELECT s.user_id, count(*) AS n FROM s GROUP BY s.user_id),
  counters AS (
    INSERT INTO inbox_counters AS c (user_id, last_seq) SELECT p.user_id, p.n FROM per_user p ORDER BY p.user_id
    ON CONFLICT ON CONSTRAINT inbox_counters_pkey DO UPDATE SET last_seq = c.last_seq + EXCLUDED.last_seq
    RETURNING c.user_id, c.last_seq),
  seqs AS (
    SELECT s.*, c.last_seq - p.n + row_number() OVER (PARTITION BY s.user_id ORDER BY s.id) AS seq
    FROM s JOIN per_user p ON p.user_id = s.user_id JOIN counters c ON c.user_id = s.user_id),
  appended AS (
    INSERT INTO inbox (user_id, seq, notification_id, delivery_id)
    SELECT q.user_id, q.seq, q.notification_id, q.id FROM seqs q),
  events AS (
    INSERT INTO timeline (notification_id, delivery_id, event, detail)
    SELECT q.notification_id, q.id, 'sent',
           jsonb_build_object('userId', q.user_id, 'channel', 'in_app', 'attempt', q.attempts, 'seq', q.seq)
    FROM seqs q)
  SELECT q.id, NULL::uuid, q.attempts, 'in_app'::text, q.lane, q.user_id, q.notification_id, q.seq,
         n.category, n.priority, n.title, n.body, n.data, n.group_key, n.created_at,
         NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text
  FROM seqs q JOIN notifications n ON n.id = q.notification_id;
END
$$;
