-- Push devices (Web Push subscriptions, FCM registration tokens, APNs device tokens) of each user.
--
-- A device is unique per user, provider and token identity (the Web Push endpoint, the FCM token,
-- the lower-case APNs token). The identity is kept as its SHA-256 (`identity_sha256`): an FCM token
-- may be 4096 characters, more than a btree index entry holds. `token` is what the provider needs:
-- the subscription as JSON (endpoint and keys) for Web Push, the token itself otherwise.
-- Registration takes a per-user advisory lock (SqlDeviceStore), so the per-user cap holds under
-- concurrent requests; the unique constraint makes a repeated registration one row whatever happens.

CREATE TABLE devices (
  id               uuid PRIMARY KEY,
  user_id          text NOT NULL,
  provider         text NOT NULL CHECK (provider IN ('webpush', 'fcm', 'apns')),
  identity_sha256  bytea NOT NULL,
  token            text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  last_used_at     timestamptz,
  CONSTRAINT devices_identity UNIQUE (user_id, provider, identity_sha256)
);
