-- A business with a team (SPEC §13): users and API keys get a role, invitations and password
-- resets are one-time links, and every change is recorded in the audit log. Times are Unix
-- milliseconds (UTC).

-- owner | admin | viewer. Whoever signed in before roles existed ran the whole account.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';
-- An invited user has no password until they follow their link: password_hash is ''.
CREATE INDEX users_account ON users(account_id, id);

-- admin | viewer. Every key made before roles existed could do everything.
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';

-- One-time links to set a password: an invitation (sign up) or a reset. Only the SHA-256 of
-- the token in the link is kept; a link works once, until expires_at.
--   purpose: invite | reset
CREATE TABLE user_links (
    hash        TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX user_links_user ON user_links(user_id);

-- One row per change, written in the transaction of the change. Never a secret's value.
--   actor_type: user | api_key | operator; changes: [{"field", "before", "after"}] as JSON.
CREATE TABLE audit_log (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    account_id     TEXT NOT NULL,
    at             INTEGER NOT NULL,
    actor_type     TEXT NOT NULL,
    actor_id       TEXT,
    actor_name     TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_id    TEXT NOT NULL,
    changes        TEXT NOT NULL
);
CREATE INDEX audit_log_account ON audit_log(account_id, seq);
CREATE INDEX audit_log_resource ON audit_log(account_id, resource_id, seq);
-- Retention prunes by time.
CREATE INDEX audit_log_at ON audit_log(at);
