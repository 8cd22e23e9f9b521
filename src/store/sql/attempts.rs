//! Recording attempts: a batch of outcomes written with one statement per table, and the
//! promotion that lets a call's next delivery go once the one before it has finished.

use std::collections::HashMap;

use jiff::Timestamp;
use sqlx::QueryBuilder;

use super::Backend;
use super::db::{Conn, RowsAffected, SqlDb};
use super::events::ROWS_PER_STATEMENT;
use super::rows::{Cols, headers_to_json, to_ms};
use crate::core::delivery_state::{Health, after_attempt, health};
use crate::core::id::{CallId, DeliveryId, WebhookId};
use crate::store::{AttemptRecord, Result};

/// Records attempts and moves their deliveries on; a record whose lease was lost is dropped.
pub async fn record<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    records: Vec<AttemptRecord>,
    now: Timestamp,
) -> Result<()> {
    let now = to_ms(now);
    b.write(move |c| {
        Box::pin(async move {
            for chunk in records.chunks(ROWS_PER_STATEMENT) {
                record_chunk::<DB>(c, chunk, now).await?;
            }
            Ok(())
        })
    })
    .await
}

/// Records a chunk of attempts with one statement per table: the deliveries move on (only
/// where the lease still holds), their attempts are logged, webhooks note successes or are
/// disabled, and finished deliveries let the next of their call go.
pub async fn record_chunk<DB: SqlDb>(
    c: &mut Conn<DB>,
    records: &[AttemptRecord],
    now: i64,
) -> Result<()> {
    let mut q = QueryBuilder::<DB>::new(
        "WITH v(id, lease, state, next_at, has_attempt, started, status, err, latency) AS (",
    );
    q.push_values(records, |mut b, r| {
        let (state, next_at) = after_attempt(&r.next);
        let a = r.attempt.as_ref();
        b.push_bind(&r.delivery_id)
            .push_bind(r.lease)
            .push_bind(state.as_str())
            .push_bind(next_at.map(to_ms))
            .push_bind(a.is_some() as i64)
            .push_bind(a.map(|a| to_ms(a.started_at)))
            .push_bind(a.and_then(|a| a.response_status.map(i64::from)))
            .push_bind(match a {
                Some(a) => a.error.as_deref(),
                None => r.note.as_deref(),
            })
            .push_bind(a.map(|a| a.latency_ms as i64));
    });
    q.push(") UPDATE deliveries SET state = v.state, next_attempt_at = v.next_at, claimed_until = NULL, updated_at = ");
    q.push_bind(now);
    q.push(
        ", attempts = deliveries.attempts + v.has_attempt,
           last_attempt_at = COALESCE(v.started, deliveries.last_attempt_at),
           last_status = CASE WHEN v.has_attempt = 1 THEN v.status ELSE deliveries.last_status END,
           last_error = v.err,
           last_latency_ms = COALESCE(v.latency, deliveries.last_latency_ms)
         FROM v WHERE deliveries.id = v.id AND deliveries.lease = v.lease
         RETURNING deliveries.id AS id, deliveries.webhook_id AS webhook_id, deliveries.call_id AS call_id,
                   deliveries.attempts AS attempts",
    );
    let mut applied: HashMap<DeliveryId, (WebhookId, CallId, i64)> =
        HashMap::with_capacity(records.len());
    for row in q.build().fetch_all(&mut *c).await? {
        applied.insert(
            row.id("id")?,
            (
                row.id("webhook_id")?,
                row.id("call_id")?,
                row.int("attempts")?,
            ),
        );
    }
    let mut attempts = Vec::new();
    let mut succeeded: Vec<&WebhookId> = Vec::new();
    let mut failing: Vec<&WebhookId> = Vec::new();
    let mut finished: Vec<(WebhookId, CallId)> = Vec::new();
    let mut applied_records: Vec<&AttemptRecord> = Vec::with_capacity(records.len());
    let mut disabled: Vec<(WebhookId, String)> = Vec::new();
    for r in records {
        let Some((webhook_id, call_id, n)) = applied.get(&r.delivery_id) else {
            tracing::warn!(delivery = %r.delivery_id, "lease lost before the attempt was recorded; another worker owns it");
            continue;
        };
        if let Some(a) = &r.attempt {
            attempts.push((&r.delivery_id, *n, a));
        }
        let noted = match health(&r.next, r.attempt.is_some(), r.test) {
            Some(Health::Succeeded) => Some(&mut succeeded),
            Some(Health::Failing) => Some(&mut failing),
            None => None,
        };
        if let Some(list) = noted
            && !list.contains(&webhook_id)
        {
            list.push(webhook_id);
        }
        if after_attempt(&r.next).0.is_finished() {
            finished.push((webhook_id.clone(), call_id.clone()));
        }
        applied_records.push(r);
        if let Some(reason) = &r.disable_webhook {
            let r = sqlx::query(
                "UPDATE webhooks SET enabled = $4, disabled_reason = $2, updated_at = $3 WHERE id = $1 AND enabled",
            )
            .bind(webhook_id)
            .bind(reason)
            .bind(now)
            .bind(false)
            .execute(&mut *c)
            .await?;
            if r.rows_affected() > 0 {
                disabled.push((webhook_id.clone(), reason.clone()));
            }
        }
    }
    if !attempts.is_empty() {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO attempts (delivery_id, n, started_at, latency_ms, request_method, request_url, \
             request_headers, request_body, response_status, response_headers, response_body, error_kind, error) ",
        );
        q.push_values(&attempts, |mut b, (id, n, a)| {
            b.push_bind(*id)
                .push_bind(*n)
                .push_bind(to_ms(a.started_at))
                .push_bind(a.latency_ms as i64)
                .push_bind(&a.request_method)
                .push_bind(&a.request_url)
                .push_bind(headers_to_json(&a.request_headers))
                .push_bind(&a.request_body)
                .push_bind(a.response_status.map(i64::from))
                .push_bind(a.response_headers.as_deref().map(headers_to_json))
                .push_bind(&a.response_body)
                .push_bind(&a.error_kind)
                .push_bind(&a.error);
        });
        q.build().execute(&mut *c).await?;
    }
    // A webhook with both in one batch ends failing: its latest attempt may be either, and a
    // failure noted with no run started is harmless.
    if !succeeded.is_empty() {
        let mut q =
            QueryBuilder::<DB>::new("UPDATE webhooks SET failing_since = NULL, last_success_at = ");
        q.push_bind(now);
        q.push(" WHERE id IN (");
        let mut sep = q.separated(", ");
        for w in &succeeded {
            sep.push_bind(*w);
        }
        q.push(")");
        q.build().execute(&mut *c).await?;
    }
    if !failing.is_empty() {
        let mut q =
            QueryBuilder::<DB>::new("UPDATE webhooks SET failing_since = COALESCE(failing_since, ");
        q.push_bind(now);
        q.push(") WHERE id IN (");
        let mut sep = q.separated(", ");
        for w in &failing {
            sep.push_bind(*w);
        }
        q.push(")");
        q.build().execute(&mut *c).await?;
    }
    // Alerts before the calls are locked: every transaction takes the alert locks first.
    super::alerts::after_records::<DB>(c, &applied_records, &disabled, now).await?;
    finished.sort();
    finished.dedup();
    let keys: Vec<(&WebhookId, &CallId)> = finished.iter().map(|(w, call)| (w, call)).collect();
    DB::lock_calls(c, &keys).await?;
    promote_next::<DB>(c, &finished, now).await
}

/// Makes the earliest waiting delivery of each (webhook, call) due, unless one of that pair is
/// already queued: the next of a call goes once the one before it has finished.
pub async fn promote_next<DB: SqlDb>(
    conn: &mut Conn<DB>,
    pairs: &[(WebhookId, CallId)],
    now: i64,
) -> Result<()> {
    for chunk in pairs.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<DB>::new("WITH p(webhook_id, call_id) AS (");
        q.push_values(chunk, |mut b, (w, call)| {
            b.push_bind(w).push_bind(call);
        });
        q.push(") UPDATE deliveries SET state = 'queued', next_attempt_at = ");
        q.push_bind(now);
        q.push(", updated_at = ");
        q.push_bind(now);
        q.push(
            " WHERE seq IN (SELECT (SELECT d.seq FROM deliveries d WHERE d.webhook_id = p.webhook_id
                  AND d.call_id = p.call_id AND d.state = 'waiting' ORDER BY d.seq LIMIT 1) FROM p
                WHERE NOT EXISTS (SELECT 1 FROM deliveries q WHERE q.webhook_id = p.webhook_id
                  AND q.call_id = p.call_id AND q.state = 'queued'))",
        );
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}
