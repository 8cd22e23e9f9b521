//! `/v1/users` (SPEC §13): the people who sign in to the web page, managed with an admin key.
//! Inviting a user or resetting their password answers a one-time link (72 hours, usable
//! once) to hand over: callhook sends no mail.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, BaseUrl, Caller, JsonBody, ListParams};
use super::problem::{ApiResult, Problem};
use super::{ApiState, ListOf, ts};
use crate::core::role::Role;
use crate::service::parse_id;
use crate::service::users::{self, NewLink, link_path};
use crate::store::User;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(invite_user, list_users))
        .routes(routes!(update_user, delete_user))
        .routes(routes!(reset_user))
}

/// A user of the account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserOut {
    pub id: String,
    pub email: String,
    /// `owner` (everything, users included), `admin` (everything but users) or `viewer`
    /// (reads webhooks, logs, calls and numbers; no secrets, no changes).
    pub role: Role,
    /// `active` (has a password) or `pending` (invited or reset: their link is not followed
    /// yet).
    #[schema(example = "active")]
    pub status: &'static str,
    pub created_at: String,
    /// When the pending link stops working.
    pub link_expires_at: Option<String>,
}

impl UserOut {
    fn of(u: User, link_expires_at: Option<jiff::Timestamp>) -> UserOut {
        UserOut {
            status: if u.has_password() {
                "active"
            } else {
                "pending"
            },
            id: u.id.into_string(),
            email: u.email,
            role: u.role,
            created_at: ts(u.created_at),
            link_expires_at: link_expires_at.map(ts),
        }
    }
}

/// A user just invited, with the link to hand over.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvitedUser {
    #[serde(flatten)]
    pub user: UserOut,
    /// Where the invitee sets their password: works once, for 72 hours. Shown only now.
    pub invite_url: String,
}

/// A user whose password was reset, with the link to hand over.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResetUser {
    #[serde(flatten)]
    pub user: UserOut,
    /// Where the user sets a new password: works once, for 72 hours. Shown only now.
    pub reset_url: String,
}

fn linked(base: &BaseUrl, made: NewLink) -> (UserOut, String) {
    let url = format!("{}{}", base.0, link_path(&made.token));
    (UserOut::of(made.user, Some(made.expires_at)), url)
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Their email, what they sign in with (kept in lower case; unique across callhook): one
    /// `@`, a domain with a dot (or `localhost`), no spaces or control characters.
    #[schema(
        example = "asha@acme.example",
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@(?:[^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*|[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt])$"
    )]
    pub email: String,
    /// `owner`, `admin` or `viewer`.
    #[schema(value_type = Role, example = "viewer")]
    pub role: String,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// `owner`, `admin` or `viewer`. The account's last owner cannot be demoted.
    #[schema(value_type = Role)]
    pub role: String,
}

/// Invites a user: they exist at once, without a password; the answer's `invite_url` (72
/// hours, usable once) lets them choose one. Needs an admin key.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = UserInput,
    responses(
        (status = 201, body = InvitedUser),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "The body is not JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or an unknown bearer token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "A viewer key, or the operator token"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "A user with this email exists"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The body is too large"),
        (status = 415, body = Problem, content_type = "application/problem+json", description = "The body is not application/json"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Every bad field, named"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Shutting down or overloaded"),
    ))]
async fn invite_user(
    State(state): State<ApiState>,
    caller: Caller,
    base: BaseUrl,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<InvitedUser>)> {
    let (actor, body) = (caller.actor()?, body.object()?);
    let made = users::invite(&*state.svc.store, actor, body).await?;
    let (user, invite_url) = linked(&base, made);
    Ok((StatusCode::CREATED, Json(InvitedUser { user, invite_url })))
}

/// The account's users, oldest first. Needs an admin key.
#[utoipa::path(get, path = "/v1/users", tag = "users", params(ListParams),
    responses(
        (status = 200, body = ListOf<UserOut>),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or an unknown bearer token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "A viewer key, or the operator token"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "A bad `limit`"),
    ))]
async fn list_users(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<ListOf<UserOut>>> {
    let page = users::list(&*state.svc.store, caller.actor()?, &params.page()?).await?;
    Ok(Json(ListOf::from_page(page, |(u, expires)| {
        UserOut::of(u, expires)
    })))
}

/// Changes a user's role. Needs an admin key; the account's last owner cannot be demoted
/// (409).
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    request_body = UserPatch,
    responses(
        (status = 200, body = UserOut),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "The body is not JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or an unknown bearer token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "A viewer key, or the operator token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such user in the account"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The account's last owner would be demoted"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The body is too large"),
        (status = 415, body = Problem, content_type = "application/problem+json", description = "The body is not application/json"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Every bad field, named"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Shutting down or overloaded"),
    ))]
async fn update_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<UserOut>> {
    let (actor, body) = (caller.actor()?, body.object()?);
    let user = users::update(&*state.svc.store, actor, &parse_id(&id)?, body).await?;
    Ok(Json(UserOut::of(user, None)))
}

/// Removes a user; their sessions end at once. Needs an admin key; the account's last owner
/// cannot be removed (409).
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or an unknown bearer token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "A viewer key, or the operator token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such user in the account"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The account's last owner"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Shutting down or overloaded"),
    ))]
async fn delete_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    users::remove(&*state.svc.store, caller.actor()?, &parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resets a user's password: the old one stops working and their sessions end; the answer's
/// `reset_url` (72 hours, usable once) lets them choose a new one. An earlier link stops
/// working. Needs an admin key.
#[utoipa::path(post, path = "/v1/users/{id}/reset", tag = "users", params(("id" = String, Path)),
    responses(
        (status = 200, body = ResetUser),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or an unknown bearer token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "A viewer key, or the operator token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such user in the account"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Shutting down or overloaded"),
    ))]
async fn reset_user(
    State(state): State<ApiState>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<Json<ResetUser>> {
    let made = users::reset(&*state.svc.store, caller.actor()?, &parse_id(&id)?).await?;
    let (user, reset_url) = linked(&base, made);
    Ok(Json(ResetUser { user, reset_url }))
}
