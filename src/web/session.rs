//! Sign-in, sessions and CSRF tokens: the HTTP side of [`crate::service::users`].
//!
//! A session is a random 256-bit token in an HttpOnly, SameSite=Lax cookie (the store keeps
//! only its hash). Each carries its own CSRF token, which every form sends back
//! ([`super::form::PostForm`]). Over https (`public_url`, or a trusted proxy's
//! `X-Forwarded-Proto: https`; callhook itself speaks plain HTTP) the cookies are `Secure` and
//! named with the `__Host-` prefix, so no other host (a sibling subdomain) can plant one.
//!
//! The sign-in form has no session yet, so it is protected by a double-submit token: a
//! random value set in a short-lived cookie and repeated in the form. That token is the
//! visitor's own, so it stops cross-site posts but not a script: [`super::throttle`] limits
//! how many sign-ins are checked.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, body::Body};
use serde::Deserialize;

use super::form::{PostForm, read_body};
use super::throttle::Refusal;
use super::{WebError, WebResult, WebState, page};
use crate::core::credentials::{random_token, tokens_match};
use crate::edge;
use crate::service::users::{self, normalize_email};
use crate::service::{Actor, users::NewSession};
use crate::store::{Session, User};

pub const SESSION_COOKIE: &str = "callhook_session";
pub const SIGNIN_COOKIE: &str = "callhook_signin";

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/signin", get(signin_page).post(signin))
        .route("/signout", post(signout))
}

/// The signed-in admin of this request.
#[derive(Debug, Clone)]
pub struct Signed {
    pub user: User,
    pub session: Session,
}

impl Signed {
    /// The signed-in user, as whom the page's operations act.
    pub fn actor(&self) -> Actor {
        users::actor(&self.user)
    }
}

impl FromRequestParts<WebState> for Signed {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> WebResult<Signed> {
        let next = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        // Where to come back to after signing in: only pages, never a form's target.
        let next = if parts.method == axum::http::Method::GET {
            next
        } else {
            String::new()
        };
        let secure = https(parts, state);
        let Some(token) = cookie(&parts.headers, &cookie_name(SESSION_COOKIE, secure)) else {
            return Err(WebError::SignIn { next });
        };
        let Some((session, user)) = users::session(&*state.svc.store, token).await? else {
            return Err(WebError::SignIn { next });
        };
        tracing::Span::current().record("account", user.account_id.as_str());
        Ok(Signed { user, session })
    }
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The name of cookie `base` as set and read: over https with the `__Host-` prefix, which a
/// browser accepts only `Secure`, for the whole site and from this very host.
pub(super) fn cookie_name(base: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, whole site; `Secure` (and `__Host-`) over
/// https.
pub(super) fn set_cookie(
    name: &str,
    value: &str,
    max_age: Option<i64>,
    secure: bool,
) -> HeaderValue {
    let mut c = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax",
        cookie_name(name, secure)
    );
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    // Names and values are ours (base64url tokens), so this cannot fail; fall back to
    // clearing rather than panicking all the same.
    HeaderValue::from_str(&c)
        .unwrap_or_else(|_| HeaderValue::from_static("callhook_bad=; Max-Age=0"))
}

/// Whether this request's browser came over https.
pub(super) fn https(parts: &Parts, state: &WebState) -> bool {
    edge::over_https(edge::peer(parts), &parts.headers, &state.svc.settings)
}

/// The client's address, for the sign-in limits (through trusted proxies only).
fn client_ip(parts: &Parts, state: &WebState) -> Option<IpAddr> {
    edge::client_ip(
        edge::peer(parts),
        &parts.headers,
        &state.svc.settings.trusted_proxies,
    )
}

/// `/`: the webhook list when signed in, else the sign-in page.
pub async fn home(signed: Result<Signed, WebError>) -> Redirect {
    match signed {
        Ok(_) => Redirect::to("/webhooks"),
        Err(_) => Redirect::to("/signin"),
    }
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    token: String,
    email: String,
    next: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Only an absolute path of ours may be a place to come back to: no other host
/// (`//evil.example`, `/\\evil.example`, or `/%09/evil.example`, which decodes to a tab that
/// a browser drops, leaving `//evil.example`), and no control characters (a newline does not
/// fit in the `Location` header). Paths we link to are printable ASCII, so nothing else is.
fn safe_next(next: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if ok {
        next.to_owned()
    } else {
        "/webhooks".to_owned()
    }
}

async fn signin_page(
    State(state): State<WebState>,
    parts: Parts,
    Query(q): Query<NextQuery>,
) -> WebResult<Response> {
    let secure = https(&parts, &state);
    // Keep the token a browser already has, so two open sign-in tabs both work.
    let token = cookie(&parts.headers, &cookie_name(SIGNIN_COOKIE, secure))
        .map(str::to_owned)
        .unwrap_or_else(|| random_token(""));
    let mut resp = page(&SigninPage {
        token: token.clone(),
        email: String::new(),
        next: safe_next(q.next.as_deref().unwrap_or("")),
        error: None,
    })?;
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, &token, Some(3600), secure),
    );
    Ok(resp)
}

async fn signin(State(state): State<WebState>, req: Request<Body>) -> WebResult<Response> {
    let (parts, body) = req.into_parts();
    let fields = read_body(body).await?;
    let secure = https(&parts, &state);
    let token = cookie(&parts.headers, &cookie_name(SIGNIN_COOKIE, secure)).unwrap_or("");
    if !tokens_match(fields.get("csrf"), token) {
        return Err(WebError::Csrf);
    }
    let email = normalize_email(fields.get("email"));
    let password = fields.get("password").to_owned();
    let next = safe_next(fields.get("next"));
    let client = client_ip(&parts, &state);
    let refused = |error: &str| SigninPage {
        token: token.to_owned(),
        email: email.clone(),
        next: next.clone(),
        error: Some(error.to_owned()),
    };
    let permit = match state.sign_in.admit(&email, client, Instant::now()) {
        Ok(permit) => permit,
        Err(refusal) => {
            let (message, retry) = match refusal {
                Refusal::Busy => (
                    "Too many sign-ins are being checked right now. Try again in a few seconds.",
                    Duration::from_secs(2),
                ),
                Refusal::TooManyFailures(wait) => (
                    "Too many failed sign-ins. Try again in a few minutes.",
                    wait,
                ),
            };
            tracing::info!(email = ?email, ?client, ?refusal, "sign-in not checked");
            let mut resp = super::page(&refused(message))?;
            *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry.as_secs().max(1)),
            );
            return Ok(resp);
        }
    };
    // The permit goes with the check, so it counts until the check ends even if this request
    // is dropped meanwhile.
    let user = users::check_password(&*state.svc.store, &email, password, permit).await?;
    let Some(user) = user else {
        state.sign_in.failed(&email, client, Instant::now());
        log_refused(&email, client);
        let mut resp = super::page(&refused("That email and password do not match an account."))?;
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(resp);
    };
    state.sign_in.succeeded(&email, client, Instant::now());
    let NewSession { token: secret, .. } = users::start_session(&*state.svc.store, &user).await?;
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &secret, None, secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, "", Some(0), secure),
    );
    Ok(resp)
}

/// A wrong password, in the log. The email is what the visitor typed, so it is written
/// quoted and escaped (`?`): a newline in it cannot start a forged log line.
fn log_refused(email: &str, client: Option<IpAddr>) {
    tracing::info!(email = ?email, ?client, "sign-in refused");
}

async fn signout(
    State(state): State<WebState>,
    parts: Parts,
    form: PostForm,
) -> WebResult<Response> {
    let secure = https(&parts, &state);
    users::end_session(&*state.svc.store, &form.signed.session).await?;
    let mut resp = Redirect::to("/signin").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Some(0), secure),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; callhook_session_x=2; callhook_session=abc"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "a"), Some("1"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn a_newline_in_an_email_cannot_forge_a_log_line() {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let forged =
            "x@acme.example\n2026-11-27T04:00:00Z  INFO callhook: signed in user=usr_admin";
        tracing::subscriber::with_default(subscriber, || {
            log_refused(forged, Some("198.51.100.1".parse().unwrap()));
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("sign-in refused"), "{out}");
        assert!(out.contains(r"x@acme.example\n2026"), "{out}");
    }

    #[test]
    fn only_local_paths_are_places_to_return_to() {
        assert_eq!(safe_next("/webhooks/wh_1"), "/webhooks/wh_1");
        assert_eq!(safe_next("//evil.example"), "/webhooks");
        assert_eq!(safe_next("https://evil.example"), "/webhooks");
        assert_eq!(safe_next("/\\evil.example"), "/webhooks");
        assert_eq!(safe_next(""), "/webhooks");
        assert_eq!(safe_next("/calls?number=%2B91"), "/calls?number=%2B91");
        for bad in [
            "/\t/evil.example",
            "/webhooks\nSet-Cookie: x=1",
            "/webhooks\r\n",
            "/ /evil.example",
            "/caf\u{e9}",
            "webhooks",
        ] {
            assert_eq!(safe_next(bad), "/webhooks", "{bad:?}");
        }
    }
}
