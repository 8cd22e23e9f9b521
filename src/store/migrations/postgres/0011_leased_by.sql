-- Which node holds a delivery's lease, so the others can take over a dead node's leases within
-- seconds instead of waiting for them to run out (issue 15). Every claim (and a test send's
-- lease) sets it to the claiming node's id; recording or giving a delivery back leaves it as it
-- was, so it only means something while `claimed_until` is set. The heartbeat of a live node
-- gives back (lease + 1, due now) every running lease of a node that missed two heartbeats,
-- and removes that node's row (docs/operations.md). Leases taken before this migration have
-- no holder: they run out as they always did.
ALTER TABLE deliveries ADD COLUMN leased_by TEXT;
-- The takeover finds a dead node's leases without reading the queue. Only leased rows are in
-- it: a claim adds one entry per row, recording takes the row out.
CREATE INDEX deliveries_leased ON deliveries(leased_by) WHERE claimed_until IS NOT NULL;
