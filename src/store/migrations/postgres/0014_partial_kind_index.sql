-- The log's error-kind filter (0008) reads deliveries_webhook_kind, which held every delivery:
-- a b-tree write per delivery stored, though only those whose last attempt failed have a kind.
-- Kept for those alone, it costs a successful delivery nothing; a filter on a kind (`= kind`)
-- and the failure groups (`IS NOT NULL`) both imply its condition and still read it.
DROP INDEX deliveries_webhook_kind;
CREATE INDEX deliveries_webhook_kind ON deliveries(webhook_id, last_error_kind, seq)
    WHERE last_error_kind IS NOT NULL;
