-- Herald's first schema. One row per request (notifications), one per recipient × channel
-- (deliveries: the state machine and, for the embedded bus, the queue itself), the in-app inbox,
-- the timeline, users and idempotency keys.

CREATE TABLE notifications (
  id            uuid PRIMARY KEY,
  category      text NOT NULL,
  priority      text NOT NULL,
  channels      text[] NOT NULL,
  title         text,
  body          text,
  data          jsonb,
  send_at       timestamptz,
  group_key     text,
  recipients    int,
  created_at    timestamptz NOT NULL,
  cancelled_at  timestamptz
);

-- state: pending | processing | sent | delivered | read | failed | dead | cancelled | skipped
-- (transitions in src/core/types.ts, DeliveryState). lease_token/lease_until hold a claim.
CREATE TABLE deliveries (
  id               uuid PRIMARY KEY,
  notification_id  uuid NOT NULL REFERENCES notifications (id),
  user_id          text NOT NULL,
  channel          text NOT NULL,
  lane             text NOT NULL,
  state            text NOT NULL DEFAULT 'pending',
  attempts         int NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL,
  lease_token      uuid,
  lease_until      timestamptz,
  last_error       text,
  updated_at       timestamptz NOT NULL
);
CREATE INDEX deliveries_by_notification ON deliveries (notification_id, id);
CREATE INDEX deliveries_due ON deliveries (lane, next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE state = 'processing';
CREATE INDEX deliveries_dead_letters ON deliveries (updated_at, id) WHERE state IN ('failed', 'dead');

CREATE TABLE timeline (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  notification_id  uuid NOT NULL,
  delivery_id      uuid,
  at               timestamptz NOT NULL DEFAULT now(),
  event            text NOT NULL,
  detail           jsonb
);
CREATE INDEX timeline_by_notification ON timeline (notification_id, id);

CREATE TABLE idempotency_keys (
  key              text PRIMARY KEY,
  notification_id  uuid NOT NULL,
  request_hash     text NOT NULL,
  answer           jsonb NOT NULL,
  created_at       timestamptz NOT NULL
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

CREATE TABLE users (
  id           text PRIMARY KEY,
  email        text,
  phone        text,
  timezone     text,
  locale       text,
  webhook_url  text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Per-user sequence of the in-app inbox. Taking the next seq locks the user's row until commit,
-- so seqs become visible in increasing order.
CREATE TABLE inbox_counters (
  user_id   text PRIMARY KEY,
  last_seq  bigint NOT NULL
);

CREATE TABLE inbox (
  user_id          text NOT NULL,
  seq              bigint NOT NULL,
  notification_id  uuid NOT NULL,
  delivery_id      uuid NOT NULL UNIQUE,
  created_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz,
  read_at          timestamptz,
  PRIMARY KEY (user_id, seq)
);
CREATE INDEX inbox_unread ON inbox (user_id, seq) WHERE read_at IS NULL;
