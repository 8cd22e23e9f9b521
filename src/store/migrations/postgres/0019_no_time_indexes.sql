-- Two indexes of times that cost a b-tree entry per row stored: events_received (retention now
-- reads the events in their own order up to the first one received after its cut, as it reads
-- the deliveries) and attempts_started (no statement reads attempts by their start time).
DROP INDEX events_received;
DROP INDEX attempts_started;
