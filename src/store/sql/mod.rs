//! The store's SQL, written once for SQLite and PostgreSQL: [`SqlStore`] implements [`Store`]
//! over a [`Backend`] (how a database's transactions are run: SQLite's single writer task,
//! PostgreSQL's pool) whose database is an [`SqlDb`] (the bounds generic sqlx code needs, and
//! the few statements that differ). Each resource's statements live in their own file; the
//! impl below only says which one serves each method.
//!
//! To add a store method: declare it on [`Store`]; write it once in its resource's file,
//! generic over `DB: SqlDb` (`b.read()` to read, `b.write(|c| …)` for one transaction); add
//! its one-line delegation below; test it in `tests/it/store.rs`, which runs on both databases.
//! Only a statement that cannot be written for both becomes a member of [`SqlDb`], implemented
//! in `sqlite.rs` and `postgres.rs`.

mod accounts;
pub(super) mod alerts;
mod api_keys;
pub(super) mod attempts;
mod audit;
mod calls;
mod claims;
mod click_to_call;
mod db;
pub(super) mod deliveries;
pub(super) mod events;
mod hot;
pub(super) mod ingests;
mod numbers;
mod retention;
mod rows;
mod settings;
pub(super) mod shapes;
mod users;
mod vault;
mod webhooks;

use std::future::Future;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use jiff::Timestamp;
use sqlx::Pool;

use self::db::Conn;
pub use self::db::SqlDb;
use self::hot::Cached;
pub use self::hot::HotReads;
pub use self::rows::{headers_to_json, to_ms};
use crate::core::id::{
    AccountId, ApiKeyId, CallId, ClickToCallId, DeliveryId, NodeId, UserId, WebhookId,
};
use crate::core::number::E164;
use crate::core::seal::Keyring;
use crate::core::trigger::Trigger;
use crate::store::*;

/// How a database's work is run. Reads go to a pool; every write is a closure run in one
/// transaction and answered once committed.
pub trait Backend: Send + Sync + 'static {
    type Db: sqlx::Database;

    /// The pool reads go to.
    fn read(&self) -> &Pool<Self::Db>;

    /// Runs `f` in a transaction and answers once it is committed.
    fn write<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn<Self::Db>) -> BoxFuture<'c, Result<T>> + Send + 'static;

    /// As [`Backend::write`], for a write that changes no API key and nothing of a webhook
    /// that matching reads (claims, releases, heartbeats, records that disable nothing): it
    /// leaves the [`HotReads`] as they are.
    fn write_work<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn<Self::Db>) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.write(f)
    }

    /// The reads this backend answers from memory, if any (see [`HotReads`]).
    fn hot(&self) -> Option<&HotReads> {
        None
    }

    /// Stores events with their deliveries, as [`events::insert_in`] does, in a transaction of
    /// the backend's choosing (PostgreSQL merges waiting requests into one; SQLite's writer
    /// runs each directly on its connection, in the transaction it shares with other writes).
    fn insert_events(
        &self,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<Inserted>>> + Send;

    /// Records attempts and moves their deliveries on (see [`attempts::record`]); SQLite's
    /// writer records the common case on its connection directly.
    fn record(
        &self,
        records: Vec<AttemptRecord>,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64>> + Send
    where
        Self: Sized,
        Self::Db: SqlDb,
    {
        attempts::record(self, records, now)
    }

    /// After secrets were sealed again: leaves no older copy of the changed rows in the
    /// database's files where the database allows it (SQLite: a WAL checkpoint).
    fn scrub(&self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// See [`Store::listen_for_work`].
    fn listen_for_work(&self, _wake: Arc<dyn Fn() + Send + Sync>) {}
}

/// A [`Store`] on a SQL database.
pub struct SqlStore<B> {
    backend: B,
    /// The keys secrets are sealed with and opened by (none until start-up loads them).
    keys: RwLock<Arc<Keyring>>,
}

impl<B> SqlStore<B> {
    pub(super) fn new(backend: B) -> SqlStore<B> {
        SqlStore {
            backend,
            keys: RwLock::new(Arc::new(Keyring::empty())),
        }
    }

    fn keys(&self) -> Arc<Keyring> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl<DB: SqlDb, B: Backend<Db = DB>> Store for SqlStore<B> {
    fn listen_for_work(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.backend.listen_for_work(wake);
    }

    fn set_keyring(&self, keys: Arc<Keyring>) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        // Webhooks read with the old keys may hold secrets they could not open.
        if let Some(hot) = self.backend.hot() {
            hot.changed();
        }
    }

    async fn reseal(&self, all: bool) -> Result<u64> {
        vault::reseal(&self.backend, self.keys(), all).await
    }

    async fn heartbeat(
        &self,
        node: &NodeId,
        now: Timestamp,
        alive_since: Timestamp,
    ) -> Result<Heartbeat> {
        settings::heartbeat(&self.backend, node, now, alive_since).await
    }

    async fn ping(&self) -> Result<()> {
        settings::ping(&self.backend).await
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        settings::get(&self.backend, key).await
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        settings::set(&self.backend, key, value).await
    }

    async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<bool> {
        settings::set_if_absent(&self.backend, key, value).await
    }

    async fn account_alerts(&self, account_id: &AccountId) -> Result<AccountAlerts> {
        alerts::get_or_make(&self.backend, self.keys(), account_id).await
    }

    async fn update_account_alerts(
        &self,
        alerts: &AccountAlerts,
        read_at: Timestamp,
        audit: &AuditEntry,
    ) -> Result<()> {
        alerts::update(&self.backend, &self.keys(), alerts, read_at, audit).await
    }

    async fn sweep_alerts(&self, now: Timestamp, failed_every: std::time::Duration) -> Result<u64> {
        alerts::sweep(&self.backend, now, failed_every).await
    }

    async fn insert_account(&self, account: &Account) -> Result<()> {
        accounts::insert(&self.backend, account).await
    }

    async fn get_account(&self, id: &AccountId) -> Result<Account> {
        accounts::get(&self.backend, id).await
    }

    async fn list_accounts(&self, page: &PageRequest) -> Result<Page<Account>> {
        accounts::list(&self.backend, page).await
    }

    async fn account_counts(&self, account_id: &AccountId) -> Result<AccountCounts> {
        accounts::counts(&self.backend, account_id).await
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &str, audit: &AuditEntry) -> Result<()> {
        api_keys::insert(&self.backend, key, hash, audit).await
    }

    async fn list_api_keys(
        &self,
        account_id: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<ApiKey>> {
        api_keys::list(&self.backend, account_id, page).await
    }

    async fn get_api_key(&self, account_id: &AccountId, id: &ApiKeyId) -> Result<ApiKey> {
        api_keys::get(&self.backend, account_id, id).await
    }

    async fn delete_api_key(
        &self,
        account_id: &AccountId,
        id: &ApiKeyId,
        keep_an_admin: bool,
        audit: &AuditEntry,
    ) -> Result<()> {
        api_keys::delete(&self.backend, account_id, id, keep_an_admin, audit).await
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        let Some(hot) = self.backend.hot() else {
            return api_keys::by_hash(&self.backend, hash).await;
        };
        match hot.key(hash) {
            Cached::Hit(key) => Ok(Some(key)),
            Cached::Miss(generation) => {
                let key = api_keys::by_hash(&self.backend, hash).await?;
                if let Some(key) = &key {
                    hot.keep_key(generation, hash, key);
                }
                Ok(key)
            }
        }
    }

    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<()> {
        api_keys::touch(&self.backend, id, now).await
    }

    async fn insert_user(
        &self,
        user: &User,
        link: Option<&UserLink>,
        audit: &AuditEntry,
    ) -> Result<()> {
        users::insert(&self.backend, user, link, audit).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        users::by_email(&self.backend, email).await
    }

    async fn get_user(&self, account_id: &AccountId, id: &UserId) -> Result<User> {
        users::get(&self.backend, account_id, id).await
    }

    async fn list_users(
        &self,
        account_id: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<(User, Option<Timestamp>)>> {
        users::list(&self.backend, account_id, page).await
    }

    async fn set_user_role(
        &self,
        account_id: &AccountId,
        id: &UserId,
        role: Role,
        audit: &AuditEntry,
    ) -> Result<()> {
        users::set_role(&self.backend, account_id, id, role, audit).await
    }

    async fn delete_user(
        &self,
        account_id: &AccountId,
        id: &UserId,
        audit: &AuditEntry,
    ) -> Result<()> {
        users::delete(&self.backend, account_id, id, audit).await
    }

    async fn reset_user(
        &self,
        account_id: &AccountId,
        id: &UserId,
        link: &UserLink,
        audit: &AuditEntry,
    ) -> Result<()> {
        users::reset(&self.backend, account_id, id, link, audit).await
    }

    async fn user_link(&self, hash: &str, now: Timestamp) -> Result<Option<(UserLink, User)>> {
        users::link(&self.backend, hash, now).await
    }

    async fn use_user_link(
        &self,
        hash: &str,
        password_hash: &str,
        now: Timestamp,
        audit: &AuditEntry,
    ) -> Result<User> {
        users::use_link(&self.backend, hash, password_hash, now, audit).await
    }

    async fn set_password(
        &self,
        user_id: &UserId,
        password_hash: &str,
        keep_session: &str,
        audit: &AuditEntry,
    ) -> Result<()> {
        users::set_password(&self.backend, user_id, password_hash, keep_session, audit).await
    }

    async fn record_audit(&self, entry: &AuditEntry) -> Result<()> {
        audit::record(&self.backend, entry).await
    }

    async fn list_audit(
        &self,
        account_id: &AccountId,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>> {
        audit::list(&self.backend, account_id, filter, page).await
    }

    async fn insert_number(
        &self,
        account_id: &AccountId,
        number: &Number,
        audit: &AuditEntry,
    ) -> Result<()> {
        numbers::insert(&self.backend, account_id, number, audit).await
    }

    async fn list_numbers(
        &self,
        account_id: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Number>> {
        numbers::list(&self.backend, account_id, page).await
    }

    async fn get_number(&self, account_id: &AccountId, number: &E164) -> Result<Number> {
        numbers::get(&self.backend, account_id, number).await
    }

    async fn set_number_label(
        &self,
        account_id: &AccountId,
        number: &E164,
        label: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<()> {
        numbers::set_label(&self.backend, account_id, number, label, audit).await
    }

    async fn delete_number(
        &self,
        account_id: &AccountId,
        number: &E164,
        audit: &AuditEntry,
    ) -> Result<()> {
        numbers::delete(&self.backend, account_id, number, audit).await
    }

    async fn unknown_numbers(&self, account_id: &AccountId, numbers: &[E164]) -> Result<Vec<E164>> {
        numbers::unknown(&self.backend, account_id, numbers).await
    }

    async fn insert_webhook(&self, webhook: &Webhook, audit: &AuditEntry) -> Result<()> {
        webhooks::insert(&self.backend, &self.keys(), webhook, audit).await
    }

    async fn get_webhook(&self, account_id: &AccountId, id: &WebhookId) -> Result<Webhook> {
        webhooks::get(&self.backend, &self.keys(), account_id, id).await
    }

    async fn list_webhooks(
        &self,
        account_id: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Webhook>> {
        webhooks::list(&self.backend, &self.keys(), account_id, page).await
    }

    async fn update_webhook(
        &self,
        webhook: &Webhook,
        read_at: Timestamp,
        audit: &AuditEntry,
    ) -> Result<()> {
        webhooks::update(&self.backend, &self.keys(), webhook, read_at, audit).await
    }

    async fn delete_webhook(
        &self,
        account_id: &AccountId,
        id: &WebhookId,
        audit: &AuditEntry,
    ) -> Result<()> {
        webhooks::delete(&self.backend, account_id, id, audit).await
    }

    async fn webhooks_for(
        &self,
        account_id: &AccountId,
        triggers: &[Trigger],
    ) -> Result<Arc<[Webhook]>> {
        let Some(hot) = self.backend.hot() else {
            return Ok(
                webhooks::matching(&self.backend, &self.keys(), account_id, triggers)
                    .await?
                    .into(),
            );
        };
        match hot.webhooks(account_id, triggers) {
            Cached::Hit(hooks) => Ok(hooks),
            Cached::Miss(generation) => {
                let hooks: Arc<[Webhook]> =
                    webhooks::matching(&self.backend, &self.keys(), account_id, triggers)
                        .await?
                        .into();
                hot.keep_webhooks(generation, account_id, triggers, &hooks);
                Ok(hooks)
            }
        }
    }

    async fn webhook_stats(
        &self,
        account_id: &AccountId,
        recent: u32,
    ) -> Result<Vec<(WebhookId, WebhookStats)>> {
        webhooks::stats(&self.backend, account_id, recent).await
    }

    async fn insert_events(&self, events: Vec<NewEvent>) -> Result<Vec<Inserted>> {
        self.backend.insert_events(events).await
    }

    async fn claim_due(
        &self,
        node: &NodeId,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        shares: &Shares,
        exclude: &[WebhookId],
    ) -> Result<Vec<Claimed>> {
        claims::claim_due(
            &self.backend,
            self.keys(),
            node,
            now,
            lease_until,
            limit,
            shares,
            exclude,
        )
        .await
    }

    async fn insert_test_delivery(
        &self,
        node: &NodeId,
        event: NewEvent,
        lease_until: Timestamp,
    ) -> Result<Claimed> {
        claims::insert_test_delivery(&self.backend, self.keys(), node, event, lease_until).await
    }

    async fn record_attempts(&self, records: Vec<AttemptRecord>, now: Timestamp) -> Result<u64> {
        self.backend.record(records, now).await
    }

    async fn release(&self, releases: Vec<Release>, due: Timestamp) -> Result<()> {
        claims::release(&self.backend, releases, due).await
    }

    async fn release_leftover_leases(&self, now: Timestamp) -> Result<u64> {
        if DB::ONE_NODE {
            claims::release_all(&self.backend, now).await
        } else {
            Ok(0)
        }
    }

    async fn hold_webhook(&self, webhook_id: &WebhookId, until: Option<Timestamp>) -> Result<()> {
        claims::hold_webhook(&self.backend, webhook_id, until).await
    }

    async fn get_delivery(
        &self,
        account_id: &AccountId,
        id: &DeliveryId,
    ) -> Result<(Delivery, Vec<Attempt>)> {
        deliveries::get(&self.backend, account_id, id).await
    }

    async fn list_deliveries(
        &self,
        account_id: &AccountId,
        webhook_id: &WebhookId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>> {
        deliveries::list(&self.backend, account_id, webhook_id, filter, page).await
    }

    async fn resend(
        &self,
        account_id: &AccountId,
        id: &DeliveryId,
        now: Timestamp,
        audit: &AuditEntry,
    ) -> Result<()> {
        deliveries::resend(&self.backend, account_id, id, now, audit).await
    }

    async fn failure_groups(
        &self,
        account_id: &AccountId,
        webhook_id: &WebhookId,
        since: Timestamp,
    ) -> Result<Vec<FailureGroup>> {
        deliveries::failure_groups(&self.backend, account_id, webhook_id, since).await
    }

    async fn retry_deliveries(
        &self,
        account_id: &AccountId,
        webhook_id: &WebhookId,
        filter: &DeliveryFilter,
        attempts: u32,
        now: Timestamp,
        audit: &AuditEntry,
    ) -> Result<u64> {
        deliveries::retry(
            &self.backend,
            account_id,
            webhook_id,
            filter,
            attempts,
            now,
            audit,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn replay(
        &self,
        account_id: &AccountId,
        webhook_id: &WebhookId,
        since: Timestamp,
        status: DeliveryStatus,
        attempts: u32,
        now: Timestamp,
        audit: &AuditEntry,
    ) -> Result<u64> {
        deliveries::replay(
            &self.backend,
            account_id,
            webhook_id,
            since,
            status,
            attempts,
            now,
            audit,
        )
        .await
    }

    async fn call_timeline(
        &self,
        account_id: &AccountId,
        call_id: &CallId,
    ) -> Result<Vec<(StoredEvent, Vec<Delivery>)>> {
        calls::timeline(&self.backend, account_id, call_id).await
    }

    async fn webhook_states(&self) -> Result<Vec<(WebhookId, HealthState)>> {
        webhooks::states(&self.backend).await
    }

    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats> {
        deliveries::queue_stats(&self.backend, now).await
    }

    async fn prune(&self, before: Timestamp, batch: u32) -> Result<u64> {
        retention::prune(&self.backend, before, batch).await
    }

    async fn insert_session(&self, session: &Session) -> Result<()> {
        users::insert_session(&self.backend, session).await
    }

    async fn session_with_user(&self, id: &str, now: Timestamp) -> Result<Option<(Session, User)>> {
        users::session_with_user(&self.backend, id, now).await
    }

    async fn extend_session(&self, id: &str, expires_at: Timestamp) -> Result<()> {
        users::extend_session(&self.backend, id, expires_at).await
    }

    async fn delete_session(&self, id: &str) -> Result<()> {
        users::delete_session(&self.backend, id).await
    }

    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        users::delete_expired_sessions(&self.backend, now).await
    }

    async fn hourly_deliveries(
        &self,
        account_id: &AccountId,
        webhook_id: &WebhookId,
        since: Timestamp,
    ) -> Result<Vec<HourlyDeliveries>> {
        deliveries::hourly(&self.backend, account_id, webhook_id, since).await
    }

    async fn list_calls(
        &self,
        account_id: &AccountId,
        filter: &CallFilter,
        page: &PageRequest,
    ) -> Result<Page<CallSummary>> {
        calls::list(&self.backend, account_id, filter, page).await
    }

    async fn insert_click_to_call(
        &self,
        request: &StoredClickToCall,
        audit: &AuditEntry,
    ) -> Result<(StoredClickToCall, bool)> {
        click_to_call::insert(&self.backend, request, audit).await
    }

    async fn get_click_to_call(
        &self,
        account_id: &AccountId,
        id: &ClickToCallId,
    ) -> Result<StoredClickToCall> {
        click_to_call::get(&self.backend, account_id, id).await
    }

    async fn click_to_call_by_ref(
        &self,
        account_id: &AccountId,
        ref_id: &str,
    ) -> Result<Option<StoredClickToCall>> {
        click_to_call::by_ref(&self.backend, account_id, ref_id).await
    }

    async fn claim_click_to_calls(
        &self,
        account_id: &AccountId,
        connector: &str,
        node_id: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<StoredClickToCall>> {
        click_to_call::claim(
            &self.backend,
            account_id,
            connector,
            node_id,
            now,
            lease_until,
            limit,
        )
        .await
    }

    async fn record_click_to_call(
        &self,
        id: &ClickToCallId,
        change: &ClickToCallChange,
    ) -> Result<bool> {
        click_to_call::record(&self.backend, id, change).await
    }

    async fn renew_click_to_calls(&self, node_id: &str, lease_until: Timestamp) -> Result<u64> {
        click_to_call::renew(&self.backend, node_id, lease_until).await
    }

    async fn expire_click_to_calls(
        &self,
        now: Timestamp,
        queued_before: Timestamp,
    ) -> Result<Vec<ClickToCallId>> {
        click_to_call::expire(&self.backend, now, queued_before).await
    }

    async fn publish_placing_connectors(&self, connectors: &[PlacingConnector]) -> Result<()> {
        click_to_call::publish(&self.backend, connectors).await
    }

    async fn placing_connectors(
        &self,
        account_id: &AccountId,
        seen_since: Timestamp,
    ) -> Result<Vec<PlacingConnector>> {
        click_to_call::placing(&self.backend, account_id, seen_since).await
    }
}

/// SQLite plans from its heuristics (callhook never runs ANALYZE), so an index added for
/// something else can steal a hot lookup: 0008's (webhook_id, state, seq) once made every
/// ingest and every recorded attempt read the webhook's whole backlog. These hold the plans of
/// the per-call lookups of the hot path to the index made for them.
#[cfg(test)]
pub(crate) mod plans {
    use sqlx::{Connection, Row, SqliteConnection};

    /// A fresh in-memory SQLite database with every migration run.
    pub(crate) async fn migrated() -> SqliteConnection {
        let mut c = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        super::super::migrator(|m| m.sqlite)
            .run_direct(None, &mut c, false)
            .await
            .unwrap();
        c
    }

    /// The lines of `plan` that read a table or an index (a constant row is no read).
    pub(crate) fn reads(plan: &[String]) -> Vec<&String> {
        plan.iter()
            .filter(|l| l.starts_with("SEARCH") || l.starts_with("SCAN"))
            .filter(|l| !l.contains("CONSTANT ROW"))
            .collect()
    }

    pub(crate) async fn plan(c: &mut SqliteConnection, sql: &str) -> Vec<String> {
        sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .fetch_all(&mut *c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect()
    }

    #[tokio::test]
    async fn per_call_lookups_read_the_call_index_not_the_webhooks_backlog() {
        let mut c = migrated().await;
        let pairs = "WITH p(webhook_id, call_id) AS (VALUES ('wh_a', 'c1'), ('wh_b', 'c2')) ";
        let statements = [
            format!("{pairs}{}", super::events::BUSY_CALLS),
            format!("{pairs}{}", super::attempts::NEXT_OF_CALLS),
            super::deliveries::CALL_BUSY
                .replace("$1", "'wh_a'")
                .replace("$2", "'c1'"),
        ];
        for sql in statements {
            let plan = plan(&mut c, &sql).await;
            let reads: Vec<&String> = reads(&plan)
                .into_iter()
                .filter(|l| *l != "SCAN p" && !l.contains("PRIMARY KEY"))
                .collect();
            assert!(!reads.is_empty(), "{sql}: {plan:?}");
            for l in reads {
                assert!(
                    l.contains("INDEX deliveries_call (call_id=? AND webhook_id=? AND state="),
                    "{sql}\nreads the deliveries as: {l}\nwhole plan: {plan:?}"
                );
            }
        }
    }

    /// Retention finds the calls its removed events emptied through `calls_call`, one lookup
    /// each, never by walking the calls table (a minute's prune read every call before).
    #[tokio::test]
    async fn retention_looks_up_the_emptied_calls_by_their_index() {
        let mut c = migrated().await;
        let sql = format!(
            "WITH p(account_id, call_id) AS (VALUES ('acc_a', 'c1'), ('acc_a', 'c2')) {}",
            super::retention::PRUNE_CALLS
        );
        let plan = plan(&mut c, &sql).await;
        let reads: Vec<&String> = reads(&plan)
            .into_iter()
            .filter(|l| !l.starts_with("SCAN p") && !l.contains("PRIMARY KEY"))
            .collect();
        assert!(!reads.is_empty(), "{plan:?}");
        for l in reads {
            assert!(
                l.contains("INDEX calls_call (account_id=? AND call_id=?)")
                    || l.contains("INDEX events_call (account_id=? AND call_id=?)"),
                "reads as: {l}\nwhole plan: {plan:?}"
            );
        }
    }

    /// A call's deliveries (its page, the calls list's counts) are found by their call through
    /// `deliveries_call`, one probe per call: no index of deliveries by event is kept
    /// (migration 0020). The log's number filter reads the webhook's log in order and checks
    /// each delivery's call against those with the number, as it did before (SQLite, without
    /// statistics, prefers the order to a sort); PostgreSQL may probe `deliveries_call` per
    /// call instead. No statement scans the deliveries.
    #[tokio::test]
    async fn a_calls_deliveries_are_read_through_the_call_index() {
        use crate::core::id::{AccountId, WebhookId};
        use crate::store::{DeliveryFilter, PageRequest};

        let mut c = migrated().await;
        let account = AccountId::from_string("acc_a".into());
        let webhook = WebhookId::from_string("wh_a".into());
        let filter = DeliveryFilter {
            number: Some(crate::core::number::E164::parse("+919812345678").unwrap()),
            ..Default::default()
        };
        let page = PageRequest {
            limit: 50,
            after: None,
        };
        let ids = ["c1".to_owned(), "c2".to_owned()];
        let statements = [
            super::calls::call_deliveries(),
            super::calls::call_counts::<sqlx::Sqlite>(&account, &ids)
                .sql()
                .as_str()
                .to_owned(),
        ];
        let number =
            super::deliveries::list_query::<sqlx::Sqlite>("", &account, &webhook, &filter, &page)
                .sql()
                .as_str()
                .to_owned();
        for (sql, index) in statements
            .into_iter()
            .map(|s| (s, "deliveries_call (call_id=?"))
            .chain([(number, "deliveries_log (webhook_id=?)")])
        {
            let plan = plan(&mut c, &sql).await;
            let reads = reads(&plan);
            assert!(
                reads
                    .iter()
                    .any(|l| l.starts_with(&format!("SEARCH d USING INDEX {index}"))),
                "{sql}\n{plan:?}"
            );
            for l in reads {
                assert!(!l.starts_with("SCAN"), "{sql}\nscans: {l}\n{plan:?}");
                assert!(
                    !l.starts_with("SEARCH d") || l.contains(index),
                    "{sql}\nreads the deliveries as: {l}\n{plan:?}"
                );
            }
        }
    }

    /// Retention reads the events in their own order (the table's rowid), the first one
    /// received after the cut included, and each one's deliveries through `deliveries_call`:
    /// no index of receipt times (migration 0019), no sort.
    #[tokio::test]
    async fn retention_reads_the_events_in_their_order() {
        let mut c = migrated().await;
        let sql = super::retention::PRUNE_EVENTS
            .replace("$1", "1700000000000")
            .replace("$2", "1000");
        let plan = plan(&mut c, &sql).await;
        assert!(
            !plan.iter().any(|l| l.contains("TEMP B-TREE")),
            "sorts: {plan:?}"
        );
        let reads = reads(&plan);
        assert!(
            reads
                .iter()
                .any(|l| l.contains("INDEX deliveries_call (call_id=?)")),
            "{plan:?}"
        );
        for l in reads {
            assert!(
                l.contains("deliveries_call")
                    || l.contains("INTEGER PRIMARY KEY")
                    || *l == "SCAN events",
                "reads as: {l}\nwhole plan: {plan:?}"
            );
        }
        let indexes: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'index'")
                .fetch_all(&mut c)
                .await
                .unwrap();
        for gone in ["events_received", "attempts_started", "deliveries_event"] {
            assert!(!indexes.iter().any(|n| n == gone), "{indexes:?}");
        }
    }

    /// Retention finds the click-to-call requests that ended before its cut through the
    /// partial index of ended requests, in its order: no scan of the table, no sort.
    #[tokio::test]
    async fn retention_reads_only_the_ended_click_to_calls() {
        let mut c = migrated().await;
        let sql = super::retention::PRUNE_CLICK_TO_CALLS
            .replace("$1", "1700000000000")
            .replace("$2", "1000");
        let plan = plan(&mut c, &sql).await;
        let reads: Vec<&String> = reads(&plan)
            .into_iter()
            .filter(|l| !l.contains("PRIMARY KEY") && !l.contains("sqlite_autoindex"))
            .collect();
        assert!(
            !plan.iter().any(|l| l.contains("TEMP B-TREE")),
            "sorts: {plan:?}"
        );
        assert!(!reads.is_empty(), "{plan:?}");
        for l in reads {
            assert!(
                l.contains("INDEX click_to_calls_ended (updated_at<?)"),
                "reads as: {l}\nwhole plan: {plan:?}"
            );
        }
    }

    /// A page of a webhook's log reads its rows in the log's order from one index and stops at
    /// the page's end: `deliveries_log` unfiltered, with a cursor or a time filter, the state
    /// index with a status, the kind index with an error kind. No sort of the webhook's rows
    /// (a temporary b-tree), no scan of the table.
    #[tokio::test]
    async fn a_page_of_the_log_reads_its_index_in_order() {
        use crate::core::delivery_state::DeliveryStatus;
        use crate::core::failure::ErrorKind;
        use crate::core::id::{AccountId, WebhookId};
        use crate::store::{DeliveryFilter, PageRequest};

        let mut c = migrated().await;
        let (account, webhook) = (
            AccountId::from_string("acc_a".into()),
            WebhookId::from_string("wh_a".into()),
        );
        let t = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let first = PageRequest {
            limit: 50,
            after: None,
        };
        let next = PageRequest {
            limit: 50,
            after: Some("dl_x".into()),
        };
        let cases = [
            (
                DeliveryFilter::default(),
                &first,
                "deliveries_log (webhook_id=?)",
            ),
            (
                DeliveryFilter::default(),
                &next,
                "deliveries_log (webhook_id=? AND created_at<?)",
            ),
            (
                DeliveryFilter {
                    since: Some(t),
                    until: Some(t),
                    ..Default::default()
                },
                &first,
                "deliveries_log (webhook_id=? AND created_at>? AND created_at<?)",
            ),
            (
                DeliveryFilter {
                    status: Some(DeliveryStatus::Failed),
                    ..Default::default()
                },
                &next,
                "deliveries_webhook_state (webhook_id=? AND state=? AND created_at<?)",
            ),
            (
                DeliveryFilter {
                    status: Some(DeliveryStatus::Succeeded),
                    since: Some(t),
                    ..Default::default()
                },
                &first,
                "deliveries_webhook_state (webhook_id=? AND state=? AND created_at>?)",
            ),
            (
                DeliveryFilter {
                    error_kind: Some(ErrorKind::Timeout),
                    ..Default::default()
                },
                &first,
                "deliveries_webhook_kind (webhook_id=? AND last_error_kind=?)",
            ),
        ];
        for (filter, page, index) in cases {
            let q = super::deliveries::list_query::<sqlx::Sqlite>(
                "", &account, &webhook, &filter, page,
            );
            let sql = q.sql();
            let plan = plan(&mut c, sql.as_str()).await;
            assert!(
                !plan.iter().any(|l| l.contains("TEMP B-TREE")),
                "{filter:?} sorts: {plan:?}"
            );
            let reads: Vec<&String> = reads(&plan)
                .into_iter()
                .filter(|l| !l.contains("PRIMARY KEY") && !l.contains("sqlite_autoindex"))
                .collect();
            assert!(
                reads.iter().any(|l| l.contains(index)),
                "{filter:?} should read {index}: {plan:?}"
            );
            assert!(
                !reads.iter().any(|l| l.starts_with("SCAN")),
                "{filter:?} scans: {plan:?}"
            );
        }
    }

    /// The log filtered by error kind reads the kind index, which holds only deliveries that
    /// have one (migration 0014), not every delivery of the webhook.
    #[tokio::test]
    async fn the_kind_filter_reads_the_partial_kind_index() {
        let mut c = migrated().await;
        let sql = "SELECT d.id FROM deliveries d JOIN events e ON e.seq = d.event_seq \
                   WHERE d.account_id = 'acc_a' AND d.webhook_id = 'wh_a' \
                   AND d.last_error_kind = ?1 ORDER BY d.created_at DESC, d.seq DESC LIMIT 51";
        let plan = plan(&mut c, sql).await;
        assert!(
            plan.iter().any(|l| l
                .contains("INDEX deliveries_webhook_kind (webhook_id=? AND last_error_kind=?)")),
            "{plan:?}"
        );
        let partial: String = sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE name = 'deliveries_webhook_kind'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert!(
            partial.contains("WHERE last_error_kind IS NOT NULL"),
            "{partial}"
        );
    }
}
