//! Recording attempts: a batch of outcomes written with one statement per table, and the
//! promotion that lets a call's next delivery go once the one before it has finished.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use sqlx::QueryBuilder;

use super::Backend;
use super::db::{Conn, RowsAffected, SqlDb};
use super::rows::{Cols, headers_to_json, to_ms};
use super::shapes::{ROWS_PER_STATEMENT, chunks, padded, padded_chunks};
use crate::core::delivery_state::{Health, after_attempt, health};
use crate::core::failure::{LATENCY_BUCKETS, latency_bucket};
use crate::core::id::{CallId, DeliveryId, WebhookId};
use crate::store::{Attempt, AttemptRecord, ErrorKind, Next, Result};

/// Records attempts and moves their deliveries on; a record whose lease was lost is dropped.
/// Answers how many deliveries this made due at once: the next of a call, alerts.
pub async fn record<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    records: Vec<AttemptRecord>,
    now: Timestamp,
) -> Result<u64> {
    let disables = records.iter().any(|r| r.disable_webhook.is_some());
    let now = to_ms(now);
    let work = record_all::<DB>(records, now);
    // Disabling a webhook changes what matching reads; nothing else a record writes does.
    if disables {
        b.write(work).await
    } else {
        b.write_work(work).await
    }
}

/// The write that records `records`, a chunk at a time.
pub(crate) fn record_all<DB: SqlDb>(
    records: Vec<AttemptRecord>,
    now: i64,
) -> impl for<'c> FnOnce(&'c mut Conn<DB>) -> BoxFuture<'c, Result<u64>> + Send + 'static {
    move |c| {
        Box::pin(async move {
            let mut due = 0;
            for chunk in records.chunks(ROWS_PER_STATEMENT) {
                due += record_chunk::<DB>(c, chunk, now).await?;
            }
            Ok(due)
        })
    }
}

/// Records a chunk of attempts with one statement per table: the deliveries move on (only
/// where the lease still holds), their attempts are logged, webhooks note successes or are
/// disabled, and finished deliveries let the next of their call go. Answers how many
/// deliveries that made due at once (a call's next, alerts).
pub async fn record_chunk<DB: SqlDb>(
    c: &mut Conn<DB>,
    records: &[AttemptRecord],
    now: i64,
) -> Result<u64> {
    let mut applied: HashMap<DeliveryId, (WebhookId, CallId, i64)> =
        HashMap::with_capacity(records.len());
    for part in chunks(records) {
        let mut q = QueryBuilder::<DB>::new(
            "WITH v(id, lease, state, next_at, has_attempt, started, status, err, kind, latency) AS (",
        );
        q.push_values(part, |mut b, r| {
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
                .push_bind(failed_kind(r))
                .push_bind(a.map(|a| a.latency_ms as i64));
        });
        q.push(") UPDATE deliveries SET state = v.state, next_attempt_at = v.next_at, claimed_until = NULL, updated_at = ");
        q.push_bind(now);
        q.push(
            ", attempts = deliveries.attempts + v.has_attempt,
               last_attempt_at = COALESCE(v.started, deliveries.last_attempt_at),
               last_status = CASE WHEN v.has_attempt = 1 THEN v.status ELSE deliveries.last_status END,
               last_error = v.err,
               last_error_kind = v.kind,
               last_latency_ms = COALESCE(v.latency, deliveries.last_latency_ms)
             FROM v WHERE deliveries.id = v.id AND deliveries.lease = v.lease
             RETURNING deliveries.id AS id, deliveries.webhook_id AS webhook_id, deliveries.call_id AS call_id,
                       deliveries.attempts AS attempts",
        );
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
    }
    let o = Outcome::of(records, &applied, now);
    let mut disabled: Vec<(WebhookId, String)> = Vec::new();
    for (webhook_id, reason) in &o.disables {
        let r = sqlx::query(
            "UPDATE webhooks SET enabled = $4, disabled_reason = $2, updated_at = $3 WHERE id = $1 AND enabled",
        )
        .bind(*webhook_id)
        .bind(*reason)
        .bind(now)
        .bind(false)
        .execute(&mut *c)
        .await?;
        if r.rows_affected() > 0 {
            disabled.push(((*webhook_id).clone(), (*reason).clone()));
        }
    }
    let Outcome {
        attempts,
        succeeded,
        failing,
        hours,
        finished,
        applied: applied_records,
        ..
    } = o;
    for part in chunks(&attempts) {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO attempts (delivery_id, n, started_at, latency_ms, request_method, request_url, \
             request_headers, request_body, response_status, response_headers, response_body, error_kind, error) ",
        );
        q.push_values(part, |mut b, (id, n, a)| {
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
                .push_bind(a.error_kind.map(ErrorKind::as_str))
                .push_bind(&a.error);
        });
        q.build().execute(&mut *c).await?;
    }
    if !succeeded.is_empty() {
        let mut q =
            QueryBuilder::<DB>::new("UPDATE webhooks SET failing_since = NULL, last_success_at = ");
        q.push_bind(now);
        q.push(" WHERE id IN (");
        let mut sep = q.separated(", ");
        for w in padded(&succeeded) {
            sep.push_bind(*w);
        }
        q.push(")");
        q.build().execute(&mut *c).await?;
    }
    for part in chunks(&failing) {
        let mut q = QueryBuilder::<DB>::new("WITH f(id, kind, status, message) AS (");
        q.push_values(part, |mut b, (w, a)| {
            b.push_bind(*w)
                .push_bind(a.error_kind.map(ErrorKind::as_str))
                .push_bind(a.response_status.map(i64::from))
                .push_bind(a.error.as_deref());
        });
        q.push(") UPDATE webhooks SET failing_since = COALESCE(failing_since, ");
        q.push_bind(now);
        q.push("), last_failure_at = ");
        q.push_bind(now);
        q.push(
            ", last_error_kind = f.kind, last_error_status = f.status, last_error_message = f.message
             FROM f WHERE webhooks.id = f.id",
        );
        q.build().execute(&mut *c).await?;
    }
    hours.write::<DB>(c).await?;
    // Alerts before the calls are locked: every transaction takes the alert locks first.
    let alerts = super::alerts::after_records::<DB>(c, &applied_records, &disabled, now).await?;
    let keys: Vec<(&WebhookId, &CallId)> = finished.iter().map(|(w, call)| (w, call)).collect();
    DB::lock_calls(c, &keys).await?;
    Ok(alerts + promote_next::<DB>(c, &finished, now).await?)
}

/// The kind a delivery keeps as its last error after `r`: its attempt's, when the attempt
/// failed; none after a success or an end without a request.
pub(crate) fn failed_kind(r: &AttemptRecord) -> Option<&'static str> {
    match r.next {
        Next::Succeeded => None,
        _ => r.attempt.as_ref()?.error_kind.map(ErrorKind::as_str),
    }
}

/// What a chunk of records does beyond its deliveries' rows, worked out from the records and
/// the deliveries whose lease held (`applied`: id → webhook, call, attempts after the record).
/// Both SQLite's writer and the shared SQL write it.
pub(crate) struct Outcome<'a> {
    /// The attempts to log: delivery, attempt number, attempt.
    pub attempts: Vec<(&'a DeliveryId, i64, &'a Attempt)>,
    /// Webhooks that succeeded.
    pub succeeded: Vec<&'a WebhookId>,
    /// Each failing webhook with its latest failed attempt of the batch. A webhook with both
    /// in one batch ends failing: its latest attempt may be either, and a failure noted with
    /// no run started is harmless.
    pub failing: Vec<(&'a WebhookId, &'a Attempt)>,
    pub hours: Rollup,
    /// (webhook, call) pairs whose delivery finished: the call's next may go.
    pub finished: Vec<(WebhookId, CallId)>,
    /// The records whose lease held.
    pub applied: Vec<&'a AttemptRecord>,
    /// Webhooks to disable, with the reason.
    pub disables: Vec<(&'a WebhookId, &'a String)>,
}

impl<'a> Outcome<'a> {
    pub(crate) fn of(
        records: &'a [AttemptRecord],
        applied: &'a HashMap<DeliveryId, (WebhookId, CallId, i64)>,
        now: i64,
    ) -> Outcome<'a> {
        let mut o = Outcome {
            attempts: Vec::new(),
            succeeded: Vec::new(),
            failing: Vec::new(),
            hours: Rollup::default(),
            finished: Vec::new(),
            applied: Vec::with_capacity(records.len()),
            disables: Vec::new(),
        };
        for r in records {
            let Some((webhook_id, call_id, n)) = applied.get(&r.delivery_id) else {
                tracing::warn!(delivery = %r.delivery_id, "lease lost before the attempt was recorded; another worker owns it");
                continue;
            };
            if let Some(a) = &r.attempt {
                o.attempts.push((&r.delivery_id, *n, a));
            }
            match (health(&r.next, r.attempt.is_some(), r.test), &r.attempt) {
                (Some(Health::Succeeded), _) if !o.succeeded.contains(&webhook_id) => {
                    o.succeeded.push(webhook_id)
                }
                (Some(Health::Failing), Some(a)) => {
                    match o.failing.iter_mut().find(|(w, _)| *w == webhook_id) {
                        Some(f) => f.1 = a,
                        None => o.failing.push((webhook_id, a)),
                    }
                }
                _ => {}
            }
            if !r.test {
                o.hours.count(webhook_id, r, now);
            }
            if after_attempt(&r.next).0.is_finished() {
                o.finished.push((webhook_id.clone(), call_id.clone()));
            }
            o.applied.push(r);
            if let Some(reason) = &r.disable_webhook {
                o.disables.push((webhook_id, reason));
            }
        }
        o.finished.sort();
        o.finished.dedup();
        o
    }
}

/// The hourly rollup's increments of one batch, per webhook and hour (SPEC §12 health).
#[derive(Default)]
pub(crate) struct Rollup(pub Vec<(WebhookId, i64, HourCounts)>);

#[derive(Default)]
pub(crate) struct HourCounts {
    pub succeeded: i64,
    pub failed: i64,
    pub ok_attempts: i64,
    pub failed_attempts: i64,
    pub latency: [i64; LATENCY_BUCKETS],
}

impl Rollup {
    /// Counts what `r` (not a test) adds to its webhook's hour: its attempt, and its delivery
    /// when that ended.
    fn count(&mut self, webhook_id: &WebhookId, r: &AttemptRecord, now: i64) {
        let hour = now - now.rem_euclid(3_600_000);
        let at = match self
            .0
            .iter()
            .position(|(w, h, _)| w == webhook_id && *h == hour)
        {
            Some(i) => i,
            None => {
                self.0
                    .push((webhook_id.clone(), hour, HourCounts::default()));
                self.0.len() - 1
            }
        };
        let c = &mut self.0[at].2;
        match r.next {
            Next::Succeeded => c.succeeded += 1,
            Next::Failed => c.failed += 1,
            Next::RetryAt(_) => {}
        }
        if let Some(a) = &r.attempt {
            if matches!(r.next, Next::Succeeded) {
                c.ok_attempts += 1;
            } else {
                c.failed_attempts += 1;
            }
            c.latency[latency_bucket(a.latency_ms)] += 1;
        }
    }

    async fn write<DB: SqlDb>(self, c: &mut Conn<DB>) -> Result<()> {
        for part in chunks(&self.0) {
            let mut q = QueryBuilder::<DB>::new(
                "INSERT INTO webhook_hours (webhook_id, hour, succeeded, failed, ok_attempts, failed_attempts, \
                 l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11) ",
            );
            q.push_values(part, |mut b, (w, hour, n)| {
                b.push_bind(w)
                    .push_bind(*hour)
                    .push_bind(n.succeeded)
                    .push_bind(n.failed)
                    .push_bind(n.ok_attempts)
                    .push_bind(n.failed_attempts);
                for l in n.latency {
                    b.push_bind(l);
                }
            });
            q.push(
                " ON CONFLICT (webhook_id, hour) DO UPDATE SET
                   succeeded = webhook_hours.succeeded + excluded.succeeded,
                   failed = webhook_hours.failed + excluded.failed,
                   ok_attempts = webhook_hours.ok_attempts + excluded.ok_attempts,
                   failed_attempts = webhook_hours.failed_attempts + excluded.failed_attempts",
            );
            for i in 0..LATENCY_BUCKETS {
                q.push(format!(", l{i} = webhook_hours.l{i} + excluded.l{i}"));
            }
            q.build().execute(&mut *c).await?;
        }
        Ok(())
    }
}

/// Of the (webhook, call) pairs `p`, the seq of the earliest waiting delivery of those with
/// none queued (NULL for the others): each pair's first pending delivery, queued ones first
/// ('queued' sorts before 'waiting'), is its next when it waits. Read through
/// `deliveries_call` (see `sql::plans` and `postgres::tests`), one lookup per pair: the correlated
/// subquery (with its `LIMIT`) leaves PostgreSQL's planner no join to choose, as
/// [`BUSY_CALLS`](super::events::BUSY_CALLS) does, and naming both states keeps it off the
/// partial indexes of queued deliveries (a webhook's whole queue, read for every pair).
pub(crate) const NEXT_OF_CALLS: &str = "SELECT (SELECT CASE WHEN d.state = 'waiting' THEN d.seq END
    FROM deliveries d WHERE d.webhook_id = p.webhook_id AND d.call_id = p.call_id
    AND d.state IN ('queued', 'waiting') ORDER BY d.state, d.seq LIMIT 1) AS seq FROM p";

/// Makes the earliest waiting delivery of each (webhook, call) due, unless one of that pair is
/// already queued: the next of a call goes once the one before it has finished. Answers how
/// many it made due.
///
/// The deliveries are found first and updated by seq after: as one statement (`UPDATE ..
/// WHERE seq IN (SELECT ..)`) PostgreSQL's planner joined the found seqs to the whole table
/// by a hash. Nothing else promotes or queues these calls' deliveries meanwhile: the caller
/// holds their locks ([`SqlDb::lock_calls`]), and SQLite has one writer.
pub async fn promote_next<DB: SqlDb>(
    conn: &mut Conn<DB>,
    pairs: &[(WebhookId, CallId)],
    now: i64,
) -> Result<u64> {
    let mut due = 0;
    for chunk in padded_chunks(pairs) {
        let mut q = QueryBuilder::<DB>::new("WITH p(webhook_id, call_id) AS (");
        q.push_values(chunk, |mut b, (w, call)| {
            b.push_bind(w).push_bind(call);
        });
        q.push(") ");
        q.push(NEXT_OF_CALLS);
        let mut seqs = Vec::new();
        for row in q.build().fetch_all(&mut *conn).await? {
            seqs.extend(row.opt_int("seq")?);
        }
        if seqs.is_empty() {
            continue;
        }
        let mut q =
            QueryBuilder::<DB>::new("UPDATE deliveries SET state = 'queued', next_attempt_at = ");
        q.push_bind(now);
        q.push(", updated_at = ");
        q.push_bind(now);
        q.push(" WHERE state = 'waiting' AND seq IN (");
        let mut sep = q.separated(", ");
        for seq in padded(&seqs) {
            sep.push_bind(*seq);
        }
        q.push(")");
        due += q.build().execute(&mut *conn).await?.rows_affected();
    }
    Ok(due)
}
