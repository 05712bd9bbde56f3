-- Topics (issue 13): herald_fanout_audience of migration 0018 joined fanout_jobs to the
-- subscriptions, and PostgreSQL planned it as a scan of the whole topic for every page (a
-- 1M-subscriber fan-out through the decider did not finish in 8 minutes). Replaced: the job is read
-- first, and the audience is queried with its topic and cutoff as values (an index range scan from
-- the checkpoint, as the page's own query). Same arguments and result.

-- The next p_limit subscribers of a job's audience after p_after (keyset on user_id), in order. The
-- job's topic and cutoff are read first, so that the audience query is planned with them as values
-- (an index range scan from p_after), as the page's own is — a join would scan the whole topic.
CREATE OR REPLACE FUNCTION herald_fanout_audience(p_job uuid, p_after text, p_limit int)
RETURNS TABLE (user_id text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
  j fanout_jobs%ROWTYPE;
BEGIN
  SELECT * INTO j FROM fanout_jobs f WHERE f.notification_id = p_job;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  RETURN QUERY
  SELECT t.user_id FROM topic_subscriptions t
  WHERE t.topic = j.topic AND t.user_id > coalesce(p_after, '')
    AND t.subscribed_at <= j.cutoff AND (t.unsubscribed_at IS NULL OR t.unsubscribed_at > j.cutoff)
  ORDER BY t.user_id LIMIT p_limit;
END
$$;
