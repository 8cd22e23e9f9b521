//! The SQLite store: one file in WAL mode, reads from a small pool, and every write through one
//! writer connection owned by one task.
//!
//! SQLite has a single writer, so rather than let connections queue on its lock we queue the
//! writes ourselves: the writer task takes every job waiting in its channel, runs each in a
//! savepoint of one transaction, commits once, and only then answers each caller. Under load
//! many requests share one commit (group commit), which is what makes ingest fast; a failing
//! job rolls back its own savepoint and nobody else's.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite};
use tokio::sync::{mpsc, oneshot};

use super::sql::{Backend, HotReads, SqlDb, SqlStore, insert_events_in, to_ms};
use super::{Inserted, NewEvent, Result, StoreError};
use crate::core::id::{CallId, NodeId, WebhookId};

/// Most jobs one transaction takes.
const MAX_GROUP: usize = 512;

type Reply = Box<dyn FnOnce(Option<StoreError>) + Send>;
type Job = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Reply)> + Send>;

/// What the writer task is asked to do.
enum Work {
    /// Any write, in its own savepoint.
    Job(Job),
    /// Events to store. The writer merges every ingest waiting in its channel into one set of
    /// multi-row statements: many small requests cost about what one large batch does.
    Ingest(Vec<NewEvent>, IngestReply),
}

type IngestReply = oneshot::Sender<Result<Vec<Inserted>>>;

/// The SQLite store.
pub type SqliteStore = SqlStore<SqliteBackend>;

/// How the SQLite store runs: reads from a pool, writes through the writer task.
pub struct SqliteBackend {
    read: SqlitePool,
    writer: mpsc::Sender<Work>,
    /// How to connect, for a checkpoint outside the writer's transactions ([`Backend::scrub`]).
    opts: SqliteConnectOptions,
    /// API keys and matching webhooks kept in memory: every write goes through `writer`.
    hot: HotReads,
}

fn migrator() -> sqlx::migrate::Migrator {
    super::migrator(|m| m.sqlite)
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or a bare path) and
    /// brings its schema up to date.
    pub async fn open(url: &str) -> Result<SqliteStore> {
        Self::open_waiting(url, Duration::from_secs(10)).await
    }

    /// As [`SqliteStore::open`], waiting at most `busy_timeout` for another process's lock
    /// on the file before a statement fails.
    async fn open_waiting(url: &str, busy_timeout: Duration) -> Result<SqliteStore> {
        let opts = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url)?
        } else {
            SqliteConnectOptions::new().filename(Path::new(url))
        };
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL loses nothing when the process dies (even kill -9); only a
            // power cut can take the last commits. `synchronous = "full"` trades speed for that.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(busy_timeout)
            .foreign_keys(true)
            // Claims sort in temporary b-trees; in memory they cost no file I/O. (Statements
            // that change many rows are kept small, see hold_webhook, so this stays bounded.)
            .pragma("temp_store", "memory")
            // Map the first 16 MiB of the file instead of read()ing pages: claims and logs read
            // the same hot pages over and over, and a system call per page showed up in
            // profiles. Mapped pages count in the process's RSS (once per connection that
            // touched them): 64 MiB made 82 MiB of a 122 MiB peak file-backed (BENCHMARKS.md).
            .pragma("mmap_size", "16777216")
            // A row changed or deleted leaves no old copy in its page (a secret sealed again,
            // SPEC §14), where that costs no extra I/O.
            .pragma("secure_delete", "fast")
            // Commits do not copy the WAL back into the file: the checkpointer does, on its
            // own connection and thread (see `checkpointer`). Done by the committing writer,
            // one commit in thirty stalled 5–40 ms and those were most of its commit time.
            .pragma("wal_autocheckpoint", "0");
        let mut writer = SqliteConnection::connect_with(&opts).await?;
        migrator()
            .run_direct(None, &mut writer, false)
            .await
            .map_err(|e| {
                StoreError::Database(std::sync::Arc::new(sqlx::Error::Migrate(Box::new(e))))
            })?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(opts.clone().read_only(true))
            .await?;
        let (tx, rx) = mpsc::channel::<Work>(4096);
        let (wrote, written) = mpsc::channel::<()>(1);
        let checkpoints = SqliteConnection::connect_with(&opts).await?;
        tokio::spawn(checkpointer(checkpoints, written));
        tokio::spawn(writer_loop(writer, rx, wrote));
        Ok(SqlStore::new(SqliteBackend {
            read,
            writer: tx,
            opts,
            hot: HotReads::default(),
        }))
    }
}

impl Backend for SqliteBackend {
    type Db = Sqlite;

    fn read(&self) -> &SqlitePool {
        &self.read
    }

    /// Moves the WAL into the database file and empties it, so older versions of changed
    /// pages are gone from disk.
    async fn scrub(&self) -> Result<()> {
        let mut c = SqliteConnection::connect_with(&self.opts).await?;
        sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut c)
            .await?;
        Ok(())
    }

    /// Runs `f` in the writer's transaction and answers once it is committed, and the
    /// [`HotReads`] know of it.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let r = self.write_work(f).await;
        self.hot.changed();
        r
    }

    fn hot(&self) -> Option<&HotReads> {
        Some(&self.hot)
    }

    /// Runs `f` in the writer's transaction and answers once it is committed.
    async fn write_work<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let r = f(conn).await;
                let ok = r.is_ok();
                let reply: Reply = Box::new(move |commit_err| {
                    let _ = tx.send(match commit_err {
                        Some(e) => Err(e),
                        None => r,
                    });
                });
                (ok, reply)
            })
        });
        self.writer
            .send(Work::Job(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Hands the events to the writer, which merges them with every other ingest waiting.
    async fn insert_events(&self, events: Vec<NewEvent>) -> Result<Vec<Inserted>> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Work::Ingest(events, tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// Runs a statement the writer cannot do without; a failure here is logged, and the
/// transaction's commit will report it to the callers.
async fn exec(conn: &mut SqliteConnection, sql: &'static str) {
    if let Err(e) = sqlx::raw_sql(sql).execute(&mut *conn).await {
        tracing::error!(error = %e, sql, "writer statement failed");
    }
}

/// Stores every waiting ingest: merged when they go through, each on its own (in its own
/// savepoint) when one of a group is refused, so only that one fails.
async fn run_ingests(
    conn: &mut SqliteConnection,
    ingests: Vec<(Vec<NewEvent>, IngestReply)>,
    replies: &mut Vec<Reply>,
) {
    // Merged in groups of bounded size: a savepoint keeps the original of every page its
    // group changes (in memory), so a burst of large batches would otherwise cost a lot of it.
    let mut group: Vec<(Vec<NewEvent>, IngestReply)> = Vec::new();
    let mut size = 0;
    for (events, tx) in ingests {
        let rows: usize = events.iter().map(|e| 1 + e.deliveries.len()).sum();
        if size > 0 && size + rows > MAX_MERGED_ROWS {
            run_ingest_group(conn, std::mem::take(&mut group), replies).await;
            size = 0;
        }
        size += rows;
        group.push((events, tx));
    }
    if !group.is_empty() {
        run_ingest_group(conn, group, replies).await;
    }
}

/// Most rows (events and deliveries) stored by one merged insert.
const MAX_MERGED_ROWS: usize = 2000;

async fn run_ingest_group(
    conn: &mut SqliteConnection,
    group: Vec<(Vec<NewEvent>, IngestReply)>,
    replies: &mut Vec<Reply>,
) {
    let answer = |tx: IngestReply, r: Result<Vec<Inserted>>| -> Reply {
        Box::new(move |commit_err| {
            let _ = tx.send(match commit_err {
                Some(e) => Err(e),
                None => r,
            });
        })
    };
    // One list of all the events, and where each request's part ends.
    let mut all: Vec<NewEvent> = Vec::new();
    let mut parts: Vec<(usize, IngestReply)> = Vec::with_capacity(group.len());
    for (events, tx) in group {
        parts.push((events.len(), tx));
        all.extend(events);
    }
    if parts.len() > 1 {
        exec(conn, "SAVEPOINT ingests").await;
        if let Ok(results) = insert_events_in::<Sqlite>(conn, &all).await {
            exec(conn, "RELEASE ingests").await;
            let mut results = results.into_iter();
            for (n, tx) in parts {
                replies.push(answer(tx, Ok(results.by_ref().take(n).collect())));
            }
            return;
        }
        exec(conn, "ROLLBACK TO ingests; RELEASE ingests").await;
    }
    let mut start = 0;
    for (n, tx) in parts {
        let events = &all[start..start + n];
        start += n;
        exec(conn, "SAVEPOINT ingest_one").await;
        let r = insert_events_in::<Sqlite>(conn, events).await;
        exec(
            conn,
            if r.is_ok() {
                "RELEASE ingest_one"
            } else {
                "ROLLBACK TO ingest_one; RELEASE ingest_one"
            },
        )
        .await;
        replies.push(answer(tx, r));
    }
}

/// Begins the writer's transaction. Another process (the `callhook user` command, a backup)
/// may hold the file's write lock longer than the busy timeout: the waiting writes are kept and
/// the transaction tried again a few times, about three seconds more in all, before they are
/// given up on.
async fn begin(conn: &mut SqliteConnection) -> bool {
    let mut pause = Duration::from_millis(50);
    loop {
        match sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
            Ok(_) => return true,
            Err(e) if pause <= BEGIN_RETRY_UP_TO => {
                tracing::warn!(error = %e, "cannot begin a write transaction; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot begin a write transaction; the waiting writes fail");
                return false;
            }
        }
    }
}

/// The longest pause between two tries of [`begin`].
const BEGIN_RETRY_UP_TO: Duration = Duration::from_millis(1600);

/// Copies committed pages from the WAL into the database file, at most every
/// [`CHECKPOINT_EVERY`] and only after writes, without waiting for readers or the writer
/// (`PASSIVE`): the writer goes on appending while the copy and its fsync run here. It ends
/// with the writer.
async fn checkpointer(mut conn: SqliteConnection, mut written: mpsc::Receiver<()>) {
    while written.recv().await.is_some() {
        if let Err(e) = sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint failed; trying again after the next write");
        }
        tokio::time::sleep(CHECKPOINT_EVERY).await;
    }
}

/// The least time between two checkpoints.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

async fn writer_loop(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Work>,
    wrote: mpsc::Sender<()>,
) {
    let mut work: Vec<Work> = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut work, MAX_GROUP).await > 0 {
        let mut replies: Vec<Reply> = Vec::with_capacity(work.len());
        if !begin(&mut conn).await {
            // Dropping the work answers its callers with `Closed`.
            work.clear();
            continue;
        }
        let mut ingests = Vec::new();
        let mut jobs = Vec::new();
        for w in work.drain(..) {
            match w {
                Work::Ingest(events, tx) => ingests.push((events, tx)),
                Work::Job(job) => jobs.push(job),
            }
        }
        run_ingests(&mut conn, ingests, &mut replies).await;
        for job in jobs {
            exec(&mut conn, "SAVEPOINT job").await;
            let (ok, reply) = job(&mut conn).await;
            exec(
                &mut conn,
                if ok {
                    "RELEASE job"
                } else {
                    "ROLLBACK TO job; RELEASE job"
                },
            )
            .await;
            replies.push(reply);
        }
        match sqlx::query("COMMIT").execute(&mut conn).await {
            Ok(_) => {
                replies.into_iter().for_each(|r| r(None));
                // A checkpoint already asked for covers this commit too.
                let _ = wrote.try_send(());
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed");
                let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
                let e = StoreError::from(e);
                replies.into_iter().for_each(|r| r(Some(e.clone())));
            }
        }
    }
}

/// `seq, webhook_id` of the oldest `window` due deliveries, less those of `exclude` and
/// `skip`, read from `deliveries_due` alone.
async fn due_rows(
    conn: &mut SqliteConnection,
    now: Timestamp,
    window: u32,
    exclude: &[WebhookId],
    skip: &[String],
) -> Result<Vec<SqliteRow>> {
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT seq, webhook_id FROM (SELECT seq, webhook_id, next_attempt_at FROM deliveries \
         WHERE state = 'queued' AND next_attempt_at <= ",
    );
    q.push_bind(to_ms(now));
    if !exclude.is_empty() {
        q.push(" AND webhook_id NOT IN (");
        let mut sep = q.separated(", ");
        for w in exclude {
            sep.push_bind(w.as_str());
        }
        q.push(")");
    }
    q.push(" ORDER BY next_attempt_at LIMIT ");
    q.push_bind(i64::from(window));
    q.push(")");
    if !skip.is_empty() {
        q.push(" WHERE webhook_id NOT IN (");
        let mut sep = q.separated(", ");
        for w in skip {
            sep.push_bind(w.as_str());
        }
        q.push(")");
    }
    Ok(q.build().fetch_all(&mut *conn).await?)
}

impl SqlDb for Sqlite {
    const ANNOUNCE_WORK: Option<&'static str> = None;

    const ONE_NODE: bool = true;

    const WEBHOOKS_USING_NUMBER: &'static str =
        "SELECT w.id FROM webhooks w, json_each(w.spec, '$.numbers') n
     WHERE w.account_id = $1 AND n.value = $2 ORDER BY w.id";

    const SKIP_LOCKED: &'static str = "";

    /// Two statements in the writer's transaction (no other writer can come between them):
    /// the oldest due deliveries are read from `deliveries_due` alone, the per-webhook cap is
    /// applied here, and the picked rows are leased. (One statement with `ROW_NUMBER() OVER
    /// (PARTITION BY webhook_id …)` did the pick in SQL: its sorts made it seven times the
    /// cost of the read, and the largest cost of the writer, BENCHMARKS.md.)
    async fn claim_due(
        conn: &mut SqliteConnection,
        node: &NodeId,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        per_webhook: u32,
        exclude: &[WebhookId],
    ) -> Result<Vec<SqliteRow>> {
        // A few of the oldest first (enough when one webhook's backlog is all there is); when
        // more are wanted, the oldest `4 × limit` again without the webhooks already at their
        // cap, so one backlog cannot crowd the others out of a claim, and its rows are
        // skipped inside SQLite instead of read out here.
        let mut taken: HashMap<String, u32> = HashMap::new();
        let mut picked: Vec<i64> = Vec::with_capacity(limit as usize);
        let mut capped: Vec<String> = Vec::new();
        for window in [limit.min(per_webhook * 2), limit.saturating_mul(4)] {
            let due = due_rows(conn, now, window, exclude, &capped).await?;
            let full = due.len() as u32 >= window;
            for row in &due {
                if picked.len() >= limit as usize {
                    break;
                }
                let seq: i64 = row.try_get_unchecked(0)?;
                let webhook: &str = row.try_get_unchecked(1)?;
                let n = match taken.get_mut(webhook) {
                    Some(n) => n,
                    None => taken.entry(webhook.to_owned()).or_default(),
                };
                if *n < per_webhook && !picked.contains(&seq) {
                    *n += 1;
                    picked.push(seq);
                    if *n == per_webhook {
                        capped.push(webhook.to_owned());
                    }
                }
            }
            if picked.len() >= limit as usize || !full {
                break;
            }
        }
        if picked.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "UPDATE deliveries SET lease = lease + 1, next_attempt_at = ",
        );
        q.push_bind(to_ms(lease_until));
        q.push(", claimed_until = ");
        q.push_bind(to_ms(lease_until));
        q.push(", leased_by = ");
        q.push_bind(node.as_str().to_owned());
        q.push(" WHERE seq IN (");
        let mut sep = q.separated(", ");
        for seq in picked {
            sep.push_bind(seq);
        }
        q.push(
            ") RETURNING id, lease, trigger, attempts, attempt_limit, event_seq, webhook_id, seq",
        );
        Ok(q.build().fetch_all(&mut *conn).await?)
    }

    /// SQLite's one writer already serialises every write, so a call's deliveries need no lock.
    async fn lock_calls(
        _conn: &mut SqliteConnection,
        _calls: &[(&WebhookId, &CallId)],
    ) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::{Connection, SqliteConnection};

    use super::SqliteStore;
    use crate::store::Store;

    /// Commits leave the WAL as it is, and the checkpointer copies it into the database file
    /// soon after: without it the file would keep only its first page until the last
    /// connection closed.
    #[tokio::test]
    async fn the_checkpointer_copies_commits_into_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callhook.db");
        let store = SqliteStore::open(&path.display().to_string())
            .await
            .unwrap();
        store
            .release_leftover_leases(jiff::Timestamp::now())
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let len = std::fs::metadata(&path).unwrap().len();
            if len > 4096 * 8 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the database file stayed at {len} bytes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A write that finds the file locked by another process past the busy timeout waits for
    /// the lock instead of failing at once.
    #[tokio::test]
    async fn a_write_outlasts_another_process_holding_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callhook.db");
        let url = format!("sqlite://{}", path.display());
        let store = SqliteStore::open_waiting(&url, Duration::from_millis(20))
            .await
            .unwrap();
        let mut other = SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();
        let release = tokio::spawn(async move {
            // Longer than the busy timeout, well within the retries.
            tokio::time::sleep(Duration::from_millis(300)).await;
            sqlx::query("COMMIT").execute(&mut other).await.unwrap();
        });
        let now = jiff::Timestamp::now();
        let written = store.release_leftover_leases(now).await;
        release.await.unwrap();
        assert!(written.is_ok(), "the write failed: {written:?}");
    }
}
