-- The calls list's trigger (0013), run once per statement instead of once per event. The ingest
-- stores its events in multi-row statements; per event, the row trigger cost about 40 µs of
-- PostgreSQL's time (its own call, the lookup, the insert), two thirds of what storing the
-- event costs without it. Now one statement looks the new calls up and inserts them together.
-- The rows it writes are the same: a call's row comes from its first event (the lowest seq),
-- test events list no call, and new calls are numbered in the order their first events came.
DROP TRIGGER events_note_call ON events;
DROP FUNCTION events_note_call();

CREATE FUNCTION events_note_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The lookup is a correlated subquery, one probe of calls_call per call: as a join, the
    -- planner (which knows nothing of a transition table's size) could scan every call.
    INSERT INTO calls (account_id, call_id, call_type, did_number, customer_number, started_at)
    SELECT f.account_id, f.call_id, f.payload::jsonb -> 'call' ->> 'call_type', f.did_number,
           f.customer_number, f.occurred_at
    FROM (SELECT DISTINCT ON (n.account_id, n.call_id) n.*
          FROM new_events n
          WHERE NOT n.test AND (SELECT 1 FROM calls c
                                WHERE c.account_id = n.account_id AND c.call_id = n.call_id
                                LIMIT 1) IS NULL
          ORDER BY n.account_id, n.call_id, n.seq) f
    ORDER BY f.seq
    ON CONFLICT (account_id, call_id) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_note_calls AFTER INSERT ON events REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION events_note_calls();
