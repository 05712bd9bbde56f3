-- Users' preferences (PUT /v1/users/{userId}/preferences; src/core/preferences.ts), one row per user
-- who set any: `channels` ({"email": false}), `categories` ({"marketing.*": false, "comment.reply":
-- {"email": false}}) and `quiet_hours` ({"start": "22:00", "end": "07:00"} or null), as validated by
-- src/core/preference-input.ts. No foreign key to users: preferences need no profile.
-- One-click unsubscribe merges into `categories` with one INSERT … ON CONFLICT DO UPDATE
-- (src/store/sql-preferences.ts), so concurrent opt-outs never lose one another.

CREATE TABLE preferences (
  user_id     text PRIMARY KEY,
  channels    jsonb NOT NULL DEFAULT '{}',
  categories  jsonb NOT NULL DEFAULT '{}',
  quiet_hours jsonb,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
