//! `/v1/api-keys`: an account's API keys. The secret is shown once, at creation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::accounts::{AccountInput, name_field};
use super::extract::{ApiQuery, Caller, JsonBody, ListParams};
use super::problem::{ApiResult, Problem};
use super::{ApiState, ListOf, ts};
use crate::service::api_keys::{self, NewApiKey};
use crate::service::parse_id;
use crate::store::ApiKey;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(delete_api_key))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyOut {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl From<ApiKey> for ApiKeyOut {
    fn from(k: ApiKey) -> Self {
        ApiKeyOut {
            id: k.id.into_string(),
            name: k.name,
            prefix: k.prefix,
            created_at: ts(k.created_at),
            last_used_at: k.last_used_at.map(ts),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKeyOut,
    /// The secret: send it as `Authorization: Bearer <key>`. Shown only once.
    #[serde(rename = "key")]
    pub secret: String,
}

impl From<NewApiKey> for CreatedApiKey {
    fn from(k: NewApiKey) -> Self {
        CreatedApiKey {
            key: k.key.into(),
            secret: k.secret,
        }
    }
}

/// Creates an API key for the caller's account.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = AccountInput,
    responses((status = 201, body = CreatedApiKey), (status = 422, body = Problem)))]
async fn create_api_key(
    State(state): State<ApiState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let actor = caller.actor()?;
    let name = name_field(&body)?;
    let key = api_keys::create(&*state.svc.store, &state.svc.quotas(), actor, &name).await?;
    Ok((StatusCode::CREATED, Json(key.into())))
}

/// Lists the account's API keys (never their secrets).
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(ListParams),
    responses((status = 200, body = ListOf<ApiKeyOut>)))]
async fn list_api_keys(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<ListOf<ApiKeyOut>>> {
    let page = api_keys::list(&*state.svc.store, caller.actor()?, &params.page()?).await?;
    Ok(Json(ListOf::from_page(page, ApiKeyOut::from)))
}

/// Revokes an API key at once.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem),
        (status = 409, description = "The key revokes itself and is the account's last", body = Problem)))]
async fn delete_api_key(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    api_keys::revoke(&*state.svc.store, caller.actor()?, &parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
