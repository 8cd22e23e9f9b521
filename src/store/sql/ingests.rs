//! Group commit of ingests: every request waiting is stored in one transaction, merged into
//! one set of multi-row statements, and answered only once that transaction is committed.
//! Many small requests then cost about what one large batch does. PostgreSQL's ingest task
//! runs its waiting ingests through [`run_ingests`], and so does SQLite's writer for a burst;
//! a small group it stores on the connection directly (`store::sqlite::direct`), where a
//! statement costs no round trip.

use tokio::sync::oneshot;

use super::db::{Conn, SqlDb};
use super::events::{insert_batched, insert_in, no_rule_refuses};
use crate::store::{Inserted, NewEvent, Result, StoreError};

/// Answers a write's caller once its transaction has ended: `None` when it committed.
pub type Reply = Box<dyn FnOnce(Option<StoreError>) + Send>;

/// Where an ingest's outcome goes.
pub type IngestReply = oneshot::Sender<Result<Vec<Inserted>>>;

/// The [`Reply`] that sends `r` to `tx` once the transaction committed, or the commit's error.
pub fn answer<T: Send + 'static>(tx: oneshot::Sender<Result<T>>, r: Result<T>) -> Reply {
    Box::new(move |commit_err| {
        let _ = tx.send(match commit_err {
            Some(e) => Err(e),
            None => r,
        });
    })
}

/// Runs a statement the transaction cannot do without; a failure here is logged, and the
/// commit will report it to the callers.
pub async fn exec<DB: SqlDb>(conn: &mut Conn<DB>, sql: &'static str) {
    if let Err(e) = sqlx::raw_sql(sql).execute(&mut *conn).await {
        tracing::error!(error = %e, sql, "writer statement failed");
    }
}

/// Stores every waiting ingest: merged when they go through, each on its own (in its own
/// savepoint) when one of a group is refused, so only that one fails. Answers whether any
/// delivery was stored (events posted again store none), or the error of a merge stored
/// without a savepoint ([`SqlDb::MERGE_WITHOUT_SAVEPOINT`]): what it stored before failing
/// cannot be undone alone, so the caller must roll the whole transaction back (and answer
/// every caller in it with the error).
pub async fn run_ingests<DB: SqlDb>(
    conn: &mut Conn<DB>,
    ingests: Vec<(Vec<NewEvent>, IngestReply)>,
    replies: &mut Vec<Reply>,
) -> std::result::Result<bool, StoreError> {
    // Merged in groups of bounded size: a savepoint keeps the original of every page its
    // group changes (in memory), so a burst of large batches would otherwise cost a lot of it.
    let mut group: Vec<(Vec<NewEvent>, IngestReply)> = Vec::new();
    let mut size = 0;
    let mut stored = false;
    for (events, tx) in ingests {
        let rows = rows(&events);
        if size > 0 && size + rows > MAX_MERGED_ROWS {
            stored |= run_ingest_group::<DB>(conn, std::mem::take(&mut group), replies).await?;
            size = 0;
        }
        size += rows;
        group.push((events, tx));
    }
    if !group.is_empty() {
        stored |= run_ingest_group::<DB>(conn, group, replies).await?;
    }
    Ok(stored)
}

/// The rows (events and their deliveries) storing `events` writes.
pub fn rows(events: &[NewEvent]) -> usize {
    events.iter().map(|e| 1 + e.deliveries.len()).sum()
}

/// Whether a delivery was stored with any of these events that no node holds yet (one leased
/// as it was stored is news to nobody else).
fn stores_work(done: &[Inserted]) -> bool {
    done.iter()
        .any(|i| matches!(i, Inserted::New { deliveries, leased } if *deliveries > leased.len()))
}

/// Most rows (events and deliveries) stored by one merged insert.
const MAX_MERGED_ROWS: usize = 2000;

async fn run_ingest_group<DB: SqlDb>(
    conn: &mut Conn<DB>,
    group: Vec<(Vec<NewEvent>, IngestReply)>,
    replies: &mut Vec<Reply>,
) -> std::result::Result<bool, StoreError> {
    // One list of all the events, and where each request's part ends.
    let mut all: Vec<NewEvent> = Vec::new();
    let mut parts: Vec<(usize, IngestReply)> = Vec::with_capacity(group.len());
    for (events, tx) in group {
        parts.push((events.len(), tx));
        all.extend(events);
    }
    let merged = if parts.len() < 2 {
        None
    } else if DB::MERGE_WITHOUT_SAVEPOINT && no_rule_refuses::<DB>(conn, &all).await {
        // Nothing but a failure of the database itself (a full disk) can refuse it now.
        match insert_batched::<DB>(conn, &all).await {
            Ok(results) => Some(results),
            Err(e) => {
                for (_, tx) in parts {
                    replies.push(answer(tx, Err(e.clone())));
                }
                return Err(e);
            }
        }
    } else {
        // `insert_in` is all or nothing: a merge that fails leaves nothing behind.
        insert_in::<DB>(conn, &all).await.ok()
    };
    if let Some(results) = merged {
        let stored = stores_work(&results);
        let mut results = results.into_iter();
        for (n, tx) in parts {
            replies.push(answer(tx, Ok(results.by_ref().take(n).collect())));
        }
        return Ok(stored);
    }
    let mut start = 0;
    let mut stored = false;
    for (n, tx) in parts {
        let events = &all[start..start + n];
        start += n;
        let r = insert_in::<DB>(conn, events).await;
        stored |= r.as_ref().is_ok_and(|done| stores_work(done));
        replies.push(answer(tx, r));
    }
    Ok(stored)
}
