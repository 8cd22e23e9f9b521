//! `/v1/api-keys`: an account's API keys, each `admin` or `viewer`. The secret is shown once,
//! at creation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, Caller, JsonBody, ListParams};
use super::problem::{ApiResult, Problem};
use super::{ApiState, ListOf, ts};
use crate::core::role::Role;
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
    /// `admin` (everything, users included) or `viewer` (reads; no secrets, no changes).
    pub role: Role,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl From<ApiKey> for ApiKeyOut {
    fn from(k: ApiKey) -> Self {
        ApiKeyOut {
            id: k.id.into_string(),
            name: k.name,
            prefix: k.prefix,
            role: k.role,
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

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyInput {
    /// 1 to 100 characters, no control characters, not starting or ending with a space.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub name: String,
    /// `admin` (default) or `viewer`. An admin key manages users, so only an admin key (or
    /// an owner in the web page) may make one.
    #[schema(value_type = Option<KeyRole>)]
    pub role: Option<String>,
}

/// The roles an API key can have.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum KeyRole {
    /// Everything, users included.
    Admin,
    /// Reads webhooks, logs, calls and numbers; no secrets, no changes.
    Viewer,
}

/// Creates an API key for the caller's account. Needs an admin key; a viewer key is 403.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = ApiKeyInput,
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "The body is not JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or an unknown bearer token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "A viewer key, or the operator token"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The body is too large"),
        (status = 415, body = Problem, content_type = "application/problem+json", description = "The body is not application/json"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Every bad field, named"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Shutting down or overloaded"),
    ))]
async fn create_api_key(
    State(state): State<ApiState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let (actor, body) = (caller.actor()?, body.object()?);
    let key = api_keys::create(&*state.svc.store, &state.svc.quotas(), actor, body).await?;
    Ok((StatusCode::CREATED, Json(key.into())))
}

/// Lists the account's API keys (never their secrets). Needs an admin key.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(ListParams),
    responses(
        (status = 200, body = ListOf<ApiKeyOut>),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or an unknown bearer token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "A viewer key, or the operator token"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "A bad `limit`"),
    ))]
async fn list_api_keys(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<ListOf<ApiKeyOut>>> {
    let page = api_keys::list(&*state.svc.store, caller.actor()?, &params.page()?).await?;
    Ok(Json(ListOf::from_page(page, ApiKeyOut::from)))
}

/// Revokes an API key at once. Needs an admin key; a key may revoke itself unless it is the
/// account's last admin key (409).
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or an unknown bearer token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "A viewer key, or the operator token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such key in the account"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The account's last admin key revoking itself"),
    ))]
async fn delete_api_key(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    api_keys::revoke(&*state.svc.store, caller.actor()?, &parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
