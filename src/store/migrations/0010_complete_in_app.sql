-- In-app deliveries rendered by a worker (issue 12, templates at delivery). An in-app delivery of a
-- category with a template is inserted with via_worker (migration 0009), so herald_take leases it
-- instead of completing it; the worker renders it for its user and then calls herald_complete_in_app,
-- which records it `sent` and appends its inbox entry with the rendered text in one statement.
--
-- p_ids, p_tokens: the deliveries and their lease tokens (a delivery whose token no longer matches,
-- or that is no longer 'processing', is left alone: another worker has it, and it returns no row);
-- p_titles, p_bodies: each entry's own text (null: the notification's); p_details: merged into the
-- 'sent' timeline event (null: nothing to add). Returns each completed delivery's id and seq.
--
-- The append is herald_append_inbox's (migration 0005: the counter rows upserted in user order and
-- locked to commit, a user's deliveries numbered in id order, unread_from kept), with the entry's
-- text written in the same insert: one row version per entry. The SQL path (herald_accept,
-- herald_take) is unchanged.
CREATE FUNCTION herald_complete_in_app(p_ids uuid[], p_tokens uuid[], p_titles text[], p_bodies text[],
                                       p_details jsonb[])
RETURNS TABLE (id uuid, seq bigint)
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

  INSERT INTO inbox_counters AS c (user_id, last_seq, unread)
  SELECT d.user_id, count(*), count(*) FROM deliveries d WHERE d.id = ANY(done) GROUP BY d.user_id ORDER BY d.user_id
  ON CONFLICT ON CONSTRAINT inbox_counters_pkey
  DO UPDATE SET last_seq = c.last_seq + EXCLUDED.last_seq, unread = c.unread + EXCLUDED.unread,
    unread_from = CASE WHEN c.unread = 0 THEN c.last_seq + 1 ELSE c.unread_from END;

  -- A user's k-th delivery of this call (in id order) of n gets last_seq - n + k.
  RETURN QUERY
  WITH t AS (
    SELECT * FROM unnest(p_ids, p_titles, p_bodies, p_details) AS t(id, title, body, detail)),
  s AS (
    SELECT d.id, d.attempts, d.user_id, d.notification_id,
           count(*) OVER w AS n, row_number() OVER (w ORDER BY d.id) AS k
    FROM deliveries d WHERE d.id = ANY(done)
    WINDOW w AS (PARTITION BY d.user_id)),
  seqs AS (
    SELECT s.id, s.attempts, s.user_id, s.notification_id, c.last_seq - s.n + s.k AS seq, t.title, t.body, t.detail
    FROM s JOIN inbox_counters c ON c.user_id = s.user_id JOIN t ON t.id = s.id),
  appended AS (
    INSERT INTO inbox (user_id, seq, notification_id, delivery_id, title, body)
    SELECT q.user_id, q.seq, q.notification_id, q.id, q.title, q.body FROM seqs q),
  events AS (
    INSERT INTO timeline (notification_id, delivery_id, event, detail)
    SELECT q.notification_id, q.id, 'sent',
           jsonb_build_object('userId', q.user_id, 'channel', 'in_app', 'attempt', q.attempts, 'seq', q.seq)
             || coalesce(q.detail, '{}'::jsonb)
    FROM seqs q)
  SELECT q.id, q.seq FROM seqs q;
END
$$;
