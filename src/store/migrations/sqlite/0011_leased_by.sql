-- Which node holds a delivery's lease (issue 15). Every claim (and a test send's lease) sets it
-- to the claiming node's id; recording or giving a delivery back leaves it as it was, so it
-- only means something while `claimed_until` is set. On PostgreSQL the heartbeat of a live node
-- takes over the running leases of a node that missed two heartbeats. SQLite has one node: a
-- restart gives back every lease at start (Store::release_leftover_leases), so the same
-- takeover finds nothing here and no index is kept for it (the claims, SQLite's hot path, pay
-- for none); the rare takeover reads the running leases through deliveries_due.
ALTER TABLE deliveries ADD COLUMN leased_by TEXT;
