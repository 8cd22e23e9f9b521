//! Retention: the finished past goes, oldest first, in bounded batches.

use jiff::Timestamp;
use sqlx::QueryBuilder;

use super::Backend;
use super::audit;
use super::db::{RowsAffected, SqlDb};
use super::rows::{Cols, to_ms};
use super::shapes::padded_chunks;
use crate::store::Result;

/// After `WITH p(account_id, call_id) AS (VALUES ..)`: deletes those calls none of whose
/// events are left.
pub(crate) const PRUNE_CALLS: &str = "DELETE FROM calls WHERE seq IN (
    SELECT c.seq FROM p JOIN calls c ON c.account_id = p.account_id AND c.call_id = p.call_id
    WHERE NOT EXISTS (SELECT 1 FROM events e
                      WHERE e.account_id = c.account_id AND e.call_id = c.call_id))";

/// Deletes up to `$2` events received before `$1` that have no delivery left, oldest first,
/// answering each one's `account_id, call_id`. Read in the events' own order (`seq`, the order
/// they were stored) up to the first event received at or after the cut, as the deliveries'
/// prune does, so no index of receipt times is written for it (migration 0019 dropped
/// `events_received`); an event received before the cut but stored after a later one goes in
/// a later prune.
pub(crate) const PRUNE_EVENTS: &str = "DELETE FROM events WHERE seq IN (
    SELECT e.seq FROM events e
    WHERE e.seq < COALESCE((SELECT seq FROM events WHERE received_at >= $1 ORDER BY seq LIMIT 1),
                           9223372036854775807)
      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.call_id = e.call_id AND d.event_seq = e.seq)
    ORDER BY e.seq LIMIT $2)
 RETURNING account_id, call_id";

/// Deletes up to `$2` click-to-call requests that ended (answered or failed) before `$1`,
/// oldest first, found through `click_to_calls_ended` (migration 0016).
pub(crate) const PRUNE_CLICK_TO_CALLS: &str = "DELETE FROM click_to_calls WHERE id IN (
    SELECT id FROM click_to_calls WHERE state IN ('answered', 'failed') AND updated_at < $1
    ORDER BY updated_at LIMIT $2)";

/// Deletes up to `batch` finished deliveries last touched before `before` with all their
/// attempts, up to `batch` events older than that left without deliveries, the calls of those
/// events with no events left, up to `batch` click-to-call requests that ended before then, and up to `batch` audit entries older
/// than that.
pub async fn prune<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    before: Timestamp,
    batch: u32,
) -> Result<u64> {
    let (before, batch) = (to_ms(before), batch as i64);
    b.write(move |c| {
        Box::pin(async move {
            // Oldest first: finished deliveries last touched before the cut, then their
            // attempts (all of them: a delivery's log goes whole or not at all), then events
            // that no longer have a delivery.
            let gone: Vec<String> = sqlx::query_scalar(
                "DELETE FROM deliveries WHERE seq IN (
                    SELECT seq FROM deliveries
                    WHERE seq < COALESCE((SELECT seq FROM deliveries WHERE created_at >= $1 ORDER BY seq LIMIT 1),
                                         9223372036854775807)
                      AND state IN ('succeeded', 'failed') AND updated_at < $1
                    ORDER BY seq LIMIT $2)
                 RETURNING id",
            )
            .bind(before)
            .bind(batch)
            .fetch_all(&mut *c)
            .await?;
            let mut removed = gone.len() as u64;
            for chunk in padded_chunks(&gone) {
                let mut q =
                    QueryBuilder::<DB>::new("DELETE FROM attempts WHERE delivery_id IN (");
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(id.as_str());
                }
                q.push(")");
                q.build().execute(&mut *c).await?;
            }
            let events = sqlx::query(PRUNE_EVENTS)
            .bind(before)
            .bind(batch)
            .fetch_all(&mut *c)
            .await?;
            removed += events.len() as u64;
            let calls: Vec<(String, String)> = events
                .iter()
                .map(|r| Ok((r.text("account_id")?, r.text("call_id")?)))
                .collect::<Result<_>>()?;
            // The calls of those events none of whose events are left (their rows in the Calls
            // list). Only retention removes events, so this finds every call that empties; it
            // looks up each through `calls_call`, where a search of the calls table by its
            // start time (no index has it first) read every call, once a minute.
            for chunk in padded_chunks(&calls) {
                let mut q = QueryBuilder::<DB>::new("WITH p(account_id, call_id) AS (");
                q.push_values(chunk, |mut b, (account, call)| {
                    b.push_bind(account.as_str()).push_bind(call.as_str());
                });
                q.push(") ");
                q.push(PRUNE_CALLS);
                removed += q.build().execute(&mut *c).await?.rows_affected();
            }
            // Click-to-call requests that ended before the cut (their ref_id may be used
            // again after that).
            removed += sqlx::query(PRUNE_CLICK_TO_CALLS)
            .bind(before)
            .bind(batch)
            .execute(&mut *c)
            .await?
            .rows_affected();
            // The audit log is kept as long as the delivery log.
            removed += audit::prune_in::<DB>(c, before, batch).await?;
            Ok(removed)
        })
    })
    .await
}
