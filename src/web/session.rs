//! Sign-in, sessions and CSRF tokens.
//!
//! A session is a random 256-bit token in an HttpOnly, SameSite=Lax cookie; the store keeps
//! only its SHA-256, so a copy of the database signs nobody in. Sessions last 12 hours from
//! their last use. Each carries its own CSRF token, which every form sends back
//! ([`super::form::PostForm`]). The cookie is marked `Secure` when a proxy in front says the
//! browser came over https (`X-Forwarded-Proto: https`); callhook itself speaks plain HTTP.
//!
//! The sign-in form has no session yet, so it is protected by a double-submit token: a
//! random value set in a short-lived cookie and repeated in the form. That token is the
//! visitor's own, so it stops cross-site posts but not a script: [`super::throttle`] limits
//! how many sign-ins are checked.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, body::Body};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::form::{PostForm, read_body};
use super::throttle::Refusal;
use super::{WebError, WebResult, page};
use crate::accounts::normalize_email;
use crate::api::AppState;
use crate::api::auth::{hash_password, hash_token, random_token, verify_password};
use crate::store::{Session, User};

pub const SESSION_COOKIE: &str = "callhook_session";
pub const SIGNIN_COOKIE: &str = "callhook_signin";
/// How long a session lives after its last use.
const SESSION_TTL: SignedDuration = SignedDuration::from_hours(12);
/// A session's expiry is pushed forward at most this often, not on every request.
const EXTEND_EVERY: SignedDuration = SignedDuration::from_mins(5);

pub fn router() -> Router<AppState> {
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
    pub fn account(&self) -> &str {
        &self.user.account_id
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> WebResult<Signed> {
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
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(WebError::SignIn { next });
        };
        let now = Timestamp::now();
        let Some((session, user)) = state
            .store
            .session_with_user(&hash_token(token), now)
            .await?
        else {
            return Err(WebError::SignIn { next });
        };
        if session.expires_at.duration_since(now) < SESSION_TTL - EXTEND_EVERY {
            let until = now.saturating_add(SESSION_TTL).unwrap_or(now);
            if let Err(e) = state.store.extend_session(&session.id, until).await {
                tracing::warn!(error = %e, "could not extend a session");
            }
        }
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

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, whole site; `Secure` behind https.
fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
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

/// Whether the browser reached us over https, as a proxy in front of callhook reports it.
fn behind_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The client's address, for the sign-in limits: the peer's, or, when the peer is a proxy on
/// this host or network (a loopback or private address) that names the client in
/// `X-Forwarded-For`, the last address there (the one that proxy added).
fn client_ip(parts: &Parts) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())?;
    let local = match peer {
        IpAddr::V4(a) => a.is_loopback() || a.is_private() || a.is_link_local(),
        IpAddr::V6(a) => a.is_loopback() || a.is_unique_local() || a.is_unicast_link_local(),
    };
    if !local {
        return Some(peer);
    }
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .last()
        .and_then(|a| a.trim().parse::<IpAddr>().ok());
    Some(forwarded.map_or(peer, |a| a.to_canonical()))
}

/// Compares a sent token with the expected one in constant time.
pub fn tokens_match(sent: &str, expected: &str) -> bool {
    !expected.is_empty()
        && sent.len() == expected.len()
        && sent
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
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

/// Only a path of ours may be a place to come back to (no `//evil.example`).
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next.to_owned()
    } else {
        "/webhooks".to_owned()
    }
}

async fn signin_page(headers: HeaderMap, Query(q): Query<NextQuery>) -> WebResult<Response> {
    // Keep the token a browser already has, so two open sign-in tabs both work.
    let token = cookie(&headers, SIGNIN_COOKIE)
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
        set_cookie(SIGNIN_COOKIE, &token, Some(3600), behind_https(&headers)),
    );
    Ok(resp)
}

/// A password hash to check against when the email is unknown, so that an unknown email
/// takes as long to refuse as a wrong password and does not reveal who has an account.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

async fn signin(State(state): State<AppState>, req: Request<Body>) -> WebResult<Response> {
    let (parts, body) = req.into_parts();
    let fields = read_body(body).await?;
    let token = cookie(&parts.headers, SIGNIN_COOKIE).unwrap_or("");
    if !tokens_match(fields.get("csrf"), token) {
        return Err(WebError::Csrf);
    }
    let email = normalize_email(fields.get("email"));
    let password = fields.get("password").to_owned();
    let next = safe_next(fields.get("next"));
    let client = client_ip(&parts);
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
            tracing::info!(%email, ?client, ?refusal, "sign-in not checked");
            let mut resp = super::page(&refused(message))?;
            *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry.as_secs().max(1)),
            );
            return Ok(resp);
        }
    };
    let user = state.store.user_by_email(&email).await?;
    let hash = user
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
    // Argon2 is deliberately slow: keep it off the async workers. The permit goes with the
    // check, so it counts until the check ends even if this request is dropped meanwhile.
    let ok = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        verify_password(&password, &hash)
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        state.sign_in.failed(&email, client, Instant::now());
        tracing::info!(%email, ?client, "sign-in refused");
        let mut resp = super::page(&refused("That email and password do not match an account."))?;
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(resp);
    };
    state.sign_in.succeeded(&email);
    let now = Timestamp::now();
    if let Err(e) = state.store.delete_expired_sessions(now).await {
        tracing::warn!(error = %e, "could not delete expired sessions");
    }
    let secret = random_token("");
    let session = Session {
        id: hash_token(&secret),
        user_id: user.id.clone(),
        csrf: random_token(""),
        created_at: now,
        expires_at: now.saturating_add(SESSION_TTL).unwrap_or(now),
    };
    state.store.insert_session(&session).await?;
    tracing::info!(user = %user.id, "signed in");
    let secure = behind_https(&parts.headers);
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

async fn signout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: PostForm,
) -> WebResult<Response> {
    state.store.delete_session(&form.signed.session.id).await?;
    let mut resp = Redirect::to("/signin").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Some(0), behind_https(&headers)),
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
    fn tokens_match_only_themselves_and_never_empty() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abd", "abc"));
        assert!(!tokens_match("ab", "abc"));
        assert!(!tokens_match("", ""));
    }

    #[test]
    fn only_local_paths_are_places_to_return_to() {
        assert_eq!(safe_next("/webhooks/wh_1"), "/webhooks/wh_1");
        assert_eq!(safe_next("//evil.example"), "/webhooks");
        assert_eq!(safe_next("https://evil.example"), "/webhooks");
        assert_eq!(safe_next("/\\evil.example"), "/webhooks");
        assert_eq!(safe_next(""), "/webhooks");
    }
}
