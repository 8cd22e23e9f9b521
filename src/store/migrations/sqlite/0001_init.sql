-- callhook schema, SQLite. Times are Unix milliseconds (UTC). Lists and headers are JSON text.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- The first characters of the secret, to tell keys apart in lists.
    prefix       TEXT NOT NULL,
    -- SHA-256 of the whole secret; the secret itself is never stored.
    hash         TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX api_keys_account ON api_keys(account_id, id);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE numbers (
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    number      TEXT NOT NULL,
    label       TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, number)
);

CREATE TABLE webhooks (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- The admin-set fields (WebhookSpec) as JSON.
    spec             TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    enabled          INTEGER NOT NULL,
    disabled_reason  TEXT,
    -- Signing secrets, newest first: [{"secret": "whsec_…", "created_at": ms, "expires_at": ms|null}].
    secrets          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_success_at  INTEGER,
    -- The first failed attempt since the last success (or since creation); cleared by a success.
    failing_since    INTEGER,
    -- A dispatcher found the webhook's endpoint stuck (it holds every request it gets): new
    -- and due deliveries wait until then instead of crowding the front of the queue.
    hold_until       INTEGER
);
-- Matching looks webhooks up by account and trigger, never scanning the rest.
CREATE INDEX webhooks_match ON webhooks(account_id, trigger);
CREATE INDEX webhooks_account ON webhooks(account_id, id);

CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    account_id   TEXT NOT NULL,
    -- The id the sender gave, or `id` when it gave none: what receivers see as event_id.
    event_id     TEXT NOT NULL,
    call_id      TEXT NOT NULL,
    type         TEXT NOT NULL,
    occurred_at  INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    test         INTEGER NOT NULL DEFAULT 0,
    payload      TEXT NOT NULL
);
CREATE UNIQUE INDEX events_idempotency ON events(account_id, event_id);
CREATE INDEX events_call ON events(account_id, call_id, seq);
CREATE INDEX events_received ON events(received_at);
-- One call.ended per call.
CREATE UNIQUE INDEX events_one_end ON events(account_id, call_id) WHERE type = 'call.ended' AND test = 0;

-- The deliveries table is both the queue and the log.
--   state: queued (due at next_attempt_at), waiting (behind an earlier delivery of its call to
--   the same webhook), succeeded, failed.
CREATE TABLE deliveries (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    account_id       TEXT NOT NULL,
    webhook_id       TEXT NOT NULL,
    event_seq        INTEGER NOT NULL,
    call_id          TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- After this many attempts the delivery fails; NULL: the configured schedule decides.
    attempt_limit    INTEGER,
    next_attempt_at  INTEGER,
    -- Bumped by every claim; an attempt is recorded only by the holder of the current lease.
    lease            INTEGER NOT NULL DEFAULT 0,
    -- Until when the current claim holds it (NULL when nobody holds it): a delivery being sent.
    claimed_until    INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_attempt_at  INTEGER,
    last_status      INTEGER,
    last_error       TEXT,
    last_latency_ms  INTEGER
);
-- Claims read due rows in time order with their webhook, from the index alone.
CREATE INDEX deliveries_due ON deliveries(next_attempt_at, webhook_id) WHERE state = 'queued';
-- A held webhook's queued deliveries, found without reading its log.
CREATE INDEX deliveries_webhook_due ON deliveries(webhook_id, next_attempt_at) WHERE state = 'queued';
CREATE INDEX deliveries_webhook_call ON deliveries(webhook_id, call_id, seq);
CREATE INDEX deliveries_webhook ON deliveries(webhook_id, seq);
CREATE INDEX deliveries_event ON deliveries(event_seq);
CREATE INDEX deliveries_waiting ON deliveries(webhook_id, call_id) WHERE state = 'waiting';

CREATE TABLE attempts (
    seq              INTEGER PRIMARY KEY,
    delivery_id      TEXT NOT NULL,
    n                INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    latency_ms       INTEGER NOT NULL,
    request_method   TEXT NOT NULL,
    request_url      TEXT NOT NULL,
    request_headers  TEXT NOT NULL,
    request_body     TEXT,
    response_status  INTEGER,
    response_headers TEXT,
    response_body    TEXT,
    error_kind       TEXT,
    error            TEXT
);
CREATE INDEX attempts_delivery ON attempts(delivery_id, n);
CREATE INDEX attempts_started ON attempts(started_at);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- The nodes serving from this database, by their last heartbeat: each takes its share of a
-- webhook's concurrency and rate limits.
CREATE TABLE nodes (
    id       TEXT PRIMARY KEY,
    seen_at  INTEGER NOT NULL
);

-- Values callhook keeps for itself (the operator token's hash, first-start marker, …).
CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
