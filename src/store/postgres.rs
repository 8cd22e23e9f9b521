//! The PostgreSQL store, for running several `callhook serve` nodes on one database.
//!
//! Writes are short transactions from a pool; nodes share the work through leases claimed
//! with `FOR UPDATE SKIP LOCKED`, so two nodes never take the same delivery and none waits on
//! another's claim. What SQLite gets for free from its single writer — a call's deliveries
//! queued and promoted one at a time — takes transaction-scoped advisory locks here, one per
//! (webhook, call), always taken in the same order so they cannot deadlock. New work is
//! announced with `NOTIFY`, a hint that wakes idle dispatchers on every node; polling stays
//! the guarantee.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use sqlx::QueryBuilder;
use sqlx::postgres::{PgConnection, PgListener, PgPool, PgPoolOptions, PgRow, Postgres};
use tokio::sync::{mpsc, oneshot};

use super::sql::ingests::{IngestReply, Reply, exec, run_ingests};
use super::sql::{Backend, SqlDb, SqlStore, to_ms};
use super::{Inserted, NewEvent, Result, Shares, StoreError};
use crate::core::id::{CallId, NodeId, WebhookId};

/// The channel `NOTIFY` announces new due work on.
const WORK_CHANNEL: &str = "callhook_work";

/// The PostgreSQL store.
pub type PgStore = SqlStore<PgBackend>;

/// How the PostgreSQL store runs: reads and short write transactions on one pool.
pub struct PgBackend {
    read: PgPool,
    url: String,
    /// The ingest task, which stores every ingest waiting in one transaction.
    ingests: mpsc::Sender<(Vec<NewEvent>, IngestReply)>,
}

fn migrator() -> sqlx::migrate::Migrator {
    super::migrator(|m| m.postgres)
}

impl PgStore {
    /// Connects and brings the schema up to date. Several nodes may start at once: the
    /// migrator holds an advisory lock while it works, so one migrates and the others wait.
    pub async fn open(url: &str) -> Result<PgStore> {
        let read = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        migrator()
            .run(&read)
            .await
            .map_err(|e| StoreError::Database(Arc::new(sqlx::Error::Migrate(Box::new(e)))))?;
        let (ingests, waiting) = mpsc::channel(4096);
        let waiting = Arc::new(tokio::sync::Mutex::new(waiting));
        for _ in 0..INGEST_TASKS {
            tokio::spawn(ingest_loop(read.clone(), waiting.clone()));
        }
        Ok(SqlStore::new(PgBackend {
            read,
            url: url.to_owned(),
            ingests,
        }))
    }
}

impl Backend for PgBackend {
    type Db = Postgres;

    fn read(&self) -> &PgPool {
        &self.read
    }

    /// Runs `f` in a transaction and answers once it is committed.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let mut tx = self.read.begin().await?;
        match f(&mut tx).await {
            Ok(v) => {
                tx.commit().await?;
                Ok(v)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// Hands the events to the ingest task, which stores them with every other ingest
    /// waiting, in one transaction, and announces the new work.
    async fn insert_events(&self, events: Vec<NewEvent>) -> Result<Vec<Inserted>> {
        let (tx, rx) = oneshot::channel();
        self.ingests
            .send((events, tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Calls `wake` whenever any node announces new work, until the process ends. A lost
    /// connection is re-established; meanwhile polling carries on alone.
    fn listen_for_work(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        let url = self.url.clone();
        tokio::spawn(async move {
            loop {
                match PgListener::connect(&url).await {
                    Ok(mut listener) => {
                        if let Err(e) = listener.listen(WORK_CHANNEL).await {
                            tracing::warn!(error = %e, "cannot LISTEN for new work; polling only");
                        } else {
                            while listener.recv().await.is_ok() {
                                wake();
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot connect to LISTEN for new work; polling only")
                    }
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
    }
}

/// Most ingests one transaction takes.
const MAX_INGESTS: usize = 256;

/// Ingest tasks per node: each takes every ingest waiting when it is free, so single-event
/// posts share transactions while large batches still use more than one of the database's
/// processes (one task alone cut batches of 100 from about 5,200 to 3,100 events/s).
const INGEST_TASKS: usize = 4;

type Waiting = Arc<tokio::sync::Mutex<mpsc::Receiver<(Vec<NewEvent>, IngestReply)>>>;

/// Stores the ingests waiting, every time, in one transaction (see [`run_ingests`]): a post
/// costs its share of a few multi-row statements and one commit instead of eight round trips
/// and a commit of its own.
async fn ingest_loop(pool: PgPool, waiting: Waiting) {
    let mut ingests = Vec::with_capacity(MAX_INGESTS);
    loop {
        if waiting
            .lock()
            .await
            .recv_many(&mut ingests, MAX_INGESTS)
            .await
            == 0
        {
            return;
        }
        let mut tx = match pool.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                let e = StoreError::from(e);
                for (_, reply) in ingests.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
                continue;
            }
        };
        let mut replies: Vec<Reply> = Vec::with_capacity(ingests.len());
        // Only deliveries stored are news: events posted again (a connector's replay) store
        // none, and announcing them would wake every node for nothing.
        // Every merge here has its savepoint (`MERGE_WITHOUT_SAVEPOINT`), so no error ends
        // the transaction early; were one to, its commit fails and answers every caller.
        let new_work = run_ingests::<Postgres>(&mut tx, std::mem::take(&mut ingests), &mut replies)
            .await
            .unwrap_or(false);
        if let (true, Some(announce)) = (new_work, Postgres::ANNOUNCE_WORK) {
            exec::<Postgres>(&mut tx, announce).await;
        }
        match tx.commit().await {
            Ok(()) => replies.into_iter().for_each(|r| r(None)),
            Err(e) => {
                tracing::error!(error = %e, "ingest commit failed");
                let e = StoreError::from(e);
                replies.into_iter().for_each(|r| r(Some(e.clone())));
            }
        }
    }
}

impl SqlDb for Postgres {
    // The channel is WORK_CHANNEL's.
    const ANNOUNCE_WORK: Option<&'static str> = Some("SELECT pg_notify('callhook_work', '')");

    const ONE_NODE: bool = false;

    const MERGE_WITHOUT_SAVEPOINT: bool = false;

    const WEBHOOKS_USING_NUMBER: &'static str =
        "SELECT w.id FROM webhooks w, jsonb_array_elements_text(w.spec::jsonb -> 'numbers') n
     WHERE w.account_id = $1 AND n = $2 ORDER BY w.id";

    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    const DUE_UNLEASED: &'static str = "state = 'queued' AND next_attempt_at <= $1 \
         AND (claimed_until IS NULL OR claimed_until <= $1)";

    const LEASE_RUNNING: &'static str = "state = 'queued' AND claimed_until > $1";

    async fn claim_due(
        conn: &mut PgConnection,
        node: &NodeId,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        shares: &Shares,
        exclude: &[WebhookId],
    ) -> Result<Vec<PgRow>> {
        // On a node alone only the picked rows are locked; when none could be (a claim of a
        // node that just started or a test send holds every one), the claim that locks as it
        // reads goes past them to the next, and tells "nothing due" from "all taken" (see
        // [`Lock`]). So a claim that finds nothing due reads the due index twice.
        // With other nodes claiming at once, that claim is the only one: theirs would pick
        // the same oldest rows and take fewer.
        let locks: &[Lock] = if shares.others {
            &[Lock::Candidates]
        } else {
            &[Lock::Picked, Lock::Candidates]
        };
        for &lock in locks {
            let mut q = claim_query("", node, now, lease_until, limit, shares, exclude, lock);
            let rows = q.build().fetch_all(&mut *conn).await?;
            if !rows.is_empty() {
                return Ok(rows);
            }
        }
        Ok(Vec::new())
    }

    /// Locks (webhook, call) pairs until the transaction ends. Keys are taken in ascending
    /// order (the aggregate reads the sorted subquery row by row), so two transactions never
    /// wait on each other in a circle.
    async fn lock_calls(conn: &mut PgConnection, calls: &[(&WebhookId, &CallId)]) -> Result<()> {
        if calls.is_empty() {
            return Ok(());
        }
        let mut keys: Vec<i64> = calls.iter().map(|(w, c)| call_key(w, c)).collect();
        keys.sort_unstable();
        keys.dedup();
        sqlx::query(
            "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT k FROM unnest($1::bigint[]) AS k ORDER BY k) AS s",
        )
        .bind(&keys)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Which rows a claim locks (`FOR UPDATE SKIP LOCKED`, so no node waits on another's claim).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lock {
    /// Only the rows picked: the candidates are read without locks (four per row taken, for
    /// the webhooks' shares), so a claim writes one lock per delivery it takes. Locking every
    /// candidate wrote four, a WAL record and a dirtied page each (BENCHMARKS.md,
    /// twenty-second pass). Rows another node is claiming at that moment are picked and then
    /// skipped, so under contention a claim may take fewer than it could: used while no
    /// other node is alive ([`Shares::others`]). Three nodes on one database spent a fifth
    /// more CPU per delivery with it (`pg3`).
    Picked,
    /// Every candidate as it is read: rows other nodes hold are passed over for the next
    /// ones. Run when [`Lock::Picked`] took nothing, to tell "nothing due" from "all taken".
    Candidates,
}

/// The claim of [`SqlDb::claim_due`], after `prefix` (`EXPLAIN ` in tests).
#[allow(clippy::too_many_arguments)]
fn claim_query(
    prefix: &str,
    node: &NodeId,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
    shares: &Shares,
    exclude: &[WebhookId],
    lock: Lock,
) -> QueryBuilder<Postgres> {
    // Oldest due first, at most a webhook's share of any one webhook; rows another node is
    // claiming right now are skipped, never waited for.
    let mut q = QueryBuilder::<Postgres>::new(prefix);
    q.push(
        "WITH cand AS (SELECT seq, webhook_id, next_attempt_at FROM deliveries \
             WHERE state = 'queued' AND next_attempt_at <= (SELECT ",
    );
    // `now` as a subquery's value: the planner cannot see it, so it plans as it does for a
    // prepared statement's generic plan (the due index read in order, up to the limit).
    // Seeing it, with statistics taken before the queue grew, it chose to read and sort
    // every due delivery (70–160 ms a claim during a burst of 50,000).
    q.push_bind(to_ms(now));
    // A claim leaves `next_attempt_at` as it was (see below): the deliveries in flight are
    // due too, and passed over by their running lease. They are the oldest due, so each claim
    // steps over them (at most every node's `max_in_flight`) before what it can take.
    q.push("::bigint) AND (claimed_until IS NULL OR claimed_until <= (SELECT ");
    q.push_bind(to_ms(now));
    q.push("::bigint))");
    if !exclude.is_empty() {
        q.push(" AND webhook_id <> ALL(");
        q.push_bind(
            exclude
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<String>>(),
        );
        q.push(")");
    }
    q.push(" ORDER BY next_attempt_at LIMIT ");
    q.push_bind(i64::from(limit) * 4);
    if lock == Lock::Candidates {
        q.push(" FOR UPDATE SKIP LOCKED");
    }
    q.push(
        "), ranked AS (SELECT c.seq, c.next_attempt_at, ROW_NUMBER() OVER \
             (PARTITION BY c.webhook_id ORDER BY c.next_attempt_at, c.seq) AS rn, COALESCE(s.n, ",
    );
    // Each webhook's share: `more`'s, or `each` for the rest.
    q.push_bind(i64::from(shares.each));
    let (ids, ns): (Vec<String>, Vec<i64>) = shares
        .more
        .iter()
        .map(|(w, n)| (w.to_string(), i64::from(*n)))
        .unzip();
    q.push(") AS share FROM cand c LEFT JOIN unnest(");
    q.push_bind(ids);
    q.push("::text[], ");
    q.push_bind(ns);
    q.push(
            "::bigint[]) AS s(webhook_id, n) ON s.webhook_id = c.webhook_id), \
             picked AS (SELECT seq FROM ranked WHERE rn <= share ORDER BY next_attempt_at, seq LIMIT ",
        );
    q.push_bind(i64::from(limit));
    q.push(")");
    let from = match lock {
        Lock::Candidates => "picked",
        Lock::Picked => {
            // Read again under the lock: a row another node claimed or recorded since this
            // statement began is no longer due (READ COMMITTED re-checks the latest version).
            q.push(
                ", locked AS (SELECT seq FROM deliveries WHERE seq IN (SELECT seq FROM picked) \
                 AND state = 'queued' AND (claimed_until IS NULL OR claimed_until <= (SELECT ",
            );
            q.push_bind(to_ms(now));
            q.push("::bigint)) FOR UPDATE SKIP LOCKED)");
            "locked"
        }
    };
    // Only columns no index holds change (migration 0017 took `deliveries_leased` away), so
    // PostgreSQL writes the leased row in place (a HOT update, room kept by the table's
    // fillfactor): no new entry in any of the table's indexes. Moving `next_attempt_at` to the
    // lease's end, as SQLite's claim does, wrote one in all ten (BENCHMARKS.md, eighteenth pass).
    q.push(" UPDATE deliveries d SET lease = d.lease + 1, claimed_until = ");
    q.push_bind(to_ms(lease_until));
    q.push(", leased_by = ");
    q.push_bind(node.as_str().to_owned());
    q.push(" FROM ");
    q.push(from);
    q.push(
        " p WHERE d.seq = p.seq RETURNING d.id, d.lease, d.trigger, d.attempts, \
             d.attempt_limit, d.event_seq, d.webhook_id, d.seq",
    );
    q
}

/// A stable 64-bit key per (webhook, call), the same on every node and every version.
fn call_key(webhook_id: &WebhookId, call_id: &CallId) -> i64 {
    let digest = Sha256::new()
        .chain_update(webhook_id.as_str().as_bytes())
        .chain_update([0u8])
        .chain_update(call_id.as_str().as_bytes())
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, Executor, Row};

    use super::*;
    use crate::core::delivery_state::DeliveryStatus;
    use crate::core::id::AccountId;
    use crate::store::sql::deliveries::list_query;
    use crate::store::sql::{attempts::NEXT_OF_CALLS, events::BUSY_CALLS};
    use crate::store::{DeliveryFilter, PageRequest};

    /// Runs with `CALLHOOK_TEST_DATABASE=postgres` (`scripts/test` does): a connection to a
    /// fresh database of `CALLHOOK_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`),
    /// its schema brought up to date by the store.
    async fn migrated_database() -> Option<PgConnection> {
        if std::env::var("CALLHOOK_TEST_DATABASE").as_deref() != Ok("postgres") {
            return None;
        }
        let server = std::env::var("CALLHOOK_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("callhook_u_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .expect("PostgreSQL is reachable");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let url = format!("{server}/{name}");
        drop(PgStore::open(&url).await.unwrap());
        Some(PgConnection::connect(&url).await.unwrap())
    }

    /// Every text column compares as bytes (migration 0021), whatever the collation the
    /// database was created with: a column added later without `COLLATE "C"` would compare
    /// through the locale again, and an index of it could not serve a comparison with the
    /// others' columns.
    #[tokio::test]
    async fn every_text_column_compares_as_bytes() {
        let Some(mut c) = migrated_database().await else {
            return;
        };
        let rows = sqlx::query(
            "SELECT table_name::text || '.' || column_name::text AS col, collation_name::text AS coll
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND data_type = 'text'
               AND table_name <> '_sqlx_migrations'",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        assert!(rows.len() > 50, "{} text columns", rows.len());
        let other: Vec<String> = rows
            .iter()
            .filter(|r| r.get::<Option<String>, _>("coll").as_deref() != Some("C"))
            .map(|r| r.get("col"))
            .collect();
        assert!(other.is_empty(), "not COLLATE \"C\": {other:?}");
    }

    async fn plan(c: &mut PgConnection, mut q: QueryBuilder<Postgres>) -> String {
        let rows = q.build().fetch_all(&mut *c).await.unwrap();
        let lines: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
        lines.join("\n")
    }

    /// PostgreSQL's plans of the ingest's and the record's per-call lookups and of the claim,
    /// on a table whose statistics were taken before its queue grew, as on any table that fills
    /// faster than autovacuum analyzes it: 1,000 finished deliveries and 2 queued analyzed,
    /// then 50,000 more queued. Every read of the deliveries must probe one (webhook, call),
    /// or read the due index in order up to the claim's limit, never a webhook's whole queue.
    /// Written as joins, the lookups were planned as hash joins over every queued delivery
    /// (45 ms for 100 calls on such a table). The claim's part guards its plan: in a live run,
    /// the claim that saw its `now` read and sorted every due delivery; this data does not
    /// bring that plan back.
    #[tokio::test]
    async fn plans_do_not_read_the_queue_when_statistics_are_stale() {
        let Some(mut c) = migrated_database().await else {
            return;
        };
        for sql in [
            "ALTER TABLE deliveries SET (autovacuum_enabled = false)",
            "INSERT INTO deliveries (id, account_id, webhook_id, event_seq, call_id, trigger, state, \
             created_at, updated_at) SELECT 'dl_old' || i, 'ac', 'wh_' || (i % 10), i, 'old' || i, \
             'call_received', 'succeeded', 1, 1 FROM generate_series(1, 1000) i",
            "INSERT INTO deliveries (id, account_id, webhook_id, event_seq, call_id, trigger, state, \
             next_attempt_at, created_at, updated_at) SELECT 'dl_due' || i, 'ac', 'wh_' || (i % 10), \
             i, 'due' || i, 'call_received', 'queued', i, 1, 1 FROM generate_series(1, 2) i",
            "ANALYZE deliveries",
            "INSERT INTO deliveries (id, account_id, webhook_id, event_seq, call_id, trigger, state, \
             next_attempt_at, created_at, updated_at) SELECT 'dl_new' || i, 'ac', 'wh_' || (i % 10), \
             i, 'c' || i, 'call_received', 'queued', 1000 + i, 1, 1 FROM generate_series(1, 50000) i",
        ] {
            c.execute(sql).await.unwrap();
        }
        let pairs: Vec<(String, String)> = (0..100)
            .map(|i| (format!("wh_{}", i % 10), format!("c{}", i * 7)))
            .collect();
        for lookup in [BUSY_CALLS, NEXT_OF_CALLS] {
            let mut q = QueryBuilder::<Postgres>::new("EXPLAIN WITH p(webhook_id, call_id) AS (");
            q.push_values(&pairs, |mut b, (w, call)| {
                b.push_bind(w.clone()).push_bind(call.clone());
            });
            q.push(") ");
            q.push(lookup);
            let plan = plan(&mut c, q).await;
            let reads: Vec<&str> = plan
                .lines()
                .filter(|l| l.contains(" on deliveries"))
                .collect();
            assert!(!reads.is_empty(), "{lookup}\n{plan}");
            for l in reads {
                assert!(
                    l.contains("Index Only Scan using deliveries_call")
                        || l.contains("Index Scan using deliveries_call"),
                    "{lookup}\nreads the deliveries as: {l}\nwhole plan:\n{plan}"
                );
            }
            assert!(!plan.contains("Hash"), "{lookup}\n{plan}");
        }
        let node = NodeId::from_string("node_plan".into());
        let now = Timestamp::from_millisecond(1_000_000).unwrap();
        let until = Timestamp::from_millisecond(1_060_000).unwrap();
        for lock in [Lock::Picked, Lock::Candidates] {
            let q = claim_query(
                "EXPLAIN ",
                &node,
                now,
                until,
                512,
                &Shares::each(256),
                &[],
                lock,
            );
            let plan = plan(&mut c, q).await;
            assert!(
                plan.contains("Index Scan using deliveries_due on deliveries"),
                "the claim ({lock:?}):\n{plan}"
            );
            assert!(
                !plan.contains("Bitmap Heap Scan") && !plan.contains("Seq Scan on deliveries"),
                "the claim ({lock:?}):\n{plan}"
            );
        }
        // A page of a webhook's log, first and next, plain and by status: read in the log's
        // order from its index up to the page's end, never sorted.
        for sql in [
            "INSERT INTO events (id, account_id, event_id, call_id, type, occurred_at, received_at, \
             test, payload) SELECT 'ev' || i, 'ac', 'e' || i, 'c' || i, 'call.received', 1, 1, true, \
             '{}' FROM generate_series(1, 50000) i",
            "ANALYZE events",
            "ANALYZE deliveries",
        ] {
            c.execute(sql).await.unwrap();
        }
        let (account, webhook) = (
            AccountId::from_string("ac".into()),
            WebhookId::from_string("wh_1".into()),
        );
        let failed = DeliveryFilter {
            status: Some(DeliveryStatus::Failed),
            ..Default::default()
        };
        for (filter, after, index) in [
            (DeliveryFilter::default(), None, "deliveries_log"),
            (
                DeliveryFilter::default(),
                Some("dl_new11"),
                "deliveries_log",
            ),
            (failed.clone(), None, "deliveries_webhook_state"),
            (failed, Some("dl_old1"), "deliveries_webhook_state"),
        ] {
            let page = PageRequest {
                limit: 50,
                after: after.map(String::from),
            };
            let q = list_query("EXPLAIN ", &account, &webhook, &filter, &page);
            let page_plan = self::plan(&mut c, q).await;
            assert!(
                page_plan.contains(&format!(
                    "Index Scan Backward using {index} on deliveries d"
                )),
                "{filter:?} {after:?}:\n{page_plan}"
            );
            assert!(
                !page_plan.contains("Sort"),
                "{filter:?} {after:?}:\n{page_plan}"
            );
        }
    }
}
