-- A call's pending deliveries of one webhook are looked up by (webhook, call, state) on every
-- ingest (is an earlier one of the call still pending?) and every recorded attempt (promote the
-- call's next). With only (webhook_id, call_id, seq) beside 0008's (webhook_id, state, seq),
-- SQLite's planner picked the latter and read every queued delivery of the webhook for each
-- lookup: with a backlog of 50,000 one webhook fell to 9 deliveries/s. One index with all three
-- columns is the better match for both lookups, and replaces the partial index of waiting rows.
DROP INDEX deliveries_webhook_call;
DROP INDEX deliveries_waiting;
CREATE INDEX deliveries_webhook_call ON deliveries(webhook_id, call_id, state, seq);
