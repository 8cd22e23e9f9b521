//! How the store's types are kept in rows, written once for both databases: ids as their text
//! (bound with `as_str()`, read with [`Cols::id`]), timestamps as milliseconds, secrets, specs and headers as JSON, and the `*_from_row` functions, which read
//! any row through [`Cols`].

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{ColumnIndex, Database, Decode, Encode, Row, Type};

use crate::core::delivery_state::State;
use crate::core::failure::{AttemptError, Window};
use crate::core::id::Id;
use crate::core::number::E164;
use crate::core::seal::{Keyring, webhook_header_ad, webhook_secret_ad};
use crate::core::sign::Secret;
use crate::core::trigger::Trigger;
use crate::core::webhook::WebhookSpec;
use crate::store::*;

/// Milliseconds since the Unix epoch, as stored.
pub fn to_ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Typed column access with decode failures turned into [`StoreError::Corrupt`].
pub trait Cols {
    fn text(&self, name: &str) -> Result<String>;
    fn opt_text(&self, name: &str) -> Result<Option<String>>;
    fn int(&self, name: &str) -> Result<i64>;
    fn opt_int(&self, name: &str) -> Result<Option<i64>>;
    fn boolean(&self, name: &str) -> Result<bool>;

    fn ts(&self, name: &str) -> Result<Timestamp> {
        Ok(from_ms(self.int(name)?))
    }

    fn opt_ts(&self, name: &str) -> Result<Option<Timestamp>> {
        Ok(self.opt_int(name)?.map(from_ms))
    }

    fn trigger(&self, name: &str) -> Result<Trigger> {
        let s = self.text(name)?;
        Trigger::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("unknown trigger {s:?}")))
    }

    /// An id, kept as its text.
    fn id<K>(&self, name: &str) -> Result<Id<K>> {
        Ok(Id::from_string(self.text(name)?))
    }

    fn error_kind(&self, name: &str) -> Result<Option<ErrorKind>> {
        self.opt_text(name)?
            .map(|s| {
                ErrorKind::parse(&s)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown error kind {s:?}")))
            })
            .transpose()
    }

    fn state(&self, name: &str) -> Result<State> {
        let s = self.text(name)?;
        State::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("unknown state {s:?}")))
    }
}

/// An id is bound as its text, in any database that binds text.
impl<K, DB: Database> Type<DB> for Id<K>
where
    String: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as Type<DB>>::compatible(ty)
    }
}

impl<'q, K, DB: Database> Encode<'q, DB> for Id<K>
where
    for<'s> &'s str: Encode<'s, DB>,
{
    fn encode_by_ref(&self, buf: &mut DB::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<DB>>::encode(self.as_str(), buf)
    }
}

/// And read back from its text, trusted as callhook wrote it.
impl<'r, K, DB: Database> Decode<'r, DB> for Id<K>
where
    String: Decode<'r, DB>,
{
    fn decode(value: DB::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Id::from_string(<String as Decode<DB>>::decode(value)?))
    }
}

/// Any row whose database decodes these types: SQLite's and PostgreSQL's ([`super::SqlDb`]
/// requires it).
impl<R: Row> Cols for R
where
    for<'a> &'a str: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, name: &str) -> Result<String> {
        self.try_get(name).map_err(|e| corrupt(name, e))
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>> {
        self.try_get(name).map_err(|e| corrupt(name, e))
    }
    fn int(&self, name: &str) -> Result<i64> {
        self.try_get(name).map_err(|e| corrupt(name, e))
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        self.try_get(name).map_err(|e| corrupt(name, e))
    }
    fn boolean(&self, name: &str) -> Result<bool> {
        self.try_get(name).map_err(|e| corrupt(name, e))
    }
}

fn corrupt(name: &str, e: sqlx::Error) -> StoreError {
    StoreError::Corrupt(format!("{name}: {e}"))
}

/// One more row than asked, to know whether there is a next page.
pub fn limit_plus_one(page: &PageRequest) -> i64 {
    page.limit as i64 + 1
}

pub const WEBHOOK_COLUMNS: &str = "id, account_id, spec, enabled, disabled_reason, secrets, created_at, updated_at, \
     last_success_at, failing_since, hold_until";

/// What reading a webhook takes: its columns and its latest failure.
pub const WEBHOOK_READ: &str = "id, account_id, spec, enabled, disabled_reason, secrets, created_at, updated_at, \
     last_success_at, failing_since, hold_until, last_failure_at, last_error_kind, last_error_status, last_error_message";

pub const SELECT_WEBHOOK: &str = "SELECT id, account_id, spec, enabled, disabled_reason, secrets, created_at, updated_at, \
     last_success_at, failing_since, hold_until, last_failure_at, last_error_kind, last_error_status, last_error_message \
     FROM webhooks WHERE account_id = $1 AND id = $2";
pub const LIST_WEBHOOKS: &str = "SELECT id, account_id, spec, enabled, disabled_reason, secrets, created_at, updated_at, \
     last_success_at, failing_since, hold_until, last_failure_at, last_error_kind, last_error_status, last_error_message \
     FROM webhooks WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SecretJson {
    secret: String,
    created_at: i64,
    expires_at: Option<i64>,
}

/// Secrets as stored: a JSON list, newest first, each secret sealed for this webhook.
pub fn secrets_to_json(
    keys: &Keyring,
    webhook_id: &str,
    secrets: &[StoredSecret],
) -> Result<String> {
    let ad = webhook_secret_ad(webhook_id);
    let list = secrets
        .iter()
        .map(|s| {
            Ok(SecretJson {
                secret: keys.seal_str(&ad, &s.secret.expose()).map_err(seal_error)?,
                created_at: to_ms(s.created_at),
                expires_at: s.expires_at.map(to_ms),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    serde_json::to_string(&list).map_err(|e| StoreError::Corrupt(format!("secrets: {e}")))
}

pub fn secrets_from_json(keys: &Keyring, webhook_id: &str, s: &str) -> Result<Vec<StoredSecret>> {
    let ad = webhook_secret_ad(webhook_id);
    let list: Vec<SecretJson> =
        serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("secrets: {e}")))?;
    list.into_iter()
        .map(|j| {
            let plain = keys.open_or_plain(&ad, &j.secret).map_err(seal_error)?;
            Ok(StoredSecret {
                secret: Secret::parse(&plain).map_err(StoreError::Corrupt)?,
                created_at: from_ms(j.created_at),
                expires_at: j.expires_at.map(from_ms),
            })
        })
        .collect()
}

fn seal_error(e: crate::core::seal::SealError) -> StoreError {
    StoreError::Corrupt(format!("a sealed secret: {e}"))
}

/// The stored secrets JSON with every secret sealed under the current key; `None` when
/// nothing in it needs sealing again (`all`: sealed under another key, or plain; else only
/// plain ones).
pub fn reseal_secrets(
    keys: &Keyring,
    webhook_id: &str,
    stored: &str,
    all: bool,
) -> Result<Option<String>> {
    let list: Vec<SecretJson> =
        serde_json::from_str(stored).map_err(|e| StoreError::Corrupt(format!("secrets: {e}")))?;
    let needs = |v: &str| {
        if all {
            keys.needs_reseal(v)
        } else {
            !crate::core::seal::is_sealed(v)
        }
    };
    if !list.iter().any(|j| needs(&j.secret)) {
        return Ok(None);
    }
    let secrets = secrets_from_json(keys, webhook_id, stored)?;
    secrets_to_json(keys, webhook_id, &secrets).map(Some)
}

/// The header values of a stored spec, each sealed (`seal`) or opened (`!seal`) in place.
fn map_header_values(
    obj: &mut serde_json::Map<String, serde_json::Value>,
    mut f: impl FnMut(&str, &str) -> Result<Option<String>>,
) -> Result<bool> {
    let mut changed = false;
    let Some(serde_json::Value::Array(headers)) = obj.get_mut("headers") else {
        return Ok(false);
    };
    for h in headers {
        let Some(h) = h.as_object_mut() else { continue };
        let key = h
            .get("key")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_owned();
        if let Some(serde_json::Value::String(v)) = h.get_mut("value")
            && let Some(new) = f(&key, v)?
        {
            *v = new;
            changed = true;
        }
    }
    Ok(changed)
}

/// A webhook's spec as stored: its JSON, with custom header values sealed for this webhook.
pub fn spec_to_json(keys: &Keyring, webhook_id: &str, spec: &WebhookSpec) -> Result<String> {
    let mut obj = spec.to_json();
    map_header_values(&mut obj, |key, v| {
        keys.seal_str(&webhook_header_ad(webhook_id, key), v)
            .map(Some)
            .map_err(seal_error)
    })?;
    Ok(serde_json::Value::Object(obj).to_string())
}

fn spec_object(s: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    let v: serde_json::Value =
        serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("webhook spec: {e}")))?;
    match v {
        serde_json::Value::Object(o) => Ok(o),
        _ => Err(StoreError::Corrupt("webhook spec is not an object".into())),
    }
}

/// A webhook's spec, read back from its JSON (header values opened).
pub fn spec_from_json(keys: &Keyring, webhook_id: &str, s: &str) -> Result<WebhookSpec> {
    let mut obj = spec_object(s)?;
    map_header_values(&mut obj, |key, v| {
        keys.open_or_plain(&webhook_header_ad(webhook_id, key), v)
            .map(Some)
            .map_err(seal_error)
    })?;
    WebhookSpec::from_json(&obj).map_err(|e| StoreError::Corrupt(format!("webhook spec: {e}")))
}

/// A webhook's spec without its custom headers (what needs no key: its name, URL, trigger).
pub fn spec_without_headers(s: &str) -> Result<WebhookSpec> {
    let mut obj = spec_object(s)?;
    obj.remove("headers");
    WebhookSpec::from_json(&obj).map_err(|e| StoreError::Corrupt(format!("webhook spec: {e}")))
}

/// The stored spec with its header values sealed under the current key; `None` when none
/// needs it (see [`reseal_secrets`]).
pub fn reseal_spec(
    keys: &Keyring,
    webhook_id: &str,
    stored: &str,
    all: bool,
) -> Result<Option<String>> {
    let mut obj = spec_object(stored)?;
    let changed = map_header_values(&mut obj, |key, v| {
        let needs = if all {
            keys.needs_reseal(v)
        } else {
            !crate::core::seal::is_sealed(v)
        };
        if !needs {
            return Ok(None);
        }
        let ad = webhook_header_ad(webhook_id, key);
        let plain = keys.open_or_plain(&ad, v).map_err(seal_error)?;
        keys.seal_str(&ad, &plain).map(Some).map_err(seal_error)
    })?;
    Ok(changed.then(|| serde_json::Value::Object(obj).to_string()))
}

pub fn webhook_from_row(keys: &Keyring, row: &impl Cols) -> Result<Webhook> {
    let id: crate::core::id::WebhookId = row.id("id")?;
    let mut spec = spec_from_json(keys, id.as_str(), &row.text("spec")?)?;
    spec.enabled = row.boolean("enabled")?;
    Ok(Webhook {
        secrets: secrets_from_json(keys, id.as_str(), &row.text("secrets")?)?,
        id,
        account_id: row.id("account_id")?,
        spec,
        disabled_reason: row.opt_text("disabled_reason")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
        last_success_at: row.opt_ts("last_success_at")?,
        failing_since: row.opt_ts("failing_since")?,
        hold_until: row.opt_ts("hold_until")?,
        last_failure_at: row.opt_ts("last_failure_at")?,
        last_error: match row.error_kind("last_error_kind")? {
            Some(kind) => Some(AttemptError {
                kind,
                status: row.opt_int("last_error_status")?.map(|s| s as u16),
                message: row.opt_text("last_error_message")?.unwrap_or_default(),
            }),
            None => None,
        },
        recent: Window::default(),
    })
}

pub fn account_from_row(row: &impl Cols) -> Result<Account> {
    Ok(Account {
        id: row.id("id")?,
        name: row.text("name")?,
        created_at: row.ts("created_at")?,
    })
}

pub fn api_key_from_row(row: &impl Cols) -> Result<ApiKey> {
    Ok(ApiKey {
        id: row.id("id")?,
        account_id: row.id("account_id")?,
        name: row.text("name")?,
        prefix: row.text("prefix")?,
        role: role(row, "role")?,
        created_at: row.ts("created_at")?,
        last_used_at: row.opt_ts("last_used_at")?,
    })
}

fn role(row: &impl Cols, name: &str) -> Result<Role> {
    use crate::core::validate::Choice;
    let s = row.text(name)?;
    Role::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("unknown role {s:?}")))
}

pub const USER_COLUMNS: &str = "id, account_id, email, password_hash, role, created_at";

pub fn user_from_row(row: &impl Cols) -> Result<User> {
    Ok(User {
        id: row.id("id")?,
        account_id: row.id("account_id")?,
        email: row.text("email")?,
        password_hash: row.text("password_hash")?,
        role: role(row, "role")?,
        created_at: row.ts("created_at")?,
    })
}

pub fn link_from_row(row: &impl Cols) -> Result<UserLink> {
    let purpose = row.text("purpose")?;
    Ok(UserLink {
        hash: row.text("hash")?,
        user_id: row.id("user_id")?,
        purpose: LinkPurpose::parse(&purpose)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown link purpose {purpose:?}")))?,
        created_at: row.ts("link_created_at")?,
        expires_at: row.ts("expires_at")?,
    })
}

pub fn audit_from_row(row: &impl Cols) -> Result<AuditEntry> {
    use crate::core::validate::Choice;
    let action = row.text("action")?;
    let kind = row.text("actor_type")?;
    let changes = row.text("changes")?;
    Ok(AuditEntry {
        id: row.id("id")?,
        account_id: row.id("account_id")?,
        at: row.ts("at")?,
        actor: AuditActor {
            kind: ActorKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown actor type {kind:?}")))?,
            id: row.opt_text("actor_id")?,
            name: row.text("actor_name")?,
        },
        action: Action::parse(&action)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown audit action {action:?}")))?,
        resource_id: row.text("resource_id")?,
        changes: serde_json::from_str(&changes)
            .map_err(|e| StoreError::Corrupt(format!("audit changes: {e}")))?,
    })
}

pub fn number_from_row(row: &impl Cols) -> Result<Number> {
    let n = row.text("number")?;
    Ok(Number {
        number: E164::parse(&n).map_err(StoreError::Corrupt)?,
        label: row.opt_text("label")?,
        created_at: row.ts("created_at")?,
    })
}

pub const DELIVERY_COLUMNS: &str = "d.seq, d.id, d.account_id, d.webhook_id, e.event_id, d.call_id, d.trigger, d.state, \
     d.attempts, CASE WHEN d.claimed_until > d.next_attempt_at THEN d.claimed_until ELSE d.next_attempt_at END AS next_attempt_at, d.created_at, d.updated_at, d.last_attempt_at, d.last_status, d.last_error, \
     d.last_error_kind, d.last_latency_ms, e.test";

pub fn delivery_from_row(row: &impl Cols) -> Result<Delivery> {
    let state = row.state("state")?;
    Ok(Delivery {
        id: row.id("id")?,
        account_id: row.id("account_id")?,
        webhook_id: row.id("webhook_id")?,
        event_id: row.id("event_id")?,
        call_id: row.id("call_id")?,
        trigger: row.trigger("trigger")?,
        status: state.status(),
        waiting: state == State::Waiting,
        attempts: row.int("attempts")? as u32,
        // Only a queued delivery has a next attempt (a claimed one's shows its lease's end,
        // the later of the two columns: PostgreSQL's claims leave `next_attempt_at` as it was).
        next_attempt_at: if state == State::Queued {
            row.opt_ts("next_attempt_at")?
        } else {
            None
        },
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
        last_attempt_at: row.opt_ts("last_attempt_at")?,
        last_status: row.opt_int("last_status")?.map(|s| s as u16),
        last_error: row.opt_text("last_error")?,
        last_error_kind: row.error_kind("last_error_kind")?,
        last_latency_ms: row.opt_int("last_latency_ms")?.map(|s| s as u32),
        test: row.boolean("test")?,
    })
}

pub fn headers_to_json(h: &[(String, String)]) -> String {
    serde_json::to_string(h).unwrap_or_else(|_| "[]".into())
}

fn headers_from_json(s: &str) -> Result<Vec<(String, String)>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("headers: {e}")))
}

pub fn attempt_from_row(row: &impl Cols) -> Result<Attempt> {
    Ok(Attempt {
        n: row.int("n")? as u32,
        started_at: row.ts("started_at")?,
        latency_ms: row.int("latency_ms")? as u32,
        request_method: row.text("request_method")?,
        request_url: row.text("request_url")?,
        request_headers: headers_from_json(&row.text("request_headers")?)?,
        request_body: row.opt_text("request_body")?,
        response_status: row.opt_int("response_status")?.map(|s| s as u16),
        response_headers: row
            .opt_text("response_headers")?
            .map(|s| headers_from_json(&s))
            .transpose()?,
        response_body: row.opt_text("response_body")?,
        error_kind: row.error_kind("error_kind")?,
        error: row.opt_text("error")?,
    })
}

pub fn event_from_row(row: &impl Cols) -> Result<StoredEvent> {
    Ok(StoredEvent {
        id: row.id("id")?,
        account_id: row.id("account_id")?,
        event_id: row.id("event_id")?,
        call_id: row.id("call_id")?,
        event_type: row.text("type")?,
        occurred_at: row.ts("occurred_at")?,
        received_at: row.ts("received_at")?,
        test: row.boolean("test")?,
        did_number: row.opt_text("did_number")?,
        customer_number: row.opt_text("customer_number")?,
        payload: row.text("payload")?,
    })
}

/// The webhook stats columns of `webhook_stats`.
pub fn stats_from_row(row: &impl Cols) -> Result<(WebhookId, WebhookStats)> {
    Ok((
        row.id("id")?,
        WebhookStats {
            succeeded: row.int("succeeded")? as u64,
            failed: row.int("failed")? as u64,
            pending: row.int("pending")? as u64,
            last_delivery_at: row.opt_ts("last_delivery_at")?,
        },
    ))
}

/// A session joined with its user (`session_with_user`).
pub fn session_user_from_row(row: &impl Cols) -> Result<(Session, User)> {
    let session = Session {
        id: row.text("id")?,
        user_id: row.id("user_id")?,
        csrf: row.text("csrf")?,
        created_at: row.ts("created_at")?,
        expires_at: row.ts("expires_at")?,
    };
    let user = User {
        id: session.user_id.clone(),
        account_id: row.id("account_id")?,
        email: row.text("email")?,
        password_hash: row.text("password_hash")?,
        role: role(row, "role")?,
        created_at: row.ts("user_created_at")?,
    };
    Ok((session, user))
}

pub fn hourly_from_row(row: &impl Cols) -> Result<HourlyDeliveries> {
    Ok(HourlyDeliveries {
        hour: row.ts("hour")?,
        succeeded: row.int("succeeded")? as u64,
        failed: row.int("failed")? as u64,
        pending: row.int("pending")? as u64,
    })
}
