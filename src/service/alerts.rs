//! The caller's account and its alerts (SPEC §12): where alerts go (`alert_url`), after how
//! long a failing webhook is alerted (`alert_after`), the alert signing secret (admins only),
//! and the alerts' own delivery log. Every role reads the settings; changing them and
//! rotating the secret are changes, recorded in the audit log (never the secret).

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::{Actor, Denied, Failure, IntoFailure, Need, stored_now};
use crate::core::alert;
use crate::core::audit::{Action, Change};
use crate::core::id::DeliveryId;
use crate::core::validate::{FieldErrors, Fields};
use crate::core::webhook::WebhookUrl;
use crate::store::{
    Account, AccountAlerts, Attempt, Delivery, DeliveryFilter, Page, PageRequest, Store, StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    Invalid(FieldErrors),
    #[error("alert delivery not found")]
    NotFound,
    /// The settings changed since they were read.
    #[error("{0}")]
    Stale(String),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AlertError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AlertError::NotFound,
            StoreError::Conflict(m) => AlertError::Stale(m),
            e => AlertError::Store(e),
        }
    }
}

impl IntoFailure for AlertError {
    fn into_failure(self) -> Failure {
        match self {
            AlertError::Invalid(f) => Failure::Invalid(f),
            AlertError::NotFound => Failure::NotFound("alert delivery"),
            AlertError::Stale(m) => Failure::Conflict(m),
            AlertError::Denied(d) => d.into_failure(),
            AlertError::Store(e) => e.into_failure(),
        }
    }
}

/// The account as its users see it: its alert settings, and the alert secret only for a role
/// that may read secrets.
#[derive(Debug, Clone)]
pub struct AccountView {
    pub account: Account,
    pub alerts: AccountAlerts,
    /// `whsec_…`, for admins (and owners); `None` for viewers.
    pub secret: Option<String>,
}

/// The keys a `PATCH /v1/account` body takes.
pub const PATCH_KEYS: &[&str] = &["alert_url", "alert_after"];

/// A change of the alert settings: each field given, `alert_url: null` (or `""`) turning
/// alerts off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    pub url: Option<Option<String>>,
    pub after: Option<Duration>,
}

/// Reads a patch: every bad field named.
pub fn parse_patch(obj: &Map<String, Value>) -> Result<Patch, FieldErrors> {
    let mut f = Fields::new("", obj, PATCH_KEYS);
    let mut patch = Patch::default();
    if obj.contains_key("alert_url") {
        patch.url = match f.str("alert_url").map(str::trim) {
            None | Some("") => Some(None),
            Some(s) => match WebhookUrl::parse(s) {
                Ok(u) => Some(Some(u.as_str().to_owned())),
                Err(e) => {
                    f.error("alert_url", e);
                    None
                }
            },
        };
    }
    if obj.contains_key("alert_after") {
        match f.value("alert_after") {
            Some(Value::String(s)) => match alert::parse_after(s) {
                Ok(d) => patch.after = Some(d),
                Err(e) => f.error("alert_after", e),
            },
            Some(other) => f.error(
                "alert_after",
                format!(
                    "must be a duration string like \"10m\", not {}",
                    crate::core::validate::kind(other)
                ),
            ),
            None => patch.after = Some(alert::AFTER_DEFAULT),
        }
    }
    f.finish().into_result(patch)
}

fn view(actor: &Actor, account: Account, alerts: AccountAlerts) -> AccountView {
    let secret = actor
        .can(Need::ReadSecrets)
        .then(|| alerts.current_secret().map(|s| s.secret.expose()))
        .flatten();
    AccountView {
        account,
        alerts,
        secret,
    }
}

/// The caller's account with its alert settings. Reading the alert secret (admins) is
/// recorded in the audit log before it is answered.
pub async fn get(store: &dyn Store, actor: &Actor) -> Result<AccountView, AlertError> {
    actor.may(Need::Read)?;
    let account = store.get_account(actor.account()).await?;
    let alerts = store.account_alerts(actor.account()).await?;
    let v = view(actor, account, alerts);
    if v.secret.is_some() {
        let entry = actor.entry(
            Action::AlertSecretReveal,
            actor.account().as_str(),
            vec![Change::secret("alert_secret", "revealed")],
        );
        store.record_audit(&entry).await?;
    }
    Ok(v)
}

/// The alert secret alone (for the web page's Reveal and Copy), recorded in the audit log
/// before it is answered.
pub async fn secret(store: &dyn Store, actor: &Actor) -> Result<String, AlertError> {
    actor.may(Need::ReadSecrets)?;
    let alerts = store.account_alerts(actor.account()).await?;
    let entry = actor.entry(
        Action::AlertSecretReveal,
        actor.account().as_str(),
        vec![Change::secret("alert_secret", "revealed")],
    );
    store.record_audit(&entry).await?;
    Ok(alerts
        .current_secret()
        .map(|s| s.secret.expose())
        .unwrap_or_default())
}

/// An alert's type (`webhook.failing`, …), read from its event id (`<type>:<id>`).
pub fn kind_of(d: &Delivery) -> &str {
    d.event_id.as_str().split(':').next().unwrap_or("")
}

/// The settings without the secret, for pages that only show them (no audit row).
pub async fn settings(store: &dyn Store, actor: &Actor) -> Result<AccountView, AlertError> {
    actor.may(Need::Read)?;
    let account = store.get_account(actor.account()).await?;
    let alerts = store.account_alerts(actor.account()).await?;
    Ok(AccountView {
        account,
        alerts,
        secret: None,
    })
}

/// The fields a change moved, for the audit log.
fn changes(before: &AccountAlerts, after: &AccountAlerts) -> Vec<Change> {
    let mut out = Vec::new();
    if before.url != after.url {
        out.push(Change::new(
            "alert_url",
            json!(before.url),
            json!(after.url),
        ));
    }
    if before.after != after.after {
        out.push(Change::new(
            "alert_after",
            json!(alert::format_after(before.after)),
            json!(alert::format_after(after.after)),
        ));
    }
    out
}

/// Changes the alert settings from a `PATCH /v1/account` body (or the web form).
pub async fn patch(
    store: &dyn Store,
    actor: &Actor,
    obj: &Map<String, Value>,
) -> Result<AccountView, AlertError> {
    actor.may(Need::Change)?;
    let p = parse_patch(obj).map_err(AlertError::Invalid)?;
    let account = store.get_account(actor.account()).await?;
    let before = store.account_alerts(actor.account()).await?;
    let mut after = before.clone();
    if let Some(url) = p.url {
        after.url = url;
    }
    if let Some(d) = p.after {
        after.after = d;
    }
    let moved = changes(&before, &after);
    if !moved.is_empty() {
        after.updated_at =
            stored_now().max(before.updated_at + jiff::SignedDuration::from_millis(1));
        let entry = actor.entry(Action::AccountAlertsUpdate, actor.account().as_str(), moved);
        store
            .update_account_alerts(&after, before.updated_at, &entry)
            .await?;
    }
    Ok(view(actor, account, after))
}

/// Gives the alert receiver a new signing secret; the old one signs on for 24 hours.
pub async fn rotate(store: &dyn Store, actor: &Actor) -> Result<AccountView, AlertError> {
    actor.may(Need::Change)?;
    let account = store.get_account(actor.account()).await?;
    let before = store.account_alerts(actor.account()).await?;
    let mut after = before.clone();
    let now = stored_now().max(before.updated_at + jiff::SignedDuration::from_millis(1));
    after.rotate_secret(now);
    after.updated_at = now;
    let entry = actor.entry(
        Action::AlertSecretRotate,
        actor.account().as_str(),
        vec![Change::secret("alert_secret", "rotated")],
    );
    store
        .update_account_alerts(&after, before.updated_at, &entry)
        .await?;
    Ok(view(actor, account, after))
}

/// The alerts sent (and being sent) to the account's alert receiver, newest first.
pub async fn log(
    store: &dyn Store,
    actor: &Actor,
    page: &PageRequest,
) -> Result<Page<Delivery>, AlertError> {
    actor.may(Need::Read)?;
    let alerts = store.account_alerts(actor.account()).await?;
    Ok(store
        .list_deliveries(
            &alert::scope(actor.account()),
            &alerts.id,
            &DeliveryFilter::default(),
            page,
        )
        .await?)
}

/// One alert delivery with its attempts and its body.
pub async fn delivery(
    store: &dyn Store,
    actor: &Actor,
    id: &DeliveryId,
) -> Result<(Delivery, Vec<Attempt>), AlertError> {
    actor.may(Need::Read)?;
    Ok(store
        .get_delivery(&alert::scope(actor.account()), id)
        .await?)
}

/// When the alert secret signing before a rotation stops signing, if one is still live.
pub fn previous_expires(alerts: &AccountAlerts, now: Timestamp) -> Option<Timestamp> {
    alerts
        .secrets
        .iter()
        .skip(1)
        .filter(|s| s.is_live(now))
        .filter_map(|s| s.expires_at)
        .max()
}
