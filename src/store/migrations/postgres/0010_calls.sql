-- The account's calls, one row each, for the Calls list (SPEC §12: by number and time range,
-- newest first, paged) found through indexes however long the history is. The database keeps
-- it: the first stored event of a call adds its row (the trigger below), whatever path stored
-- the event; test sends' made-up calls are left out. The row is written once and never
-- changed, so concurrent ingests never wait on each other for it; what changes as a call goes
-- on (its events, its deliveries) is read from those tables for the page shown. Retention
-- removes a row once its call has no events left. Times are Unix milliseconds (UTC).
CREATE TABLE calls (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id       TEXT NOT NULL,
    call_id          TEXT NOT NULL,
    -- As its first event reported them (`call.call_type`, `call.did_number`, …).
    call_type        TEXT,
    did_number       TEXT,
    customer_number  TEXT,
    -- When the call began: its first event's occurred_at. The list is ordered by it, and
    -- `since` / `until` filter on it.
    started_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX calls_call ON calls(account_id, call_id);
CREATE INDEX calls_started ON calls(account_id, started_at, seq);
CREATE INDEX calls_did ON calls(account_id, did_number, started_at, seq);
CREATE INDEX calls_customer ON calls(account_id, customer_number, started_at, seq);

CREATE FUNCTION events_note_call() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c jsonb := NEW.payload::jsonb -> 'call';
BEGIN
    INSERT INTO calls (account_id, call_id, call_type, did_number, customer_number, started_at)
    VALUES (NEW.account_id, NEW.call_id, c ->> 'call_type', c ->> 'did_number',
            c ->> 'customer_number', NEW.occurred_at)
    ON CONFLICT (account_id, call_id) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_note_call AFTER INSERT ON events
    FOR EACH ROW WHEN (NOT NEW.test) EXECUTE FUNCTION events_note_call();

-- The calls stored before this change, in the order they were first seen.
INSERT INTO calls (account_id, call_id, call_type, did_number, customer_number, started_at)
SELECT f.account_id, f.call_id, f.payload::jsonb -> 'call' ->> 'call_type',
       f.payload::jsonb -> 'call' ->> 'did_number',
       f.payload::jsonb -> 'call' ->> 'customer_number', f.occurred_at
FROM events f
WHERE f.seq IN (SELECT MIN(seq) FROM events WHERE NOT test GROUP BY account_id, call_id)
ORDER BY f.seq;
