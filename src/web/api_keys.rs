//! API keys: create one, admin or viewer (its secret is shown once, on the page that answers
//! the form), and revoke. Only those who may make an admin key are offered one.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::form::PostForm;
use super::session::Signed;
use super::view::{Layout, Notice, When, when};
use super::{WebResult, WebState, page};
use crate::service::api_keys::{self, ApiKeyError};
use crate::service::{Need, parse_id};
use crate::store::PageRequest;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/api-keys", get(list).post(create))
        .route("/api-keys/{id}/revoke", post(revoke))
}

struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    role: &'static str,
    created: When,
    last_used: Option<When>,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct KeysPage {
    layout: Layout,
    rows: Vec<KeyRow>,
    /// The secret of a key just made: shown this once.
    created_secret: Option<String>,
    name: String,
    name_error: Option<String>,
    /// The roles the signed-in user may give a key: admin only for those who manage users.
    roles: Vec<&'static str>,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    notice: Option<String>,
}

async fn render(
    state: &WebState,
    signed: &Signed,
    layout: Layout,
    created_secret: Option<String>,
    name: String,
    name_error: Option<String>,
) -> WebResult<Response> {
    let page_request = PageRequest {
        limit: 1000,
        after: None,
    };
    let keys = api_keys::list(&*state.svc.store, &signed.actor(), &page_request).await?;
    page(&KeysPage {
        layout,
        rows: keys
            .items
            .into_iter()
            .map(|k| KeyRow {
                id: k.id.into_string(),
                name: k.name,
                prefix: k.prefix,
                role: k.role.label(),
                created: when(k.created_at),
                last_used: k.last_used_at.map(when),
            })
            .collect(),
        created_secret,
        name,
        name_error,
        roles: if signed.actor().can(Need::ManageUsers) {
            vec!["admin", "viewer"]
        } else {
            vec!["viewer"]
        },
    })
}

async fn list(
    State(state): State<WebState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    let layout = Layout::new(&signed, "API keys", "api-keys").with_notice(q.notice.as_deref());
    render(&state, &signed, layout, None, String::new(), None).await
}

async fn create(State(state): State<WebState>, form: PostForm) -> WebResult<Response> {
    let signed = &form.signed;
    let typed = form.fields.get("name").to_owned();
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!(typed));
    if form.fields.has("role") {
        body.insert("role".into(), json!(form.fields.get("role")));
    }
    let created = match api_keys::create(
        &*state.svc.store,
        &state.svc.quotas(),
        &signed.actor(),
        &body,
    )
    .await
    {
        Ok(created) => created,
        Err(ApiKeyError::Invalid(errors)) => {
            let layout = Layout::new(signed, "API keys", "api-keys");
            let msg = errors.0.into_iter().map(|e| e.message).collect::<Vec<_>>();
            let mut resp =
                render(&state, signed, layout, None, typed, Some(msg.join("; "))).await?;
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(resp);
        }
        Err(e) => return Err(e.into()),
    };
    // Answered here rather than redirected: the secret exists only in this response.
    let layout = Layout::new(signed, "API keys", "api-keys").with(Notice::success(format!(
        "API key “{}” created. Copy it now: it is not shown again.",
        created.key.name
    )));
    render(
        &state,
        signed,
        layout,
        Some(created.secret),
        String::new(),
        None,
    )
    .await
}

async fn revoke(
    State(state): State<WebState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    api_keys::revoke(&*state.svc.store, &form.signed.actor(), &parse_id(&id)?).await?;
    Ok(Redirect::to("/api-keys?notice=key-revoked").into_response())
}
