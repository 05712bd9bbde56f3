-- What dispatch needs beyond "send this now" (issue 12): channel steps, in-app deliveries that go
-- through a worker, and inbox entries with their own (rendered) text.
--
-- * notifications.steps: the producer's channel steps as given ({"channel", "after", "unless"}),
--   null when every channel was a plain name. Only read back for the notification's view.
-- * deliveries.via_worker: an in-app delivery that herald_take leases like any other instead of
--   completing it in SQL, because a worker must do something first (render the category's template
--   for the user; later, decide on preferences or digests). The worker completes it with its text.
-- * deliveries.unless: 'read' or 'delivered' — a step's condition on the same notification's in-app
--   delivery to the same user, checked when the delivery is about to be sent.
-- * deliveries.reason: why a delivery was not sent, as a stable code (`opted_out`, `read`,
--   `no_address`, `no_provider`, …); null when it was sent or failed.
-- * inbox.title, inbox.body: the entry's text when it is not the notification's (rendered for this
--   user); null → the notification's.
--
-- Adding a nullable column, or one with a constant default, rewrites nothing.

ALTER TABLE notifications ADD COLUMN steps jsonb;
ALTER TABLE deliveries ADD COLUMN via_worker boolean NOT NULL DEFAULT false;
ALTER TABLE deliveries ADD COLUMN unless text;
ALTER TABLE deliveries ADD COLUMN reason text;
ALTER TABLE inbox ADD COLUMN title text;
ALTER TABLE inbox ADD COLUMN body text;

-- As in migration 0004, with the new columns (a missing key in the JSON is null / false).
CREATE OR REPLACE FUNCTION herald_accept(p_notifications json, p_deliveries json)
RETURNS TABLE (id uuid, seq bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  sent uuid[];
BEGIN
  INSERT INTO notifications (id, category, priority, channels, steps, title, body, data, send_at, group_key, recipients, created_at)
  SELECT * FROM json_to_recordset(p_notifications) AS r(id uuid, category text, priority text, channels text[],
    steps jsonb, title text, body text, data jsonb, send_at timestamptz, group_key text, recipients int,
    created_at timestamptz);
  WITH r AS (
    SELECT * FROM json_to_recordset(p_deliveries) AS r(id uuid, notification_id uuid, user_id text, channel text,
      lane text, next_attempt_at timestamptz, sent boolean, via_worker boolean, unless text)),
  inserted AS (
    INSERT INTO deliveries (id, notification_id, user_id, channel, lane, state, attempts, next_attempt_at, updated_at,
                            via_worker, unless)
    SELECT r.id, r.notification_id, r.user_id, r.channel, r.lane,
           CASE WHEN r.sent THEN 'sent' ELSE 'pending' END, CASE WHEN r.sent THEN 1 ELSE 0 END,
           r.next_attempt_at, now(), coalesce(r.via_worker, false), r.unless
    FROM r
    RETURNING id, state)
  SELECT array_agg(i.id) FILTER (WHERE i.state = 'sent') INTO sent FROM inserted i;
  IF sent IS NOT NULL THEN
    RETURN QUERY SELECT a.id, a.seq FROM herald_append_inbox(sent) a;
  END IF;
END
$$;

-- As in migration 0004, but an in-app delivery marked via_worker is leased, not completed, and every
-- row carries the delivery's `unless`.
DROP FUNCTION herald_take(double precision, uuid[], text, int);
CREATE FUNCTION herald_take(p_lease_ms double precision, p_ids uuid[], p_lane text, p_max int)
RETURNS TABLE (
  id uuid, lease_token uuid, attempts int, channel text, lane text, user_id text, notification_id uuid,
  seq bigint, category text, priority text, title text, body text, data jsonb, group_key text,
  created_at timestamptz, u_id text, email text, phone text, timezone text, locale text, webhook_url text,
  unless text
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
    SELECT array_agg(d.id ORDER BY d.id),
           array_agg(d.id ORDER BY d.id) FILTER (WHERE d.channel = 'in_app' AND NOT d.via_worker)
    INTO taken, in_app
    FROM (SELECT x.id, x.channel, x.via_worker FROM deliveries x
          WHERE x.id = ANY(p_ids)
            AND CASE WHEN x.state = 'pending' THEN x.next_attempt_at <= now() ELSE false END
          FOR UPDATE SKIP LOCKED) d;
  ELSE
    SELECT array_agg(d.id ORDER BY d.id),
           array_agg(d.id ORDER BY d.id) FILTER (WHERE d.channel = 'in_app' AND NOT d.via_worker)
    INTO taken, in_app
    FROM (SELECT x.id, x.channel, x.via_worker FROM deliveries x
          WHERE x.lane = p_lane AND x.state = 'pending' AND x.next_attempt_at <= now()
          ORDER BY x.next_attempt_at LIMIT p_max
          FOR UPDATE SKIP LOCKED) d;
  END IF;
  IF taken IS NULL THEN
    RETURN;
  END IF;
  in_app := coalesce(in_app, '{}');

  -- Leased: everything but the in-app deliveries completed below.
  RETURN QUERY
  WITH l AS (
    UPDATE deliveries d SET state = 'processing', attempts = d.attempts + 1, lease_token = gen_random_uuid(),
      lease_until = now() + p_lease_ms * interval '1 millisecond', updated_at = now()
    WHERE d.id = ANY(taken) AND (d.channel <> 'in_app' OR d.via_worker)
    RETURNING d.id, d.lease_token, d.attempts, d.channel, d.lane, d.user_id, d.notification_id, d.unless)
  SELECT l.id, l.lease_token, l.attempts, l.channel, l.lane, l.user_id, l.notification_id, NULL::bigint,
         n.category, n.priority, n.title, n.body, n.data, n.group_key, n.created_at,
         u.id, u.email, u.phone, u.timezone, u.locale, u.webhook_url, l.unless
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
         NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text
  FROM herald_append_inbox(in_app) q JOIN notifications n ON n.id = q.notification_id;
END
$$;
