-- Decisions before dispatch (issue 13, ADR 13): the decider runs at ingest and per page of a topic's
-- fan-out, and its decisions are stored with the deliveries by the accepting statement.
--
-- * notifications.expires_at: due time + ttl (the notification's, else its category's, else the
--   default retention). Not delivered after it (`skipped`, `expired`); what retention removes.
--   Null only for notifications accepted before this migration.
-- * deliveries.digest_id: the digest a `digested` delivery is collected into (it is sent inside it).
-- * category_policies: PUT /v1/categories/{category}, the validated policy as jsonb.
-- * digests: one row per user × category × channel × window — the unique key makes a second digest
--   for the same window impossible, whatever the number of workers or crashes (Novu #2569). A
--   digest is due at window_end; a worker leases it like a delivery (state, lease_token, lease_until).

ALTER TABLE notifications ADD COLUMN expires_at timestamptz;
ALTER TABLE deliveries ADD COLUMN digest_id uuid;
CREATE INDEX deliveries_by_digest ON deliveries (digest_id) WHERE digest_id IS NOT NULL;

CREATE TABLE category_policies (
  category    text PRIMARY KEY,
  policy      jsonb NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- state: pending | processing | sent | failed | dead | skipped (as a delivery's).
CREATE TABLE digests (
  id            uuid PRIMARY KEY,
  user_id       text NOT NULL,
  category      text NOT NULL,
  channel       text NOT NULL,
  window_start  timestamptz NOT NULL,
  window_end    timestamptz NOT NULL,
  state         text NOT NULL DEFAULT 'pending',
  attempts      int NOT NULL DEFAULT 0,
  lease_token   uuid,
  lease_until   timestamptz,
  last_error    text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, category, channel, window_start)
);
CREATE INDEX digests_due ON digests (window_end) WHERE state = 'pending';

-- As in migration 0009, with the notification's expires_at, and a third argument: the deliveries
-- the decider decided something about (null on the fast path, which is then exactly as before).
-- Each p_decided row is a delivery row plus `state` ('pending' or 'skipped'), `reason`, and for a
-- digested one `window_start`/`window_end`; each gets a timeline event ('skipped', 'deferred' or
-- 'digested', detail {userId, channel, reason, …}). A digested delivery joins its digest (created
-- here if it is the window's first member) while that digest is still pending; the digest row is
-- locked FOR SHARE so that a worker taking the digest waits for this commit and then sees the new
-- member. A digest already taken (its window closed while this was accepted) takes no more members:
-- the delivery is then sent on its own, now.
DROP FUNCTION herald_accept(json, json);
CREATE FUNCTION herald_accept(p_notifications json, p_deliveries json, p_decided json DEFAULT NULL)
RETURNS TABLE (id uuid, seq bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  sent uuid[];
BEGIN
  INSERT INTO notifications (id, category, priority, channels, steps, title, body, data, send_at, group_key, recipients,
                             created_at, expires_at)
  SELECT * FROM json_to_recordset(p_notifications) AS r(id uuid, category text, priority text, channels text[],
    steps jsonb, title text, body text, data jsonb, send_at timestamptz, group_key text, recipients int,
    created_at timestamptz, expires_at timestamptz);
  IF p_decided IS NOT NULL THEN
    PERFORM herald_accept_decided(p_decided);
  END IF;
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

-- The decided deliveries of herald_accept (see above), in their own function: the fast path's plan
-- does not grow. The notifications are already inserted (same transaction).
CREATE FUNCTION herald_accept_decided(p_decided json)
RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  -- Digests: created by their window's first member, in key order (concurrent accepts then wait for
  -- each other on the unique key instead of deadlocking).
  INSERT INTO digests (id, user_id, category, channel, window_start, window_end)
  SELECT gen_random_uuid(), k.user_id, k.category, k.channel, k.window_start, k.window_end
  FROM (SELECT DISTINCT r.user_id, n.category, r.channel, r.window_start, r.window_end
        FROM json_to_recordset(p_decided) AS r(notification_id uuid, user_id text, channel text,
          window_start timestamptz, window_end timestamptz)
        JOIN notifications n ON n.id = r.notification_id
        WHERE r.window_start IS NOT NULL) k
  ORDER BY k.user_id, k.category, k.channel, k.window_start
  ON CONFLICT (user_id, category, channel, window_start) DO NOTHING;

  -- A new statement: it sees the digests committed by concurrent accepts while this one waited.
  WITH r AS (
    SELECT r.*, n.category
    FROM json_to_recordset(p_decided) AS r(id uuid, notification_id uuid, user_id text, channel text, lane text,
      next_attempt_at timestamptz, via_worker boolean, unless text, state text, reason text,
      window_start timestamptz, window_end timestamptz)
    JOIN notifications n ON n.id = r.notification_id),
  g AS (
    SELECT g.id, g.state, g.user_id, g.category, g.channel, g.window_start FROM digests g
    WHERE (g.user_id, g.category, g.channel, g.window_start) IN
          (SELECT r.user_id, r.category, r.channel, r.window_start FROM r WHERE r.window_start IS NOT NULL)
    FOR SHARE),
  d AS (
    SELECT r.*, CASE WHEN g.state = 'pending' THEN g.id END AS digest_id FROM r
    LEFT JOIN g ON (g.user_id, g.category, g.channel, g.window_start) = (r.user_id, r.category, r.channel, r.window_start)),
  ins AS (
    INSERT INTO deliveries (id, notification_id, user_id, channel, lane, state, attempts, next_attempt_at, updated_at,
                            via_worker, unless, reason, digest_id)
    SELECT d.id, d.notification_id, d.user_id, d.channel, d.lane, d.state, 0,
           CASE WHEN d.digest_id IS NOT NULL THEN 'infinity'::timestamptz ELSE d.next_attempt_at END, now(),
           coalesce(d.via_worker, false), d.unless,
           -- A closed digest (taken while this was accepted) takes no more members: sent on its own, now.
           CASE WHEN d.window_start IS NOT NULL AND d.digest_id IS NULL THEN NULL ELSE d.reason END, d.digest_id
    FROM d
    RETURNING id, notification_id, user_id, channel, state, reason, next_attempt_at, digest_id)
  INSERT INTO timeline (notification_id, delivery_id, event, detail)
  SELECT i.notification_id, i.id,
         CASE WHEN i.state = 'skipped' THEN 'skipped' WHEN i.digest_id IS NOT NULL THEN 'digested' ELSE 'deferred' END,
         jsonb_strip_nulls(jsonb_build_object('userId', i.user_id, 'channel', i.channel, 'reason', i.reason,
           'until', CASE WHEN i.reason = 'quiet_hours' THEN i.next_attempt_at END,
           'digestId', i.digest_id, 'windowEnd', d.window_end))
  FROM ins i JOIN d ON d.id = i.id
  WHERE i.reason IS NOT NULL;
END
$$;
