-- Seeing and fixing failures (SPEC §12): every failed attempt has a kind, a delivery keeps its
-- last one, a webhook its last failure and error, events their numbers (the log and the calls
-- are searched by them), and an hourly rollup per webhook answers its 24 h health without
-- reading the log. Times are Unix milliseconds (UTC).

-- Error kinds: http_status | timeout | connect | dns | tls | blocked_target | redirect | template.
-- The earlier spellings, and answers that were failures without a kind, take theirs.
UPDATE attempts SET error_kind = 'blocked_target' WHERE error_kind = 'blocked';
UPDATE attempts SET error_kind = 'connect' WHERE error_kind = 'io';
UPDATE attempts SET error_kind = 'redirect', error = 'answered ' || response_status || ' (callhook does not follow redirects)'
    WHERE error_kind IS NULL AND response_status BETWEEN 300 AND 399;
UPDATE attempts SET error_kind = 'http_status', error = 'answered ' || response_status
    WHERE error_kind IS NULL AND response_status IS NOT NULL AND (response_status < 200 OR response_status > 399);

-- The kind of the delivery's latest failed attempt; NULL once it succeeded.
ALTER TABLE deliveries ADD COLUMN last_error_kind TEXT;
UPDATE deliveries SET
    last_error_kind = (SELECT a.error_kind FROM attempts a WHERE a.delivery_id = deliveries.id ORDER BY a.n DESC, a.seq DESC LIMIT 1),
    last_error = COALESCE(last_error, (SELECT a.error FROM attempts a WHERE a.delivery_id = deliveries.id ORDER BY a.n DESC, a.seq DESC LIMIT 1))
    WHERE state <> 'succeeded' AND attempts > 0;

-- The log's filters read these instead of the whole log.
CREATE INDEX deliveries_webhook_state ON deliveries(webhook_id, state, seq);
CREATE INDEX deliveries_webhook_kind ON deliveries(webhook_id, last_error_kind, seq);
CREATE INDEX deliveries_webhook_created ON deliveries(webhook_id, created_at);
-- Retrying (pending after a failed attempt): few rows, counted per webhook for its health.
CREATE INDEX deliveries_retrying ON deliveries(webhook_id)
    WHERE state IN ('queued', 'waiting') AND last_error_kind IS NOT NULL;

-- The webhook's latest failed attempt: when, and what went wrong.
ALTER TABLE webhooks ADD COLUMN last_failure_at INTEGER;
ALTER TABLE webhooks ADD COLUMN last_error_kind TEXT;
ALTER TABLE webhooks ADD COLUMN last_error_status INTEGER;
ALTER TABLE webhooks ADD COLUMN last_error_message TEXT;

-- The call's numbers, from the event (searched by DID or customer number).
ALTER TABLE events ADD COLUMN did_number TEXT;
ALTER TABLE events ADD COLUMN customer_number TEXT;
UPDATE events SET did_number = json_extract(payload, '$.call.did_number'),
                  customer_number = json_extract(payload, '$.call.customer_number');
CREATE INDEX events_did ON events(account_id, did_number, seq);
CREATE INDEX events_customer ON events(account_id, customer_number, seq);

-- Per webhook and UTC hour (its start): deliveries that succeeded or used every attempt, the
-- attempts that succeeded or failed, and attempt latencies counted in buckets (bounds in
-- core/failure.rs LATENCY_BOUNDS: 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 ms,
-- then the rest). Written in the batch that records the attempts; test deliveries never count.
CREATE TABLE webhook_hours (
    webhook_id       TEXT NOT NULL,
    hour             INTEGER NOT NULL,
    succeeded        INTEGER NOT NULL DEFAULT 0,
    failed           INTEGER NOT NULL DEFAULT 0,
    ok_attempts      INTEGER NOT NULL DEFAULT 0,
    failed_attempts  INTEGER NOT NULL DEFAULT 0,
    l0 INTEGER NOT NULL DEFAULT 0, l1 INTEGER NOT NULL DEFAULT 0, l2 INTEGER NOT NULL DEFAULT 0,
    l3 INTEGER NOT NULL DEFAULT 0, l4 INTEGER NOT NULL DEFAULT 0, l5 INTEGER NOT NULL DEFAULT 0,
    l6 INTEGER NOT NULL DEFAULT 0, l7 INTEGER NOT NULL DEFAULT 0, l8 INTEGER NOT NULL DEFAULT 0,
    l9 INTEGER NOT NULL DEFAULT 0, l10 INTEGER NOT NULL DEFAULT 0, l11 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (webhook_id, hour)
);
CREATE INDEX webhook_hours_hour ON webhook_hours(hour);
