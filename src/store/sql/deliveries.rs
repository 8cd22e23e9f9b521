//! The delivery log and what a person does with it: read a delivery and its attempts, list a
//! webhook's, resend one, replay many; and the counts metrics and the web page show.

use jiff::Timestamp;
use sqlx::{AssertSqlSafe, QueryBuilder};

use super::Backend;
use super::attempts::promote_next;
use super::audit;
use super::db::{RowsAffected, SqlDb};
use super::rows::*;
use crate::core::delivery_state::{self, DeliveryStatus, Resend, State, arrival};
use crate::core::id::{AccountId, CallId, DeliveryId, WebhookId};
use crate::store::{
    Attempt, AuditEntry, Change, Delivery, DeliveryFilter, FailureGroup, HourlyDeliveries, Page,
    PageRequest, QueueStats, Result, StoreError,
};

pub async fn get<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    id: &DeliveryId,
) -> Result<(Delivery, Vec<Attempt>)> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.account_id = $1 AND d.id = $2"
    )))
    .bind(account_id)
    .bind(id)
    .fetch_one(b.read())
    .await?;
    let d = delivery_from_row(&row)?;
    let attempts = sqlx::query("SELECT * FROM attempts WHERE delivery_id = $1 ORDER BY n, seq")
        .bind(id)
        .fetch_all(b.read())
        .await?
        .iter()
        .map(attempt_from_row)
        .collect::<Result<_>>()?;
    Ok((d, attempts))
}

/// A webhook's deliveries, newest first (by creation time, then by the order they were stored).
pub async fn list<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    webhook_id: &WebhookId,
    filter: &DeliveryFilter,
    page: &PageRequest,
) -> Result<Page<Delivery>> {
    let rows = list_query("", account_id, webhook_id, filter, page)
        .build()
        .fetch_all(b.read())
        .await?;
    let items = rows.iter().map(delivery_from_row).collect::<Result<_>>()?;
    Ok(Page::from_rows(items, page.limit, |d: &Delivery| {
        d.id.to_string()
    }))
}

/// The statement of [`list`]. Its order is that of `deliveries_log` (webhook, created_at, seq)
/// and of the state and kind filters' indexes, so a page reads its rows in order and stops at
/// the page's end, whatever the log's length (see `sql::plans` and `postgres::tests`).
/// `prefix` goes first (a test's `EXPLAIN`).
pub(crate) fn list_query<DB: SqlDb>(
    prefix: &str,
    account_id: &AccountId,
    webhook_id: &WebhookId,
    filter: &DeliveryFilter,
    page: &PageRequest,
) -> QueryBuilder<DB> {
    let mut q = QueryBuilder::<DB>::new(format!(
        "{prefix}SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.account_id = "
    ));
    q.push_bind(account_id);
    q.push(" AND d.webhook_id = ");
    q.push_bind(webhook_id);
    if let Some(after) = &page.after {
        // The cursor counts only as one of this webhook's own deliveries.
        q.push(" AND (d.created_at, d.seq) < (SELECT created_at, seq FROM deliveries WHERE id = ");
        q.push_bind(after.as_str());
        q.push(" AND account_id = ");
        q.push_bind(account_id);
        q.push(" AND webhook_id = ");
        q.push_bind(webhook_id);
        q.push(")");
    }
    push_filter(&mut q, account_id, filter);
    q.push(" ORDER BY d.created_at DESC, d.seq DESC LIMIT ");
    q.push_bind(limit_plus_one(page));
    q
}

/// Adds `filter`'s conditions on deliveries `d` of the account (the log's filters, SPEC §12).
fn push_filter<DB: SqlDb>(
    q: &mut QueryBuilder<DB>,
    account_id: &AccountId,
    filter: &DeliveryFilter,
) {
    if let Some(status) = filter.status {
        q.push(" AND d.state IN (");
        let mut sep = q.separated(", ");
        for s in status.states() {
            sep.push_bind(s.as_str());
        }
        q.push(")");
    }
    if filter.retrying {
        q.push(" AND d.state IN ('queued', 'waiting') AND d.last_error_kind IS NOT NULL");
    }
    if let Some(call_id) = &filter.call_id {
        q.push(" AND d.call_id = ");
        q.push_bind(call_id.as_str().to_owned());
    }
    if let Some(number) = &filter.number {
        // Deliveries whose event has the number: their call is among the calls of the events
        // that have it (`events_did`, `events_customer`), which lets PostgreSQL probe
        // `deliveries_call` per call, and their own event has it. SQLite, without statistics,
        // reads the webhook's log in order and checks each delivery against both (as it did
        // with the former `event_seq IN (..)`, see `sql::plans`).
        let number = number.as_str().to_owned();
        q.push(" AND d.call_id IN (SELECT call_id FROM events WHERE account_id = ");
        q.push_bind(account_id.clone());
        q.push(" AND did_number = ");
        q.push_bind(number.clone());
        q.push(" UNION ALL SELECT call_id FROM events WHERE account_id = ");
        q.push_bind(account_id.clone());
        q.push(" AND customer_number = ");
        q.push_bind(number.clone());
        q.push(") AND EXISTS (SELECT 1 FROM events ne WHERE ne.seq = d.event_seq AND (ne.did_number = ");
        q.push_bind(number.clone());
        q.push(" OR ne.customer_number = ");
        q.push_bind(number);
        q.push("))");
    }
    if let Some(kind) = filter.error_kind {
        q.push(" AND d.last_error_kind = ");
        q.push_bind(kind.as_str());
    }
    if let Some(status) = filter.http_status {
        q.push(" AND d.last_status = ");
        q.push_bind(i64::from(status));
    }
    if let Some(since) = filter.since {
        q.push(" AND d.created_at >= ");
        q.push_bind(to_ms(since));
    }
    if let Some(until) = filter.until {
        q.push(" AND d.created_at < ");
        q.push_bind(to_ms(until));
    }
}

/// A webhook's failed and retrying deliveries (test sends left out) created since `since`,
/// grouped by their latest attempt's error kind, HTTP status and message, largest first.
pub async fn failure_groups<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    webhook_id: &WebhookId,
    since: Timestamp,
) -> Result<Vec<FailureGroup>> {
    let rows = sqlx::query(
        "SELECT d.last_error_kind AS kind, d.last_status AS status, COALESCE(d.last_error, '') AS message,
                COUNT(*) AS n, MIN(d.last_attempt_at) AS first_at, MAX(d.last_attempt_at) AS last_at,
                MAX(d.id) AS example
         FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.account_id = $1 AND d.webhook_id = $2 AND d.created_at >= $3
           AND d.state <> 'succeeded' AND d.last_error_kind IS NOT NULL AND NOT e.test
         GROUP BY d.last_error_kind, d.last_status, COALESCE(d.last_error, '')
         ORDER BY n DESC, last_at DESC LIMIT 100",
    )
    .bind(account_id)
    .bind(webhook_id)
    .bind(to_ms(since))
    .fetch_all(b.read())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(FailureGroup {
                kind: r
                    .error_kind("kind")?
                    .ok_or_else(|| StoreError::Corrupt("a failure without a kind".into()))?,
                status: r.opt_int("status")?.map(|s| s as u16),
                message: r.text("message")?,
                count: r.int("n")? as u64,
                first_at: r.opt_ts("first_at")?,
                last_at: r.opt_ts("last_at")?,
                example: r.id("example")?,
            })
        })
        .collect()
}

/// Retries now the webhook's failed and retrying deliveries matching `filter` (never a test
/// delivery, nor one being sent), as a replay does: all wait, then the earliest of each call
/// goes, so each call's leave in their order. Records `audit` with the count.
pub async fn retry<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    webhook_id: &WebhookId,
    filter: &DeliveryFilter,
    attempts: u32,
    now: Timestamp,
    audit: &AuditEntry,
) -> Result<u64> {
    let (account_id, webhook_id, filter) = (account_id.clone(), webhook_id.clone(), filter.clone());
    let now = to_ms(now);
    let mut audit = audit.clone();
    b.write(move |c| {
        Box::pin(async move {
            let matching = |q: &mut QueryBuilder<DB>| {
                q.push(" FROM deliveries d WHERE d.account_id = ");
                q.push_bind(account_id.clone());
                q.push(" AND d.webhook_id = ");
                q.push_bind(webhook_id.clone());
                q.push(
                    " AND (d.state = 'failed' OR (d.state IN ('queued', 'waiting') AND d.last_error_kind IS NOT NULL))
                      AND (d.claimed_until IS NULL OR d.claimed_until < ",
                );
                q.push_bind(now);
                q.push(
                    ") AND NOT EXISTS (SELECT 1 FROM events te WHERE te.seq = d.event_seq AND te.test)",
                );
                push_filter(q, &account_id, &filter);
            };
            let mut q = QueryBuilder::<DB>::new("SELECT DISTINCT d.call_id");
            matching(&mut q);
            let calls: Vec<CallId> = q.build_query_scalar().fetch_all(&mut *c).await?;
            let keys: Vec<(&WebhookId, &CallId)> =
                calls.iter().map(|call| (&webhook_id, call)).collect();
            DB::lock_calls(c, &keys).await?;
            let mut q = QueryBuilder::<DB>::new("UPDATE deliveries SET state = ");
            q.push_bind(State::REPLAYED.as_str());
            q.push(", next_attempt_at = NULL, attempt_limit = attempts + ");
            q.push_bind(attempts as i64);
            q.push(", updated_at = ");
            q.push_bind(now);
            q.push(" WHERE seq IN (SELECT d.seq");
            matching(&mut q);
            q.push(")");
            let n = q.build().execute(&mut *c).await?.rows_affected();
            let mut pairs: Vec<(WebhookId, CallId)> = calls
                .into_iter()
                .map(|call| (webhook_id.clone(), call))
                .collect();
            pairs.sort();
            promote_next::<DB>(c, &pairs, now).await?;
            audit.changes.push(Change::set("retried", n.into()));
            audit::insert_in::<DB>(c, &audit).await?;
            Ok(n)
        })
    })
    .await
}

/// Makes a delivery due now for one more attempt, as [`delivery_state::resend`] decides.
pub async fn resend<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    id: &DeliveryId,
    now: Timestamp,
    audit: &AuditEntry,
) -> Result<()> {
    let (account_id, id, audit) = (account_id.clone(), id.clone(), audit.clone());
    b.write(move |c| {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT state, claimed_until, webhook_id, call_id FROM deliveries WHERE account_id = $1 AND id = $2",
            )
            .bind(&account_id)
            .bind(&id)
            .fetch_optional(&mut *c)
            .await?
            .ok_or(StoreError::NotFound)?;
            let (webhook_id, call_id): (WebhookId, CallId) = (row.id("webhook_id")?, row.id("call_id")?);
            let decided = delivery_state::resend(
                row.state("state")?,
                row.opt_ts("claimed_until")?,
                &call_id,
                now,
            )
            .map_err(|refused| StoreError::Conflict(refused.to_string()))?;
            match decided {
                Resend::RetryNow => {
                    sqlx::query(
                        "UPDATE deliveries SET next_attempt_at = $2, updated_at = $2 WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(to_ms(now))
                    .execute(&mut *c)
                    .await?;
                }
                Resend::OneMore => {
                    DB::lock_calls(c, &[(&webhook_id, &call_id)]).await?;
                    let call_busy: bool = sqlx::query_scalar(CALL_BUSY)
                    .bind(&webhook_id)
                    .bind(&call_id)
                    .fetch_one(&mut *c)
                    .await?;
                    let (state, due) = arrival(call_busy, now, None);
                    sqlx::query(
                        "UPDATE deliveries SET attempt_limit = attempts + 1, updated_at = $2,
                            state = $3, next_attempt_at = $4
                         WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(to_ms(now))
                    .bind(state.as_str())
                    .bind(due.map(to_ms))
                    .execute(&mut *c)
                    .await?;
                }
            }
            audit::insert_in::<DB>(c, &audit).await
        })
    })
    .await
}

/// Re-queues a webhook's deliveries in `status` created since `since`, keeping per-call order;
/// each gets `attempts` more attempts. Returns how many, and records `audit` with that count.
#[allow(clippy::too_many_arguments)]
pub async fn replay<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    webhook_id: &WebhookId,
    since: Timestamp,
    status: DeliveryStatus,
    attempts: u32,
    now: Timestamp,
    audit: &AuditEntry,
) -> Result<u64> {
    let (account_id, webhook_id, now) = (account_id.clone(), webhook_id.clone(), to_ms(now));
    let mut audit = audit.clone();
    let states: &'static [State] = status.states();
    b.write(move |c| {
        Box::pin(async move {
            // Everything replayed waits first; then the head of each call goes, so a call's
            // deliveries leave in order exactly as they did the first time. The calls are
            // locked before anything changes (nodes write concurrently on PostgreSQL).
            let matching = |q: &mut QueryBuilder<DB>| {
                q.push(" WHERE account_id = ");
                q.push_bind(account_id.clone());
                q.push(" AND webhook_id = ");
                q.push_bind(webhook_id.clone());
                q.push(" AND created_at >= ");
                q.push_bind(to_ms(since));
                q.push(" AND state IN (");
                let mut sep = q.separated(", ");
                for s in states {
                    sep.push_bind(s.as_str());
                }
                // Test sends are never replayed.
                q.push(
                    ") AND NOT EXISTS (SELECT 1 FROM events te WHERE te.seq = deliveries.event_seq AND te.test)",
                );
            };
            let mut q = QueryBuilder::<DB>::new("SELECT DISTINCT call_id FROM deliveries");
            matching(&mut q);
            let calls: Vec<CallId> = q.build_query_scalar().fetch_all(&mut *c).await?;
            let keys: Vec<(&WebhookId, &CallId)> =
                calls.iter().map(|call| (&webhook_id, call)).collect();
            DB::lock_calls(c, &keys).await?;
            let mut q = QueryBuilder::<DB>::new("UPDATE deliveries SET state = ");
            q.push_bind(State::REPLAYED.as_str());
            q.push(", next_attempt_at = NULL, attempt_limit = attempts + ");
            q.push_bind(attempts as i64);
            q.push(", updated_at = ");
            q.push_bind(now);
            matching(&mut q);
            let n = q.build().execute(&mut *c).await?.rows_affected();
            let mut pairs: Vec<(WebhookId, CallId)> = calls
                .into_iter()
                .map(|call| (webhook_id.clone(), call))
                .collect();
            pairs.sort();
            promote_next::<DB>(c, &pairs, now).await?;
            audit.changes.push(Change::set("replayed", n.into()));
            audit::insert_in::<DB>(c, &audit).await?;
            Ok(n)
        })
    })
    .await
}

/// The queue at a glance, for metrics.
pub async fn queue_stats<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    now: Timestamp,
) -> Result<QueueStats> {
    let due = DB::DUE_UNLEASED;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT COUNT(*) FROM deliveries WHERE state IN ('queued', 'waiting')) AS pending,
                (SELECT COUNT(*) FROM deliveries WHERE {due}) AS due,
                (SELECT MIN(next_attempt_at) FROM deliveries WHERE {due}) AS oldest"
    )))
    .bind(to_ms(now))
    .fetch_one(b.read())
    .await?;
    let oldest = row.opt_ts("oldest")?.filter(|t| *t <= now);
    Ok(QueueStats {
        pending: row.int("pending")? as u64,
        due: row.int("due")? as u64,
        oldest_due_at: oldest,
    })
}

/// A webhook's deliveries created since `since`, counted per UTC hour by status.
pub async fn hourly<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    webhook_id: &WebhookId,
    since: Timestamp,
) -> Result<Vec<HourlyDeliveries>> {
    let rows = sqlx::query(
        "SELECT (created_at / 3600000) * 3600000 AS hour,
                COUNT(*) FILTER (WHERE state = 'succeeded') AS succeeded,
                COUNT(*) FILTER (WHERE state = 'failed') AS failed,
                COUNT(*) FILTER (WHERE state IN ('queued', 'waiting')) AS pending
         FROM deliveries WHERE account_id = $1 AND webhook_id = $2 AND created_at >= $3
         GROUP BY hour ORDER BY hour",
    )
    .bind(account_id)
    .bind(webhook_id)
    .bind(to_ms(since))
    .fetch_all(b.read())
    .await?;
    rows.iter().map(hourly_from_row).collect()
}

/// Whether webhook `$1` has a delivery of call `$2` still pending. Read through
/// `deliveries_call` (see `sql::plans`).
pub(crate) const CALL_BUSY: &str = "SELECT EXISTS (SELECT 1 FROM deliveries WHERE webhook_id = $1
    AND call_id = $2 AND state IN ('queued', 'waiting'))";
