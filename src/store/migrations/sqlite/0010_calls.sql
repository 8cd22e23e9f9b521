-- The account's calls, one row each, for the Calls list (SPEC §12: by number and time range,
-- newest first, paged) found through indexes however long the history is. The database keeps
-- it: the first stored event of a call adds its row (the trigger below), whatever path stored
-- the event; test sends' made-up calls are left out. The row is written once and never
-- changed, so concurrent ingests never wait on each other for it; what changes as a call goes
-- on (its events, its deliveries) is read from those tables for the page shown. Retention
-- removes a row once its call has no events left. Times are Unix milliseconds (UTC).
CREATE TABLE calls (
    seq              INTEGER PRIMARY KEY,
    account_id       TEXT NOT NULL,
    call_id          TEXT NOT NULL,
    -- As its first event reported them (`call.call_type`, `call.did_number`, …).
    call_type        TEXT,
    did_number       TEXT,
    customer_number  TEXT,
    -- When the call began: its first event's occurred_at. The list is ordered by it, and
    -- `since` / `until` filter on it.
    started_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX calls_call ON calls(account_id, call_id);
CREATE INDEX calls_started ON calls(account_id, started_at, seq);
CREATE INDEX calls_did ON calls(account_id, did_number, started_at, seq);
CREATE INDEX calls_customer ON calls(account_id, customer_number, started_at, seq);

CREATE TRIGGER events_note_call AFTER INSERT ON events WHEN NEW.test = 0
BEGIN
    INSERT INTO calls (account_id, call_id, call_type, did_number, customer_number, started_at)
    VALUES (NEW.account_id, NEW.call_id, json_extract(NEW.payload, '$.call.call_type'),
            json_extract(NEW.payload, '$.call.did_number'),
            json_extract(NEW.payload, '$.call.customer_number'), NEW.occurred_at)
    ON CONFLICT (account_id, call_id) DO NOTHING;
END;

-- The calls stored before this change, in the order they were first seen.
INSERT INTO calls (account_id, call_id, call_type, did_number, customer_number, started_at)
SELECT f.account_id, f.call_id, json_extract(f.payload, '$.call.call_type'),
       json_extract(f.payload, '$.call.did_number'),
       json_extract(f.payload, '$.call.customer_number'), f.occurred_at
FROM events f
WHERE f.seq IN (SELECT MIN(seq) FROM events WHERE test = 0 GROUP BY account_id, call_id)
ORDER BY f.seq;
