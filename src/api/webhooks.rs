//! `/v1/webhooks`: the webhooks of SPEC §3, and their signing secrets.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, Caller, JsonBody, ListParams};
use super::problem::{ApiResult, Problem};
use super::{ApiState, ListOf, ts};
use crate::core::event::CallType;
use crate::core::shape::{Payload, TimeFormat};
use crate::core::trigger::Trigger;
use crate::service::parse_id;
use crate::service::webhooks::{self, Secrets};
use crate::store::{ErrorKind, HealthState, Webhook};

pub fn router() -> OpenApiRouter<ApiState> {
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
    pub headers: Vec<HeaderOut>,
    /// `standard`: every parameter of the trigger, then `body_fields`; `custom`: only
    /// `body_fields`.
    pub payload: Payload,
    /// The admin's own rows, in order.
    pub body_fields: Vec<BodyFieldIo>,
    /// How timestamps are written: `rfc3339`, `local` or `unix`.
    pub time_format: TimeFormat,
    /// Requests per second, or `null` for no limit.
    pub rate_limit: Option<f64>,
    pub enabled: bool,
    /// Why the webhook is disabled, and since when.
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// How it is doing (SPEC §12); test deliveries never count.
    pub health: HealthOut,
    /// The signing secret; only in the answer to a create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<&Webhook> for WebhookOut {
    fn from(w: &Webhook) -> Self {
        let s = &w.spec;
        WebhookOut {
            id: w.id.to_string(),
            name: s.name.clone(),
            description: s.description.clone(),
            trigger: s.trigger,
            url: s.url.to_string(),
            method: s.method.as_str().to_owned(),
            call_types: s.call_types.clone(),
            content_type: s.content_type.as_str().to_owned(),
            numbers: s.numbers.iter().map(ToString::to_string).collect(),
            time_zone: s.time_zone.name().to_owned(),
            headers: s
                .headers
                .iter()
                .map(|h| HeaderOut {
                    key: h.key.clone(),
                    value: h.value.clone(),
                    secret: h.secret,
                })
                .collect(),
            payload: s.payload,
            body_fields: s
                .body_fields
                .iter()
                .map(|r| BodyFieldIo {
                    key: r.key.clone(),
                    value: r.value.clone(),
                })
                .collect(),
            time_format: s.time_format,
            rate_limit: s.rate_limit,
            enabled: s.enabled,
            disabled_reason: w.disabled_reason.clone(),
            created_at: ts(w.created_at),
            updated_at: ts(w.updated_at),
            health: HealthOut::from(w),
            secret: None,
        }
    }
}

/// A custom header as the API answers it. A secret header's value reads `********` (it is
/// write-only); a viewer reads every value so.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HeaderOut {
    pub key: String,
    pub value: String,
    pub secret: bool,
}

/// A custom header as a create, replace or patch takes it.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct HeaderIn {
    /// An HTTP header name (a token), at most 256 characters.
    pub key: String,
    /// A template (`$name`, `${name}`, `$$` for `$`), at most 4,096 bytes, no CR, LF or NUL.
    /// `********` for a header that is secret now keeps its stored value and keeps it secret,
    /// so a webhook as `GET` answered it can be sent back as it is.
    pub value: String,
    /// Write-only value: answers show it as `********`, and so does the attempt log. Default:
    /// true when the name contains `auth`, `token`, `secret`, `password`, `passwd`, `key`,
    /// `cookie`, `session`, `signature` or `credential` (any case), else false.
    pub secret: Option<bool>,
}

/// A webhook's health (SPEC §12): its state from its latest attempt, its latest failure, and
/// its last 24 hours (whole hours, from an hourly rollup).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthOut {
    /// `healthy` (the latest attempt succeeded), `failing` (it failed; since `failing_since`),
    /// `disabled` (see `disabled_reason`) or `idle` (nothing sent yet).
    pub state: HealthState,
    /// When the current run of failed attempts began; `null` unless failing.
    pub failing_since: Option<String>,
    pub disabled_reason: Option<String>,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    /// What went wrong with the latest failed attempt.
    pub last_error: Option<LastErrorOut>,
    /// Deliveries that succeeded in the last 24 hours.
    pub succeeded: u64,
    /// Deliveries that used every attempt in the last 24 hours.
    pub failed: u64,
    /// Deliveries pending after a failed attempt, now.
    pub retrying: u64,
    /// Share of the last 24 hours' attempts that succeeded (0 to 1); `null` without attempts.
    pub success_rate: Option<f64>,
    /// Attempt latency in the last 24 hours, estimated from a histogram; `null` without
    /// attempts.
    pub p50_ms: Option<u32>,
    pub p95_ms: Option<u32>,
}

/// A failed attempt's kind, HTTP status (for `http_status` and `redirect`) and message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LastErrorOut {
    pub kind: ErrorKind,
    pub status: Option<u16>,
    pub message: String,
}

impl From<&Webhook> for HealthOut {
    fn from(w: &Webhook) -> Self {
        let state = w.health_state();
        HealthOut {
            state,
            failing_since: w
                .failing_since
                .filter(|_| state == HealthState::Failing)
                .map(ts),
            disabled_reason: w.disabled_reason.clone().filter(|_| !w.spec.enabled),
            last_success_at: w.last_success_at.map(ts),
            last_failure_at: w.last_failure_at.map(ts),
            last_error: w.last_error.as_ref().map(|e| LastErrorOut {
                kind: e.kind,
                status: e.status,
                message: e.message.clone(),
            }),
            succeeded: w.recent.succeeded,
            failed: w.recent.failed,
            retrying: w.recent.retrying,
            success_rate: w.recent.success_rate(),
            p50_ms: w.recent.p50_ms(),
            p95_ms: w.recent.p95_ms(),
        }
    }
}

/// One body row as the API reads and writes it.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BodyFieldIo {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub key: String,
    /// A template: literal text with `$name` / `${name}` references and `$$` for `$`; up to
    /// 2,000 characters.
    #[schema(max_length = 2000)]
    pub value: String,
}

/// What a create (POST) or replace (PUT) takes.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WebhookInput {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Up to 1000 characters.
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    pub trigger: Trigger,
    /// Absolute http(s) URL, no user name or password, at most 2048 characters. Its path and
    /// query may hold references to the trigger's parameters, filled in percent-encoded.
    #[schema(max_length = 2048, pattern = r"^[hH][tT][tT][pP][sS]?://[^\u0000]*$")]
    pub url: String,
    /// `GET` or `POST` (default).
    #[schema(value_type = Option<crate::core::webhook::Method>)]
    pub method: Option<String>,
    /// Non-empty; default all three.
    #[schema(min_items = 1)]
    pub call_types: Option<Vec<CallType>>,
    /// `application/json` (default) or `application/x-www-form-urlencoded`.
    #[schema(value_type = Option<crate::core::webhook::ContentType>)]
    pub content_type: Option<String>,
    /// Numbers of this account; empty (default) means all.
    pub numbers: Option<Vec<String>>,
    /// IANA zone; default `UTC`.
    pub time_zone: Option<String>,
    /// Up to 20. Keys are HTTP tokens; `host`, `content-length`, `content-type`,
    /// `transfer-encoding`, `connection`, `user-agent` and `webhook-*` are refused.
    /// Header values may hold references to the trigger's parameters (`$name`, `${name}`).
    #[schema(max_items = 20)]
    pub headers: Option<Vec<HeaderIn>>,
    /// `standard` (default) or `custom`.
    pub payload: Option<Payload>,
    /// Up to 50 rows. Keys: 1 to 100 characters, unique; dots nest in JSON bodies
    /// (`lead.phone`), and a dotted key may not also be a leaf. Values: up to 2,000
    /// characters, templates over the trigger's parameters (`$customer_number`,
    /// `lead-${call_id}`, `$$` for `$`); a value that is exactly one reference keeps the
    /// parameter's JSON type.
    #[schema(max_items = 50)]
    pub body_fields: Option<Vec<BodyFieldIo>>,
    /// `rfc3339` (default), `local` or `unix`.
    pub time_format: Option<TimeFormat>,
    /// Requests per second, 0.1 to 1000, or `null` for none.
    #[schema(minimum = 0.1, maximum = 1000.0)]
    pub rate_limit: Option<f64>,
    /// Default `true`.
    pub enabled: Option<bool>,
    /// Read-only, like the three below: callhook keeps them, so a webhook as `GET` answered
    /// it can be sent back as it is; their values are ignored.
    #[schema(read_only)]
    pub id: Option<String>,
    #[schema(read_only)]
    pub disabled_reason: Option<String>,
    #[schema(read_only)]
    pub created_at: Option<String>,
    #[schema(read_only)]
    pub updated_at: Option<String>,
    /// What the webhook's answers say of its health; ignored.
    #[schema(read_only, value_type = Option<Object>)]
    pub health: Option<serde_json::Value>,
}

/// What a PATCH takes: any of the fields of [`WebhookInput`]; the result is validated whole.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WebhookPatch {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// Up to 1000 characters.
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    pub trigger: Option<Trigger>,
    /// Absolute http(s) URL, no user name or password, at most 2048 characters. Its path and
    /// query may hold references to the trigger's parameters, filled in percent-encoded.
    #[schema(max_length = 2048, pattern = r"^[hH][tT][tT][pP][sS]?://[^\u0000]*$")]
    pub url: Option<String>,
    /// `GET` or `POST` (default).
    #[schema(value_type = Option<crate::core::webhook::Method>)]
    pub method: Option<String>,
    /// Non-empty; default all three.
    #[schema(min_items = 1)]
    pub call_types: Option<Vec<CallType>>,
    /// `application/json` (default) or `application/x-www-form-urlencoded`.
    #[schema(value_type = Option<crate::core::webhook::ContentType>)]
    pub content_type: Option<String>,
    /// Numbers of this account; empty (default) means all.
    pub numbers: Option<Vec<String>>,
    /// IANA zone; default `UTC`.
    pub time_zone: Option<String>,
    /// Up to 20. Keys are HTTP tokens; `host`, `content-length`, `content-type`,
    /// `transfer-encoding`, `connection`, `user-agent` and `webhook-*` are refused.
    /// Header values may hold references to the trigger's parameters (`$name`, `${name}`).
    #[schema(max_items = 20)]
    pub headers: Option<Vec<HeaderIn>>,
    /// `standard` (default) or `custom`.
    pub payload: Option<Payload>,
    /// Up to 50 rows. Keys: 1 to 100 characters, unique; dots nest in JSON bodies
    /// (`lead.phone`), and a dotted key may not also be a leaf. Values: up to 2,000
    /// characters, templates over the trigger's parameters (`$customer_number`,
    /// `lead-${call_id}`, `$$` for `$`); a value that is exactly one reference keeps the
    /// parameter's JSON type.
    #[schema(max_items = 50)]
    pub body_fields: Option<Vec<BodyFieldIo>>,
    /// `rfc3339` (default), `local` or `unix`.
    pub time_format: Option<TimeFormat>,
    /// Requests per second, 0.1 to 1000, or `null` for none.
    #[schema(minimum = 0.1, maximum = 1000.0)]
    pub rate_limit: Option<f64>,
    /// Default `true`.
    pub enabled: Option<bool>,
    /// Read-only, like the three below: callhook keeps them, so a webhook as `GET` answered
    /// it can be sent back as it is; their values are ignored.
    #[schema(read_only)]
    pub id: Option<String>,
    #[schema(read_only)]
    pub disabled_reason: Option<String>,
    #[schema(read_only)]
    pub created_at: Option<String>,
    #[schema(read_only)]
    pub updated_at: Option<String>,
    /// What the webhook's answers say of its health; ignored.
    #[schema(read_only, value_type = Option<Object>)]
    pub health: Option<serde_json::Value>,
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

impl From<Secrets> for SecretOut {
    fn from(s: Secrets) -> Self {
        SecretOut {
            secret: s.current.map(|c| c.expose()).unwrap_or_default(),
            previous: s
                .previous
                .into_iter()
                .map(|(secret, expires_at)| PreviousSecret {
                    secret: secret.expose(),
                    expires_at: ts(expires_at),
                })
                .collect(),
        }
    }
}

/// Creates a webhook. The answer carries its signing secret.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookInput,
    responses((status = 201, body = WebhookOut), (status = 422, body = Problem)))]
async fn create_webhook(
    State(state): State<ApiState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    let (webhook, secret) = webhooks::create(
        &*state.svc.store,
        &state.svc.quotas(),
        caller.actor()?,
        body.object()?,
    )
    .await?;
    let mut out = WebhookOut::from(&webhook);
    out.secret = Some(secret.expose());
    Ok((StatusCode::CREATED, Json(out)))
}

/// Lists the account's webhooks, oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(ListParams),
    responses((status = 200, body = ListOf<WebhookOut>)))]
async fn list_webhooks(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<ListOf<WebhookOut>>> {
    let page = webhooks::list(&*state.svc.store, caller.actor()?, &params.page()?).await?;
    Ok(Json(ListOf::from_page(page, |w| WebhookOut::from(&w))))
}

/// One webhook.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookOut), (status = 404, body = Problem)))]
async fn get_webhook(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    let w = webhooks::get(&*state.svc.store, caller.actor()?, &parse_id(&id)?).await?;
    Ok(Json(WebhookOut::from(&w)))
}

/// Replaces every field; those left out take their defaults.
#[utoipa::path(put, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = WebhookInput,
    responses((status = 200, body = WebhookOut), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 409, description = "The webhook changed meanwhile (another edit); load it again", body = Problem)))]
async fn replace_webhook(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<WebhookOut>> {
    // The body is judged before the id, as it always was: a bad body is a 422 whatever the id.
    let (actor, body) = (caller.actor()?, body.object()?);
    let w = webhooks::replace(&*state.svc.store, actor, &parse_id(&id)?, body).await?;
    Ok(Json(WebhookOut::from(&w)))
}

/// Changes the given fields; the result is validated as a whole.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = WebhookPatch,
    responses((status = 200, body = WebhookOut), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 409, description = "The webhook changed meanwhile (another edit); load it again", body = Problem)))]
async fn patch_webhook(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<WebhookOut>> {
    let (actor, body) = (caller.actor()?, body.object()?);
    let w = webhooks::patch(&*state.svc.store, actor, &parse_id(&id)?, body).await?;
    Ok(Json(WebhookOut::from(&w)))
}

/// Deletes a webhook; its unfinished deliveries end.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_webhook(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    webhooks::delete(&*state.svc.store, caller.actor()?, &parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signing secret, and any rotated-out secret still signing.
#[utoipa::path(get, path = "/v1/webhooks/{id}/secret", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = SecretOut), (status = 404, body = Problem)))]
async fn get_secret(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretOut>> {
    let secrets = webhooks::secrets(&*state.svc.store, caller.actor()?, &parse_id(&id)?).await?;
    Ok(Json(secrets.into()))
}

/// Makes a new signing secret. The old one keeps signing too, for 24 hours.
#[utoipa::path(post, path = "/v1/webhooks/{id}/secret/rotate", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = SecretOut), (status = 404, body = Problem)))]
async fn rotate_secret(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretOut>> {
    let secrets = webhooks::rotate(&*state.svc.store, caller.actor()?, &parse_id(&id)?).await?;
    Ok(Json(secrets.into()))
}
