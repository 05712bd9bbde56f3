-- Retention (issue 13 item 6; docs/architecture.md "Retention", ADR 0015). Expired notifications
-- leave the store, and the largest tables leave it a day at a time: notifications and timeline become
-- tables partitioned by the notification's id (UUIDv7: its first 48 bits are the creation time in ms),
-- one partition per UTC day, so that a day whose notifications have all expired is DROPPED — one
-- catalog change instead of one deleted row (and its WAL, its index entries, its vacuum) per
-- notification and event. Their reads carry the key (a notification by id, a timeline by
-- notification id, the take's join to notifications), so they are pruned to one partition.
--
-- deliveries and inbox stay one table each: their hot statements do not carry the notification id.
-- * deliveries is the queue: herald_take finds rows by `id = ANY(ids)` — measured on PostgreSQL 15
--   with 35 partitions and 700,000 rows, taking 1,000 random ids through a plpgsql function cost
--   32–220 ms instead of 6–12 ms unpartitioned.
-- * inbox is read and written by (user_id, seq): pages, replay, unread, markRead, every socket ack,
--   aggregation's lookup. Partitioned by notification id, each of them probed every partition's
--   index: measured with 41 partitions, 200,000 entries and 1,000 users (ADR 0015 has the figures),
--   a page cost ~2× and a 50-ack batch ~5× what it costs on one table.
-- Their rows of expired notifications are deleted in batches — deliveries through
-- deliveries_by_notification, inbox entries through inbox_by_notification (added here), with the
-- users' counters adjusted in the same transaction — before their day is dropped.
--
-- * notifications.expires_at (added by migration 0012; ingest sets it): the instant the
--   notification leaves every read and the store. NULL (a row written before it existed) counts as
--   created_at + the default retention (HERALD_RETENTION).
-- * retention_partitions: the day partitions that exist, by their id range (lo NULL: the `legacy`
--   partition of the rows written before this migration). herald_retention_prepare adds days; the
--   store calls it when it opens and every retention run calls it again.
-- * Each table also has a DEFAULT partition, for a row whose day has no partition yet (no process
--   opened the store or ran retention for a week); its rows leave by the batched sweep, never by a drop.
-- * digests_finished: sent, failed, dead and skipped digests, by when they finished (retention
--   deletes them once older than the default retention).
--
-- notifications and timeline are rebuilt (LIKE the old ones, so columns added by earlier migrations
-- come along) and their rows copied: a one-time rewrite of both tables, under an exclusive lock, in
-- the migration's transaction (docs/upgrading.md). Indexes other than the primary keys are recreated
-- from the old tables' definitions.

-- The lowest UUIDv7 of the millisecond `p_at` falls in (the bound of a day's id range).
CREATE FUNCTION herald_uuid_floor(p_at timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
  SELECT (lpad(to_hex(floor(extract(epoch FROM p_at) * 1000)::bigint), 12, '0') || '00000000000000000000')::uuid
$$;

CREATE TABLE retention_partitions (
  suffix      text PRIMARY KEY,
  lo          uuid,
  hi          uuid NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TEMP TABLE retention_old_indexes ON COMMIT DROP AS
SELECT tablename, indexdef FROM pg_indexes
WHERE schemaname = current_schema() AND tablename IN ('notifications', 'timeline')
  AND indexname NOT IN ('notifications_pkey', 'timeline_pkey');

ALTER TABLE notifications RENAME TO notifications_unpartitioned;
ALTER TABLE timeline RENAME TO timeline_unpartitioned;

CREATE TABLE notifications (LIKE notifications_unpartitioned INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING STORAGE)
  PARTITION BY RANGE (id);
CREATE TABLE timeline (LIKE timeline_unpartitioned INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING STORAGE
                       INCLUDING IDENTITY)
  PARTITION BY RANGE (notification_id);

CREATE TABLE notifications_legacy PARTITION OF notifications
  FOR VALUES FROM (MINVALUE) TO (herald_uuid_floor(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'));
CREATE TABLE timeline_legacy PARTITION OF timeline
  FOR VALUES FROM (MINVALUE) TO (herald_uuid_floor(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'));
INSERT INTO retention_partitions (suffix, lo, hi)
VALUES ('legacy', NULL, herald_uuid_floor(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'));
CREATE TABLE notifications_default PARTITION OF notifications DEFAULT;
CREATE TABLE timeline_default PARTITION OF timeline DEFAULT;

-- Creates the partitions of the UTC days from p_from's to p_days after it that do not exist yet, for
-- both tables; returns the suffixes created (`pYYYYMMDD`). A day whose rows are already in the
-- DEFAULT partition is left to it (creating its partition would fail). Processes preparing at once
-- wait for each other (advisory lock), so each day is created once.
CREATE FUNCTION herald_retention_prepare(p_from timestamptz, p_days int)
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  d timestamptz;
  s text;
  v_lo uuid;
  v_hi uuid;
  t text;
BEGIN
  PERFORM pg_advisory_xact_lock(1215459937, 17);
  FOR i IN 0..p_days LOOP
    d := (date_trunc('day', p_from AT TIME ZONE 'UTC') + make_interval(days => i)) AT TIME ZONE 'UTC';
    s := 'p' || to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD');
    v_lo := herald_uuid_floor(d);
    v_hi := herald_uuid_floor(d + interval '1 day');
    CONTINUE WHEN EXISTS (SELECT 1 FROM retention_partitions r WHERE r.suffix = s);
    -- A day the legacy partition (or an older one) already covers.
    CONTINUE WHEN EXISTS (SELECT 1 FROM retention_partitions r WHERE r.hi > v_lo AND coalesce(r.lo < v_hi, true));
    CONTINUE WHEN EXISTS (SELECT 1 FROM notifications_default n WHERE n.id >= v_lo AND n.id < v_hi)
               OR EXISTS (SELECT 1 FROM timeline_default n WHERE n.notification_id >= v_lo AND n.notification_id < v_hi);
    FOREACH t IN ARRAY ARRAY['notifications', 'timeline'] LOOP
      EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', t || '_' || s, t, v_lo, v_hi);
    END LOOP;
    INSERT INTO retention_partitions (suffix, lo, hi) VALUES (s, v_lo, v_hi);
    RETURN NEXT s;
  END LOOP;
END
$$;

SELECT count(*) FROM herald_retention_prepare(now(), 7);

INSERT INTO notifications SELECT * FROM notifications_unpartitioned;
INSERT INTO timeline OVERRIDING SYSTEM VALUE SELECT * FROM timeline_unpartitioned;
SELECT setval(pg_get_serial_sequence('timeline', 'id'), coalesce((SELECT max(id) FROM timeline_unpartitioned), 0) + 1, false);

DROP TABLE notifications_unpartitioned;
DROP TABLE timeline_unpartitioned;

ALTER TABLE notifications ADD PRIMARY KEY (id);
ALTER TABLE timeline ADD PRIMARY KEY (notification_id, id);
-- Retention finds a day's (or an expired notification's) inbox entries and topic items through them.
CREATE INDEX inbox_by_notification ON inbox (notification_id);
CREATE INDEX topic_items_by_notification ON topic_items (notification_id);
CREATE INDEX digests_finished ON digests (updated_at) WHERE state IN ('sent', 'failed', 'dead', 'skipped');
-- The sweep finds expired notifications through it; a day's newest expiry is its last entry.
CREATE INDEX IF NOT EXISTS notifications_expiry ON notifications (expires_at);

DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM retention_old_indexes LOOP
    -- Captured before the rename: the definition names the table as it is called again now.
    EXECUTE r.indexdef;
  END LOOP;
END
$$;
