//! [`SqlDb`]: what the shared SQL needs of a database. It bundles the sqlx bounds generic
//! statements need (binding our column types, reading rows, executing on a connection or the
//! pool) with the few statements whose SQL differs between SQLite and PostgreSQL.

use std::future::Future;

use jiff::Timestamp;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::rows::Cols;
use crate::core::id::{CallId, NodeId, WebhookId};
use crate::store::{Result, Shares};

/// A database connection, as the shared code holds one inside a write.
pub type Conn<DB> = <DB as Database>::Connection;

/// A database the shared SQL runs on (implemented for [`sqlx::Sqlite`] and
/// [`sqlx::Postgres`]).
///
/// The bounds are stated once, here. A bound on another type (`i64: Encode<Self>`) written as a
/// `where` clause would not follow `DB: SqlDb` into the functions that use it: Rust implies
/// only supertraits and bounds on associated types. So each is phrased as a bound on an
/// associated type through [`Implies`], and every function generic over `DB: SqlDb` can bind an
/// `i64` or read a `String` without restating anything.
pub trait SqlDb:
    Database<Arguments: IntoArguments<Self>, Row: Cols, QueryResult: RowsAffected>
    + for<'c> Implies<&'c mut Conn<Self>, Is: Executor<'c, Database = Self>>
    + Implies<usize, Is: ColumnIndex<Self::Row>>
    + Implies<bool, Is: Value<Self>>
    + Implies<i64, Is: Value<Self>>
    + Implies<Option<i64>, Is: Value<Self>>
    + Implies<String, Is: Value<Self>>
    + Implies<Option<String>, Is: Value<Self>>
    + for<'s> Implies<&'s str, Is: Param<'s, Self>>
    + for<'s> Implies<Option<&'s str>, Is: Param<'s, Self>>
{
    /// The webhooks of account `$1` that name number `$2` (a search in a JSON array).
    const WEBHOOKS_USING_NUMBER: &'static str;

    /// The statement that tells every node new work is waiting (PostgreSQL's `NOTIFY`);
    /// `None` where one node is all there is (SQLite).
    const ANNOUNCE_WORK: Option<&'static str>;

    /// Whether one node is all that serves from the database (SQLite): then every lease found
    /// at start was held by this node's previous process, which is gone.
    const ONE_NODE: bool;

    /// Whether a merged group of ingests that no unique rule can refuse is stored without a
    /// savepoint of its own (`sql::ingests`): SQLite's savepoint copies every page the group
    /// changes once more, in memory; should such a merge still fail, the whole transaction is
    /// rolled back and every caller in it answered with the error. PostgreSQL keeps its
    /// savepoints (a failed statement there ends the transaction anyway, and its savepoint
    /// copies nothing).
    const MERGE_WITHOUT_SAVEPOINT: bool;

    /// What makes a `SELECT` lock the rows it reads and pass over rows another transaction
    /// holds (PostgreSQL's `FOR UPDATE SKIP LOCKED`); empty where one writer is all there is.
    const SKIP_LOCKED: &'static str;

    /// The condition on `deliveries` of a queued delivery due at `$1` that no lease holds:
    /// what a claim may take. A claim on SQLite moves a delivery's `next_attempt_at` to its
    /// lease's end, so due means no lease; on PostgreSQL a claim leaves `next_attempt_at` as it
    /// was (an update of no indexed column, which PostgreSQL makes in place, with no new index
    /// entries), so a lease running past `$1` is checked as well.
    const DUE_UNLEASED: &'static str;

    /// The condition on `deliveries` of a queued delivery whose lease runs past `$1`.
    const LEASE_RUNNING: &'static str;

    /// Leases up to `limit` due deliveries to `node` until `lease_until`, inside the caller's
    /// transaction: oldest due first, at most a webhook's share of `shares` of each, none of
    /// `exclude`.
    /// Answers `id, lease, trigger, attempts, attempt_limit, event_seq, webhook_id, seq` of
    /// each, in no particular order.
    #[allow(clippy::too_many_arguments)]
    fn claim_due(
        conn: &mut Conn<Self>,
        node: &NodeId,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        shares: &Shares,
        exclude: &[WebhookId],
    ) -> impl Future<Output = Result<Vec<Self::Row>>> + Send;

    /// Locks (webhook, call) pairs until the transaction ends, so concurrent writers queue and
    /// promote a call's deliveries one at a time.
    fn lock_calls(
        conn: &mut Conn<Self>,
        calls: &[(&WebhookId, &CallId)],
    ) -> impl Future<Output = Result<()>> + Send;
}

/// A type bound and read as a column value.
pub trait Value<DB: Database>:
    for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send
{
}

impl<DB: Database, T> Value<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send
{
}

/// A borrowed type bound as a parameter (`&'s str`).
pub trait Param<'s, DB: Database>: Encode<'s, DB> + Type<DB> + Send + 's {}

impl<'s, DB: Database, T> Param<'s, DB> for T where T: Encode<'s, DB> + Type<DB> + Send + 's {}

/// How many rows a statement changed; each driver has its own result type.
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// `DB: Implies<T, Is: Bound>` makes `T: Bound` follow from `DB: SqlDb` wherever it is
/// assumed: `Is` is always `T`, and a bound on an associated type of a supertrait is implied.
pub trait Implies<T: ?Sized>: ImpliesIs<T, Is = T> {}

impl<T: ?Sized, U: ?Sized> Implies<T> for U {}

/// The associated type behind [`Implies`].
pub trait ImpliesIs<T: ?Sized> {
    type Is: ?Sized;
}

impl<T: ?Sized, U: ?Sized> ImpliesIs<T> for U {
    type Is = T;
}
