//! Calls as the web page shows them: one call's events with the deliveries each caused, and
//! the account's recently active calls.

use sqlx::AssertSqlSafe;

use super::Backend;
use super::db::SqlDb;
use super::rows::*;
use crate::core::id::{AccountId, CallId, EventId};
use crate::store::{CallSummary, Delivery, Result, StoreError, StoredEvent};

/// The call's events, in order, each with the deliveries it caused.
pub async fn timeline<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    call_id: &CallId,
) -> Result<Vec<(StoredEvent, Vec<Delivery>)>> {
    let events: Vec<StoredEvent> = sqlx::query(
        "SELECT id, account_id, event_id, call_id, type, occurred_at, received_at, test, did_number,
                customer_number, payload FROM events
         WHERE account_id = $1 AND call_id = $2 ORDER BY seq",
    )
    .bind(account_id)
    .bind(call_id)
    .fetch_all(b.read())
    .await?
    .iter()
    .map(event_from_row)
    .collect::<Result<_>>()?;
    if events.is_empty() {
        return Err(StoreError::NotFound);
    }
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS}, e.id AS event_row FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE e.account_id = $1 AND e.call_id = $2 ORDER BY d.seq"
    )))
    .bind(account_id)
    .bind(call_id)
    .fetch_all(b.read())
    .await?;
    let mut out: Vec<(StoredEvent, Vec<Delivery>)> =
        events.into_iter().map(|e| (e, Vec::new())).collect();
    for r in &rows {
        let ev: EventId = r.id("event_row")?;
        if let Some((_, ds)) = out.iter_mut().find(|(e, _)| e.id == ev) {
            ds.push(delivery_from_row(r)?);
        }
    }
    Ok(out)
}

/// The account's `limit` most recently active calls (test sends left out), newest first.
pub async fn recent<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    limit: u32,
) -> Result<Vec<CallSummary>> {
    // Only the account's latest events are grouped, so the page stays quick however long the
    // history is; a call older than that window simply drops off the list.
    let rows = sqlx::query(AssertSqlSafe(format!(
        "WITH recent AS (
             SELECT seq, call_id, received_at FROM events
             WHERE account_id = $1 AND NOT test ORDER BY seq DESC LIMIT 5000),
         calls AS (
             SELECT call_id, COUNT(*) AS events, MIN(received_at) AS first_at,
                    MAX(received_at) AS last_at, MAX(seq) AS last_seq
             FROM recent GROUP BY call_id ORDER BY last_seq DESC LIMIT $2)
         SELECT c.call_id, c.events, c.first_at, c.last_at, l.type AS last_type, {},
                (SELECT COUNT(*) FROM deliveries d WHERE d.event_seq IN
                    (SELECT seq FROM events e WHERE e.account_id = $1 AND e.call_id = c.call_id)) AS deliveries
         FROM calls c JOIN events l ON l.seq = c.last_seq
         ORDER BY c.last_seq DESC",
        DB::CALL_FIELDS
    )))
    .bind(account_id)
    .bind(limit as i64)
    .fetch_all(b.read())
    .await?;
    rows.iter().map(call_summary_from_row).collect()
}
