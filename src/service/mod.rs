//! The operations of callhook, one module per resource: what the REST API ([`crate::api`]),
//! the web page ([`crate::web`]) and the CLI do to accounts, keys, users, numbers, webhooks,
//! deliveries and calls. Both front ends call these functions and nothing below them, so a
//! rule (a validation, who may do what) is kept in one place.
//!
//! Each module has its own error enum saying what its operations can fail with; every one of
//! them reads as a [`Failure`], which the API turns into problem+json and the web page into a
//! page a person can act on.
//!
//! Who may do what (SPEC §13) is decided here and only here: every operation that acts for an
//! [`Actor`] first names what it needs ([`Need`]) and asks [`Actor::may`], which applies the
//! one rule of [`crate::core::role::allows`]. The front ends never check a role; the web page
//! only asks [`Actor::can`] to leave out buttons that would be refused anyway. Every change is
//! recorded in the audit log by the store method that makes it ([`Actor::entry`]).

pub mod accounts;
pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod calls;
pub mod click_to_call;
pub mod deliveries;
pub mod events;
pub mod numbers;
pub mod triggers;
pub mod users;
pub mod webhooks;

use std::sync::Arc;

use jiff::Timestamp;

use crate::config::Settings;
use crate::connectors::Connectors;
use crate::core::audit::{Action, ActorKind, AuditActor, Change};
use crate::core::id::{AccountId, ApiKeyId, AuditId, Id, Made, NodeId, UserId};
pub use crate::core::role::{Need, Principal, Role};
use crate::core::role::{allows, refusal};
use crate::core::validate::FieldErrors;
use crate::delivery::attempt::Policy;
use crate::delivery::client::HttpClient;
use crate::ingest::Ingest;
use crate::store::{AuditEntry, Store, StoreError};

/// Everything the operations reach: the store, the settings, ingest (which wakes the
/// dispatcher), the HTTP client and retry policy for test sends, and the PBX connectors.
/// Cheap to clone: it is a handful of shared pointers.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    /// This process: test sends are leased to it, as its dispatcher's claims are.
    pub node: NodeId,
    pub ingest: Ingest,
    /// Test sends go out at once through the same client and policy as the dispatcher's.
    pub client: HttpClient,
    pub policy: Arc<Policy>,
    pub connectors: Connectors,
    /// SHA-256 of the operator token.
    pub operator_hash: Arc<str>,
    /// Test sends in flight and due per webhook, so they keep to its limits.
    pub test_sends: deliveries::TestSends,
}

impl Services {
    /// The per-account limits the settings set.
    pub fn quotas(&self) -> Quotas {
        Quotas::of(&self.settings)
    }
}

/// Per-account limits (settings `max_webhooks_per_account`, `max_numbers_per_account`,
/// `max_api_keys_per_account`); 0 means none. Counted before each create, so concurrent
/// creates may pass a limit by the few that raced.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quotas {
    pub webhooks: u32,
    pub numbers: u32,
    pub api_keys: u32,
}

/// The things an account holds that a quota counts.
#[derive(Debug, Clone, Copy)]
pub enum Holding {
    Webhooks,
    Numbers,
    ApiKeys,
}

impl Quotas {
    pub fn of(s: &Settings) -> Quotas {
        Quotas {
            webhooks: s.max_webhooks_per_account,
            numbers: s.max_numbers_per_account,
            api_keys: s.max_api_keys_per_account,
        }
    }

    /// A 422 naming the limit when the account may not have one more of `what`.
    pub async fn check(
        &self,
        store: &dyn Store,
        account_id: &AccountId,
        what: Holding,
    ) -> Result<(), StoreError> {
        let (max, noun, setting) = match what {
            Holding::Webhooks => (self.webhooks, "webhooks", "max_webhooks_per_account"),
            Holding::Numbers => (self.numbers, "numbers", "max_numbers_per_account"),
            Holding::ApiKeys => (self.api_keys, "API keys", "max_api_keys_per_account"),
        };
        if max == 0 {
            return Ok(());
        }
        let counts = store.account_counts(account_id).await?;
        let has = match what {
            Holding::Webhooks => counts.webhooks,
            Holding::Numbers => counts.numbers,
            Holding::ApiKeys => counts.api_keys,
        };
        if has >= u64::from(max) {
            return Err(StoreError::Rejected(invalid(
                "",
                format!(
                    "the account has {has} {noun}, the most it may have ({setting} = {max}); \
                     remove one first or ask the operator to raise the limit"
                ),
            )));
        }
        Ok(())
    }
}

/// Who acts on an account: a signed-in user of the web page or an API key, with its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub account_id: AccountId,
    pub who: Who,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    User { id: UserId, email: String },
    ApiKey { id: ApiKeyId, name: String },
}

/// A refusal: the actor's role does not allow the operation. Its message says which role it
/// needs and what the actor is.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

impl IntoFailure for Denied {
    fn into_failure(self) -> Failure {
        Failure::Forbidden(self.0)
    }
}

impl Actor {
    pub fn account(&self) -> &AccountId {
        &self.account_id
    }

    pub fn principal(&self) -> Principal {
        match self.who {
            Who::User { .. } => Principal::User,
            Who::ApiKey { .. } => Principal::ApiKey,
        }
    }

    /// Whether the actor's role allows `need`.
    pub fn can(&self, need: Need) -> bool {
        allows(self.principal(), self.role, need)
    }

    /// The one check every operation makes before it does anything: refused, with which role
    /// it needs, unless the actor's role allows `need`.
    pub fn may(&self, need: Need) -> Result<(), Denied> {
        if self.can(need) {
            return Ok(());
        }
        tracing::info!(account = %self.account_id, actor = ?self.who, role = self.role.as_str(), ?need, "refused");
        Err(Denied(refusal(self.principal(), self.role, need)))
    }

    /// The actor as the audit log names it.
    pub fn audit_actor(&self) -> AuditActor {
        match &self.who {
            Who::User { id, email } => AuditActor {
                kind: ActorKind::User,
                id: Some(id.to_string()),
                name: email.clone(),
            },
            Who::ApiKey { id, name } => AuditActor {
                kind: ActorKind::ApiKey,
                id: Some(id.to_string()),
                name: name.clone(),
            },
        }
    }

    /// The audit entry of a change this actor makes to resource `resource_id`.
    pub fn entry(
        &self,
        action: Action,
        resource_id: impl Into<String>,
        changes: Vec<Change>,
    ) -> AuditEntry {
        AuditEntry {
            id: AuditId::new(),
            account_id: self.account_id.clone(),
            at: stored_now(),
            actor: self.audit_actor(),
            action,
            resource_id: resource_id.into(),
            changes,
        }
    }
}

/// The audit entry of a change the operator makes to account `account_id` (`how`: the
/// operator API, `callhook user create`, the first start).
pub fn operator_entry(
    account_id: &AccountId,
    how: &str,
    action: Action,
    resource_id: impl Into<String>,
    changes: Vec<Change>,
) -> AuditEntry {
    AuditEntry {
        id: AuditId::new(),
        account_id: account_id.clone(),
        at: stored_now(),
        actor: AuditActor {
            kind: ActorKind::Operator,
            id: None,
            name: how.to_owned(),
        },
        action,
        resource_id: resource_id.into(),
        changes,
    }
}

/// An id from a request (a path, a form field): one that cannot be a `K`'s names nothing, and
/// is not found like the id of another account's `K`. The API and the web page parse ids here,
/// at their edge; every operation below takes them typed.
pub fn parse_id<K: Made>(s: &str) -> Result<Id<K>, Failure> {
    Id::parse(s).ok_or(Failure::NotFound(K::NAME))
}

/// How a service error reads to whoever asked: enough for the API to choose a status and for
/// the web page to choose a message.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Nothing by that id in the caller's account (`what` names the kind of thing).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Fields that break the rules, every one of them.
    #[error("{0}")]
    Invalid(FieldErrors),
    /// The request is fine but the state of things does not allow it now.
    #[error("{0}")]
    Conflict(String),
    /// The state of things does not allow it now, because of what these fields name (a
    /// click-to-call request's `connector`, a `ref_id` already taken).
    #[error("{0}")]
    ConflictOn(FieldErrors),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A limit says not now: try again after `retry_after` (the message names the limit).
    #[error("{message}")]
    TooMany {
        message: String,
        retry_after: std::time::Duration,
    },
    /// callhook is shutting down (the store is closed).
    #[error("callhook is shutting down or overloaded")]
    Unavailable,
    /// Something broke on our side; logged by whoever answers, never shown.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

/// An error that reads as a [`Failure`]: every service error, and the errors of the layers
/// below that a front end may meet directly.
pub trait IntoFailure {
    fn into_failure(self) -> Failure;
}

impl IntoFailure for Failure {
    fn into_failure(self) -> Failure {
        self
    }
}

impl IntoFailure for StoreError {
    fn into_failure(self) -> Failure {
        match self {
            StoreError::NotFound => Failure::NotFound("resource"),
            StoreError::Conflict(m) => Failure::Conflict(m),
            StoreError::Rejected(f) => Failure::Invalid(f),
            StoreError::Closed => Failure::Unavailable,
            e @ (StoreError::Database(_) | StoreError::Corrupt(_)) => Failure::Internal(e.into()),
        }
    }
}

impl IntoFailure for FieldErrors {
    fn into_failure(self) -> Failure {
        Failure::Invalid(self)
    }
}

impl IntoFailure for anyhow::Error {
    fn into_failure(self) -> Failure {
        Failure::Internal(self)
    }
}

/// One invalid field.
pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> FieldErrors {
    let mut e = FieldErrors::default();
    e.push(field, message);
    e
}

/// A filter's time (`since`, `until`) as a query gives it: RFC 3339 with an offset, given whole
/// or left out (an empty one is refused, not read as none); a bad one is named in `errors`.
pub fn filter_time(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<&str>,
) -> Option<jiff::Timestamp> {
    value.and_then(|t| match t.parse::<jiff::Timestamp>() {
        Ok(t) => Some(t),
        Err(_) => {
            errors.push(
                field,
                format!("{t:?} is not an RFC 3339 timestamp with an offset"),
            );
            None
        }
    })
}

/// Maps a store error to `not_found` when it is "no such row", else keeps it.
pub(crate) fn or_not_found<E: From<StoreError>>(e: StoreError, not_found: E) -> E {
    match e {
        StoreError::NotFound => not_found,
        e => E::from(e),
    }
}

/// Now, to the millisecond the store keeps (it is compared on the next write).
pub(crate) fn stored_now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}

/// Timestamps as answers and messages show them: RFC 3339, UTC, to the millisecond (what the
/// store keeps, so the answer to a write and a later read agree).
pub fn ts(t: Timestamp) -> String {
    Timestamp::from_millisecond(t.as_millisecond())
        .unwrap_or(t)
        .to_string()
}
