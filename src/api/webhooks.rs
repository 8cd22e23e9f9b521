//! `/v1/webhooks`: the webhooks of SPEC §3, and their signing secrets.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, Caller, JsonBody, ListParams};
use super::problem::{ApiError, ApiResult, OrNotFound, Problem};
use super::{AppState, ListOf, ts};
use crate::core::event::CallType;
use crate::core::id::{is_id, new_id};
use crate::core::number::E164;
use crate::core::sign::Secret;
use crate::core::trigger::Trigger;
use crate::core::validate::FieldErrors;
use crate::core::webhook::{Header, WebhookSpec};
use crate::store::{StoredSecret, Webhook};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(
            get_webhook,
            replace_webhook,
            patch_webhook,
            delete_webhook
        ))
        .routes(routes!(get_secret))
        .routes(routes!(rotate_secret))
}

/// A webhook as the API shows it (SPEC §3).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookOut {
    pub id: String,
    pub name: String,
    pub description: String,
    pub trigger: Trigger,
    pub url: String,
    /// `GET` or `POST`.
    pub method: String,
    pub call_types: Vec<CallType>,
    /// `application/json` or `application/x-www-form-urlencoded`.
    pub content_type: String,
    /// E.164 numbers; empty means all of the account's numbers.
    pub numbers: Vec<String>,
    /// IANA time zone the receiver's timestamps are written in.
    pub time_zone: String,
    pub headers: Vec<Header>,
    /// Requests per second, or `null` for no limit.
    pub rate_limit: Option<f64>,
    pub enabled: bool,
    /// Why the webhook is disabled, and since when.
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The signing secret; only in the answer to a create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<&Webhook> for WebhookOut {
    fn from(w: &Webhook) -> Self {
        let s = &w.spec;
        WebhookOut {
            id: w.id.clone(),
            name: s.name.clone(),
            description: s.description.clone(),
            trigger: s.trigger,
            url: s.url.to_string(),
            method: s.method.as_str().to_owned(),
            call_types: s.call_types.clone(),
            content_type: s.content_type.as_str().to_owned(),
            numbers: s.numbers.iter().map(ToString::to_string).collect(),
            time_zone: s.time_zone.name().to_owned(),
            headers: s.headers.clone(),
            rate_limit: s.rate_limit,
            enabled: s.enabled,
            disabled_reason: w.disabled_reason.clone(),
            created_at: ts(w.created_at),
            updated_at: ts(w.updated_at),
            secret: None,
        }
    }
}

/// What a create (POST) or replace (PUT) takes; PATCH takes any subset.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WebhookInput {
    /// 1 to 100 characters.
    pub name: String,
    /// Up to 1000 characters.
    pub description: Option<String>,
    pub trigger: Trigger,
    /// Absolute http(s) URL, no user name or password, at most 2048 characters.
    pub url: String,
    /// `GET` or `POST` (default).
    pub method: Option<String>,
    /// Non-empty; default all three.
    pub call_types: Option<Vec<CallType>>,
    /// `application/json` (default) or `application/x-www-form-urlencoded`.
    pub content_type: Option<String>,
    /// Numbers of this account; empty (default) means all.
    pub numbers: Option<Vec<String>>,
    /// IANA zone; default `UTC`.
    pub time_zone: Option<String>,
    /// Up to 20. Keys are HTTP tokens; `host`, `content-length`, `content-type`,
    /// `transfer-encoding`, `connection`, `user-agent` and `webhook-*` are refused.
    pub headers: Option<Vec<Header>>,
    /// Requests per second, 0.1 to 1000, or `null` for none.
    pub rate_limit: Option<f64>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretOut {
    /// `whsec_…`: signs every request from now on.
    pub secret: String,
    /// Secrets rotated out less than 24 hours ago: they still sign, beside the current one.
    pub previous: Vec<PreviousSecret>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreviousSecret {
    pub secret: String,
    pub expires_at: String,
}

impl SecretOut {
    fn of(w: &Webhook, now: Timestamp) -> SecretOut {
        SecretOut {
            secret: w
                .current_secret()
                .map(|s| s.secret.expose())
                .unwrap_or_default(),
            previous: w
                .secrets
                .iter()
                .filter_map(|s| match s.expires_at {
                    Some(e) if e > now => Some(PreviousSecret {
                        secret: s.secret.expose(),
                        expires_at: ts(e),
                    }),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// The numbers in a body's `numbers` that are well-formed but not the account's, each named by
/// its place in the body (`numbers[1]`), so that they are reported with every other bad field.
/// Malformed entries are left to [`WebhookSpec::from_json`].
async fn unowned_numbers(
    state: &AppState,
    account_id: &str,
    numbers: Option<&Value>,
) -> ApiResult<FieldErrors> {
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
    let unknown = state.store.unknown_numbers(account_id, &all).await?;
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
) -> ApiResult<WebhookSpec> {
    match spec {
        Ok(spec) if unowned.is_empty() => Ok(spec),
        Ok(_) => Err(unowned.into()),
        Err(mut errors) => {
            errors.0.extend(unowned.0);
            Err(errors.into())
        }
    }
}

/// Parses a create or replace body and checks its numbers are the account's: every problem
/// found, or the spec. The REST API and the web form both validate through here.
pub async fn validate_spec(
    state: &AppState,
    account_id: &str,
    obj: &serde_json::Map<String, Value>,
) -> ApiResult<WebhookSpec> {
    let unowned = unowned_numbers(state, account_id, obj.get("numbers")).await?;
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

/// The account's webhook `id`; 404 for a malformed id or another account's webhook.
pub async fn load(state: &AppState, account_id: &str, id: &str) -> ApiResult<Webhook> {
    if !is_id("wh", id) {
        return Err(ApiError::NotFound("webhook"));
    }
    state
        .store
        .get_webhook(account_id, id)
        .await
        .or_404("webhook")
}

/// Creates a webhook. The answer carries its signing secret.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookInput,
    responses((status = 201, body = WebhookOut), (status = 422, body = Problem)))]
async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    let account_id = caller.account()?;
    let spec = validate_spec(&state, account_id, body.object()?).await?;
    let (webhook, secret) = insert(&state, account_id, spec).await?;
    let mut out = WebhookOut::from(&webhook);
    out.secret = Some(secret.expose());
    Ok((StatusCode::CREATED, Json(out)))
}

/// Stores a new webhook with a fresh signing secret; answers it and the secret.
pub async fn insert(
    state: &AppState,
    account_id: &str,
    spec: WebhookSpec,
) -> ApiResult<(Webhook, Secret)> {
    let now = Timestamp::now();
    let secret = Secret::generate();
    let webhook = Webhook {
        id: new_id("wh"),
        account_id: account_id.to_owned(),
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
    };
    state.store.insert_webhook(&webhook).await?;
    Ok((webhook, secret))
}

/// Lists the account's webhooks, oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(ListParams),
    responses((status = 200, body = ListOf<WebhookOut>)))]
async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<ListOf<WebhookOut>>> {
    let page = state
        .store
        .list_webhooks(caller.account()?, &params.page()?)
        .await?;
    Ok(Json(ListOf::from_page(page, |w| WebhookOut::from(&w))))
}

/// One webhook.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookOut), (status = 404, body = Problem)))]
async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    let w = load(&state, caller.account()?, &id).await?;
    Ok(Json(WebhookOut::from(&w)))
}

/// Replaces every field; those left out take their defaults.
#[utoipa::path(put, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = WebhookInput,
    responses((status = 200, body = WebhookOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn replace_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<WebhookOut>> {
    let account_id = caller.account()?;
    let mut w = load(&state, account_id, &id).await?;
    let spec = validate_spec(&state, account_id, body.object()?).await?;
    save(&state, &mut w, spec).await
}

/// Changes the given fields; the result is validated as a whole.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = WebhookInput,
    responses((status = 200, body = WebhookOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn patch_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<WebhookOut>> {
    let account_id = caller.account()?;
    let mut w = load(&state, account_id, &id).await?;
    let patch = body.object()?;
    let unowned = unowned_numbers(&state, account_id, patch.get("numbers")).await?;
    let spec = validated(w.spec.patched(patch), unowned)?;
    save(&state, &mut w, spec).await
}

/// Stores a validated spec; answers the webhook.
async fn save(state: &AppState, w: &mut Webhook, spec: WebhookSpec) -> ApiResult<Json<WebhookOut>> {
    update(state, w, spec).await?;
    Ok(Json(WebhookOut::from(&*w)))
}

/// Replaces a webhook's spec with a validated one, keeping `disabled_reason` in step.
/// Refused (409) when the webhook changed since `w` was read, so a stale form or a PATCH
/// racing callhook's own 410 disable never silently undoes the other change.
pub async fn update(state: &AppState, w: &mut Webhook, spec: WebhookSpec) -> ApiResult<()> {
    let read_at = w.updated_at;
    let now = stored_now();
    let was_enabled = w.spec.enabled;
    w.spec = spec;
    w.updated_at = now;
    note_enabled_change(w, was_enabled, now);
    state
        .store
        .update_webhook(w, read_at)
        .await
        .or_404("webhook")
}

/// Now, to the millisecond the store keeps (it is compared on the next write).
fn stored_now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}

/// Deletes a webhook; its unfinished deliveries end.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let account_id = caller.account()?;
    if !is_id("wh", &id) {
        return Err(ApiError::NotFound("webhook"));
    }
    state
        .store
        .delete_webhook(account_id, &id)
        .await
        .or_404("webhook")?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signing secret, and any rotated-out secret still signing.
#[utoipa::path(get, path = "/v1/webhooks/{id}/secret", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = SecretOut), (status = 404, body = Problem)))]
async fn get_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretOut>> {
    let w = load(&state, caller.account()?, &id).await?;
    Ok(Json(SecretOut::of(&w, Timestamp::now())))
}

/// Makes a new signing secret. The old one keeps signing too, for 24 hours.
#[utoipa::path(post, path = "/v1/webhooks/{id}/secret/rotate", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = SecretOut), (status = 404, body = Problem)))]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretOut>> {
    let mut w = load(&state, caller.account()?, &id).await?;
    let now = rotate(&state, &mut w).await?;
    Ok(Json(SecretOut::of(&w, now)))
}

/// Gives a webhook a new signing secret (the old one signs on for 24 hours); answers when.
/// A rotation depends on nothing else of the webhook, so when another change got in first it
/// is simply redone on the fresh copy.
pub async fn rotate(state: &AppState, w: &mut Webhook) -> ApiResult<Timestamp> {
    for _ in 0..3 {
        let read_at = w.updated_at;
        let now = stored_now();
        w.rotate_secret(now);
        w.updated_at = now;
        match state.store.update_webhook(w, read_at).await {
            Ok(()) => return Ok(now),
            Err(crate::store::StoreError::Conflict(_)) => {
                *w = load(state, &w.account_id.clone(), &w.id.clone()).await?;
            }
            Err(e) => return Err(ApiError::from(e)),
        }
    }
    Err(ApiError::Conflict(
        "the webhook keeps changing; try the rotation again".into(),
    ))
}
