//! Storage: one [`Store`] trait, implemented once in SQL (`sql/`, one file per resource) for
//! two backends side by side, SQLite ([`sqlite`]) and PostgreSQL ([`postgres`]), and held to
//! one contract test suite. The deliveries table is both the queue and the log.
//!
//! The store is deliberately dumb: it keeps and finds rows. What a delivery's next state is
//! (`core::delivery_state`), when to retry (`core::retry`), how secrets rotate
//! (`core::secret`), which webhooks match — that is decided by the core and the dispatcher and
//! handed to the store to write.

pub mod postgres;
mod sql;
pub mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;

pub use crate::core::audit::{Action, ActorKind, AuditActor, Change};
pub use crate::core::click_to_call::Status as ClickToCallStatus;
pub use crate::core::delivery_state::DeliveryStatus;
pub use crate::core::failure::{AttemptError, ErrorKind, HealthState, Window};
use crate::core::id::{
    AccountId, ApiKeyId, AuditId, CallId, ClickToCallId, DeliveryId, EventId, NodeId,
    PostedEventId, UserId, WebhookId,
};
use crate::core::number::E164;
pub use crate::core::retry::Next;
pub use crate::core::role::Role;
use crate::core::secret;
pub use crate::core::secret::StoredSecret;
use crate::core::sign::Secret;
use crate::core::trigger::Trigger;
use crate::core::webhook::WebhookSpec;

/// What went wrong in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// No such row (in this account).
    #[error("not found")]
    NotFound,
    /// The write would break a rule the store keeps (a duplicate, a row still in use).
    #[error("{0}")]
    Conflict(String),
    /// The database failed; the details are logged, not shown to clients.
    #[error("database error: {0}")]
    Database(Arc<sqlx::Error>),
    /// Stored data could not be read back (a bug or a hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// An event of a batch breaks a rule only the store can check (a second `call.ended`).
    #[error("{0}")]
    Rejected(crate::core::validate::FieldErrors),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            e => StoreError::Database(Arc::new(e)),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One schema change, written for each database.
struct MigrationFiles {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every schema change, in order. A change is a new entry with a file for each database,
/// never an edit of an old one: databases in use have run those already.
const MIGRATIONS: &[MigrationFiles] = &[
    MigrationFiles {
        version: 1,
        name: "init",
        sqlite: include_str!("migrations/sqlite/0001_init.sql"),
        postgres: include_str!("migrations/postgres/0001_init.sql"),
    },
    MigrationFiles {
        version: 2,
        name: "templates",
        sqlite: include_str!("migrations/sqlite/0002_templates.sql"),
        postgres: include_str!("migrations/postgres/0002_templates.sql"),
    },
    MigrationFiles {
        version: 3,
        name: "click_to_call",
        sqlite: include_str!("migrations/sqlite/0003_click_to_call.sql"),
        postgres: include_str!("migrations/postgres/0003_click_to_call.sql"),
    },
    MigrationFiles {
        version: 6,
        name: "team",
        sqlite: include_str!("migrations/sqlite/0006_team.sql"),
        postgres: include_str!("migrations/postgres/0006_team.sql"),
    },
    MigrationFiles {
        version: 8,
        name: "failures",
        sqlite: include_str!("migrations/sqlite/0008_failures.sql"),
        postgres: include_str!("migrations/postgres/0008_failures.sql"),
    },
    MigrationFiles {
        version: 9,
        name: "alerts",
        sqlite: include_str!("migrations/sqlite/0009_alerts.sql"),
        postgres: include_str!("migrations/postgres/0009_alerts.sql"),
    },
    MigrationFiles {
        version: 10,
        name: "calls",
        sqlite: include_str!("migrations/sqlite/0010_calls.sql"),
        postgres: include_str!("migrations/postgres/0010_calls.sql"),
    },
    MigrationFiles {
        version: 11,
        name: "leased_by",
        sqlite: include_str!("migrations/sqlite/0011_leased_by.sql"),
        postgres: include_str!("migrations/postgres/0011_leased_by.sql"),
    },
    MigrationFiles {
        version: 12,
        name: "call_state_index",
        sqlite: include_str!("migrations/sqlite/0012_call_state_index.sql"),
        postgres: include_str!("migrations/postgres/0012_call_state_index.sql"),
    },
    MigrationFiles {
        version: 13,
        name: "calls_trigger",
        sqlite: include_str!("migrations/sqlite/0013_calls_trigger.sql"),
        postgres: include_str!("migrations/postgres/0013_calls_trigger.sql"),
    },
    MigrationFiles {
        version: 14,
        name: "partial_kind_index",
        sqlite: include_str!("migrations/sqlite/0014_partial_kind_index.sql"),
        postgres: include_str!("migrations/postgres/0014_partial_kind_index.sql"),
    },
    MigrationFiles {
        version: 15,
        name: "calls_statement_trigger",
        sqlite: include_str!("migrations/sqlite/0015_calls_statement_trigger.sql"),
        postgres: include_str!("migrations/postgres/0015_calls_statement_trigger.sql"),
    },
    MigrationFiles {
        version: 16,
        name: "click_to_calls_ended",
        sqlite: include_str!("migrations/sqlite/0016_click_to_calls_ended.sql"),
        postgres: include_str!("migrations/postgres/0016_click_to_calls_ended.sql"),
    },
    MigrationFiles {
        version: 17,
        name: "lease_in_place",
        sqlite: include_str!("migrations/sqlite/0017_lease_in_place.sql"),
        postgres: include_str!("migrations/postgres/0017_lease_in_place.sql"),
    },
    MigrationFiles {
        version: 18,
        name: "log_by_time",
        sqlite: include_str!("migrations/sqlite/0018_log_by_time.sql"),
        postgres: include_str!("migrations/postgres/0018_log_by_time.sql"),
    },
    MigrationFiles {
        version: 19,
        name: "no_time_indexes",
        sqlite: include_str!("migrations/sqlite/0019_no_time_indexes.sql"),
        postgres: include_str!("migrations/postgres/0019_no_time_indexes.sql"),
    },
    MigrationFiles {
        version: 20,
        name: "call_index_first",
        sqlite: include_str!("migrations/sqlite/0020_call_index_first.sql"),
        postgres: include_str!("migrations/postgres/0020_call_index_first.sql"),
    },
    MigrationFiles {
        version: 21,
        name: "text_as_bytes",
        sqlite: include_str!("migrations/sqlite/0021_text_as_bytes.sql"),
        postgres: include_str!("migrations/postgres/0021_text_as_bytes.sql"),
    },
];

/// The migrator of one database: `sql` picks its file of each change.
fn migrator(sql: impl Fn(&MigrationFiles) -> &'static str) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|m| {
                Migration::new(
                    m.version,
                    m.name.into(),
                    MigrationType::Simple,
                    sql(m).into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// An account's alert receiver and settings (SPEC §12), made on first need with its own
/// signing secret. Its alerts are deliveries whose webhook id is [`AccountAlerts::id`], kept
/// under the account's alert scope ([`crate::core::alert::scope`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountAlerts {
    pub account_id: AccountId,
    /// The webhook id its alert deliveries carry (no webhook of the account has it).
    pub id: WebhookId,
    /// Where alerts go (checked like a webhook's URL); `None`: alerts are off.
    pub url: Option<String>,
    /// A webhook failing for this long is alerted (`webhook.failing`).
    pub after: std::time::Duration,
    /// Newest first, rotated like a webhook's.
    pub secrets: Vec<StoredSecret>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl AccountAlerts {
    /// New settings for an account: no URL, the default `alert_after`, a fresh secret.
    pub fn new(account_id: &AccountId, now: Timestamp) -> AccountAlerts {
        AccountAlerts {
            account_id: account_id.clone(),
            id: WebhookId::new(),
            url: None,
            after: crate::core::alert::AFTER_DEFAULT,
            secrets: vec![StoredSecret::generate(now)],
            created_at: now,
            updated_at: now,
        }
    }

    /// The secret that signs from now on.
    pub fn current_secret(&self) -> Option<&StoredSecret> {
        secret::current(&self.secrets)
    }

    /// Makes a new current secret; the old one keeps signing for a while.
    pub fn rotate_secret(&mut self, now: Timestamp) {
        secret::rotate(&mut self.secrets, now);
    }
}

/// A page of a list, oldest first, and the cursor for the next page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Which page to read: at most `limit` items after the cursor `after` (an id).
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only says there is more.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> Page<T> {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(cursor) } else { None };
        Page { items: rows, next }
    }
}

/// What an account holds, counted for its quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountCounts {
    pub webhooks: u64,
    pub numbers: u64,
    pub api_keys: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub account_id: AccountId,
    pub name: String,
    pub prefix: String,
    /// `admin` or `viewer`.
    pub role: Role,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub account_id: AccountId,
    pub email: String,
    /// Argon2id; empty while the user has no password (invited, or reset, and the link not
    /// followed yet): nobody signs in with it.
    pub password_hash: String,
    pub role: Role,
    pub created_at: Timestamp,
}

impl User {
    /// Whether the user has a password to sign in with.
    pub fn has_password(&self) -> bool {
        !self.password_hash.is_empty()
    }
}

/// What a one-time link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// An invited user signs up: sets their first password.
    Invite,
    /// A user whose password an owner reset sets a new one.
    Reset,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Invite => "invite",
            LinkPurpose::Reset => "reset",
        }
    }

    pub fn parse(s: &str) -> Option<LinkPurpose> {
        [LinkPurpose::Invite, LinkPurpose::Reset]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// A one-time link to set a password, as kept: the hash of its token, never the token.
#[derive(Debug, Clone, PartialEq)]
pub struct UserLink {
    /// SHA-256 (hex) of the token in the link.
    pub hash: String,
    pub user_id: UserId,
    pub purpose: LinkPurpose,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// One row of the audit log: who did what to which resource, and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: AuditId,
    pub account_id: AccountId,
    pub at: Timestamp,
    pub actor: AuditActor,
    pub action: Action,
    /// The id of the resource (`action.resource()` says its kind): a webhook's, a number.
    pub resource_id: String,
    pub changes: Vec<Change>,
}

/// Which audit rows to read; every filter given must hold.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub resource_id: Option<String>,
    /// The actor's id or name (an email, a key's name).
    pub actor: Option<String>,
    pub action: Option<Action>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    pub number: E164,
    pub label: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: WebhookId,
    pub account_id: AccountId,
    pub spec: WebhookSpec,
    pub disabled_reason: Option<String>,
    /// Newest first.
    pub secrets: Vec<StoredSecret>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_success_at: Option<Timestamp>,
    /// When its current run of failed attempts began; `None` while it is not failing.
    pub failing_since: Option<Timestamp>,
    /// Until when its deliveries are held back because its endpoint is stuck.
    pub hold_until: Option<Timestamp>,
    /// Its latest failed attempt (test sends never count): when, and what went wrong.
    pub last_failure_at: Option<Timestamp>,
    pub last_error: Option<AttemptError>,
    /// Its last 24 hours, filled in by `get_webhook` and `list_webhooks` only (zero elsewhere:
    /// the dispatcher has no use for it).
    pub recent: Window,
}

impl Webhook {
    /// Its state (SPEC §12).
    pub fn health_state(&self) -> HealthState {
        HealthState::of(
            self.spec.enabled,
            self.failing_since,
            self.last_success_at,
            self.last_failure_at,
        )
    }
}

/// The rules of rotation live in [`crate::core::secret`]; these name them on the webhook.
impl Webhook {
    /// The secret that signs from now on.
    pub fn current_secret(&self) -> Option<&StoredSecret> {
        secret::current(&self.secrets)
    }

    /// Makes a new current secret; the old one keeps signing for a while (see
    /// [`secret::rotate`]).
    pub fn rotate_secret(&mut self, now: Timestamp) {
        secret::rotate(&mut self.secrets, now);
    }

    /// The secrets that sign requests at `now`.
    pub fn live_secrets(&self, now: Timestamp) -> Vec<&Secret> {
        secret::live(&self.secrets, now)
    }
}

/// A delivery as the log shows it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: DeliveryId,
    pub account_id: AccountId,
    pub webhook_id: WebhookId,
    pub event_id: PostedEventId,
    pub call_id: CallId,
    pub trigger: Trigger,
    pub status: DeliveryStatus,
    /// Whether it waits for an earlier delivery of its call.
    pub waiting: bool,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_attempt_at: Option<Timestamp>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// The kind of its latest failed attempt; `None` once it succeeded.
    pub last_error_kind: Option<ErrorKind>,
    pub last_latency_ms: Option<u32>,
    pub test: bool,
}

impl Delivery {
    /// Pending after a failed attempt (SPEC §12 `retrying`).
    pub fn retrying(&self) -> bool {
        self.status == DeliveryStatus::Pending && self.last_error_kind.is_some()
    }
}

/// One HTTP request of a delivery and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub n: u32,
    pub started_at: Timestamp,
    pub latency_ms: u32,
    pub request_method: String,
    pub request_url: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<String>,
    pub response_status: Option<u16>,
    pub response_headers: Option<Vec<(String, String)>>,
    /// At most 16 KiB.
    pub response_body: Option<String>,
    /// Why it failed (`None` for a success; a 2xx whose body broke off keeps its note).
    pub error_kind: Option<ErrorKind>,
    pub error: Option<String>,
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: EventId,
    pub account_id: AccountId,
    pub event_id: PostedEventId,
    pub call_id: CallId,
    pub event_type: String,
    pub occurred_at: Timestamp,
    pub received_at: Timestamp,
    pub test: bool,
    /// The call's numbers, as the event gives them: the log and the calls are searched by them.
    pub did_number: Option<String>,
    pub customer_number: Option<String>,
    /// The canonical JSON of the event.
    pub payload: String,
}

/// A new event and the deliveries matching found for it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event: StoredEvent,
    pub deliveries: Vec<NewDelivery>,
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub trigger: Trigger,
    /// Attempts allowed; `None` follows the retry schedule (test sends get one).
    pub attempt_limit: Option<u32>,
    /// Not due before this (its webhook is held); `None`: due at once.
    pub not_before: Option<Timestamp>,
    /// Lease it at once to this node's dispatcher (see `delivery::handoff`), if it arrives due
    /// now: not waiting behind an unfinished delivery of its call, not held.
    pub lease: Option<LeaseTo>,
}

/// A lease asked for as a delivery is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTo {
    pub node: NodeId,
    pub until: Timestamp,
}

/// What became of one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Stored, with this many deliveries, of which those of `leased` were leased as they were
    /// stored (with lease 1, as asked by [`NewDelivery::lease`]).
    New {
        deliveries: usize,
        leased: Vec<DeliveryId>,
    },
    /// An event with this id was already stored; nothing was written.
    Duplicate,
}

/// How many due deliveries of one webhook a claim may take: `each`, or more for the webhooks
/// of `more` (those whose requests finish fast enough to get through more while the next
/// claim comes back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shares {
    pub each: u32,
    pub more: HashMap<WebhookId, u32>,
    /// Other live nodes claim from the same queue (PostgreSQL): the claim then locks its
    /// candidates as it reads them, so that nodes claiming at once take different rows. Alone,
    /// it locks only the rows it takes (see `store::postgres`).
    pub others: bool,
}

impl Shares {
    /// The same share for every webhook.
    pub fn each(n: u32) -> Shares {
        Shares {
            each: n,
            more: HashMap::new(),
            others: false,
        }
    }

    /// The share of `webhook`.
    pub fn of(&self, webhook: &str) -> u32 {
        self.more.get(webhook).copied().unwrap_or(self.each)
    }

    /// The largest share of any webhook.
    pub fn most(&self) -> u32 {
        self.more.values().copied().fold(self.each, u32::max)
    }
}

/// A delivery handed to a dispatcher with everything needed to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: DeliveryId,
    pub lease: i64,
    pub trigger: Trigger,
    pub attempts: u32,
    pub attempt_limit: Option<u32>,
    pub event_id: PostedEventId,
    /// Shared by the claim's deliveries of one event (a fan-out sends it to many webhooks).
    pub event_payload: Arc<str>,
    /// Shared by the claim's deliveries to one webhook (a fast lane holds hundreds).
    pub webhook: Arc<Webhook>,
    /// Until when this node holds it: sending it later could overlap another node's attempt.
    pub lease_until: Timestamp,
    /// A test delivery (sample data, sent from the API or the web page).
    pub test: bool,
    /// An alert (SPEC §12): `webhook` is the account's alert receiver and the event's payload
    /// is the body, sent as it is.
    pub alert: bool,
}

impl Claimed {
    /// What gives this delivery back, under the lease it was claimed with.
    pub fn release(&self) -> Release {
        Release {
            delivery_id: self.delivery_id.clone(),
            lease: self.lease,
        }
    }
}

/// One attempt to record, with the delivery's new state. Written only if `lease` still holds.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: DeliveryId,
    pub webhook_id: WebhookId,
    pub lease: i64,
    /// `None` when the delivery ends without a request (its webhook is disabled or gone).
    pub attempt: Option<Attempt>,
    pub next: Next,
    /// Set when this attempt disables the webhook (410 Gone, or failing for too long).
    pub disable_webhook: Option<String>,
    /// Why the delivery ended without a request, when `attempt` is `None`.
    pub note: Option<String>,
    /// A test delivery: it neither counts as the webhook's success nor as its failure.
    pub test: bool,
}

/// What a node's heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// Nodes alive, this one included.
    pub nodes: u32,
    /// Whether this node's row was there: `false` on its first heartbeat, and when another
    /// node took it for dead (and took over its leases) since the one before.
    pub known: bool,
    /// The dead nodes this heartbeat took over, with how many running leases each held.
    pub taken_over: Vec<(NodeId, u64)>,
}

/// Work the dispatcher gives back unsent (shutdown), to be claimed again at once.
#[derive(Debug, Clone)]
pub struct Release {
    pub delivery_id: DeliveryId,
    pub lease: i64,
}

/// Delivery counts for one webhook over a window, for the list page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookStats {
    pub succeeded: u64,
    pub failed: u64,
    pub pending: u64,
    pub last_delivery_at: Option<Timestamp>,
}

/// The queue at a glance, for metrics.
#[derive(Debug, Clone, Default)]
pub struct QueueStats {
    /// Deliveries due now or later that have not finished.
    pub pending: u64,
    /// Deliveries due now.
    pub due: u64,
    pub oldest_due_at: Option<Timestamp>,
}

/// Filters for the delivery log (SPEC §12); every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    /// Only pending deliveries whose latest attempt failed (`status=retrying`).
    pub retrying: bool,
    pub call_id: Option<CallId>,
    /// The call's DID or the customer's number.
    pub number: Option<E164>,
    /// The kind of the latest failed attempt.
    pub error_kind: Option<ErrorKind>,
    /// The latest attempt's HTTP status.
    pub http_status: Option<u16>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
}

/// Failed and retrying deliveries that went wrong the same way (SPEC §12 failure groups).
#[derive(Debug, Clone, PartialEq)]
pub struct FailureGroup {
    pub kind: ErrorKind,
    pub status: Option<u16>,
    pub message: String,
    pub count: u64,
    /// The earliest and latest of their latest attempts.
    pub first_at: Option<Timestamp>,
    pub last_at: Option<Timestamp>,
    /// One of them.
    pub example: DeliveryId,
}

/// A signed-in browser session of the web page.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// SHA-256 (hex) of the token in the session cookie; the token itself is never stored.
    pub id: String,
    pub user_id: UserId,
    /// The token every form of this session must send back (CSRF).
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A webhook's deliveries created in one hour, counted by their status now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourlyDeliveries {
    /// The start of the hour (UTC).
    pub hour: Timestamp,
    pub succeeded: u64,
    pub failed: u64,
    pub pending: u64,
}

/// One call of the account at a glance, for the Calls list.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSummary {
    pub call_id: CallId,
    /// As its first event reported them (`call.call_type`, `call.did_number`, …).
    pub call_type: Option<String>,
    pub did_number: Option<String>,
    pub customer_number: Option<String>,
    /// When it began: its first event's `occurred_at`.
    pub started_at: Timestamp,
    /// Its events' types, in the order they arrived (`call.received`, `call.answered`, …).
    pub event_types: Vec<String>,
    /// When its first and latest events arrived (`None` once retention took them).
    pub first_received_at: Option<Timestamp>,
    pub last_received_at: Option<Timestamp>,
    /// Its deliveries, counted by status.
    pub deliveries: DeliveryCounts,
}

/// Deliveries counted by status: `pending` (not tried yet, or waiting for an earlier one of
/// their call), `retrying` (pending after a failed attempt), `succeeded`, `failed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub pending: u64,
    pub retrying: u64,
    pub succeeded: u64,
    pub failed: u64,
}

impl DeliveryCounts {
    pub fn total(&self) -> u64 {
        self.pending + self.retrying + self.succeeded + self.failed
    }
}

/// Which calls to list; every filter given must hold.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// The call's DID or its customer's number.
    pub number: Option<E164>,
    /// Begun at or after.
    pub since: Option<Timestamp>,
    /// Begun before.
    pub until: Option<Timestamp>,
}

/// A click-to-call request as kept (SPEC §15): what was asked, where it is, and when it got
/// to each state.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredClickToCall {
    /// The request id the API answers with; it also names the originate on the PBX.
    pub id: ClickToCallId,
    pub account_id: AccountId,
    pub ref_id: String,
    pub agent_extension: String,
    pub customer_number: E164,
    /// The caller id the customer sees.
    pub did_number: E164,
    pub status: ClickToCallStatus,
    /// What the PBX (or callhook) said when it failed.
    pub cause: Option<String>,
    /// The call's id among the call events, once the call showed up.
    pub call_id: Option<CallId>,
    /// The connector that took it to place it.
    pub connector: Option<String>,
    pub created_at: Timestamp,
    /// When a node took it to place it.
    pub placed_at: Option<Timestamp>,
    pub ringing_agent_at: Option<Timestamp>,
    pub ringing_customer_at: Option<Timestamp>,
    /// When it was answered or failed.
    pub ended_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// A change of a click-to-call request's state, to record.
#[derive(Debug, Clone, PartialEq)]
pub struct ClickToCallChange {
    pub status: ClickToCallStatus,
    pub call_id: Option<CallId>,
    pub cause: Option<String>,
    pub at: Timestamp,
}

/// A connector that places an account's calls, as the node running it last said.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacingConnector {
    pub name: String,
    pub node_id: String,
    pub account_id: AccountId,
    /// Logged in to its PBX then.
    pub connected: bool,
    /// The caller id of requests that name no DID.
    pub default_did: Option<E164>,
    pub seen_at: Timestamp,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Settings callhook keeps for itself.
    /// Calls `wake` whenever another node (or this one) announces new due work. Stores
    /// shared by several nodes implement it; the default does nothing, polling is enough.
    fn listen_for_work(&self, _wake: Arc<dyn Fn() + Send + Sync>) {}

    // Secrets at rest (SPEC §14).
    /// The keys secrets are sealed with from now on (start-up loads them; see `src/secrets.rs`).
    fn set_keyring(&self, keys: Arc<crate::core::seal::Keyring>);
    /// Seals stored secrets under the current key: those stored plain (from before sealing),
    /// and with `all` also those sealed under another key (`callhook rekey`). Each row is
    /// written only if unchanged since it was read, so nodes doing it at once do no harm.
    /// Answers how many values were sealed.
    async fn reseal(&self, all: bool) -> Result<u64>;

    /// Notes that `node` is alive at `now`. A node not seen since `alive_since` is dead: in the
    /// same transaction its running leases are given back (lease + 1, so a late record of its
    /// is dropped; due at `now`) and its row removed. Of two nodes doing this at once, one
    /// takes over each dead node. Answers the nodes alive (this one included) and what was
    /// taken over.
    async fn heartbeat(
        &self,
        node: &NodeId,
        now: Timestamp,
        alive_since: Timestamp,
    ) -> Result<Heartbeat>;
    /// Takes a trivial write through the path every write takes: the store can do its work.
    async fn ping(&self) -> Result<()>;
    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    async fn set_setting(&self, key: &str, value: &str) -> Result<()>;
    /// Stores the setting only if it is not there yet; answers whether this call stored it.
    async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<bool>;

    // Alerts (SPEC §12).
    /// The account's alert settings, made (with a fresh secret) if it has none yet.
    async fn account_alerts(&self, account_id: &AccountId) -> Result<AccountAlerts>;
    /// Replaces the alert settings; refused with a conflict unless they are still as read
    /// (`updated_at` is `read_at`).
    async fn update_account_alerts(
        &self,
        alerts: &AccountAlerts,
        read_at: Timestamp,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Stores the alerts that time alone brings at `now` (webhooks failing for their account's
    /// `alert_after`; failed deliveries counted since a `delivery.failed` at least
    /// `failed_every` old), each once whichever nodes sweep at once; answers how many.
    async fn sweep_alerts(&self, now: Timestamp, failed_every: std::time::Duration) -> Result<u64>;

    // Accounts.
    async fn insert_account(&self, account: &Account) -> Result<()>;
    async fn get_account(&self, id: &AccountId) -> Result<Account>;
    async fn list_accounts(&self, page: &PageRequest) -> Result<Page<Account>>;
    /// How many webhooks, numbers and API keys the account has (for its quotas).
    async fn account_counts(&self, account_id: &AccountId) -> Result<AccountCounts>;

    // API keys.
    async fn insert_api_key(&self, key: &ApiKey, hash: &str, audit: &AuditEntry) -> Result<()>;
    async fn list_api_keys(
        &self,
        account_id: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<ApiKey>>;
    async fn get_api_key(&self, account_id: &AccountId, id: &ApiKeyId) -> Result<ApiKey>;
    /// Revokes a key. With `keep_an_admin`, refused with a conflict when it is the account's
    /// last admin key (a key revoking itself must leave one that can manage the account).
    async fn delete_api_key(
        &self,
        account_id: &AccountId,
        id: &ApiKeyId,
        keep_an_admin: bool,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// The key with this hash, if any.
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>>;
    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<()>;

    // Users.
    /// Stores a user (refused with a conflict when the email is taken), with the one-time
    /// link that lets them set a password when they have none yet.
    async fn insert_user(
        &self,
        user: &User,
        link: Option<&UserLink>,
        audit: &AuditEntry,
    ) -> Result<()>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn get_user(&self, account_id: &AccountId, id: &UserId) -> Result<User>;
    /// The account's users, oldest first, each with when their pending link (if any) expires.
    async fn list_users(
        &self,
        account_id: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<(User, Option<Timestamp>)>>;
    /// Changes a user's role; refused with a conflict when that leaves the account without
    /// an owner.
    async fn set_user_role(
        &self,
        account_id: &AccountId,
        id: &UserId,
        role: Role,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Removes a user, their sessions and links at once; refused with a conflict for the
    /// account's last owner.
    async fn delete_user(
        &self,
        account_id: &AccountId,
        id: &UserId,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Takes a user's password away, ends their sessions and makes `link` (replacing any
    /// earlier one) the only way to set a new one.
    async fn reset_user(
        &self,
        account_id: &AccountId,
        id: &UserId,
        link: &UserLink,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// The link with this hash and its user, if it is there and not expired at `now`.
    async fn user_link(&self, hash: &str, now: Timestamp) -> Result<Option<(UserLink, User)>>;
    /// Follows a link, once: it is deleted, the user's password becomes `password_hash` and
    /// every session they had ends; answers the user. Not found when the link is gone (used
    /// meanwhile, or replaced) or expired at `now`.
    async fn use_user_link(
        &self,
        hash: &str,
        password_hash: &str,
        now: Timestamp,
        audit: &AuditEntry,
    ) -> Result<User>;
    /// Sets a user's password and ends every session of theirs but `keep_session`.
    async fn set_password(
        &self,
        user_id: &UserId,
        password_hash: &str,
        keep_session: &str,
        audit: &AuditEntry,
    ) -> Result<()>;

    // The audit log.
    /// Records an entry on its own: for what changes nothing else (a secret revealed).
    async fn record_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// The account's entries matching `filter`, newest first.
    async fn list_audit(
        &self,
        account_id: &AccountId,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>>;

    // Numbers.
    async fn insert_number(
        &self,
        account_id: &AccountId,
        number: &Number,
        audit: &AuditEntry,
    ) -> Result<()>;
    async fn list_numbers(
        &self,
        account_id: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Number>>;
    async fn get_number(&self, account_id: &AccountId, number: &E164) -> Result<Number>;
    async fn set_number_label(
        &self,
        account_id: &AccountId,
        number: &E164,
        label: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Refused with a conflict while webhooks name the number.
    async fn delete_number(
        &self,
        account_id: &AccountId,
        number: &E164,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Which of `numbers` the account does not own.
    async fn unknown_numbers(&self, account_id: &AccountId, numbers: &[E164]) -> Result<Vec<E164>>;

    // Webhooks.
    async fn insert_webhook(&self, webhook: &Webhook, audit: &AuditEntry) -> Result<()>;
    async fn get_webhook(&self, account_id: &AccountId, id: &WebhookId) -> Result<Webhook>;
    async fn list_webhooks(
        &self,
        account_id: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Webhook>>;
    /// Replaces spec, secrets, enabled state and reason, and sets `updated_at` to the
    /// webhook's; refused with a conflict unless the stored webhook is still as it was read
    /// (its `updated_at` is `read_at`), so no concurrent change is silently undone.
    async fn update_webhook(
        &self,
        webhook: &Webhook,
        read_at: Timestamp,
        audit: &AuditEntry,
    ) -> Result<()>;
    async fn delete_webhook(
        &self,
        account_id: &AccountId,
        id: &WebhookId,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Enabled webhooks of the account with one of `triggers`: the candidates for matching.
    async fn webhooks_for(
        &self,
        account_id: &AccountId,
        triggers: &[Trigger],
    ) -> Result<Arc<[Webhook]>>;
    /// Outcome counts over each webhook's `recent` latest deliveries.
    async fn webhook_stats(
        &self,
        account_id: &AccountId,
        recent: u32,
    ) -> Result<Vec<(WebhookId, WebhookStats)>>;

    // Events and deliveries.
    /// Stores events and their deliveries in one transaction: all or nothing. An event whose
    /// id the account already used is skipped as a duplicate. A delivery that asks for a lease
    /// ([`NewDelivery::lease`]) is stored leased when it is due at once.
    async fn insert_events(&self, events: Vec<NewEvent>) -> Result<Vec<Inserted>>;
    /// Leases up to `limit` due deliveries to `node` until `lease_until`, oldest first, at
    /// most a webhook's share of `shares` of one webhook, skipping `exclude` webhooks.
    async fn claim_due(
        &self,
        node: &NodeId,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        shares: &Shares,
        exclude: &[WebhookId],
    ) -> Result<Vec<Claimed>>;
    /// Stores a test event with its one delivery and leases that delivery to `node` (the
    /// caller's), in one transaction so no dispatcher can take it first.
    async fn insert_test_delivery(
        &self,
        node: &NodeId,
        event: NewEvent,
        lease_until: Timestamp,
    ) -> Result<Claimed>;
    /// Records attempts and moves their deliveries on; a record whose lease was lost is dropped.
    /// Answers how many deliveries that made due at once (the next of a call, alerts): a
    /// dispatcher claims only when something may be due.
    async fn record_attempts(&self, records: Vec<AttemptRecord>, now: Timestamp) -> Result<u64>;
    /// Gives leased deliveries back, due at `due`.
    async fn release(&self, releases: Vec<Release>, due: Timestamp) -> Result<()>;
    /// At start, gives back (due at `now`) the leases a dead process of this node left, so
    /// what it had in flight is sent again at once rather than when the lease runs out. Only a
    /// store that one node serves from (SQLite) knows every lease is such a one; PostgreSQL
    /// gives back nothing here: a live node takes over the dead process's leases on a
    /// heartbeat once it has missed two ([`Store::heartbeat`]). Answers how many were given
    /// back.
    async fn release_leftover_leases(&self, now: Timestamp) -> Result<u64>;
    /// Holds a webhook's deliveries until `until` (its endpoint is stuck): the unclaimed ones
    /// due before then move to then, and new ones are stored due then. `None` lifts the hold.
    async fn hold_webhook(&self, webhook_id: &WebhookId, until: Option<Timestamp>) -> Result<()>;
    async fn get_delivery(
        &self,
        account_id: &AccountId,
        id: &DeliveryId,
    ) -> Result<(Delivery, Vec<Attempt>)>;
    async fn list_deliveries(
        &self,
        account_id: &AccountId,
        webhook_id: &WebhookId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>>;
    /// A webhook's failed and retrying deliveries (test sends left out) created since `since`,
    /// grouped by their latest attempt's error kind, HTTP status and message; largest first.
    async fn failure_groups(
        &self,
        account_id: &AccountId,
        webhook_id: &WebhookId,
        since: Timestamp,
    ) -> Result<Vec<FailureGroup>>;
    /// Retries now every failed or retrying delivery of the webhook that matches `filter`
    /// (never a test delivery, nor one being sent), keeping per-call order; each gets
    /// `attempts` more attempts. Returns how many, which `audit` records as its `retried`
    /// change.
    #[allow(clippy::too_many_arguments)]
    async fn retry_deliveries(
        &self,
        account_id: &AccountId,
        webhook_id: &WebhookId,
        filter: &DeliveryFilter,
        attempts: u32,
        now: Timestamp,
        audit: &AuditEntry,
    ) -> Result<u64>;
    /// Makes a delivery due now for one more attempt (beyond its schedule when it had ended).
    async fn resend(
        &self,
        account_id: &AccountId,
        id: &DeliveryId,
        now: Timestamp,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Re-queues a webhook's deliveries in `status` created since `since`, keeping per-call
    /// order; each gets `attempts` more attempts. Returns how many, which `audit` records as
    /// its `replayed` change.
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
    ) -> Result<u64>;
    /// The call's events, in order, each with the deliveries it caused.
    async fn call_timeline(
        &self,
        account_id: &AccountId,
        call_id: &CallId,
    ) -> Result<Vec<(StoredEvent, Vec<Delivery>)>>;
    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats>;
    /// Every webhook's health state (of every account), for metrics.
    async fn webhook_states(&self) -> Result<Vec<(WebhookId, HealthState)>>;
    /// Deletes up to `batch` finished deliveries last touched before `before` with all their
    /// attempts, up to `batch` events older than that left without deliveries, up to `batch`
    /// click-to-call requests that ended before then, and up to `batch` audit entries older
    /// than that. Returns how many rows of those went (under `batch` means nothing is left).
    async fn prune(&self, before: Timestamp, batch: u32) -> Result<u64>;

    // Web sessions (the web page's sign-in).
    async fn insert_session(&self, session: &Session) -> Result<()>;
    /// The session with this id, if it has not expired at `now`, and its user.
    async fn session_with_user(&self, id: &str, now: Timestamp) -> Result<Option<(Session, User)>>;
    /// Moves a session's expiry (sessions slide while they are used).
    async fn extend_session(&self, id: &str, expires_at: Timestamp) -> Result<()>;
    /// Signs a session out; deleting one that is gone already is not an error.
    async fn delete_session(&self, id: &str) -> Result<()>;
    /// Deletes the sessions that expired before `now`; returns how many.
    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64>;

    // For the web page's overviews.
    /// A webhook's deliveries created since `since`, counted per UTC hour by status, oldest
    /// hour first; hours without deliveries are left out.
    async fn hourly_deliveries(
        &self,
        account_id: &AccountId,
        webhook_id: &WebhookId,
        since: Timestamp,
    ) -> Result<Vec<HourlyDeliveries>>;
    /// A page of the account's calls that `filter` takes (test sends left out), the latest
    /// begun first, each with its events' types and its deliveries counted by status.
    async fn list_calls(
        &self,
        account_id: &AccountId,
        filter: &CallFilter,
        page: &PageRequest,
    ) -> Result<Page<CallSummary>>;

    // Click-to-call requests (SPEC §15).
    /// Stores a new request as it is (`queued`) and announces it to every node; when the
    /// account has a request with its `ref_id` already, stores nothing and answers that one.
    /// Answers the request kept and whether it is new; `audit` is recorded only when it is.
    async fn insert_click_to_call(
        &self,
        request: &StoredClickToCall,
        audit: &AuditEntry,
    ) -> Result<(StoredClickToCall, bool)>;
    async fn get_click_to_call(
        &self,
        account_id: &AccountId,
        id: &ClickToCallId,
    ) -> Result<StoredClickToCall>;
    async fn click_to_call_by_ref(
        &self,
        account_id: &AccountId,
        ref_id: &str,
    ) -> Result<Option<StoredClickToCall>>;
    /// Takes up to `limit` of the account's queued requests that nobody took, oldest first,
    /// for `connector` on node `node_id`, leased until `lease_until`. A request is taken once
    /// and never again, whichever nodes ask at once: it is never placed twice.
    #[allow(clippy::too_many_arguments)]
    async fn claim_click_to_calls(
        &self,
        account_id: &AccountId,
        connector: &str,
        node_id: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<StoredClickToCall>>;
    /// Records a change of a request's state; a final request changes no more and a request
    /// never goes back. Answers whether it changed.
    async fn record_click_to_call(
        &self,
        id: &ClickToCallId,
        change: &ClickToCallChange,
    ) -> Result<bool>;
    /// Keeps the unfinished requests node `node_id` took its own until `lease_until`.
    async fn renew_click_to_calls(&self, node_id: &str, lease_until: Timestamp) -> Result<u64>;
    /// Fails (`connector_lost`) the queued requests nobody took that were made before
    /// `queued_before`, and the unfinished ones whose node let its lease run out by `now`.
    /// Answers their ids.
    async fn expire_click_to_calls(
        &self,
        now: Timestamp,
        queued_before: Timestamp,
    ) -> Result<Vec<ClickToCallId>>;
    /// Keeps what a node says of the connectors it runs that place calls.
    async fn publish_placing_connectors(&self, connectors: &[PlacingConnector]) -> Result<()>;
    /// The account's placing connectors some node spoke of since `seen_since`, latest first.
    async fn placing_connectors(
        &self,
        account_id: &AccountId,
        seen_since: Timestamp,
    ) -> Result<Vec<PlacingConnector>>;
}
