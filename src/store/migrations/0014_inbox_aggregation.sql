-- Aggregation by groupKey (issue 13, API.md Part 2 "Digests and aggregation"): a user's in-app
-- notifications with the same groupKey within a window (1 hour, or the category's digest.window)
-- are one inbox item with a count and the latest notification. The item gets a new seq each time it
-- changes; the new row carries the seqs it replaced and the old row is deleted, in the statement
-- that appends it (atomic with the seq).
--
-- * Only in-app deliveries of notifications with a groupKey pay: they are accepted `via_worker`
--   (src/store/sql-notifications.ts), so herald_accept, herald_take and herald_append_inbox (the
--   fast path) are unchanged, and a worker completes them through herald_complete_in_app below.
-- * inbox.group_key, group_count, group_until (the end of the item's window, fixed when its first
--   notification arrives and kept by every item that replaces it) and replaced (every seq this item
--   replaced, oldest first, the last 100 kept) are null for every other entry: a null column costs
--   nothing, and the partial index below is written for grouped entries only.
-- * A user's entries of one group key never have overlapping windows, so only the newest of them can
--   be open: the lookup reads one index entry per group.

ALTER TABLE inbox ADD COLUMN group_key text;
ALTER TABLE inbox ADD COLUMN group_count int;
ALTER TABLE inbox ADD COLUMN group_until timestamptz;
ALTER TABLE inbox ADD COLUMN replaced bigint[];
CREATE INDEX inbox_groups ON inbox (user_id, group_key, seq) WHERE group_key IS NOT NULL;

-- As in migration 0010, plus aggregation. p_group_keys: each delivery's notification's groupKey (null:
-- none); p_windows_ms: its group's window in milliseconds (used when the delivery opens a new item).
-- Returns one row per completed delivery: its item's seq, and for a grouped one the item's count, the
-- seq it replaced (null: none) and `folded` (true: another delivery of this call, newer, heads the
-- item; its notification is not the item's latest) and the user's unread count after the call (for
-- clients, which cannot know whether the replaced item was read; src/core/worker.ts pushes it).
--
-- The counter rows are upserted first, in user order, one seq per item (a user's deliveries of one
-- group in this call make one item): this locks them to commit, so the open item looked up by the
-- next statement (a new snapshot) is the newest committed one, and concurrent appends of the same
-- group end in one item. The tentative unread count (one per item) is then corrected for the
-- replaced items that were unread: replacing an unread item leaves the count as it was, replacing a
-- read one adds one (the new item, with news the user has not seen, is unread). unread_from stays a
-- lower bound of the unread seqs: a deleted entry below every unread one changes nothing.
DROP FUNCTION herald_complete_in_app(uuid[], uuid[], text[], text[], jsonb[]);
CREATE FUNCTION herald_complete_in_app(p_ids uuid[], p_tokens uuid[], p_titles text[], p_bodies text[],
                                       p_details jsonb[], p_group_keys text[], p_windows_ms double precision[])
RETURNS TABLE (id uuid, seq bigint, group_count int, replaces bigint, folded boolean, unread bigint)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
  done uuid[];
BEGIN
  WITH c AS (SELECT * FROM unnest(p_ids, p_tokens) AS c(id, token)),
  u AS (
    UPDATE deliveries d SET state = 'sent', last_error = NULL, reason = NULL, lease_token = NULL, lease_until = NULL,
      updated_at = now()
    FROM c
    WHERE d.id = ANY(p_ids) AND d.id = c.id AND d.lease_token = c.token AND d.state = 'processing'
      AND d.channel = 'in_app'
    RETURNING d.id)
  SELECT array_agg(u.id) INTO done FROM u;
  IF done IS NULL THEN
    RETURN;
  END IF;

  -- One seq per item: a delivery without a group key is an item; a user's deliveries of one group are one.
  INSERT INTO inbox_counters AS c (user_id, last_seq, unread)
  SELECT x.user_id, count(*), count(*)
  FROM (SELECT DISTINCT d.user_id, coalesce('g' || t.gk, 'd' || d.id::text) AS item
        FROM deliveries d JOIN unnest(p_ids, p_group_keys) AS t(id, gk) ON t.id = d.id
        WHERE d.id = ANY(done)) x
  GROUP BY x.user_id ORDER BY x.user_id
  ON CONFLICT ON CONSTRAINT inbox_counters_pkey
  DO UPDATE SET last_seq = c.last_seq + EXCLUDED.last_seq, unread = c.unread + EXCLUDED.unread,
    unread_from = CASE WHEN c.unread = 0 THEN c.last_seq + 1 ELSE c.unread_from END;

  -- A user's k-th item of this call (in the order of their newest deliveries) of n gets last_seq - n + k.
  RETURN QUERY
  WITH t AS (
    SELECT * FROM unnest(p_ids, p_titles, p_bodies, p_details, p_group_keys, p_windows_ms)
      AS t(id, title, body, detail, gk, window_ms)),
  s AS (
    SELECT d.id, d.attempts, d.user_id, d.notification_id, t.title, t.body, t.detail, t.gk, t.window_ms,
           coalesce('g' || t.gk, 'd' || d.id::text) AS item
    FROM deliveries d JOIN t ON t.id = d.id WHERE d.id = ANY(done)),
  g AS (
    SELECT s.user_id, s.item, min(s.gk) AS gk, (array_agg(s.id ORDER BY s.id DESC))[1] AS head, count(*)::int AS k,
           max(s.window_ms) AS window_ms
    FROM s GROUP BY s.user_id, s.item),
  numbered AS (
    SELECT g.*, count(*) OVER w AS n, row_number() OVER (w ORDER BY g.head) AS r
    FROM g WINDOW w AS (PARTITION BY g.user_id)),
  items AS (
    SELECT m.user_id, m.item, m.gk, m.head, m.k, m.window_ms, c.last_seq - m.n + m.r AS seq, c.unread,
           o.seq AS old_seq, o.group_count AS old_count, o.read_at AS old_read_at, o.group_until AS old_until,
           o.replaced AS old_replaced
    FROM numbered m JOIN inbox_counters c ON c.user_id = m.user_id
    LEFT JOIN LATERAL (
      SELECT i.seq, i.group_count, i.read_at, i.group_until, i.replaced FROM inbox i
      WHERE m.gk IS NOT NULL AND i.user_id = m.user_id AND i.group_key = m.gk
      ORDER BY i.seq DESC LIMIT 1) o ON o.group_until > now()),
  appended AS (
    INSERT INTO inbox (user_id, seq, notification_id, delivery_id, title, body, group_key, group_count, group_until,
                       replaced)
    SELECT it.user_id, it.seq, h.notification_id, h.id, h.title, h.body, it.gk,
           CASE WHEN it.gk IS NOT NULL THEN it.k + coalesce(it.old_count, 0) END,
           CASE WHEN it.gk IS NOT NULL
                THEN coalesce(it.old_until, now() + coalesce(it.window_ms, 3600000) * interval '1 millisecond') END,
           CASE WHEN it.old_seq IS NOT NULL
                THEN (coalesce(it.old_replaced, '{}') || it.old_seq)[greatest(1, cardinality(it.old_replaced) - 98):] END
    FROM items it JOIN s h ON h.id = it.head),
  gone AS (
    DELETE FROM inbox i USING items it
    WHERE it.old_seq IS NOT NULL AND i.user_id = it.user_id AND i.seq = it.old_seq),
  fix AS (
    SELECT it.user_id, count(*) AS n FROM items it
    WHERE it.old_seq IS NOT NULL AND it.old_read_at IS NULL GROUP BY it.user_id),
  recount AS (
    UPDATE inbox_counters c SET unread = c.unread - x.n FROM fix x WHERE c.user_id = x.user_id),
  q AS (
    SELECT s.id, s.attempts, s.user_id, s.notification_id, s.detail, s.gk, it.seq, it.head,
           CASE WHEN it.gk IS NOT NULL THEN it.k + coalesce(it.old_count, 0) END AS cnt, it.old_seq,
           it.unread - coalesce(x.n, 0) AS unread
    FROM s JOIN items it ON it.user_id = s.user_id AND it.item = s.item LEFT JOIN fix x ON x.user_id = s.user_id),
  events AS (
    INSERT INTO timeline (notification_id, delivery_id, event, detail)
    SELECT q.notification_id, q.id, 'sent',
           jsonb_build_object('userId', q.user_id, 'channel', 'in_app', 'attempt', q.attempts, 'seq', q.seq)
             || CASE WHEN q.gk IS NULL THEN '{}'::jsonb
                     ELSE jsonb_strip_nulls(jsonb_build_object('groupKey', q.gk, 'count', q.cnt, 'replaces', q.old_seq))
                END
             || coalesce(q.detail, '{}'::jsonb)
    FROM q)
  SELECT q.id, q.seq, q.cnt, q.old_seq, q.id <> q.head, q.unread FROM q;
END
$$;
