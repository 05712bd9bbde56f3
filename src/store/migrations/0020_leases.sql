-- Named leases (Store.tryLease): a periodic task that must run in one process at a time — the
-- reconciler, which re-announces lost work to the bus — runs only in the process holding its lease.
-- A row, not an advisory lock: it outlives a connection that PostgreSQL drops and takes back, so a
-- restart of PostgreSQL does not hand the task to a second process while the first still runs it,
-- and a holder that dies loses it when `until` passes.
CREATE TABLE leases (
  name        text PRIMARY KEY,
  holder      text NOT NULL,
  until       timestamptz NOT NULL
);

