//! Calls: one call's events with the deliveries each caused, and the account's calls found by
//! number and time (the `calls` table the database keeps as events are stored).

use std::collections::HashMap;

use sqlx::{AssertSqlSafe, QueryBuilder};

use super::Backend;
use super::db::SqlDb;
use super::rows::*;
use crate::core::id::{AccountId, CallId, EventId};
use crate::store::{
    CallFilter, CallSummary, Delivery, DeliveryCounts, DeliveryStatus, Page, PageRequest, Result,
    StoreError, StoredEvent,
};

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
    let rows = sqlx::query(AssertSqlSafe(call_deliveries()))
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

/// A page of the account's calls (test sends' left out), newest first: those of `filter`'s
/// number (the DID or the customer's) that began in its time range, each with its events'
/// types and its deliveries counted by status.
pub async fn list<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    filter: &CallFilter,
    page: &PageRequest,
) -> Result<Page<CallSummary>> {
    let mut q = QueryBuilder::<DB>::new(
        "SELECT seq, call_id, call_type, did_number, customer_number, started_at FROM calls c WHERE account_id = ",
    );
    q.push_bind(account_id);
    if let Some(n) = &filter.number {
        q.push(" AND (did_number = ");
        q.push_bind(n.as_str());
        q.push(" OR customer_number = ");
        q.push_bind(n.as_str());
        q.push(")");
    }
    if let Some(since) = filter.since {
        q.push(" AND started_at >= ");
        q.push_bind(to_ms(since));
    }
    if let Some(until) = filter.until {
        q.push(" AND started_at < ");
        q.push_bind(to_ms(until));
    }
    if let Some(after) = &page.after {
        // The cursor is the last call of the page before: the calls that come after it in
        // the list's order (begun earlier, or at the same moment but seen first).
        q.push(
            " AND EXISTS (SELECT 1 FROM calls a WHERE a.account_id = c.account_id AND a.call_id = ",
        );
        q.push_bind(after.as_str());
        q.push(" AND (c.started_at < a.started_at OR (c.started_at = a.started_at AND c.seq < a.seq)))");
    }
    q.push(" ORDER BY started_at DESC, seq DESC LIMIT ");
    q.push_bind(limit_plus_one(page));
    let rows = q.build().fetch_all(b.read()).await?;
    let mut calls = Vec::with_capacity(rows.len());
    for r in &rows {
        calls.push(CallSummary {
            call_id: r.id("call_id")?,
            call_type: r.opt_text("call_type")?,
            did_number: r.opt_text("did_number")?,
            customer_number: r.opt_text("customer_number")?,
            started_at: r.ts("started_at")?,
            event_types: Vec::new(),
            first_received_at: None,
            last_received_at: None,
            deliveries: DeliveryCounts::default(),
        });
    }
    let mut page = Page::from_rows(calls, page.limit, |c: &CallSummary| c.call_id.to_string());
    fill_in::<DB>(b, account_id, &mut page.items).await?;
    Ok(page)
}

/// The deliveries of call `$2` of account `$1` in the order they were stored, each with its
/// event's id, found through `deliveries_call` (a delivery has its event's account and call).
pub(crate) fn call_deliveries() -> String {
    format!(
        "SELECT {DELIVERY_COLUMNS}, e.id AS event_row FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.call_id = $2 AND d.account_id = $1 ORDER BY d.seq"
    )
}

/// The deliveries of the calls `ids` of the account counted by call, state and whether they
/// were tried (test sends left out), found through `deliveries_call`.
pub(crate) fn call_counts<DB: SqlDb>(account_id: &AccountId, ids: &[String]) -> QueryBuilder<DB> {
    let mut q = QueryBuilder::<DB>::new(
        "SELECT d.call_id, d.state, d.attempts > 0 AS tried, COUNT(*) AS n
         FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE NOT e.test AND d.account_id = ",
    );
    q.push_bind(account_id.clone());
    q.push(" AND d.call_id IN (");
    push_ids(&mut q, ids);
    q.push(") GROUP BY d.call_id, d.state, d.attempts > 0");
    q
}

/// Binds `ids` as the items of an `IN (..)` list.
fn push_ids<DB: SqlDb>(q: &mut QueryBuilder<DB>, ids: &[String]) {
    let mut sep = q.separated(", ");
    for id in ids {
        sep.push_bind(id.clone());
    }
}

/// Adds to each call its events' types (in order) and times, and its deliveries by status.
async fn fill_in<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    calls: &mut [CallSummary],
) -> Result<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let mut index: HashMap<CallId, usize> = HashMap::with_capacity(calls.len());
    for (i, c) in calls.iter().enumerate() {
        index.insert(c.call_id.clone(), i);
    }
    let ids: Vec<String> = calls.iter().map(|c| c.call_id.to_string()).collect();
    let mut q = QueryBuilder::<DB>::new(
        "SELECT call_id, type, received_at FROM events WHERE NOT test AND account_id = ",
    );
    q.push_bind(account_id);
    q.push(" AND call_id IN (");
    push_ids(&mut q, &ids);
    q.push(") ORDER BY seq");
    for r in q.build().fetch_all(b.read()).await? {
        let call: CallId = r.id("call_id")?;
        let Some(&i) = index.get(&call) else {
            continue;
        };
        let c = &mut calls[i];
        let at = r.ts("received_at")?;
        c.event_types.push(r.text("type")?);
        c.first_received_at.get_or_insert(at);
        c.last_received_at = Some(at);
    }
    for r in call_counts::<DB>(account_id, &ids)
        .build()
        .fetch_all(b.read())
        .await?
    {
        let call: CallId = r.id("call_id")?;
        let Some(&i) = index.get(&call) else {
            continue;
        };
        let n = r.int("n")? as u64;
        let counts = &mut calls[i].deliveries;
        match r.state("state")?.status() {
            DeliveryStatus::Succeeded => counts.succeeded += n,
            DeliveryStatus::Failed => counts.failed += n,
            DeliveryStatus::Pending if r.boolean("tried")? => counts.retrying += n,
            DeliveryStatus::Pending => counts.pending += n,
        }
    }
    Ok(())
}
