-- Topics and fan-out (issue 13): subscribers of a topic, fan-out jobs expanding a topic notification
-- page by page, and fan-out on read for the in-app inbox of large topics.
--
-- * topics: one row per topic anyone ever subscribed to, with its live subscriber count (kept by the
--   statements that subscribe and unsubscribe, in the same transaction: GET /v1/topics/{topic} and the
--   fan-out-on-read threshold read one row, not a count over a million).
-- * topic_subscriptions: (topic, user_id), the order fan-out pages through (keyset). An unsubscribe
--   leaves a tombstone (unsubscribed_at) so that a fan-out accepted before it still finds the user:
--   the audience of a topic notification is the subscribers at its acceptance, `cutoff`:
--   subscribed_at <= cutoff AND (unsubscribed_at IS NULL OR unsubscribed_at > cutoff). Both times are
--   the database's now() (one clock). A re-subscribe clears the tombstone and moves subscribed_at.
--   Tombstones older than every running fan-out's cutoff are purged by maintenance.
-- * fanout_jobs: one per topic notification, inserted in the transaction that accepts it. `after_user`
--   is the checkpoint: every subscriber up to it (in user_id order) has been served, and the page that
--   moved it committed its deliveries in the same transaction. A job is held by one runner at a time
--   (lease_token, lease_until, compare-and-set like a delivery's lease); a page whose token no longer
--   matches writes nothing. `in_app_on_read`: the in-app channel of this notification is read through
--   the subscription (topic_items below), not written per subscriber.
-- * topic_items: the in-app items of fan-out-on-read notifications, one row per notification.
--   A subscriber's inbox gets them lazily (herald_materialize_topics): when the user's inbox is read
--   (state, list, replay) or a live frame would go to them, the items newer than their subscription's
--   watermark (`seen_item`) that they were in the audience of are appended to their inbox as ordinary
--   entries with ordinary seqs, in one statement. Writes are O(users who look), not O(subscribers).
-- * topic_subscriptions.seen_item: the last topic item (topic_items.seq) considered for this user,
--   materialized or not in their audience. Items of a topic are numbered by topics.last_item, bumped in
--   the accepting transaction (the topic's row stays locked until it commits), so whoever reads
--   last_item = k also sees every item up to k: a watermark never passes an item still being written.

CREATE TABLE topics (
  name         text PRIMARY KEY,
  subscribers  bigint NOT NULL DEFAULT 0,
  last_item    bigint NOT NULL DEFAULT 0,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE topic_subscriptions (
  topic            text NOT NULL,
  user_id          text NOT NULL,
  subscribed_at    timestamptz NOT NULL,
  unsubscribed_at  timestamptz,
  seen_item        bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (topic, user_id)
);
-- A user's topics, for fan-out on read (which topics' items are theirs).
CREATE INDEX topic_subscriptions_by_user ON topic_subscriptions (user_id, topic);

CREATE TABLE fanout_jobs (
  notification_id  uuid PRIMARY KEY,
  topic            text NOT NULL,
  lane             text NOT NULL,
  cutoff           timestamptz NOT NULL,
  in_app_on_read   boolean NOT NULL DEFAULT false,
  state            text NOT NULL DEFAULT 'running',
  after_user       text,
  pages            int NOT NULL DEFAULT 0,
  served           bigint NOT NULL DEFAULT 0,
  lease_token      uuid,
  lease_until      timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fanout_jobs_running ON fanout_jobs (created_at) WHERE state = 'running';

CREATE TABLE topic_items (
  topic            text NOT NULL,
  seq              bigint NOT NULL,
  notification_id  uuid NOT NULL,
  cutoff           timestamptz NOT NULL,
  PRIMARY KEY (topic, seq)
);

-- One page of a fan-out on write, in one statement and so in one transaction: the next `p_limit`
-- subscribers of the audience after the checkpoint (keyset on user_id), one delivery per subscriber ×
-- entry of `p_plan`, the in-app ones due now completed here (inbox entry with the user's next seq,
-- state 'sent'), the checkpoint moved past the page, one `fanout_progress` timeline event (and
-- `fanout_done` with the recipients on the last page). A page whose lease token no longer matches
-- writes nothing and returns nothing: another runner holds the job.
--
-- p_plan: JSON array, one object per channel in the notification's order: {"ord" (1, 2, …),
-- "channel", "at" (due time), "unless", "inline" (in-app due now: completed here), "via_worker", "row"}.
-- An inline in-app delivery has no deliveries row unless "row" is true (a step's `unless` reads it):
-- its inbox entry is the record of it (unique by its delivery id, written only by the page that
-- moves the checkpoint past its user), so a recipient costs two rows, entry and counter. Delivery ids are
-- p_id_prefix (the first 24 characters of a UUIDv7 taken for this page) followed by p_id_start + i in
-- 12 hex digits, i numbering subscriber × channel in (user_id, channel) order: one subscriber's
-- deliveries have consecutive ids (ADR 0010's neighbour read), and every id of a page is above the
-- previous page's. p_live: users whose entries the caller pushes to sockets now (those connected to
-- this process); their entries come back as rows of kind 'live'. p_jobs: return the pending
-- deliveries as rows of kind 'job' (for a bus with its own queue). The last row is kind 'page':
-- seq = the page's recipients, user_id = the checkpoint, done = whether the job finished.
--
-- No per-delivery timeline event: the page's event counts them, and each delivery row says its state.
CREATE FUNCTION herald_fanout_page(p_job uuid, p_token uuid, p_limit int, p_id_prefix text, p_id_start bigint,
                                   p_plan json, p_live text[], p_jobs boolean)
RETURNS TABLE (kind text, user_id text, delivery_id uuid, seq bigint, channel text, run_at timestamptz, done boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  j fanout_jobs%ROWTYPE;
  users text[];
  n int;
  width int;
  inline_ord int;
  finished boolean;
BEGIN
  SELECT * INTO j FROM fanout_jobs f WHERE f.notification_id = p_job FOR UPDATE;
  IF NOT FOUND OR j.state <> 'running' OR j.lease_token IS DISTINCT FROM p_token THEN
    RETURN;
  END IF;

  SELECT array_agg(s.user_id ORDER BY s.user_id) INTO users FROM (
    SELECT t.user_id FROM topic_subscriptions t
    WHERE t.topic = j.topic AND t.user_id > coalesce(j.after_user, '')
      AND t.subscribed_at <= j.cutoff AND (t.unsubscribed_at IS NULL OR t.unsubscribed_at > j.cutoff)
    ORDER BY t.user_id LIMIT p_limit) s;
  n := coalesce(cardinality(users), 0);
  width := json_array_length(p_plan);
  SELECT p.ord INTO inline_ord FROM json_to_recordset(p_plan)
    AS p(ord int, channel text, at timestamptz, unless text, inline boolean, via_worker boolean)
  WHERE p.inline LIMIT 1;

  IF n > 0 THEN
    INSERT INTO deliveries (id, notification_id, user_id, channel, lane, state, attempts, next_attempt_at, updated_at,
                            via_worker, unless)
    SELECT (p_id_prefix || lpad(to_hex(p_id_start + (u.k - 1) * width + p.ord - 1), 12, '0'))::uuid,
           j.notification_id, u.user_id, p.channel, j.lane,
           CASE WHEN p.inline THEN 'sent' ELSE 'pending' END, CASE WHEN p.inline THEN 1 ELSE 0 END,
           p.at, now(), coalesce(p.via_worker, false), p.unless
    FROM unnest(users) WITH ORDINALITY AS u(user_id, k)
    CROSS JOIN json_to_recordset(p_plan)
      AS p(ord int, channel text, at timestamptz, unless text, inline boolean, via_worker boolean, row boolean)
    WHERE NOT p.inline OR p.row
    ORDER BY u.k, p.ord;

    IF inline_ord IS NOT NULL THEN
      -- Counter rows upserted in user order (no deadlock with another append) and locked to commit.
      WITH c AS (
        INSERT INTO inbox_counters AS c (user_id, last_seq, unread)
        SELECT u.user_id, 1, 1 FROM unnest(users) AS u(user_id) ORDER BY u.user_id
        ON CONFLICT ON CONSTRAINT inbox_counters_pkey
        DO UPDATE SET last_seq = c.last_seq + 1, unread = c.unread + 1,
          unread_from = CASE WHEN c.unread = 0 THEN c.last_seq + 1 ELSE c.unread_from END
        RETURNING c.user_id, c.last_seq)
      INSERT INTO inbox (user_id, seq, notification_id, delivery_id)
      SELECT c.user_id, c.last_seq, j.notification_id,
             (p_id_prefix || lpad(to_hex(p_id_start + (u.k - 1) * width + inline_ord - 1), 12, '0'))::uuid
      FROM c JOIN unnest(users) WITH ORDINALITY AS u(user_id, k) ON u.user_id = c.user_id;
    END IF;
  END IF;

  finished := n < p_limit;
  UPDATE fanout_jobs f SET after_user = coalesce(users[n], f.after_user), pages = f.pages + 1, served = f.served + n,
    state = CASE WHEN finished THEN 'done' ELSE 'running' END,
    lease_token = CASE WHEN finished THEN NULL ELSE f.lease_token END,
    lease_until = CASE WHEN finished THEN NULL ELSE f.lease_until END, updated_at = now()
  WHERE f.notification_id = p_job
  RETURNING * INTO j;
  INSERT INTO timeline (notification_id, event, detail)
  VALUES (j.notification_id, 'fanout_progress',
          jsonb_build_object('page', j.pages, 'recipients', n, 'served', j.served));
  IF finished THEN
    UPDATE notifications SET recipients = j.served WHERE id = j.notification_id;
    INSERT INTO timeline (notification_id, event, detail)
    VALUES (j.notification_id, 'fanout_done', jsonb_build_object('recipients', j.served, 'pages', j.pages));
  END IF;

  IF inline_ord IS NOT NULL AND n > 0 AND cardinality(p_live) > 0 THEN
    RETURN QUERY
    SELECT 'live'::text, u.user_id,
           (p_id_prefix || lpad(to_hex(p_id_start + (u.k - 1) * width + inline_ord - 1), 12, '0'))::uuid,
           c.last_seq, 'in_app'::text, NULL::timestamptz, NULL::boolean
    FROM unnest(users) WITH ORDINALITY AS u(user_id, k) JOIN inbox_counters c ON c.user_id = u.user_id
    WHERE u.user_id = ANY(p_live);
  END IF;
  IF p_jobs AND n > 0 THEN
    RETURN QUERY
    SELECT 'job'::text, d.user_id, d.id, NULL::bigint, d.channel, d.next_attempt_at, NULL::boolean
    FROM deliveries d
    WHERE d.id >= (p_id_prefix || lpad(to_hex(p_id_start), 12, '0'))::uuid
      AND d.id <= (p_id_prefix || lpad(to_hex(p_id_start + n * width - 1), 12, '0'))::uuid
      AND d.state = 'pending';
  END IF;
  RETURN QUERY SELECT 'page'::text, j.after_user, NULL::uuid, n::bigint, NULL::text, NULL::timestamptz, finished;
END
$$;

-- Fan-out on read: appends to the inbox of each of p_users the topic items they have not had yet
-- (items of their subscriptions above seen_item, up to the topic's last_item) that they were in the
-- audience of (subscribed at the item's cutoff, not unsubscribed by then). The subscriptions are
-- locked and their watermarks moved in the same statement, so two concurrent calls for a user never
-- append an item twice (the second waits, then finds nothing above the new watermark). Entries are
-- ordinary: the user's next seqs (counter rows upserted in user order, as herald_append_inbox does),
-- unread, and the delivery id a fresh UUID (no deliveries row: the topic's item is the record).
-- A user's items are appended in notification id (creation) order. Returns the appended entries.
CREATE FUNCTION herald_materialize_topics(p_users text[])
RETURNS TABLE (user_id text, seq bigint, notification_id uuid, delivery_id uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  us text[];
  ns uuid[];
BEGIN
  WITH w AS (
    UPDATE topic_subscriptions s SET seen_item = x.last_item
    FROM (SELECT s2.topic, s2.user_id, s2.seen_item AS old, t.last_item
          FROM topic_subscriptions s2 JOIN topics t ON t.name = s2.topic
          WHERE s2.user_id = ANY(p_users) AND t.last_item > s2.seen_item
          ORDER BY s2.user_id, s2.topic
          FOR UPDATE OF s2) x
    WHERE s.topic = x.topic AND s.user_id = x.user_id AND s.seen_item = x.old
    RETURNING s.user_id, s.topic, x.old, x.last_item, s.subscribed_at, s.unsubscribed_at)
  SELECT array_agg(w.user_id ORDER BY w.user_id, i.notification_id), array_agg(i.notification_id ORDER BY w.user_id, i.notification_id)
  INTO us, ns
  FROM w JOIN topic_items i ON i.topic = w.topic AND i.seq > w.old AND i.seq <= w.last_item
  WHERE i.cutoff >= w.subscribed_at AND (w.unsubscribed_at IS NULL OR w.unsubscribed_at > i.cutoff);
  IF us IS NULL THEN
    RETURN;
  END IF;

  INSERT INTO inbox_counters AS c (user_id, last_seq, unread)
  SELECT u, count(*), count(*) FROM unnest(us) AS u GROUP BY u ORDER BY u
  ON CONFLICT ON CONSTRAINT inbox_counters_pkey
  DO UPDATE SET last_seq = c.last_seq + EXCLUDED.last_seq, unread = c.unread + EXCLUDED.unread,
    unread_from = CASE WHEN c.unread = 0 THEN c.last_seq + 1 ELSE c.unread_from END;

  RETURN QUERY
  WITH e AS (
    SELECT x.u, x.n_id, count(*) OVER w AS n, row_number() OVER (w ORDER BY x.k) AS k
    FROM unnest(us, ns) WITH ORDINALITY AS x(u, n_id, k)
    WINDOW w AS (PARTITION BY x.u)),
  q AS (
    SELECT e.u, e.n_id, c.last_seq - e.n + e.k AS seq, gen_random_uuid() AS d_id
    FROM e JOIN inbox_counters c ON c.user_id = e.u),
  appended AS (
    INSERT INTO inbox (user_id, seq, notification_id, delivery_id) SELECT q.u, q.seq, q.n_id, q.d_id FROM q)
  SELECT q.u, q.seq, q.n_id, q.d_id FROM q;
END
$$;
