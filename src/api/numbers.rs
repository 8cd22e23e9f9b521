//! `/v1/numbers`: My Numbers, the DID numbers the account owns, in E.164.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, Caller, JsonBody, ListParams};
use super::problem::{ApiResult, Problem};
use super::{ApiState, ListOf, ts};
use crate::service::numbers;
use crate::store::Number;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(add_number, list_numbers))
        .routes(routes!(get_number, update_number, delete_number))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NumberOut {
    /// E.164, like `+918065251305`.
    pub number: String,
    pub label: Option<String>,
    pub created_at: String,
}

impl From<Number> for NumberOut {
    fn from(n: Number) -> Self {
        NumberOut {
            number: n.number.to_string(),
            label: n.label,
            created_at: ts(n.created_at),
        }
    }
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct NumberInput {
    /// E.164; spaces, dashes, dots and parentheses are dropped (`+91 80652 51305`).
    #[schema(
        pattern = r"^\+[ .()-]*[1-9](?:[ .()-]*[0-9]){6,14}[ .()-]*$",
        example = "+918065251305"
    )]
    pub number: String,
    /// Up to 100 characters.
    #[schema(max_length = 100)]
    pub label: Option<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct NumberPatch {
    /// Up to 100 characters; `null` removes it.
    #[schema(max_length = 100)]
    pub label: Option<String>,
}

#[utoipa::path(post, path = "/v1/numbers", tag = "numbers", request_body = NumberInput,
    responses((status = 201, body = NumberOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn add_number(
    State(state): State<ApiState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<NumberOut>)> {
    let number = numbers::add(
        &*state.svc.store,
        &state.svc.quotas(),
        caller.actor()?,
        body.object()?,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(number.into())))
}

/// Lists My Numbers, in number order.
#[utoipa::path(get, path = "/v1/numbers", tag = "numbers", params(ListParams),
    responses((status = 200, body = ListOf<NumberOut>)))]
async fn list_numbers(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<ListOf<NumberOut>>> {
    let mut page = params.page()?;
    // The cursor is a number. A `+` left unencoded in a query string reads as a space, so
    // `?after=+4420…` arrives as ` 4420…`; every number starts with `+`, so put it back.
    page.after = page.after.map(|a| {
        let a = a.trim();
        if a.starts_with('+') {
            a.to_owned()
        } else {
            format!("+{a}")
        }
    });
    let page = numbers::list(&*state.svc.store, caller.actor()?, &page).await?;
    Ok(Json(ListOf::from_page(page, NumberOut::from)))
}

/// One number.
#[utoipa::path(get, path = "/v1/numbers/{number}", tag = "numbers", params(("number" = String, Path)),
    responses((status = 200, body = NumberOut), (status = 404, body = Problem)))]
async fn get_number(
    State(state): State<ApiState>,
    caller: Caller,
    Path(number): Path<String>,
) -> ApiResult<Json<NumberOut>> {
    let number = numbers::parse_path(&number)?;
    let n = numbers::get(&*state.svc.store, caller.actor()?, &number).await?;
    Ok(Json(n.into()))
}

/// Changes a number's label; a body without `label` leaves it as it is.
#[utoipa::path(patch, path = "/v1/numbers/{number}", tag = "numbers", params(("number" = String, Path)),
    request_body = NumberPatch,
    responses((status = 200, body = NumberOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn update_number(
    State(state): State<ApiState>,
    caller: Caller,
    Path(number): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<NumberOut>> {
    let number = numbers::parse_path(&number)?;
    let n = numbers::update(&*state.svc.store, caller.actor()?, &number, body.object()?).await?;
    Ok(Json(n.into()))
}

#[utoipa::path(delete, path = "/v1/numbers/{number}", tag = "numbers", params(("number" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_number(
    State(state): State<ApiState>,
    caller: Caller,
    Path(number): Path<String>,
) -> ApiResult<StatusCode> {
    let number = numbers::parse_path(&number)?;
    numbers::remove(&*state.svc.store, caller.actor()?, &number).await?;
    Ok(StatusCode::NO_CONTENT)
}
