-- Reading a user's unread entries, and marking them read, no longer visits every entry the user
-- has ever read. Without an index on unread entries (migration 0004 dropped it: every append and
-- every read paid for it), "newest unread first" walked the user's entries from the newest down,
-- read or not, until it had a page — for a user who reads everything, all of them, every time the
-- bell opened; "mark all read" did the same.
--
-- inbox_counters.unread_from is the user's first unread seq (last_seq + 1 when nothing is unread):
-- every entry with a lower seq is read. Both queries scan the user's entries from it upwards only.
-- An append that finds nothing unread sets it to its first seq; a read moves it to the first entry
-- still unread (SqlInboxStore.markRead; each read entry is stepped over once). It costs no extra
-- row write: every append and every read already writes the counter row.

ALTER TABLE inbox_counters ADD COLUMN unread_from bigint NOT NULL DEFAULT 1;
UPDATE inbox_counters c SET unread_from = coalesce(
  (SELECT min(i.seq) FROM inbox i WHERE i.user_id = c.user_id AND i.read_at IS NULL), c.last_seq + 1);

-- As in migration 0004, with unread_from kept by the counter upsert.
CREATE OR REPLACE FUNCTION herald_append_inbox(p_ids uuid[])
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
  DO UPDATE SET last_seq = c.last_seq + EXCLUDED.last_seq, unread = c.unread + EXCLUDED.unread,
    unread_from = CASE WHEN c.unread = 0 THEN c.last_seq + 1 ELSE c.unread_from END;

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
