//! Passwords in the web page (SPEC §13): the page a one-time link opens (`/invite/{token}`),
//! where an invited user signs up or a reset user sets a new password and is signed in; and
//! the signed-in user's own password change (`/password`, in the account menu), which signs
//! out every other session of theirs.
//!
//! The link page has no session yet, so its form is protected like the sign-in form: a
//! double-submit token in a short-lived cookie, repeated in the form.

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::form::{PostForm, read_body};
use super::session::{
    SESSION_COOKIE, SIGNIN_COOKIE, Signed, cookie, cookie_name, https, set_cookie,
};
use super::view::Layout;
use super::{WebError, WebResult, WebState, page};
use crate::core::credentials::{random_token, tokens_match};
use crate::service::users::{self, MIN_PASSWORD, UserError};
use crate::store::LinkPurpose;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/invite/{token}", get(link_page).post(follow))
        .route("/password", get(password_page).post(change_password))
}

#[derive(Template)]
#[template(path = "invite.html")]
struct LinkPage {
    /// The form's double-submit token; empty when the link does not work.
    csrf: String,
    token: String,
    email: String,
    /// An invitation (else a reset).
    invite: bool,
    /// Why the link does not work, when it does not.
    gone: Option<String>,
    errors: Vec<(String, String)>,
    min: usize,
}

impl LinkPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
}

fn gone_page(token: &str) -> WebResult<Response> {
    let mut resp = page(&LinkPage {
        csrf: String::new(),
        token: token.to_owned(),
        email: String::new(),
        invite: true,
        gone: Some(UserError::LinkGone.to_string()),
        errors: Vec::new(),
        min: MIN_PASSWORD,
    })?;
    *resp.status_mut() = StatusCode::NOT_FOUND;
    Ok(resp)
}

async fn link_page(
    State(state): State<WebState>,
    parts: Parts,
    Path(token): Path<String>,
) -> WebResult<Response> {
    let (link, user) = match users::link(&*state.svc.store, &token).await {
        Ok(found) => found,
        Err(UserError::LinkGone) => return gone_page(&token),
        Err(e) => return Err(e.into()),
    };
    let secure = https(&parts, &state);
    let csrf = cookie(&parts.headers, &cookie_name(SIGNIN_COOKIE, secure))
        .map(str::to_owned)
        .unwrap_or_else(|| random_token(""));
    let mut resp = page(&LinkPage {
        csrf: csrf.clone(),
        token,
        email: user.email,
        invite: link.purpose == LinkPurpose::Invite,
        gone: None,
        errors: Vec::new(),
        min: MIN_PASSWORD,
    })?;
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, &csrf, Some(3600), secure),
    );
    Ok(resp)
}

async fn follow(
    State(state): State<WebState>,
    Path(token): Path<String>,
    req: Request<Body>,
) -> WebResult<Response> {
    let (parts, body) = req.into_parts();
    let fields = read_body(body).await?;
    let secure = https(&parts, &state);
    let csrf = cookie(&parts.headers, &cookie_name(SIGNIN_COOKIE, secure)).unwrap_or("");
    if !tokens_match(fields.get("csrf"), csrf) {
        return Err(WebError::Csrf);
    }
    // Passwords are taken as typed: spaces at either end are part of them.
    let password = fields
        .0
        .iter()
        .find(|(k, _)| k == "password")
        .map_or("", |(_, v)| v.as_str());
    let confirm = fields
        .0
        .iter()
        .find(|(k, _)| k == "confirm")
        .map_or("", |(_, v)| v.as_str());
    let store = &*state.svc.store;
    let user = match users::follow_link(store, &token, password, confirm).await {
        Ok(user) => user,
        Err(UserError::LinkGone) => return gone_page(&token),
        Err(UserError::Invalid(f)) => {
            let (link, user) = match users::link(store, &token).await {
                Ok(found) => found,
                Err(UserError::LinkGone) => return gone_page(&token),
                Err(e) => return Err(e.into()),
            };
            let mut resp = page(&LinkPage {
                csrf: csrf.to_owned(),
                token,
                email: user.email,
                invite: link.purpose == LinkPurpose::Invite,
                gone: None,
                errors: f.0.into_iter().map(|e| (e.field, e.message)).collect(),
                min: MIN_PASSWORD,
            })?;
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(resp);
        }
        Err(e) => return Err(e.into()),
    };
    let session = users::start_session(store, &user).await?;
    let mut resp = Redirect::to("/webhooks?notice=signed-up").into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &session.token, None, secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, "", Some(0), secure),
    );
    Ok(resp)
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    layout: Layout,
    errors: Vec<(String, String)>,
    min: usize,
}

impl PasswordPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
}

#[derive(Debug, Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

async fn password_page(signed: Signed, Query(q): Query<NoticeQuery>) -> WebResult<Response> {
    page(&PasswordPage {
        layout: Layout::new(&signed, "Change password", "password")
            .with_notice(q.notice.as_deref()),
        errors: Vec::new(),
        min: MIN_PASSWORD,
    })
}

async fn change_password(State(state): State<WebState>, form: PostForm) -> WebResult<Response> {
    let signed = &form.signed;
    let raw = |name: &str| {
        form.fields
            .0
            .iter()
            .find(|(k, _)| k == name)
            .map_or(String::new(), |(_, v)| v.clone())
    };
    let changed = users::change_password(
        &*state.svc.store,
        &signed.user,
        &signed.session,
        raw("current"),
        &raw("password"),
        &raw("confirm"),
    )
    .await;
    match changed {
        Ok(()) => Ok(Redirect::to("/password?notice=password-changed").into_response()),
        Err(UserError::Invalid(f)) => {
            let mut resp = page(&PasswordPage {
                layout: Layout::new(signed, "Change password", "password"),
                errors: f.0.into_iter().map(|e| (e.field, e.message)).collect(),
                min: MIN_PASSWORD,
            })?;
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}
