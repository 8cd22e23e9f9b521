//! Webhooks (SPEC §3) and their signing secrets: create, read, change, enable or disable,
//! delete, reveal and rotate the secret. The REST API and the web form both come through
//! here, so a webhook is validated the same way whichever way it is saved. A viewer reads
//! webhooks with their custom header values masked; every change is recorded in the audit
//! log with the fields it moved.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{
    Actor, Denied, Failure, Holding, IntoFailure, Need, Quotas, or_not_found, stored_now, ts,
};
use crate::core::audit::{self, Action, Change};
use crate::core::id::WebhookId;
use crate::core::number::E164;
use crate::core::sign::Secret;
use crate::core::validate::FieldErrors;
use crate::core::webhook::{Header, MASK, WebhookSpec, keep_masked_values};
use crate::store::{Page, PageRequest, Store, StoreError, StoredSecret, Webhook, WebhookStats};

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook not found")]
    NotFound,
    /// Fields that break the rules of SPEC §3, every one of them.
    #[error("{0}")]
    Invalid(FieldErrors),
    /// The webhook changed since it was read (another admin, or callhook disabling it).
    #[error("{0}")]
    Stale(String),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for WebhookError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => WebhookError::NotFound,
            StoreError::Conflict(m) => WebhookError::Stale(m),
            e => WebhookError::Store(e),
        }
    }
}

impl IntoFailure for WebhookError {
    fn into_failure(self) -> Failure {
        match self {
            WebhookError::NotFound => Failure::NotFound("webhook"),
            WebhookError::Invalid(f) => Failure::Invalid(f),
            WebhookError::Stale(m) => Failure::Conflict(m),
            WebhookError::Denied(d) => d.into_failure(),
            WebhookError::Store(e) => e.into_failure(),
        }
    }
}

/// The numbers in a body's `numbers` that are well-formed but not the account's, each named by
/// its place in the body (`numbers[1]`), so that they are reported with every other bad field.
/// Malformed entries are left to [`WebhookSpec::from_json`].
async fn unowned_numbers(
    store: &dyn Store,
    actor: &Actor,
    numbers: Option<&Value>,
) -> Result<FieldErrors, WebhookError> {
    let given: Vec<(usize, E164)> = numbers
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(i, v)| Some((i, E164::parse(v.as_str()?).ok()?)))
                .collect()
        })
        .unwrap_or_default();
    let mut errors = FieldErrors::default();
    if given.is_empty() {
        return Ok(errors);
    }
    let all: Vec<E164> = given.iter().map(|(_, n)| n.clone()).collect();
    let unknown = store.unknown_numbers(actor.account(), &all).await?;
    for (i, n) in given {
        if unknown.contains(&n) {
            errors.push(
                format!("numbers[{i}]"),
                format!("{n} is not one of this account's numbers; add it under My Numbers first"),
            );
        }
    }
    Ok(errors)
}

/// A parsed spec, refused with every error found when it or its numbers are bad.
fn validated(
    spec: Result<WebhookSpec, FieldErrors>,
    unowned: FieldErrors,
) -> Result<WebhookSpec, WebhookError> {
    match spec {
        Ok(spec) if unowned.is_empty() => Ok(spec),
        Ok(_) => Err(WebhookError::Invalid(unowned)),
        Err(mut errors) => {
            errors.0.extend(unowned.0);
            Err(WebhookError::Invalid(errors))
        }
    }
}

/// Parses a create or replace body and checks its numbers are the account's: every problem
/// found, or the spec.
pub async fn validate(
    store: &dyn Store,
    actor: &Actor,
    obj: &Map<String, Value>,
) -> Result<WebhookSpec, WebhookError> {
    let unowned = unowned_numbers(store, actor, obj.get("numbers")).await?;
    validated(WebhookSpec::from_json(obj), unowned)
}

/// Keeps `disabled_reason` in step with `enabled` when an admin changes it.
fn note_enabled_change(w: &mut Webhook, was_enabled: bool, now: Timestamp) {
    match (was_enabled, w.spec.enabled) {
        (true, false) => w.disabled_reason = Some(format!("Disabled by an admin at {}", ts(now))),
        (_, true) => w.disabled_reason = None,
        (false, false) => {}
    }
}

/// What a custom header's value reads as to whoever may not see it.
pub const MASKED: &str = MASK;

/// The webhook as `actor` may see it: secret header values masked (SPEC §14: write-only); for
/// a role without secrets every custom header value masked and no signing secrets at all.
fn shown(actor: &Actor, mut w: Webhook) -> Webhook {
    let all = !actor.can(Need::ReadSecrets);
    for h in &mut w.spec.headers {
        if all || h.secret {
            h.value = MASKED.to_owned();
        }
    }
    if all {
        w.secrets.clear();
    }
    w
}

/// Webhook `id`'s custom headers with their values, secret ones included, for those who may
/// read secrets; recorded in the audit log (never the values).
pub async fn reveal_headers(
    store: &dyn Store,
    actor: &Actor,
    id: &WebhookId,
) -> Result<Vec<Header>, WebhookError> {
    actor.may(Need::ReadSecrets)?;
    let w = fetch(store, actor, id).await?;
    let entry = actor.entry(
        Action::HeaderReveal,
        id.as_str(),
        vec![Change::secret("headers", "revealed")],
    );
    store.record_audit(&entry).await?;
    Ok(w.spec.headers)
}

/// The account's webhook `id` as stored; not found for another account's webhook.
async fn fetch(store: &dyn Store, actor: &Actor, id: &WebhookId) -> Result<Webhook, WebhookError> {
    store
        .get_webhook(actor.account(), id)
        .await
        .map_err(|e| or_not_found(e, WebhookError::NotFound))
}

/// The account's webhook `id`, as the actor may see it.
pub async fn get(
    store: &dyn Store,
    actor: &Actor,
    id: &WebhookId,
) -> Result<Webhook, WebhookError> {
    actor.may(Need::Read)?;
    Ok(shown(actor, fetch(store, actor, id).await?))
}

/// Webhook `id` whole, to change it (the edit form): for those who may change it.
pub async fn to_change(
    store: &dyn Store,
    actor: &Actor,
    id: &WebhookId,
) -> Result<Webhook, WebhookError> {
    actor.may(Need::Change)?;
    fetch(store, actor, id).await
}

/// Whether the actor may add a webhook (the Add Webhook form asks before it shows).
pub fn may_create(actor: &Actor) -> Result<(), WebhookError> {
    Ok(actor.may(Need::Change)?)
}

pub async fn list(
    store: &dyn Store,
    actor: &Actor,
    page: &PageRequest,
) -> Result<Page<Webhook>, WebhookError> {
    actor.may(Need::Read)?;
    let mut page = store.list_webhooks(actor.account(), page).await?;
    page.items = page.items.into_iter().map(|w| shown(actor, w)).collect();
    Ok(page)
}

/// Outcome counts over each of the account's webhooks' `recent` latest deliveries.
pub async fn stats(
    store: &dyn Store,
    actor: &Actor,
    recent: u32,
) -> Result<Vec<(WebhookId, WebhookStats)>, WebhookError> {
    actor.may(Need::Read)?;
    Ok(store.webhook_stats(actor.account(), recent).await?)
}

/// Creates a webhook from a create body; answers it and its signing secret (shown once).
pub async fn create(
    store: &dyn Store,
    quotas: &Quotas,
    actor: &Actor,
    obj: &Map<String, Value>,
) -> Result<(Webhook, Secret), WebhookError> {
    actor.may(Need::Change)?;
    let spec = validate(store, actor, obj).await?;
    quotas
        .check(store, actor.account(), Holding::Webhooks)
        .await
        .map_err(WebhookError::Store)?;
    let now = Timestamp::now();
    let secret = Secret::generate();
    let webhook = Webhook {
        id: WebhookId::new(),
        account_id: actor.account().clone(),
        disabled_reason: (!spec.enabled).then(|| format!("Created disabled at {}", ts(now))),
        spec,
        secrets: vec![StoredSecret {
            secret: secret.clone(),
            created_at: now,
            expires_at: None,
        }],
        created_at: now,
        updated_at: now,
        last_success_at: None,
        failing_since: None,
        hold_until: None,
        last_failure_at: None,
        last_error: None,
        recent: Default::default(),
    };
    let entry = actor.entry(
        Action::WebhookCreate,
        webhook.id.as_str(),
        audit::created(audit::webhook_fields(&webhook.spec)),
    );
    store.insert_webhook(&webhook, &entry).await?;
    Ok((shown(actor, webhook), secret))
}

/// Replaces every field of webhook `id` (those left out take their defaults).
pub async fn replace(
    store: &dyn Store,
    actor: &Actor,
    id: &WebhookId,
    obj: &Map<String, Value>,
) -> Result<Webhook, WebhookError> {
    actor.may(Need::Change)?;
    let mut w = fetch(store, actor, id).await?;
    let mut spec = validate(store, actor, obj).await?;
    keep_masked_values(&w.spec.headers, &mut spec.headers);
    save(store, actor, &mut w, spec).await?;
    Ok(shown(actor, w))
}

/// Changes the given fields of webhook `id`; the result is validated as a whole.
pub async fn patch(
    store: &dyn Store,
    actor: &Actor,
    id: &WebhookId,
    patch: &Map<String, Value>,
) -> Result<Webhook, WebhookError> {
    actor.may(Need::Change)?;
    let mut w = fetch(store, actor, id).await?;
    let unowned = unowned_numbers(store, actor, patch.get("numbers")).await?;
    let mut spec = validated(w.spec.patched(patch), unowned)?;
    keep_masked_values(&w.spec.headers, &mut spec.headers);
    save(store, actor, &mut w, spec).await?;
    Ok(shown(actor, w))
}

/// Enables or disables webhook `id` (one click in the web page).
pub async fn set_enabled(
    store: &dyn Store,
    actor: &Actor,
    id: &WebhookId,
    on: bool,
) -> Result<Webhook, WebhookError> {
    actor.may(Need::Change)?;
    let mut w = fetch(store, actor, id).await?;
    let mut spec = w.spec.clone();
    spec.enabled = on;
    save(store, actor, &mut w, spec).await?;
    Ok(shown(actor, w))
}

/// Replaces a webhook's spec with a validated one, keeping `disabled_reason` in step, and
/// records what changed: `webhook.enable` / `webhook.disable` when that is all, else
/// `webhook.update`. Refused ([`WebhookError::Stale`]) when the webhook changed since `w` was
/// read, so a stale form or a PATCH racing callhook's own 410 disable never silently undoes
/// the other change.
async fn save(
    store: &dyn Store,
    actor: &Actor,
    w: &mut Webhook,
    spec: WebhookSpec,
) -> Result<(), WebhookError> {
    let read_at = w.updated_at;
    let now = stored_now();
    let was_enabled = w.spec.enabled;
    let changes = audit::webhook_changes(&w.spec, &spec);
    let action = match changes.as_slice() {
        [only] if only.field == "enabled" && spec.enabled => Action::WebhookEnable,
        [only] if only.field == "enabled" => Action::WebhookDisable,
        _ => Action::WebhookUpdate,
    };
    w.spec = spec;
    w.updated_at = now;
    note_enabled_change(w, was_enabled, now);
    let entry = actor.entry(action, w.id.as_str(), changes);
    Ok(store.update_webhook(w, read_at, &entry).await?)
}

/// Deletes webhook `id`; its unfinished deliveries end.
pub async fn delete(store: &dyn Store, actor: &Actor, id: &WebhookId) -> Result<(), WebhookError> {
    actor.may(Need::Change)?;
    let w = fetch(store, actor, id).await?;
    let entry = actor.entry(
        Action::WebhookDelete,
        id.as_str(),
        audit::removed(audit::webhook_fields(&w.spec)),
    );
    Ok(store.delete_webhook(actor.account(), id, &entry).await?)
}

/// A webhook's signing secrets at one moment.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// Signs every request from now on.
    pub current: Option<Secret>,
    /// Rotated out less than 24 hours ago: they still sign, beside the current one, until
    /// their time.
    pub previous: Vec<(Secret, Timestamp)>,
}

impl Secrets {
    fn of(w: &Webhook, now: Timestamp) -> Secrets {
        Secrets {
            current: w.current_secret().map(|s| s.secret.clone()),
            previous: w
                .secrets
                .iter()
                .filter_map(|s| match s.expires_at {
                    Some(e) if e > now => Some((s.secret.clone(), e)),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// The signing secret of webhook `id`, and any rotated-out secret still signing. Revealing it
/// is recorded in the audit log before it is answered.
pub async fn secrets(
    store: &dyn Store,
    actor: &Actor,
    id: &WebhookId,
) -> Result<Secrets, WebhookError> {
    actor.may(Need::ReadSecrets)?;
    let w = fetch(store, actor, id).await?;
    let entry = actor.entry(
        Action::SecretReveal,
        id.as_str(),
        vec![Change::secret("secret", "revealed")],
    );
    store.record_audit(&entry).await?;
    Ok(Secrets::of(&w, Timestamp::now()))
}

/// Gives webhook `id` a new signing secret (the old one signs on for 24 hours). A rotation
/// depends on nothing else of the webhook, so when another change got in first it is simply
/// redone on the fresh copy.
pub async fn rotate(
    store: &dyn Store,
    actor: &Actor,
    id: &WebhookId,
) -> Result<Secrets, WebhookError> {
    actor.may(Need::Change)?;
    let mut w = fetch(store, actor, id).await?;
    for _ in 0..3 {
        let read_at = w.updated_at;
        let now = stored_now();
        w.rotate_secret(now);
        w.updated_at = now;
        let entry = actor.entry(
            Action::SecretRotate,
            id.as_str(),
            vec![Change::secret("secret", "rotated")],
        );
        match store.update_webhook(&w, read_at, &entry).await {
            Ok(()) => return Ok(Secrets::of(&w, now)),
            Err(StoreError::Conflict(_)) => w = fetch(store, actor, id).await?,
            Err(e) => return Err(e.into()),
        }
    }
    Err(WebhookError::Stale(
        "the webhook keeps changing; try the rotation again".into(),
    ))
}
