-- A webhook's log is listed newest first by (created_at, seq), so one index serves the list, its
-- pages and its time filters (since, until), and also the 24-hour counts: deliveries_webhook
-- (webhook_id, seq) and deliveries_webhook_created (webhook_id, created_at) were two b-tree
-- entries per delivery stored (and on PostgreSQL per delivery recorded) for what one does. The
-- state and kind filters' indexes carry the same order, so a filtered page reads its rows in
-- order and stops at the page's end.
DROP INDEX deliveries_webhook;
DROP INDEX deliveries_webhook_created;
DROP INDEX deliveries_webhook_state;
DROP INDEX deliveries_webhook_kind;
CREATE INDEX deliveries_log ON deliveries(webhook_id, created_at, seq);
CREATE INDEX deliveries_webhook_state ON deliveries(webhook_id, state, created_at, seq);
CREATE INDEX deliveries_webhook_kind ON deliveries(webhook_id, last_error_kind, created_at, seq)
    WHERE last_error_kind IS NOT NULL;
