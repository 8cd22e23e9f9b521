-- Text compares as bytes ("C"), as SQLite compares it (BINARY) and Rust orders strings. Every
-- key callhook stores is text (ids, account, webhook and call ids, states, numbers), and every
-- index entry written or probed compares them: under the database's default collation (a
-- libc locale such as C.UTF-8 or en_US.UTF-8) each comparison copied both strings and called
-- strcoll. Text comparisons were 9 % of PostgreSQL's CPU per delivery, 4 % after this
-- (BENCHMARKS.md, twenty-second pass).
-- Equality is unchanged (both are deterministic); orderings of text now match SQLite's on
-- every server, whatever locale its databases were created with. No table is rewritten: only
-- the indexes holding a text column are rebuilt (each once, one ALTER per table), which
-- holds each table's lock meanwhile (docs/operations.md). A text column added later should
-- say COLLATE "C" too: a comparison of a "C" column with one of the default collation is
-- done in "C", and an index of the other collation cannot serve it.
ALTER TABLE account_alerts
    ALTER COLUMN account_id TYPE TEXT COLLATE "C",
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN url TYPE TEXT COLLATE "C",
    ALTER COLUMN secrets TYPE TEXT COLLATE "C";
ALTER TABLE accounts
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN name TYPE TEXT COLLATE "C";
ALTER TABLE api_keys
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN account_id TYPE TEXT COLLATE "C",
    ALTER COLUMN name TYPE TEXT COLLATE "C",
    ALTER COLUMN prefix TYPE TEXT COLLATE "C",
    ALTER COLUMN hash TYPE TEXT COLLATE "C",
    ALTER COLUMN role TYPE TEXT COLLATE "C";
ALTER TABLE attempts
    ALTER COLUMN delivery_id TYPE TEXT COLLATE "C",
    ALTER COLUMN request_method TYPE TEXT COLLATE "C",
    ALTER COLUMN request_url TYPE TEXT COLLATE "C",
    ALTER COLUMN request_headers TYPE TEXT COLLATE "C",
    ALTER COLUMN request_body TYPE TEXT COLLATE "C",
    ALTER COLUMN response_headers TYPE TEXT COLLATE "C",
    ALTER COLUMN response_body TYPE TEXT COLLATE "C",
    ALTER COLUMN error_kind TYPE TEXT COLLATE "C",
    ALTER COLUMN error TYPE TEXT COLLATE "C";
ALTER TABLE audit_log
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN account_id TYPE TEXT COLLATE "C",
    ALTER COLUMN actor_type TYPE TEXT COLLATE "C",
    ALTER COLUMN actor_id TYPE TEXT COLLATE "C",
    ALTER COLUMN actor_name TYPE TEXT COLLATE "C",
    ALTER COLUMN action TYPE TEXT COLLATE "C",
    ALTER COLUMN resource_type TYPE TEXT COLLATE "C",
    ALTER COLUMN resource_id TYPE TEXT COLLATE "C",
    ALTER COLUMN changes TYPE TEXT COLLATE "C";
ALTER TABLE calls
    ALTER COLUMN account_id TYPE TEXT COLLATE "C",
    ALTER COLUMN call_id TYPE TEXT COLLATE "C",
    ALTER COLUMN call_type TYPE TEXT COLLATE "C",
    ALTER COLUMN did_number TYPE TEXT COLLATE "C",
    ALTER COLUMN customer_number TYPE TEXT COLLATE "C";
ALTER TABLE click_to_calls
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN account_id TYPE TEXT COLLATE "C",
    ALTER COLUMN ref_id TYPE TEXT COLLATE "C",
    ALTER COLUMN agent_extension TYPE TEXT COLLATE "C",
    ALTER COLUMN customer_number TYPE TEXT COLLATE "C",
    ALTER COLUMN did_number TYPE TEXT COLLATE "C",
    ALTER COLUMN state TYPE TEXT COLLATE "C",
    ALTER COLUMN reason TYPE TEXT COLLATE "C",
    ALTER COLUMN cause TYPE TEXT COLLATE "C",
    ALTER COLUMN call_id TYPE TEXT COLLATE "C",
    ALTER COLUMN connector TYPE TEXT COLLATE "C",
    ALTER COLUMN claimed_by TYPE TEXT COLLATE "C";
ALTER TABLE deliveries
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN account_id TYPE TEXT COLLATE "C",
    ALTER COLUMN webhook_id TYPE TEXT COLLATE "C",
    ALTER COLUMN call_id TYPE TEXT COLLATE "C",
    ALTER COLUMN trigger TYPE TEXT COLLATE "C",
    ALTER COLUMN state TYPE TEXT COLLATE "C",
    ALTER COLUMN last_error TYPE TEXT COLLATE "C",
    ALTER COLUMN last_error_kind TYPE TEXT COLLATE "C",
    ALTER COLUMN leased_by TYPE TEXT COLLATE "C";
ALTER TABLE events
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN account_id TYPE TEXT COLLATE "C",
    ALTER COLUMN event_id TYPE TEXT COLLATE "C",
    ALTER COLUMN call_id TYPE TEXT COLLATE "C",
    ALTER COLUMN type TYPE TEXT COLLATE "C",
    ALTER COLUMN payload TYPE TEXT COLLATE "C",
    ALTER COLUMN did_number TYPE TEXT COLLATE "C",
    ALTER COLUMN customer_number TYPE TEXT COLLATE "C";
ALTER TABLE nodes
    ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE numbers
    ALTER COLUMN account_id TYPE TEXT COLLATE "C",
    ALTER COLUMN number TYPE TEXT COLLATE "C",
    ALTER COLUMN label TYPE TEXT COLLATE "C";
ALTER TABLE placing_connectors
    ALTER COLUMN name TYPE TEXT COLLATE "C",
    ALTER COLUMN node_id TYPE TEXT COLLATE "C",
    ALTER COLUMN account_id TYPE TEXT COLLATE "C",
    ALTER COLUMN default_did TYPE TEXT COLLATE "C";
ALTER TABLE sessions
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN user_id TYPE TEXT COLLATE "C",
    ALTER COLUMN csrf TYPE TEXT COLLATE "C";
ALTER TABLE settings
    ALTER COLUMN key TYPE TEXT COLLATE "C",
    ALTER COLUMN value TYPE TEXT COLLATE "C";
ALTER TABLE user_links
    ALTER COLUMN hash TYPE TEXT COLLATE "C",
    ALTER COLUMN user_id TYPE TEXT COLLATE "C",
    ALTER COLUMN purpose TYPE TEXT COLLATE "C";
ALTER TABLE users
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN account_id TYPE TEXT COLLATE "C",
    ALTER COLUMN email TYPE TEXT COLLATE "C",
    ALTER COLUMN password_hash TYPE TEXT COLLATE "C",
    ALTER COLUMN role TYPE TEXT COLLATE "C";
ALTER TABLE webhook_alerts
    ALTER COLUMN webhook_id TYPE TEXT COLLATE "C",
    ALTER COLUMN account_id TYPE TEXT COLLATE "C",
    ALTER COLUMN failed_last TYPE TEXT COLLATE "C";
ALTER TABLE webhook_hours
    ALTER COLUMN webhook_id TYPE TEXT COLLATE "C";
ALTER TABLE webhooks
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN account_id TYPE TEXT COLLATE "C",
    ALTER COLUMN spec TYPE TEXT COLLATE "C",
    ALTER COLUMN trigger TYPE TEXT COLLATE "C",
    ALTER COLUMN disabled_reason TYPE TEXT COLLATE "C",
    ALTER COLUMN secrets TYPE TEXT COLLATE "C",
    ALTER COLUMN last_error_kind TYPE TEXT COLLATE "C",
    ALTER COLUMN last_error_message TYPE TEXT COLLATE "C";
