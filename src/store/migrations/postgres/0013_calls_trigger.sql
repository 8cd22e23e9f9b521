-- The calls list's trigger (0010), cheaper: a call's numbers come from the event's own columns
-- (0008), and the event's JSON is read (for the call type) only when the call is new. Most
-- events belong to a call already listed. The rows it writes are the same.
CREATE OR REPLACE FUNCTION events_note_call() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM calls WHERE account_id = NEW.account_id AND call_id = NEW.call_id) THEN
        INSERT INTO calls (account_id, call_id, call_type, did_number, customer_number, started_at)
        VALUES (NEW.account_id, NEW.call_id, NEW.payload::jsonb -> 'call' ->> 'call_type',
                NEW.did_number, NEW.customer_number, NEW.occurred_at)
        ON CONFLICT (account_id, call_id) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
