-- A claim changes only columns no index holds (lease, claimed_until, leased_by), so PostgreSQL
-- writes the leased row in place (a HOT update): no new entry in any of the table's indexes,
-- where moving next_attempt_at to the lease's end wrote one in all ten. A delivery in flight
-- keeps its next_attempt_at and is passed over by its running lease (claimed_until).
-- deliveries_leased held leased_by and claimed_until, so it goes: the rare takeover of a dead
-- node's leases reads the queued deliveries instead (as SQLite's does, see 0011).
DROP INDEX deliveries_leased;
-- Room in each page for claimed rows' new versions beside their old ones (new pages only): the
-- deliveries of a page are stored together and claimed together. With 80 % a claim found room
-- for one row in three, with 50 % for nine in ten (BENCHMARKS.md, eighteenth pass); the table
-- takes up to twice the pages.
ALTER TABLE deliveries SET (fillfactor = 50);
