-- Per-user caps of category policies (issue 13, ADR 13): `caps.<channel>: {max, per}` counts the
-- sends of one category to one user on one channel in fixed windows of `per` aligned to the epoch.
-- A send-time gate in the worker counts each send with one statement (src/store/sql-decisions.ts):
--   INSERT … ON CONFLICT DO UPDATE SET n = n + 1 WHERE n < max RETURNING n
-- — a row comes back only when the send fits, so concurrent workers never exceed `max` (the row
-- lock of the conflicting key orders them). `window_end` lets retention drop finished windows.

CREATE TABLE cap_counts (
  user_id      text NOT NULL,
  channel      text NOT NULL,
  category     text NOT NULL,
  window_start timestamptz NOT NULL,
  window_end   timestamptz NOT NULL,
  n            int NOT NULL,
  PRIMARY KEY (user_id, channel, category, window_start)
);
CREATE INDEX cap_counts_by_end ON cap_counts (window_end);
