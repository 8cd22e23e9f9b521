//! `/v1/account`: the caller's own account and its alerts (SPEC §12): `alert_url`,
//! `alert_after`, the alert signing secret (admins), its rotation, and the alerts' log.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::deliveries::{AttemptOut, DeliveryOut};
use super::extract::{ApiQuery, Caller, JsonBody, ListParams};
use super::problem::{ApiResult, Problem};
use super::{ApiState, ListOf, ts};
use crate::core::alert;
use crate::core::id::DeliveryId;
use crate::service::alerts::{self, AccountView};
use crate::service::parse_id;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(get_account, patch_account))
        .routes(routes!(rotate_alert_secret))
        .routes(routes!(list_alerts))
        .routes(routes!(get_alert))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountOut {
    pub id: String,
    pub name: String,
    pub created_at: String,
    /// Where alerts are sent (a POST of JSON, signed like a delivery); `null`: alerts are off.
    pub alert_url: Option<String>,
    /// A webhook failing this long is alerted (`webhook.failing`): `0s` to `7d` in whole
    /// seconds, minutes, hours or days (`0s`, `90s`, `10m`, `2h`). Default `10m`.
    #[schema(example = "10m")]
    pub alert_after: String,
    /// The secret alerts are signed with (`whsec_…`, Standard Webhooks). Only for admins and
    /// owners; left out for viewers. Reading it is recorded in the audit log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_secret: Option<String>,
}

impl From<AccountView> for AccountOut {
    fn from(v: AccountView) -> Self {
        AccountOut {
            id: v.account.id.into_string(),
            name: v.account.name,
            created_at: ts(v.account.created_at),
            alert_url: v.alerts.url,
            alert_after: alert::format_after(v.alerts.after),
            alert_secret: v.secret,
        }
    }
}

/// One alert: a delivery to the alert URL, with its type. Its `call_id` is the id of the
/// webhook the alert is about (alerts about one webhook go out in order); its `webhook_id` is
/// the account's alert receiver.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertOut {
    /// `webhook.failing`, `webhook.recovered`, `webhook.disabled` or `delivery.failed`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub delivery: DeliveryOut,
}

impl From<crate::store::Delivery> for AlertOut {
    fn from(d: crate::store::Delivery) -> Self {
        AlertOut {
            kind: alerts::kind_of(&d).to_owned(),
            delivery: d.into(),
        }
    }
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// An absolute `http`/`https` URL without userinfo, at most 2048 characters (the rules of a
    /// webhook's `url`; the same SSRF policy applies when alerts are sent). `null` or `""`
    /// turns alerts off.
    #[schema(max_length = 2048)]
    pub alert_url: Option<String>,
    /// `0s` to `7d`: whole seconds, minutes, hours or days (`0s`, `90s`, `10m`, `2h`, `1d`).
    /// `null` sets the default, `10m`.
    #[schema(pattern = r"^[0-9]+[smhd]$", example = "10m")]
    pub alert_after: Option<String>,
}

/// The caller's account and its alert settings; the alert secret for admins.
#[utoipa::path(get, path = "/v1/account", tag = "account",
    responses((status = 200, body = AccountOut)))]
async fn get_account(State(state): State<ApiState>, caller: Caller) -> ApiResult<Json<AccountOut>> {
    let v = alerts::get(&*state.svc.store, caller.actor()?).await?;
    Ok(Json(v.into()))
}

/// Changes the alert settings; a field left out stays as it is. Admins only.
#[utoipa::path(patch, path = "/v1/account", tag = "account", request_body = AccountPatch,
    responses((status = 200, body = AccountOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn patch_account(
    State(state): State<ApiState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<Json<AccountOut>> {
    let v = alerts::patch(&*state.svc.store, caller.actor()?, body.object()?).await?;
    Ok(Json(v.into()))
}

/// Gives alerts a new signing secret; the old one keeps signing too for 24 hours.
#[utoipa::path(post, path = "/v1/account/alert-secret/rotate", tag = "account",
    responses((status = 200, body = AccountOut), (status = 409, body = Problem)))]
async fn rotate_alert_secret(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<AccountOut>> {
    let v = alerts::rotate(&*state.svc.store, caller.actor()?).await?;
    Ok(Json(v.into()))
}

/// The alerts sent to `alert_url` (each a delivery: status, attempts, last error), newest
/// first. `call_id` is the id of the webhook the alert is about.
#[utoipa::path(get, path = "/v1/account/alerts", tag = "account", params(ListParams),
    responses((status = 200, body = ListOf<AlertOut>)))]
async fn list_alerts(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<ListOf<AlertOut>>> {
    let page = alerts::log(&*state.svc.store, caller.actor()?, &params.page()?).await?;
    Ok(Json(ListOf::from_page(page, AlertOut::from)))
}

/// One alert with its attempts (the body sent is each attempt's request body).
#[utoipa::path(get, path = "/v1/account/alerts/{id}", tag = "account", params(("id" = String, Path)),
    responses((status = 200, body = AlertDetail), (status = 404, body = Problem)))]
async fn get_alert(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AlertDetail>> {
    let id: DeliveryId = parse_id(&id)?;
    let (d, attempts) = alerts::delivery(&*state.svc.store, caller.actor()?, &id).await?;
    Ok(Json(AlertDetail {
        alert: d.into(),
        attempt_log: attempts.into_iter().map(AttemptOut::from).collect(),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertOut,
    pub attempt_log: Vec<AttemptOut>,
}
