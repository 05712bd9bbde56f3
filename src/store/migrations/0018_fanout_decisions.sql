-- Topics, second round (issue 13, ADR 13): the decider runs on every page of a fan-out on write, and
-- its decisions are stored by the page itself, in the transaction that moves the checkpoint.
--
-- * fanout_jobs.ttl_ms: the notification's own ttl (the decider sends an in-app delivery of a
--   notification with its own ttl through a worker, whose gate checks it at send time).
-- * herald_fanout_page gains four arguments, all defaulting to NULL (the call of migration 0013 keeps
--   its meaning): p_users, the page's subscribers as the caller read them (herald_fanout_audience's
--   rows, after the checkpoint p_after: the page writes nothing unless the job's checkpoint is still
--   p_after); p_skip, the delivery offsets ((k - 1) × width + ord - 1, k the user's position in
--   p_users) that the decider decided something about, left out of the fast write; p_decided, those
--   deliveries as herald_accept_decided (migration 0012) takes them — skipped, deferred, digested, or
--   pending via_worker (an in-app delivery a send-time gate must see), each with its timeline event.
--   An in-app pair in p_skip gets no inbox entry from the page. Without p_skip the page's statements
--   are those of migration 0013.
-- * p_lease_ms: the page also extends the job's lease by that much (the runner then renews it with
--   no statement of its own between pages).
-- * A page commits asynchronously (synchronous_commit off for its transaction only) unless it
--   completes an in-app entry of a user in p_live. Why that is safe: the page's rows and its
--   checkpoint are one transaction, and an asynchronous commit is atomic too — a server crash loses
--   the last pages whole (at most about three wal_writer_delay of them), never half of one, and the
--   recovered database is consistent: the checkpoint is back before the lost pages, their deliveries
--   and inbox entries are gone with it, and the next runner serves those subscribers again. Nobody
--   is served twice and nobody is skipped. What a crash could not take back is what left the
--   database before the WAL reached the disk: an entry pushed to a socket (its seq would be given
--   again to another entry) — so a page that pushes keeps the synchronous commit — and bus
--   announcements, which name deliveries that then do not exist (a worker finds no row and moves on).
--   Any later synchronous commit (an accept, a read) flushes the WAL up to it, pages included.
-- * topic_subscriptions_tombstones: the purge (purgeTopics) finds old tombstones without a scan.

ALTER TABLE fanout_jobs ADD COLUMN ttl_ms bigint;
CREATE INDEX topic_subscriptions_tombstones ON topic_subscriptions (unsubscribed_at) WHERE unsubscribed_at IS NOT NULL;

-- The next p_limit subscribers of a job's audience after p_after (keyset on user_id), in order.
CREATE FUNCTION herald_fanout_audience(p_job uuid, p_after text, p_limit int)
RETURNS TABLE (user_id text)
LANGUAGE sql STABLE AS $$
  SELECT t.user_id FROM fanout_jobs j JOIN topic_subscriptions t ON t.topic = j.topic
  WHERE j.notification_id = p_job AND t.user_id > coalesce(p_after, '')
    AND t.subscribed_at <= j.cutoff AND (t.unsubscribed_at IS NULL OR t.unsubscribed_at > j.cutoff)
  ORDER BY t.user_id LIMIT p_limit
$$;

DROP FUNCTION herald_fanout_page(uuid, uuid, int, text, bigint, json, text[], boolean);
CREATE FUNCTION herald_fanout_page(p_job uuid, p_token uuid, p_limit int, p_id_prefix text, p_id_start bigint,
                                   p_plan json, p_live text[], p_jobs boolean, p_users text[] DEFAULT NULL,
                                   p_after text DEFAULT NULL, p_skip bigint[] DEFAULT NULL, p_decided json DEFAULT NULL,
                                   p_lease_ms int DEFAULT NULL)
RETURNS TABLE (kind text, user_id text, delivery_id uuid, seq bigint, channel text, run_at timestamptz, done boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  j fanout_jobs%ROWTYPE;
  users text[];
  inl text[];
  n int;
  width int;
  inline_ord int;
  finished boolean;
  pushed bigint := 0;
BEGIN
  SELECT * INTO j FROM fanout_jobs f WHERE f.notification_id = p_job FOR UPDATE;
  IF NOT FOUND OR j.state <> 'running' OR j.lease_token IS DISTINCT FROM p_token
     OR (p_users IS NOT NULL AND j.after_user IS DISTINCT FROM p_after) THEN
    RETURN;
  END IF;

  IF p_users IS NOT NULL THEN
    users := p_users;
  ELSE
    SELECT array_agg(s.user_id ORDER BY s.user_id) INTO users FROM (
      SELECT t.user_id FROM topic_subscriptions t
      WHERE t.topic = j.topic AND t.user_id > coalesce(j.after_user, '')
        AND t.subscribed_at <= j.cutoff AND (t.unsubscribed_at IS NULL OR t.unsubscribed_at > j.cutoff)
      ORDER BY t.user_id LIMIT p_limit) s;
  END IF;
  n := coalesce(cardinality(users), 0);
  width := json_array_length(p_plan);
  SELECT p.ord INTO inline_ord FROM json_to_recordset(p_plan)
    AS p(ord int, channel text, at timestamptz, unless text, inline boolean, via_worker boolean)
  WHERE p.inline LIMIT 1;
  inl := users;

  IF n > 0 AND p_skip IS NULL THEN
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
  ELSIF n > 0 THEN
    -- The same rows but those decided, which herald_accept_decided stores with their events.
    INSERT INTO deliveries (id, notification_id, user_id, channel, lane, state, attempts, next_attempt_at, updated_at,
                            via_worker, unless)
    SELECT (p_id_prefix || lpad(to_hex(p_id_start + (u.k - 1) * width + p.ord - 1), 12, '0'))::uuid,
           j.notification_id, u.user_id, p.channel, j.lane,
           CASE WHEN p.inline THEN 'sent' ELSE 'pending' END, CASE WHEN p.inline THEN 1 ELSE 0 END,
           p.at, now(), coalesce(p.via_worker, false), p.unless
    FROM unnest(users) WITH ORDINALITY AS u(user_id, k)
    CROSS JOIN json_to_recordset(p_plan)
      AS p(ord int, channel text, at timestamptz, unless text, inline boolean, via_worker boolean, row boolean)
    WHERE (NOT p.inline OR p.row)
      AND NOT EXISTS (SELECT 1 FROM unnest(p_skip) AS s(o) WHERE s.o = (u.k - 1) * width + p.ord - 1)
    ORDER BY u.k, p.ord;
    PERFORM herald_accept_decided(p_decided);
    IF inline_ord IS NOT NULL THEN
      SELECT array_agg(u.user_id ORDER BY u.k) INTO inl FROM unnest(users) WITH ORDINALITY AS u(user_id, k)
      WHERE NOT EXISTS (SELECT 1 FROM unnest(p_skip) AS s(o) WHERE s.o = (u.k - 1) * width + inline_ord - 1);
    END IF;
  END IF;

  IF n > 0 AND inline_ord IS NOT NULL AND inl IS NOT NULL THEN
    -- Counter rows upserted in user order (no deadlock with another append) and locked to commit.
    WITH c AS (
      INSERT INTO inbox_counters AS c (user_id, last_seq, unread)
      SELECT u.user_id, 1, 1 FROM unnest(inl) AS u(user_id) ORDER BY u.user_id
      ON CONFLICT ON CONSTRAINT inbox_counters_pkey
      DO UPDATE SET last_seq = c.last_seq + 1, unread = c.unread + 1,
        unread_from = CASE WHEN c.unread = 0 THEN c.last_seq + 1 ELSE c.unread_from END
      RETURNING c.user_id, c.last_seq)
    INSERT INTO inbox (user_id, seq, notification_id, delivery_id)
    SELECT c.user_id, c.last_seq, j.notification_id,
           (p_id_prefix || lpad(to_hex(p_id_start + (u.k - 1) * width + inline_ord - 1), 12, '0'))::uuid
    FROM c JOIN unnest(users) WITH ORDINALITY AS u(user_id, k) ON u.user_id = c.user_id;
  END IF;

  finished := n < p_limit;
  UPDATE fanout_jobs f SET after_user = coalesce(users[n], f.after_user), pages = f.pages + 1, served = f.served + n,
    state = CASE WHEN finished THEN 'done' ELSE 'running' END,
    lease_token = CASE WHEN finished THEN NULL ELSE f.lease_token END,
    lease_until = CASE WHEN finished THEN NULL
                       WHEN p_lease_ms IS NOT NULL THEN now() + p_lease_ms * interval '1 millisecond'
                       ELSE f.lease_until END,
    updated_at = now()
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
    WHERE u.user_id = ANY(p_live)
      AND (p_skip IS NULL OR NOT EXISTS (SELECT 1 FROM unnest(p_skip) AS s(o) WHERE s.o = (u.k - 1) * width + inline_ord - 1));
    GET DIAGNOSTICS pushed = ROW_COUNT;
  END IF;
  -- Asynchronous commit, unless a socket learns a seq from this page (see the header).
  IF pushed = 0 THEN
    PERFORM set_config('synchronous_commit', 'off', true);
  END IF;
  IF p_jobs AND n > 0 THEN
    -- Pending deliveries a worker takes (not the digested ones: their digest is sent at its window's end).
    RETURN QUERY
    SELECT 'job'::text, d.user_id, d.id, NULL::bigint, d.channel, d.next_attempt_at, NULL::boolean
    FROM deliveries d
    WHERE d.id >= (p_id_prefix || lpad(to_hex(p_id_start), 12, '0'))::uuid
      AND d.id <= (p_id_prefix || lpad(to_hex(p_id_start + n * width - 1), 12, '0'))::uuid
      AND d.state = 'pending' AND d.digest_id IS NULL;
  END IF;
  RETURN QUERY SELECT 'page'::text, j.after_user, NULL::uuid, n::bigint, NULL::text, NULL::timestamptz, finished;
END
$$;
