-- The calls list's trigger (0010), cheaper: a call's numbers come from the event's own columns
-- (0008), and the event's JSON is read (for the call type) only when the call is new. Most
-- events belong to a call already listed, and reading the payload three times per event was
-- most of the trigger's cost (BENCHMARKS.md, issue 15). The rows it writes are the same.
DROP TRIGGER events_note_call;

CREATE TRIGGER events_note_call AFTER INSERT ON events
WHEN NEW.test = 0 AND NOT EXISTS (
    SELECT 1 FROM calls WHERE account_id = NEW.account_id AND call_id = NEW.call_id)
BEGIN
    INSERT INTO calls (account_id, call_id, call_type, did_number, customer_number, started_at)
    VALUES (NEW.account_id, NEW.call_id, json_extract(NEW.payload, '$.call.call_type'),
            NEW.did_number, NEW.customer_number, NEW.occurred_at)
    ON CONFLICT (account_id, call_id) DO NOTHING;
END;
