-- Alerts (SPEC §12): an account's alert receiver and settings, and per webhook what it was
-- last alerted about, so each transition is alerted once. Times are Unix milliseconds (UTC).
--
-- An alert is a delivery like any other (one dispatcher, one retry schedule, one signing path):
-- its event and delivery rows are stored under the account's alert scope
-- (account_id = 'alerts:' || the account's id, see core/alert.rs), so nothing that reads an
-- account's calls, deliveries or webhooks ever sees them; the delivery's webhook_id is the
-- id of the account's row here, and its call_id the id of the webhook it is about (alerts
-- about one webhook go out in order).

-- One row per account, made on first need: where alerts go (url NULL: nowhere, alerts are
-- off), after how long a failing webhook is alerted, and the signing secrets (the same JSON as
-- webhooks.secrets, newest first).
CREATE TABLE account_alerts (
    account_id  TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    -- The id its alert deliveries carry as their webhook_id (wh_…).
    id          TEXT NOT NULL UNIQUE,
    url         TEXT,
    after_ms    BIGINT NOT NULL,
    secrets     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- What each webhook was last alerted about.
--   failing_alerted: the webhook's failing_since that webhook.failing was sent for (NULL: not
--   alerted as failing); failed_alert_at: when delivery.failed was last sent; failed_count:
--   deliveries that used their last attempt since then, not alerted yet; failed_last: the
--   latest of them.
CREATE TABLE webhook_alerts (
    webhook_id       TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    failing_alerted  BIGINT,
    failed_alert_at  BIGINT,
    failed_count     BIGINT NOT NULL DEFAULT 0,
    failed_last      TEXT
);
-- The sweep finds failed deliveries not alerted yet without reading every row.
CREATE INDEX webhook_alerts_failed ON webhook_alerts(failed_alert_at) WHERE failed_count > 0;
-- The sweep finds failing webhooks without reading every webhook.
CREATE INDEX webhooks_failing ON webhooks(failing_since) WHERE failing_since IS NOT NULL;
