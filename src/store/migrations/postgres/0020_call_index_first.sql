-- A call's deliveries are found through one index, the call first: the per-call lookups (is a
-- call's earlier delivery still pending; which goes next) probe (call, webhook, state) as
-- before, and a call's page, the calls list's counts and retention now find a call's or an
-- event's deliveries by the call too, so deliveries_event (event_seq), one b-tree entry per
-- delivery stored (and on PostgreSQL per delivery recorded), goes.
DROP INDEX deliveries_event;
DROP INDEX deliveries_webhook_call;
CREATE INDEX deliveries_call ON deliveries(call_id, webhook_id, state, seq);
