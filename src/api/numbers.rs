//! `/v1/numbers`: My Numbers, the DID numbers the account owns, in E.164.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, Caller, JsonBody, ListParams};
use super::problem::{ApiError, ApiResult, OrNotFound, Problem};
use super::{AppState, ListOf, ts};
use crate::core::number::E164;
use crate::core::validate::Fields;
use crate::store::Number;

const MAX_LABEL: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
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
pub struct NumberInput {
    /// E.164; spaces, dashes, dots and parentheses are dropped (`+91 80652 51305`).
    pub number: String,
    /// Up to 100 characters.
    pub label: Option<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct NumberPatch {
    /// Up to 100 characters; `null` removes it.
    pub label: Option<String>,
}

fn label(f: &mut Fields) -> Option<String> {
    let l = f.str("label").map(str::trim).filter(|l| !l.is_empty())?;
    if l.chars().count() > MAX_LABEL {
        f.error("label", format!("must be at most {MAX_LABEL} characters"));
        return None;
    }
    Some(l.to_owned())
}

/// Reads `{ "number": …, "label": … }`: the REST API and the web page's Numbers form.
pub fn new_number(obj: &serde_json::Map<String, serde_json::Value>) -> ApiResult<Number> {
    let mut f = Fields::new("", obj);
    let number = f.req_str("number").and_then(|s| match E164::parse(s) {
        Ok(n) => Some(n),
        Err(e) => {
            f.error("number", e);
            None
        }
    });
    let label = label(&mut f);
    f.finish().into_result(())?;
    Ok(Number {
        number: number.ok_or_else(|| ApiError::field("number", "is required"))?,
        label,
        created_at: Timestamp::now(),
    })
}

fn path_number(s: &str) -> ApiResult<E164> {
    E164::parse(s).map_err(|_| ApiError::NotFound("number"))
}

/// Adds a number to My Numbers.
#[utoipa::path(post, path = "/v1/numbers", tag = "numbers", request_body = NumberInput,
    responses((status = 201, body = NumberOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn add_number(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<NumberOut>)> {
    let account_id = caller.account()?;
    let number = new_number(body.object()?)?;
    state.store.insert_number(account_id, &number).await?;
    Ok((StatusCode::CREATED, Json(number.into())))
}

/// Lists My Numbers, in number order.
#[utoipa::path(get, path = "/v1/numbers", tag = "numbers", params(ListParams),
    responses((status = 200, body = ListOf<NumberOut>)))]
async fn list_numbers(
    State(state): State<AppState>,
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
    let page = state.store.list_numbers(caller.account()?, &page).await?;
    Ok(Json(ListOf::from_page(page, NumberOut::from)))
}

/// One number.
#[utoipa::path(get, path = "/v1/numbers/{number}", tag = "numbers", params(("number" = String, Path)),
    responses((status = 200, body = NumberOut), (status = 404, body = Problem)))]
async fn get_number(
    State(state): State<AppState>,
    caller: Caller,
    Path(number): Path<String>,
) -> ApiResult<Json<NumberOut>> {
    let n = state
        .store
        .get_number(caller.account()?, &path_number(&number)?)
        .await
        .or_404("number")?;
    Ok(Json(n.into()))
}

/// Changes a number's label; a body without `label` leaves it as it is.
#[utoipa::path(patch, path = "/v1/numbers/{number}", tag = "numbers", params(("number" = String, Path)),
    request_body = NumberPatch,
    responses((status = 200, body = NumberOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn update_number(
    State(state): State<AppState>,
    caller: Caller,
    Path(number): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<NumberOut>> {
    let account_id = caller.account()?;
    let number = path_number(&number)?;
    let obj = body.object()?;
    let mut f = Fields::new("", obj);
    let label = label(&mut f);
    f.finish().into_result(())?;
    if obj.contains_key("label") {
        state
            .store
            .set_number_label(account_id, &number, label.as_deref())
            .await
            .or_404("number")?;
    }
    Ok(Json(
        state
            .store
            .get_number(account_id, &number)
            .await
            .or_404("number")?
            .into(),
    ))
}

/// Removes a number. Refused (409) while a webhook names it, since that webhook would
/// otherwise start firing for every number.
#[utoipa::path(delete, path = "/v1/numbers/{number}", tag = "numbers", params(("number" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_number(
    State(state): State<AppState>,
    caller: Caller,
    Path(number): Path<String>,
) -> ApiResult<StatusCode> {
    let number = path_number(&number)?;
    state
        .store
        .delete_number(caller.account()?, &number)
        .await
        .or_404("number")?;
    Ok(StatusCode::NO_CONTENT)
}
