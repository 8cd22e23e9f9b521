//! Users (SPEC §13), for owners: invite a user (callhook shows the one-time sign-up link to
//! hand over), change a role, reset a password (a new link), remove a user. Who may do this
//! is the service's to decide; the page is only linked for owners.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, json};

use super::form::PostForm;
use super::session::Signed;
use super::view::{Layout, Notice, When, when};
use super::{WebResult, WebState, page};
use crate::core::role::Role;
use crate::edge;
use crate::service::parse_id;
use crate::service::users::{self, NewLink, UserError, link_path};
use crate::store::PageRequest;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/users", get(list).post(invite))
        .route("/users/{id}/role", post(set_role))
        .route("/users/{id}/reset", post(reset))
        .route("/users/{id}/remove", post(remove))
}

struct UserRow {
    id: String,
    email: String,
    role: Role,
    /// Has a password.
    active: bool,
    link_expires: Option<When>,
    added: When,
    /// The signed-in user's own row.
    me: bool,
}

/// A one-time link just made, to hand over.
struct MadeLink {
    email: String,
    url: String,
    expires: When,
    /// An invitation (else a reset).
    invite: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    rows: Vec<UserRow>,
    link: Option<MadeLink>,
    /// What the Invite form shows again after an error.
    email: String,
    role: String,
    errors: Vec<(String, String)>,
    roles: [Role; 3],
}

impl UsersPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    notice: Option<String>,
}

struct Shown {
    link: Option<MadeLink>,
    email: String,
    role: String,
    errors: Vec<(String, String)>,
}

impl Shown {
    fn nothing() -> Shown {
        Shown {
            link: None,
            email: String::new(),
            role: "viewer".into(),
            errors: Vec::new(),
        }
    }
}

async fn render(
    state: &WebState,
    signed: &Signed,
    layout: Layout,
    shown: Shown,
) -> WebResult<Response> {
    let page_request = PageRequest {
        limit: 1000,
        after: None,
    };
    let list = users::list(&*state.svc.store, &signed.actor(), &page_request).await?;
    page(&UsersPage {
        layout,
        rows: list
            .items
            .into_iter()
            .map(|(u, link_expires)| UserRow {
                me: u.id == signed.user.id,
                active: u.has_password(),
                id: u.id.into_string(),
                email: u.email,
                role: u.role,
                link_expires: link_expires.map(when),
                added: when(u.created_at),
            })
            .collect(),
        link: shown.link,
        email: shown.email,
        role: shown.role,
        errors: shown.errors,
        roles: Role::ALL,
    })
}

async fn list(
    State(state): State<WebState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    let layout = Layout::new(&signed, "Users", "users").with_notice(q.notice.as_deref());
    render(&state, &signed, layout, Shown::nothing()).await
}

/// The page after a link was made: it is shown here, once, rather than redirected to.
async fn show_link(
    state: &WebState,
    signed: &Signed,
    parts: &Parts,
    made: NewLink,
    invite: bool,
) -> WebResult<Response> {
    let text = if invite {
        format!(
            "{} is invited. Hand over the link below: it works once, for 72 hours.",
            made.user.email
        )
    } else {
        format!(
            "{}'s password is reset and their sessions ended. Hand over the link below: it works once, for 72 hours.",
            made.user.email
        )
    };
    let layout = Layout::new(signed, "Users", "users").with(Notice::success(text));
    let shown = Shown {
        link: Some(MadeLink {
            url: format!(
                "{}{}",
                edge::base_url(edge::peer(parts), &parts.headers, &state.svc.settings),
                link_path(&made.token)
            ),
            email: made.user.email,
            expires: when(made.expires_at),
            invite,
        }),
        ..Shown::nothing()
    };
    render(state, signed, layout, shown).await
}

async fn invite(
    State(state): State<WebState>,
    parts: Parts,
    form: PostForm,
) -> WebResult<Response> {
    let signed = &form.signed;
    let (email, role) = (form.fields.get("email"), form.fields.get("role"));
    let mut body = Map::new();
    body.insert("email".into(), json!(email));
    body.insert("role".into(), json!(role));
    let refused = |errors: Vec<(String, String)>| Shown {
        email: email.to_owned(),
        role: role.to_owned(),
        errors,
        link: None,
    };
    match users::invite(&*state.svc.store, &signed.actor(), &body).await {
        Ok(made) => show_link(&state, signed, &parts, made, true).await,
        Err(UserError::Invalid(f)) => {
            let errors = f.0.into_iter().map(|e| (e.field, e.message)).collect();
            let layout = Layout::new(signed, "Users", "users");
            let mut resp = render(&state, signed, layout, refused(errors)).await?;
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
        Err(UserError::Conflict(m)) => {
            let layout = Layout::new(signed, "Users", "users");
            let mut resp =
                render(&state, signed, layout, refused(vec![("email".into(), m)])).await?;
            *resp.status_mut() = StatusCode::CONFLICT;
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}

async fn set_role(
    State(state): State<WebState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    let signed = &form.signed;
    let mut body = Map::new();
    body.insert("role".into(), json!(form.fields.get("role")));
    match users::update(&*state.svc.store, &signed.actor(), &parse_id(&id)?, &body).await {
        Ok(_) => Ok(Redirect::to("/users?notice=user-saved").into_response()),
        Err(UserError::Conflict(m)) => {
            let layout = Layout::new(signed, "Users", "users").with(Notice::error(m));
            let mut resp = render(&state, signed, layout, Shown::nothing()).await?;
            *resp.status_mut() = StatusCode::CONFLICT;
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}

async fn reset(
    State(state): State<WebState>,
    parts: Parts,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    let signed = &form.signed;
    // One's own reset ends one's own session too: this page is the last one it shows.
    let made = users::reset(&*state.svc.store, &signed.actor(), &parse_id(&id)?).await?;
    show_link(&state, signed, &parts, made, false).await
}

async fn remove(
    State(state): State<WebState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    let signed = &form.signed;
    let id = parse_id(&id)?;
    match users::remove(&*state.svc.store, &signed.actor(), &id).await {
        Ok(()) if id == signed.user.id => Ok(Redirect::to("/signin").into_response()),
        Ok(()) => Ok(Redirect::to("/users?notice=user-removed").into_response()),
        Err(UserError::Conflict(m)) => {
            let layout = Layout::new(signed, "Users", "users").with(Notice::error(m));
            let mut resp = render(&state, signed, layout, Shown::nothing()).await?;
            *resp.status_mut() = StatusCode::CONFLICT;
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}
