//! The writer's connection, used directly on the writer's own thread for its hottest
//! statements: the ingests, and the transaction's `BEGIN` and `COMMIT`.
//!
//! sqlx runs each statement of a connection on a thread of its own and hands it over through
//! channels: a round trip of about 40 µs at light load, seven per ingest, which made up most of
//! an ingest's time in the writer (BENCHMARKS.md, eighth pass). Here the writer takes the
//! connection's handle from sqlx's thread once ([`Writer::direct`]) and runs the statements
//! itself through rusqlite, prepared once and cached. The rest of the writes (the shared SQL of
//! `store::sql`, run on both databases) still go through sqlx on the same connection, in the
//! same transaction.

use std::borrow::Cow;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, ffi, params};
use sqlx::SqliteConnection;
use sqlx::error::{DatabaseError, ErrorKind};

use crate::core::delivery_state::{State, arrival};
use crate::core::validate::FieldErrors;
use crate::store::sql::deliveries::CALL_BUSY;
use crate::store::sql::ingests::{IngestReply, Reply, answer};
use crate::store::sql::to_ms;
use crate::store::{Inserted, NewEvent, Result, StoreError};

/// The writer's connection: sqlx's, and the same SQLite handle seen through rusqlite.
pub(super) struct Writer {
    /// Declared first so it is dropped first: its cached statements are finalized before
    /// `conn` closes the handle they belong to.
    direct: Connection,
    pub(super) conn: SqliteConnection,
}

impl Writer {
    pub(super) async fn new(mut conn: SqliteConnection) -> Result<Writer> {
        let handle = conn.lock_handle().await?.as_raw_handle();
        // SAFETY: `direct` does not own the handle (it never closes it) and is dropped before
        // `conn`, which does. It is only used inside `Writer::direct`, which holds sqlx's lock
        // on the handle throughout: sqlx's thread never runs a statement on it meanwhile.
        let direct = unsafe { Connection::from_handle(handle.as_ptr()) }?;
        direct.set_prepared_statement_cache_capacity(32);
        Ok(Writer { direct, conn })
    }

    /// Runs `f` on the connection on this thread, holding it from sqlx's thread meanwhile
    /// (one hand-over, however many statements `f` runs).
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

/// Stores every waiting ingest, each in a savepoint of its own, so only a refused one fails.
pub(super) fn run_ingests(
    c: &Connection,
    ingests: Vec<(Vec<NewEvent>, IngestReply)>,
    replies: &mut Vec<Reply>,
) {
    for (events, tx) in ingests {
        replies.push(answer(tx, insert(c, &events)));
    }
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
         ON CONFLICT(account_id, event_id) DO NOTHING RETURNING seq",
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
        let seq: Option<i64> = event
            .query_row(
                params![
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
                ],
                |r| r.get(0),
            )
            .optional()
            .map_err(|err| {
                if is_unique_violation(&err) {
                    let mut fe = FieldErrors::default();
                    fe.push(
                        if events.len() > 1 {
                            format!("[{i}].type")
                        } else {
                            "type".into()
                        },
                        format!(
                            "call {} already has a call.ended event; a call ends once",
                            e.call_id
                        ),
                    );
                    StoreError::Rejected(fe)
                } else {
                    err.into()
                }
            })?;
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

    fn kind(&self) -> ErrorKind {
        match self.error.sqlite_error().map(|f| f.extended_code) {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}
