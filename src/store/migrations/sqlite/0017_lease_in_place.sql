-- PostgreSQL's claims leave a delivery's next_attempt_at as it was from here on (see its 0017).
-- SQLite's claims still move it to the lease's end (SQLite rewrites only the indexes whose
-- columns change, and its claims read deliveries_due without stepping over deliveries in
-- flight); nothing changes here.
SELECT 1;
