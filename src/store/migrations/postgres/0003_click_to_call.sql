-- Click-to-call requests (SPEC §15), kept so that any node can answer for them and hand them
-- to the node whose connector places calls. Times are Unix milliseconds (UTC).
--   state: queued, ringing_agent, ringing_customer, answered, failed (with reason).
CREATE TABLE click_to_calls (
    id                   TEXT PRIMARY KEY,
    account_id           TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    ref_id               TEXT NOT NULL,
    agent_extension      TEXT NOT NULL,
    customer_number      TEXT NOT NULL,
    -- The caller id the customer sees: the request's, or the placing connector's default.
    did_number           TEXT NOT NULL,
    state                TEXT NOT NULL,
    reason               TEXT,
    -- What the PBX said when the request failed.
    cause                TEXT,
    call_id              TEXT,
    -- The connector that took it, and the node it runs on (NULL while nobody took it). A
    -- request is taken once and never again, so it is never placed twice.
    connector            TEXT,
    claimed_by           TEXT,
    -- The node placing it renews this while it follows the request; past it, the node is
    -- taken for gone and the request fails (connector_lost).
    lease_until          BIGINT,
    created_at           BIGINT NOT NULL,
    placed_at            BIGINT,
    ringing_agent_at     BIGINT,
    ringing_customer_at  BIGINT,
    ended_at             BIGINT,
    updated_at           BIGINT NOT NULL
);
-- One request per reference in an account: the same ref_id twice is the same request.
CREATE UNIQUE INDEX click_to_calls_ref ON click_to_calls(account_id, ref_id);
-- Requests waiting for a node to take them, oldest first.
CREATE INDEX click_to_calls_queued ON click_to_calls(account_id, created_at) WHERE claimed_by IS NULL AND state = 'queued';
-- Requests being placed, by when their node must have renewed them.
CREATE INDEX click_to_calls_placing ON click_to_calls(lease_until) WHERE claimed_by IS NOT NULL AND state NOT IN ('answered', 'failed');

-- The connectors that place calls, as the node running each one last said (every few
-- seconds): whether a click-to-call request can be placed now, known on every node.
CREATE TABLE placing_connectors (
    name         TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    account_id   TEXT NOT NULL,
    connected    BOOLEAN NOT NULL,
    default_did  TEXT,
    seen_at      BIGINT NOT NULL,
    PRIMARY KEY (name, node_id)
);
CREATE INDEX placing_connectors_account ON placing_connectors(account_id, seen_at);
