-- Accepting a batch of notifications in one call: the notifications, their deliveries, and (for
-- small in-app notifications, see NotificationStore.accept's inAppUpTo) the take that completes
-- their in-app deliveries. One statement from the client's side, so it commits by itself with no
-- BEGIN/COMMIT round trips, and its plans are prepared once per connection.
-- p_notifications, p_deliveries: JSON arrays of rows (SqlNotificationStore); p_in_app: delivery
-- ids to complete now, or NULL. Returns herald_take's rows for those.
CREATE FUNCTION herald_accept(p_notifications json, p_deliveries json, p_in_app uuid[])
RETURNS TABLE (
  id uuid, lease_token uuid, attempts int, channel text, lane text, user_id text, notification_id uuid,
  seq bigint, category text, priority text, title text, body text, data jsonb, group_key text,
  created_at timestamptz, u_id text, email text, phone text, timezone text, locale text, webhook_url text
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  INSERT INTO notifications (id, category, priority, channels, title, body, data, send_at, group_key, recipients, created_at)
  SELECT * FROM json_to_recordset(p_notifications) AS r(id uuid, category text, priority text, channels text[],
    title text, body text, data jsonb, send_at timestamptz, group_key text, recipients int, created_at timestamptz);
  INSERT INTO deliveries (id, notification_id, user_id, channel, lane, next_attempt_at, updated_at)
  SELECT r.id, r.notification_id, r.user_id, r.channel, r.lane, r.next_attempt_at, now()
  FROM json_to_recordset(p_deliveries) AS r(id uuid, notification_id uuid, user_id text, channel text, lane text,
    next_attempt_at timestamptz);
  IF cardinality(p_in_app) > 0 THEN
    RETURN QUERY SELECT * FROM herald_take(0, p_in_app, NULL, NULL);
  END IF;
END
$$;
