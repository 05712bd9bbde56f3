-- The digest runner (issue 13 item 4, ADR 13): a worker takes a digest when its window has ended,
-- sends it on its channel, and records it with all its members in one commit.
--
-- * digests.next_attempt_at: when a digest whose send failed transiently is due again (null: at
--   window_end, as every digest is first).
-- * herald_take_digests: leases due digests (compare-and-set pending → processing with a fresh
--   lease token, FOR UPDATE SKIP LOCKED). A digest row locked FOR SHARE by an accept adding a member
--   (migration 0012) is skipped until that accept commits, and an accept that comes after the take
--   finds the digest no longer pending and sends its member on its own: so the members a take sees
--   are all the digest will ever have (until a retry puts it back to pending). Members whose
--   notification expired while they waited are skipped here (`expired`), with their timeline event.
-- * herald_finish_digest: the outcome of one attempt, recorded only if the lease token still
--   matches: the digest's state, every pending member's state (sent, failed, dead, skipped; left
--   pending on a retry), a timeline event per member, and for an in-app digest its one inbox entry
--   (the user's next seq, inbox.delivery_id = the digest's id).

ALTER TABLE digests ADD COLUMN next_attempt_at timestamptz;
CREATE INDEX digests_leased ON digests (lease_until) WHERE state = 'processing';

CREATE FUNCTION herald_take_digests(p_max int, p_lease_ms int, p_grace_ms int)
RETURNS TABLE (id uuid, lease_token uuid, attempts int, user_id text, category text, channel text,
               window_start timestamptz, window_end timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH t AS (
  UPDATE digests g SET state = 'processing', lease_token = gen_random_uuid(),
    lease_until = now() + make_interval(secs => p_lease_ms / 1000.0), attempts = g.attempts + 1, updated_at = now()
  WHERE g.id IN (SELECT c.id FROM digests c
                 WHERE c.state = 'pending' AND c.window_end <= now() - make_interval(secs => p_grace_ms / 1000.0)
                   AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= now())
                 ORDER BY c.window_end LIMIT p_max FOR UPDATE SKIP LOCKED)
    AND g.state = 'pending'
  RETURNING g.id, g.lease_token, g.attempts, g.user_id, g.category, g.channel, g.window_start, g.window_end)
  SELECT t.id, t.lease_token, t.attempts, t.user_id, t.category, t.channel, t.window_start, t.window_end FROM t;
END
$$;

-- Members of taken digests whose notification has expired: skipped (`expired`), not sent inside it.
CREATE FUNCTION herald_expire_digest_members(p_digests uuid[])
RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  WITH x AS (
    UPDATE deliveries d SET state = 'skipped', reason = 'expired', next_attempt_at = now(), updated_at = now()
    FROM notifications n
    WHERE d.digest_id = ANY(p_digests) AND d.state = 'pending' AND n.id = d.notification_id
      AND n.expires_at IS NOT NULL AND n.expires_at <= now()
    RETURNING d.id, d.notification_id, d.user_id, d.channel, d.digest_id)
  INSERT INTO timeline (notification_id, delivery_id, event, detail)
  SELECT x.notification_id, x.id, 'skipped',
         jsonb_build_object('userId', x.user_id, 'channel', x.channel, 'reason', 'expired', 'digestId', x.digest_id)
  FROM x;
END
$$;

-- p_state: sent | pending (a retry, due p_retry_ms from now on the database's clock) | failed | dead |
-- skipped (p_reason says why).
-- p_detail is merged into each member's timeline event (the provider's detail, the template error).
-- For an in-app digest that is sent, p_title/p_body are its inbox entry's text and p_notification_id
-- the notification the entry points at (the newest member's). Returns whether the lease still
-- matched (nothing is written otherwise) and the inbox entry's seq.
CREATE FUNCTION herald_finish_digest(p_id uuid, p_token uuid, p_state text, p_error text, p_reason text,
                                     p_retry_ms bigint, p_detail jsonb, p_notification_id uuid,
                                     p_title text, p_body text)
RETURNS TABLE (recorded boolean, seq bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  g digests%ROWTYPE;
  entry_seq bigint;
  next_at timestamptz := now() + make_interval(secs => coalesce(p_retry_ms, 0) / 1000.0);
BEGIN
  UPDATE digests d SET state = p_state, lease_token = NULL, lease_until = NULL, last_error = p_error,
    next_attempt_at = CASE WHEN p_state = 'pending' THEN next_at ELSE d.next_attempt_at END, updated_at = now()
  WHERE d.id = p_id AND d.lease_token = p_token AND d.state = 'processing'
  RETURNING d.* INTO g;
  IF NOT FOUND THEN
    RETURN QUERY SELECT false, NULL::bigint;
    RETURN;
  END IF;

  IF p_state = 'sent' AND g.channel = 'in_app' THEN
    INSERT INTO inbox_counters AS c (user_id, last_seq, unread) VALUES (g.user_id, 1, 1)
    ON CONFLICT ON CONSTRAINT inbox_counters_pkey
    DO UPDATE SET last_seq = c.last_seq + 1, unread = c.unread + 1,
      unread_from = CASE WHEN c.unread = 0 THEN c.last_seq + 1 ELSE c.unread_from END
    RETURNING c.last_seq INTO entry_seq;
    INSERT INTO inbox (user_id, seq, notification_id, delivery_id, title, body)
    VALUES (g.user_id, entry_seq, p_notification_id, g.id, p_title, p_body);
  END IF;

  IF p_state = 'pending' THEN
    -- A retry: members stay pending inside the digest; each one's timeline says the attempt failed.
    INSERT INTO timeline (notification_id, delivery_id, event, detail)
    SELECT d.notification_id, d.id, 'attempt_failed',
           jsonb_build_object('userId', d.user_id, 'channel', d.channel, 'attempt', g.attempts, 'digestId', g.id,
                              'error', p_error, 'nextAttemptAt', next_at)
    FROM deliveries d WHERE d.digest_id = g.id AND d.state = 'pending';
  ELSE
    WITH m AS (
      UPDATE deliveries d SET state = p_state, attempts = g.attempts, last_error = p_error,
        reason = CASE WHEN p_state = 'skipped' THEN p_reason ELSE d.reason END, next_attempt_at = now(),
        updated_at = now()
      WHERE d.digest_id = g.id AND d.state = 'pending'
      RETURNING d.id, d.notification_id, d.user_id, d.channel)
    INSERT INTO timeline (notification_id, delivery_id, event, detail)
    SELECT m.notification_id, m.id, p_state,
           jsonb_strip_nulls(jsonb_build_object('userId', m.user_id, 'channel', m.channel, 'attempt', g.attempts,
             'digestId', g.id, 'seq', entry_seq, 'error', p_error, 'reason', p_reason))
             || coalesce(p_detail, '{}'::jsonb)
    FROM m;
  END IF;
  RETURN QUERY SELECT true, entry_seq;
END
$$;
