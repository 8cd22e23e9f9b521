//! The writer's connection, used directly on the writer's own thread for its hottest
//! statements: the ingests, the records of attempts that bring no alert, and the
//! transaction's `BEGIN` and `COMMIT`.
//!
//! sqlx runs each statement of a connection on a thread of its own and hands it over through
//! channels: a round trip of about 40 µs at light load, seven per ingest, which made up most of
//! an ingest's time in the writer (BENCHMARKS.md, eighth pass). Here the writer takes the
//! connection's handle from sqlx's thread and runs the statements itself through rusqlite,
//! prepared once and cached; it keeps the handle from one transaction to the next until it
//! needs sqlx again (`writer_loop`), since taking it back is itself a round trip through
//! sqlx's thread. The rest of the writes (the shared SQL of `store::sql`, run on both
//! databases) still go through sqlx on the same connection, in the same transaction.

use std::borrow::Cow;
use std::sync::Arc;

use rusqlite::{Connection, ffi, params};
use sqlx::SqliteConnection;
use sqlx::error::DatabaseError;

use crate::core::delivery_state::{State, arrival};
use std::collections::HashMap;

use super::Records;
use crate::core::delivery_state::after_attempt;
use crate::core::id::{CallId, DeliveryId, WebhookId};
use crate::store::sql::alerts::MAY_ALERT;
use crate::store::sql::attempts::{Outcome, failed_kind};
use crate::store::sql::events::{calls_ended_once, second_call_ended};
use crate::store::sql::ingests::{IngestReply, Reply, answer};
use crate::store::sql::{headers_to_json, to_ms};
use crate::store::{AttemptRecord, ErrorKind, Inserted, NewEvent, Result, StoreError};

/// The writer's connection: sqlx's, and the same SQLite handle seen through rusqlite.
pub(super) struct Writer {
    /// Declared first so it is dropped first: its cached statements are finalized before
    /// `conn` closes the handle they belong to.
    pub(super) direct: Connection,
    pub(super) conn: SqliteConnection,
}

impl Writer {
    pub(super) async fn new(mut conn: SqliteConnection) -> Result<Writer> {
        let handle = conn.lock_handle().await?.as_raw_handle();
        // SAFETY: `direct` does not own the handle (it never closes it) and is dropped before
        // `conn`, which does. It is only used while sqlx's lock on the handle is held
        // (`writer_loop`, and `Writer::direct` in tests): sqlx's thread never runs a statement
        // on it meanwhile.
        let direct = unsafe { Connection::from_handle(handle.as_ptr()) }?;
        direct.set_prepared_statement_cache_capacity(32);
        Ok(Writer { direct, conn })
    }

    /// Runs `f` on the connection on this thread, holding it from sqlx's thread meanwhile
    /// (one hand-over, however many statements `f` runs).
    #[cfg(test)]
    pub(super) async fn direct<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        let _held = self.conn.lock_handle().await?;
        f(&self.direct)
    }
}

/// Runs a statement without parameters, prepared once.
pub(super) fn exec(c: &Connection, sql: &str) -> Result<()> {
    c.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Stores every waiting ingest. When no unique rule can refuse any of them (see
/// [`no_rule_refuses`]), with no savepoint: a savepoint copies every page its ingest changes
/// once more. A failure then is the database's own (a full disk), and comes back as `Err`:
/// what was stored before it cannot be undone alone, so the caller rolls the whole transaction
/// back and answers every caller in it with the error. Otherwise each in a savepoint of its
/// own, so only a refused one fails.
pub(super) fn run_ingests(
    c: &Connection,
    ingests: Vec<(Vec<NewEvent>, IngestReply)>,
    replies: &mut Vec<Reply>,
) -> Result<()> {
    if no_rule_refuses(c, ingests.iter().flat_map(|(events, _)| events)) {
        for (events, tx) in ingests {
            match insert_events(c, &events) {
                Ok(done) => replies.push(answer(tx, Ok(done))),
                Err(e) => {
                    replies.push(answer(tx, Err(e.clone())));
                    return Err(e);
                }
            }
        }
        return Ok(());
    }
    for (events, tx) in ingests {
        replies.push(answer(tx, insert(c, &events)));
    }
    Ok(())
}

/// Whether no unique rule can refuse storing `events` in one transaction, as
/// `store::sql::events::no_rule_refuses` answers it: none is a second non-test `call.ended`
/// of a call, among them ([`calls_ended_once`]) or stored before. Any doubt (a failed read)
/// answers "it might".
fn no_rule_refuses<'a>(c: &Connection, events: impl Iterator<Item = &'a NewEvent>) -> bool {
    let Some(ending) = calls_ended_once(events) else {
        return false;
    };
    if ending.is_empty() {
        return true;
    }
    let Ok(mut ended) = c.prepare_cached(
        "SELECT 1 FROM events WHERE account_id = ?1 AND call_id = ?2 AND type = 'call.ended' \
         AND NOT test LIMIT 1",
    ) else {
        return false;
    };
    ending.into_iter().all(|(account, call)| {
        matches!(
            ended.exists(params![account.as_str(), call.as_str()]),
            Ok(false)
        )
    })
}

/// Stores a transaction's only write, an ingest, with no savepoint of its own: a savepoint
/// copies every page its statements change once more (an ingest changes some twenty), and
/// here rolling the transaction back undoes the same. Answers whether it stored; if not, the
/// caller rolls the transaction back.
pub(super) fn run_sole_ingest(
    c: &Connection,
    (events, tx): (Vec<NewEvent>, IngestReply),
    replies: &mut Vec<Reply>,
) -> bool {
    let stored = insert_events(c, &events);
    let ok = stored.is_ok();
    replies.push(answer(tx, stored));
    ok
}

/// Stores events and their deliveries, all or nothing, as `store::sql::events::insert_in`
/// does on either database: an event whose id the account used before is skipped (also when
/// repeated within the batch: the first wins); a delivery waits when its webhook still has an
/// unfinished delivery of the same call; one that asked for a lease and is due at once is
/// stored leased. A second `call.ended` of a call refuses the batch, naming the event.
pub(super) fn insert(c: &Connection, events: &[NewEvent]) -> Result<Vec<Inserted>> {
    exec(c, "SAVEPOINT ingest")?;
    let stored = insert_events(c, events);
    if stored.is_err() {
        exec(c, "ROLLBACK TO ingest")?;
    }
    exec(c, "RELEASE ingest")?;
    stored
}

fn insert_events(c: &Connection, events: &[NewEvent]) -> Result<Vec<Inserted>> {
    let mut event = c.prepare_cached(
        "INSERT INTO events (id, account_id, event_id, call_id, type, occurred_at, received_at, \
         test, did_number, customer_number, payload) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT(account_id, event_id) DO NOTHING",
    )?;
    let mut busy = c.prepare_cached(CALL_BUSY)?;
    let mut delivery = c.prepare_cached(
        "INSERT INTO deliveries (id, account_id, webhook_id, event_seq, call_id, trigger, state, \
         next_attempt_at, created_at, updated_at, attempt_limit, lease, claimed_until, leased_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13)",
    )?;
    let mut out = Vec::with_capacity(events.len());
    for (i, ne) in events.iter().enumerate() {
        let e = &ne.event;
        // No `RETURNING`: SQLite runs a statement that returns rows in a statement journal
        // of its own, copying every page it changes, and the savepoint above covers it.
        let stored = event
            .execute(params![
                e.id.as_str(),
                e.account_id.as_str(),
                e.event_id.as_str(),
                e.call_id.as_str(),
                e.event_type,
                to_ms(e.occurred_at),
                to_ms(e.received_at),
                e.test,
                e.did_number,
                e.customer_number,
                e.payload,
            ])
            .map_err(|err| {
                if is_unique_violation(&err) {
                    second_call_ended(events.len(), i, &e.call_id)
                } else {
                    err.into()
                }
            })?;
        // The row id is the event's seq (a trigger's inserts do not change what this reads
        // once it has run).
        let seq = (stored == 1).then(|| c.last_insert_rowid());
        let Some(seq) = seq else {
            out.push(Inserted::Duplicate);
            continue;
        };
        let mut leased = Vec::new();
        for d in &ne.deliveries {
            // Earlier deliveries of this batch are already stored: the read sees them.
            let call_busy: bool = busy
                .query_row(params![d.webhook_id.as_str(), e.call_id.as_str()], |r| {
                    r.get(0)
                })?;
            let (state, due) = arrival(call_busy, e.received_at, d.not_before);
            // Leased only when due at once: a held or waiting delivery is not this node's yet.
            let lease = d
                .lease
                .as_ref()
                .filter(|_| state == State::Queued && due == Some(e.received_at));
            // A leased delivery is due again when its lease runs out, as a claimed one is.
            let due = lease.map_or(due, |l| Some(l.until));
            delivery.execute(params![
                d.id.as_str(),
                e.account_id.as_str(),
                d.webhook_id.as_str(),
                seq,
                e.call_id.as_str(),
                d.trigger.id(),
                state.as_str(),
                due.map(to_ms),
                to_ms(e.received_at),
                d.attempt_limit.map(i64::from),
                i64::from(lease.is_some()),
                lease.map(|l| to_ms(l.until)),
                lease.map(|l| l.node.as_str()),
            ])?;
            if lease.is_some() {
                leased.push(d.id.clone());
            }
        }
        out.push(Inserted::New {
            deliveries: ne.deliveries.len(),
            leased,
        });
    }
    Ok(out)
}

/// Records every waiting batch of attempts, each in a savepoint of its own. Answers those
/// that may bring an alert, untouched: the shared SQL records them (`store::sql::attempts`).
pub(super) fn run_records(
    c: &Connection,
    records: Vec<Records>,
    replies: &mut Vec<Reply>,
) -> Vec<Records> {
    let mut shared = Vec::new();
    for batch in records {
        if let Err(batch) = record_unless_alert(c, batch, replies, record) {
            shared.push(batch);
        }
    }
    shared
}

/// As [`run_records`] for a transaction's only batch of records, with no savepoint (see
/// [`run_sole_ingest`]). Answers whether it was recorded (if not, the caller rolls the
/// transaction back), or the batch itself, untouched, when it may bring an alert.
pub(super) fn run_sole_record(
    c: &Connection,
    batch: Records,
    replies: &mut Vec<Reply>,
) -> std::result::Result<bool, Records> {
    record_unless_alert(c, batch, replies, record_in)
}

/// Records `batch` with `write` and answers whether it was recorded, unless it may bring an
/// alert: then it answers the batch itself, untouched.
fn record_unless_alert(
    c: &Connection,
    (batch, now, tx): Records,
    replies: &mut Vec<Reply>,
    write: fn(&Connection, &[AttemptRecord], i64) -> Result<u64>,
) -> std::result::Result<bool, Records> {
    match may_alert(c, &batch) {
        Ok(false) => {
            let done = write(c, &batch, now);
            let recorded = done.is_ok();
            replies.push(answer(tx, done));
            Ok(recorded)
        }
        Ok(true) => Err((batch, now, tx)),
        Err(e) => {
            replies.push(answer(tx, Err(e)));
            Ok(false)
        }
    }
}

/// Whether a record of `batch` may move an alert (see [`MAY_ALERT`]). Test sends never do.
fn may_alert(c: &Connection, batch: &[AttemptRecord]) -> Result<bool> {
    let mut asked: Vec<&WebhookId> = Vec::new();
    let mut may = c.prepare_cached(MAY_ALERT)?;
    for r in batch.iter().filter(|r| !r.test) {
        if asked.contains(&&r.webhook_id) {
            continue;
        }
        asked.push(&r.webhook_id);
        if may.query_row([r.webhook_id.as_str()], |row| row.get(0))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Records attempts and moves their deliveries on, all or nothing, as
/// `store::sql::attempts::record_chunk` does for a batch that brings no alert: the deliveries
/// move on (only where the lease still holds), their attempts are logged, webhooks note
/// successes and failures or are disabled, the hourly rollup counts them, and finished
/// deliveries let the next of their call go. Answers how many deliveries that made due.
pub(super) fn record(c: &Connection, batch: &[AttemptRecord], now: i64) -> Result<u64> {
    exec(c, "SAVEPOINT record")?;
    let done = record_in(c, batch, now);
    if done.is_err() {
        exec(c, "ROLLBACK TO record")?;
    }
    exec(c, "RELEASE record")?;
    done
}

fn record_in(c: &Connection, batch: &[AttemptRecord], now: i64) -> Result<u64> {
    let mut delivery = c.prepare_cached(
        "UPDATE deliveries SET state = ?3, next_attempt_at = ?4, claimed_until = NULL,          updated_at = ?11, attempts = attempts + ?5,          last_attempt_at = COALESCE(?6, last_attempt_at),          last_status = CASE WHEN ?5 = 1 THEN ?7 ELSE last_status END,          last_error = ?8, last_error_kind = ?9, last_latency_ms = COALESCE(?10, last_latency_ms)          WHERE id = ?1 AND lease = ?2",
    )?;
    // Read after the update rather than `RETURNING` it (see `insert_events`).
    let mut moved =
        c.prepare_cached("SELECT webhook_id, call_id, attempts FROM deliveries WHERE id = ?1")?;
    let mut applied: HashMap<DeliveryId, (WebhookId, CallId, i64)> =
        HashMap::with_capacity(batch.len());
    for r in batch {
        let (state, next_at) = after_attempt(&r.next);
        let a = r.attempt.as_ref();
        let changed = delivery.execute(params![
            r.delivery_id.as_str(),
            r.lease,
            state.as_str(),
            next_at.map(to_ms),
            a.is_some() as i64,
            a.map(|a| to_ms(a.started_at)),
            a.and_then(|a| a.response_status.map(i64::from)),
            match a {
                Some(a) => a.error.as_deref(),
                None => r.note.as_deref(),
            },
            failed_kind(r),
            a.map(|a| a.latency_ms as i64),
            now,
        ])?;
        let row = if changed == 1 {
            Some(moved.query_row([r.delivery_id.as_str()], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get(2)?,
                ))
            })?)
        } else {
            None
        };
        if let Some((webhook, call, n)) = row {
            applied.insert(
                r.delivery_id.clone(),
                (
                    WebhookId::from_string(webhook),
                    CallId::from_string(call),
                    n,
                ),
            );
        }
    }
    let o = Outcome::of(batch, &applied, now);
    if !o.disables.is_empty() {
        let mut disable = c.prepare_cached(
            "UPDATE webhooks SET enabled = 0, disabled_reason = ?2, updated_at = ?3              WHERE id = ?1 AND enabled",
        )?;
        for (webhook, reason) in &o.disables {
            disable.execute(params![webhook.as_str(), reason, now])?;
        }
    }
    if !o.attempts.is_empty() {
        let mut attempt = c.prepare_cached(
            "INSERT INTO attempts (delivery_id, n, started_at, latency_ms, request_method,              request_url, request_headers, request_body, response_status, response_headers,              response_body, error_kind, error)              VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for (id, n, a) in &o.attempts {
            attempt.execute(params![
                id.as_str(),
                n,
                to_ms(a.started_at),
                a.latency_ms as i64,
                a.request_method,
                a.request_url,
                headers_to_json(&a.request_headers),
                a.request_body,
                a.response_status.map(i64::from),
                a.response_headers.as_deref().map(headers_to_json),
                a.response_body,
                a.error_kind.map(ErrorKind::as_str),
                a.error,
            ])?;
        }
    }
    if !o.succeeded.is_empty() {
        let mut ok = c.prepare_cached(
            "UPDATE webhooks SET failing_since = NULL, last_success_at = ?2 WHERE id = ?1",
        )?;
        for w in &o.succeeded {
            ok.execute(params![w.as_str(), now])?;
        }
    }
    if !o.failing.is_empty() {
        let mut failing = c.prepare_cached(
            "UPDATE webhooks SET failing_since = COALESCE(failing_since, ?2),              last_failure_at = ?2, last_error_kind = ?3, last_error_status = ?4,              last_error_message = ?5 WHERE id = ?1",
        )?;
        for (w, a) in &o.failing {
            failing.execute(params![
                w.as_str(),
                now,
                a.error_kind.map(ErrorKind::as_str),
                a.response_status.map(i64::from),
                a.error,
            ])?;
        }
    }
    if !o.hours.0.is_empty() {
        let mut hour = c.prepare_cached(
            "INSERT INTO webhook_hours (webhook_id, hour, succeeded, failed, ok_attempts,              failed_attempts, l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11)              VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)              ON CONFLICT (webhook_id, hour) DO UPDATE SET              succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed,              ok_attempts = ok_attempts + excluded.ok_attempts,              failed_attempts = failed_attempts + excluded.failed_attempts,              l0 = l0 + excluded.l0, l1 = l1 + excluded.l1, l2 = l2 + excluded.l2,              l3 = l3 + excluded.l3, l4 = l4 + excluded.l4, l5 = l5 + excluded.l5,              l6 = l6 + excluded.l6, l7 = l7 + excluded.l7, l8 = l8 + excluded.l8,              l9 = l9 + excluded.l9, l10 = l10 + excluded.l10, l11 = l11 + excluded.l11",
        )?;
        for (w, at, n) in &o.hours.0 {
            let [l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11] = n.latency;
            hour.execute(params![
                w.as_str(),
                at,
                n.succeeded,
                n.failed,
                n.ok_attempts,
                n.failed_attempts,
                l0,
                l1,
                l2,
                l3,
                l4,
                l5,
                l6,
                l7,
                l8,
                l9,
                l10,
                l11,
            ])?;
        }
    }
    let mut due = 0;
    if !o.finished.is_empty() {
        // `NEXT_OF_CALL` for one pair at a time, and the update of the one row found by its
        // seq, as the shared SQL does for many: an update that may change several rows runs
        // in a statement journal (see `insert_events`), and most finished deliveries have no
        // next to let go.
        let mut next = c.prepare_cached(NEXT_OF_CALL)?;
        let mut go = c.prepare_cached(
            "UPDATE deliveries SET state = 'queued', next_attempt_at = ?2, updated_at = ?2 \
             WHERE state = 'waiting' AND seq = ?1",
        )?;
        for (w, call) in &o.finished {
            let seq: Option<i64> =
                next.query_row(params![w.as_str(), call.as_str()], |r| r.get(0))?;
            if let Some(seq) = seq {
                due += go.execute(params![seq, now])? as u64;
            }
        }
    }
    Ok(due)
}

/// Whether webhook `?1` has a delivery of call `?2` still pending: the shared SQL's
/// `CALL_BUSY`, one state at a time. SQLite reads `state IN (..)` through a temporary b-tree of
/// the values, opened and closed again each time the statement runs (once per delivery
/// stored): closing them alone was 2.5 % of the writer's time at light load (BENCHMARKS.md,
/// thirteenth pass). `INDEXED BY` holds each lookup to the call index; one state alone would
/// also match the partial index of a webhook's queued deliveries, its whole queue.
const CALL_BUSY: &str = "SELECT EXISTS (SELECT 1 FROM deliveries INDEXED BY deliveries_call \
     WHERE webhook_id = ?1 AND call_id = ?2 AND state = 'queued') \
     OR EXISTS (SELECT 1 FROM deliveries INDEXED BY deliveries_call \
     WHERE webhook_id = ?1 AND call_id = ?2 AND state = 'waiting')";

/// The seq of the earliest waiting delivery of webhook `?1`'s call `?2` when none is queued
/// (else NULL): the shared SQL's `NEXT_OF_CALLS` for one pair, one state at a time (see
/// [`CALL_BUSY`]).
const NEXT_OF_CALL: &str = "SELECT CASE WHEN EXISTS (SELECT 1 FROM deliveries \
     INDEXED BY deliveries_call \
     WHERE webhook_id = ?1 AND call_id = ?2 AND state = 'queued') THEN NULL \
     ELSE (SELECT seq FROM deliveries INDEXED BY deliveries_call \
     WHERE webhook_id = ?1 AND call_id = ?2 AND state = 'waiting' ORDER BY seq LIMIT 1) END";

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error(), Some(f) if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
        || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(Arc::new(sqlx::Error::Database(Box::new(Failure {
            message: e.to_string(),
            error: e,
        }))))
    }
}

/// A failure of a statement run directly, as sqlx's other database errors are reported.
#[derive(Debug)]
struct Failure {
    message: String,
    error: rusqlite::Error,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl DatabaseError for Failure {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.error
            .sqlite_error()
            .map(|f| Cow::Owned(f.extended_code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        match self.error.sqlite_error().map(|f| f.extended_code) {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                sqlx::error::ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => sqlx::error::ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => sqlx::error::ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::{SignedDuration, Timestamp};
    use rusqlite::types::Value;
    use sqlx::SqliteConnection;

    use super::{Writer, insert, record};
    use crate::core::failure::ErrorKind;
    use crate::core::id::{AccountId, CallId, DeliveryId, EventId, NodeId, PostedEventId};
    use crate::core::retry::Next;
    use crate::core::trigger::Trigger;
    use crate::store::sql::attempts::record_all;
    use crate::store::sql::events::insert_in;
    use crate::store::sql::plans::migrated;
    use crate::store::{
        Attempt, AttemptRecord, Inserted, LeaseTo, NewDelivery, NewEvent, StoredEvent,
    };

    /// A fresh database with an account and its webhooks `wh_a` and `wh_b`.
    async fn database() -> SqliteConnection {
        let mut c = migrated().await;
        let spec =
            r#"{"name": "crm", "trigger": "call_received", "url": "https://crm.example.com/hook"}"#;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO accounts (id, name, created_at) VALUES ('acc_a', 'a', 0);
             INSERT INTO webhooks (id, account_id, spec, trigger, enabled, secrets, created_at, updated_at)
             VALUES ('wh_a', 'acc_a', '{spec}', 'call_received', 1, '[]', 0, 0),
                    ('wh_b', 'acc_a', '{spec}', 'call_received', 1, '[]', 0, 0);"
        )))
        .execute(&mut c)
        .await
        .unwrap();
        c
    }

    fn event(id: &str, call: &str, kind: &str, at: Timestamp, d: Vec<NewDelivery>) -> NewEvent {
        NewEvent {
            event: StoredEvent {
                id: EventId::new(),
                account_id: AccountId::from_string("acc_a".into()),
                event_id: PostedEventId::from_string(id.into()),
                call_id: CallId::from_string(call.into()),
                event_type: kind.into(),
                occurred_at: at,
                received_at: at,
                test: id.starts_with("test"),
                did_number: Some("+918065251305".into()),
                customer_number: None,
                payload: format!(r#"{{"type":"{kind}","call":{{"call_type":"inbound"}}}}"#),
            },
            deliveries: d,
        }
    }

    fn delivery(
        webhook: &str,
        lease: Option<&LeaseTo>,
        not_before: Option<Timestamp>,
    ) -> NewDelivery {
        NewDelivery {
            id: DeliveryId::new(),
            webhook_id: crate::core::id::WebhookId::from_string(webhook.into()),
            trigger: Trigger::CallReceived,
            attempt_limit: webhook.eq("wh_b").then_some(3),
            not_before,
            lease: lease.cloned(),
        }
    }

    /// Every row of `table`, in row id order.
    fn dump(c: &rusqlite::Connection, table: &str) -> Vec<Vec<Value>> {
        let mut s = c
            .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
            .unwrap();
        let n = s.column_count();
        s.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Both databases hold the same rows in `tables`, none of them empty.
    async fn same_rows(own: &mut Writer, shared: &mut Writer, tables: &[&str]) {
        for table in tables {
            let rows = own.direct(|c| Ok(dump(c, table))).await.unwrap();
            assert!(!rows.is_empty(), "{table} is empty");
            let theirs = shared.direct(|c| Ok(dump(c, table))).await.unwrap();
            assert_eq!(rows, theirs, "{table}");
        }
    }

    /// The writer's own ingest and record write, row for row, what the shared SQL writes
    /// (`events::insert_in`, `attempts::record_all`), which PostgreSQL runs: duplicates within
    /// a batch, a call's second delivery waiting, leases only for what is due at once, a held
    /// delivery, a test event, a refused second `call.ended`; then records that succeed (and
    /// let the call's next go), fail and disable, and one whose lease was lost.
    #[tokio::test]
    async fn the_writers_own_ingest_and_record_write_what_the_shared_sql_writes() {
        let at = Timestamp::from_millisecond(1_764_000_000_000).unwrap();
        let lease = LeaseTo {
            node: NodeId::from_string("node-1".into()),
            until: at + SignedDuration::from_secs(60),
        };
        let later = at + SignedDuration::from_secs(600);
        let batch = vec![
            event(
                "e1",
                "c1",
                "call.received",
                at,
                vec![
                    delivery("wh_a", Some(&lease), None),
                    delivery("wh_b", None, None),
                ],
            ),
            event(
                "e2",
                "c1",
                "call.answered",
                at,
                vec![delivery("wh_a", Some(&lease), None)],
            ),
            event(
                "e1",
                "c9",
                "call.received",
                at,
                vec![delivery("wh_a", None, None)],
            ),
            event(
                "e3",
                "c2",
                "call.received",
                at,
                vec![delivery("wh_a", Some(&lease), Some(later))],
            ),
            event(
                "test-1",
                "c3",
                "call.received",
                at,
                vec![delivery("wh_b", None, None)],
            ),
            event("e4", "c4", "call.ended", at, vec![]),
        ];
        let refused = vec![
            event(
                "e5",
                "c5",
                "call.received",
                at,
                vec![delivery("wh_a", None, None)],
            ),
            event("e6", "c4", "call.ended", at, vec![]),
        ];
        let mut shared = database().await;
        let shared_stored = insert_in::<sqlx::Sqlite>(&mut shared, &batch)
            .await
            .unwrap();
        let shared_refused = format!(
            "{:?}",
            insert_in::<sqlx::Sqlite>(&mut shared, &refused).await
        );
        let mut own = Writer::new(database().await).await.unwrap();
        let own_stored = own.direct(|c| insert(c, &batch)).await.unwrap();
        let own_refused = format!("{:?}", own.direct(|c| insert(c, &refused)).await);
        assert_eq!(own_stored, shared_stored);
        assert!(
            matches!(&own_stored[..], [Inserted::New { leased, .. }, Inserted::New { deliveries: 1, .. }, Inserted::Duplicate, ..] if leased.len() == 1),
            "{own_stored:?}"
        );
        assert_eq!(own_refused, shared_refused);
        assert!(own_refused.contains("[1].type"), "{own_refused}");
        let mut shared = Writer::new(shared).await.unwrap();
        same_rows(&mut own, &mut shared, &["events", "calls", "deliveries"]).await;

        let attempt = |status: u16, kind: Option<ErrorKind>| Attempt {
            n: 1,
            started_at: at,
            latency_ms: 12,
            request_method: "POST".into(),
            request_url: "https://crm.example.com/hook".into(),
            request_headers: vec![("content-type".into(), "application/json".into())],
            request_body: Some("{}".into()),
            response_status: Some(status),
            response_headers: Some(vec![("server".into(), "crm".into())]),
            response_body: Some("ok".into()),
            error_kind: kind,
            error: kind.map(|_| format!("HTTP {status}")),
        };
        let d = &batch[0].deliveries;
        let records = vec![
            AttemptRecord {
                delivery_id: d[0].id.clone(),
                webhook_id: d[0].webhook_id.clone(),
                lease: 1,
                attempt: Some(attempt(200, None)),
                next: Next::Succeeded,
                disable_webhook: None,
                note: None,
                test: false,
            },
            AttemptRecord {
                delivery_id: d[1].id.clone(),
                webhook_id: d[1].webhook_id.clone(),
                lease: 0,
                attempt: Some(attempt(410, Some(ErrorKind::HttpStatus))),
                next: Next::Failed,
                disable_webhook: Some("the receiver answered 410 Gone".into()),
                note: None,
                test: false,
            },
            AttemptRecord {
                delivery_id: batch[3].deliveries[0].id.clone(),
                webhook_id: batch[3].deliveries[0].webhook_id.clone(),
                lease: 7,
                attempt: Some(attempt(500, Some(ErrorKind::HttpStatus))),
                next: Next::RetryAt(later),
                disable_webhook: None,
                note: None,
                test: false,
            },
        ];
        let now = at.as_millisecond() + 250;
        let shared_due = record_all::<sqlx::Sqlite>(records.clone(), now)(&mut shared.conn)
            .await
            .unwrap();
        let own_due = own.direct(|c| record(c, &records, now)).await.unwrap();
        assert_eq!((own_due, shared_due), (1, 1), "the call's next goes");
        let tables = [
            "events",
            "calls",
            "deliveries",
            "attempts",
            "webhooks",
            "webhook_hours",
        ];
        same_rows(&mut own, &mut shared, &tables).await;
    }
}
