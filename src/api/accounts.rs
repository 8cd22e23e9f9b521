//! `/v1/accounts` (operator): accounts are tenants; creating one returns its first API key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api_keys::CreatedApiKey;
use super::extract::{ApiQuery, Caller, JsonBody, ListParams};
use super::problem::{ApiError, ApiResult, Problem};
use super::{ApiState, ListOf, ts};
use crate::core::validate::Fields;
use crate::service::accounts::{self, NewAccount, check_name};
use crate::service::parse_id;
use crate::store::Account;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_account, list_accounts))
        .routes(routes!(get_account))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountOut {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

impl From<Account> for AccountOut {
    fn from(a: Account) -> Self {
        AccountOut {
            id: a.id.into_string(),
            name: a.name,
            created_at: ts(a.created_at),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedAccount {
    #[serde(flatten)]
    pub account: AccountOut,
    /// The account's first API key; the secret `key` is shown only now.
    pub api_key: CreatedApiKey,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    /// 1 to 100 characters, no control characters, not starting or ending with a space.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub name: String,
}

/// The keys a body creating an account takes.
pub const NAME_KEYS: &[&str] = &["name"];

/// Reads `{ "name": … }` for accounts.
pub fn name_field(body: &JsonBody) -> Result<String, ApiError> {
    let mut f = Fields::new("", body.object()?, NAME_KEYS);
    let name = f.req_str("name").map(check_name);
    if let Some(Err(problem)) = &name {
        f.error("name", *problem);
    }
    f.finish().into_result(())?;
    Ok(name.and_then(Result::ok).unwrap_or_default())
}

/// Creates an account and its first API key (operator only).
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = AccountInput,
    responses((status = 201, body = CreatedAccount), (status = 422, body = Problem), (status = 403, body = Problem)))]
async fn create_account(
    State(state): State<ApiState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<CreatedAccount>)> {
    caller.operator()?;
    let name = name_field(&body)?;
    let NewAccount { account, api_key } =
        accounts::create(&*state.svc.store, &name, "the operator API").await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAccount {
            account: account.into(),
            api_key: api_key.into(),
        }),
    ))
}

/// Lists accounts (operator only).
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", params(ListParams),
    responses((status = 200, body = ListOf<AccountOut>), (status = 403, body = Problem)))]
async fn list_accounts(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<ListOf<AccountOut>>> {
    caller.operator()?;
    let page = accounts::list(&*state.svc.store, &params.page()?).await?;
    Ok(Json(ListOf::from_page(page, AccountOut::from)))
}

/// One account (operator only).
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts", params(("id" = String, Path)),
    responses((status = 200, body = AccountOut), (status = 404, body = Problem)))]
async fn get_account(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountOut>> {
    caller.operator()?;
    let account = accounts::get(&*state.svc.store, &parse_id(&id)?).await?;
    Ok(Json(account.into()))
}
