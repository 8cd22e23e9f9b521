//! The web page (SPEC §9): server-rendered pages for an account's users — sign-in, Services >
//! Webhook, Numbers, API keys and Calls (with its Call form, SPEC §15), and for a team (SPEC
//! §13) Users, Audit, sign-up links and password change — served by the same binary as the
//! REST API. Each page shows only what the signed-in user's role may do; the operations
//! refuse the rest anyway.
//!
//! Pages are askama templates filled from small view structs; every asset is embedded. The
//! handlers call the same operations ([`crate::service`]) as the REST API, so a webhook saved
//! here is validated exactly like one sent to `POST /v1/webhooks`.

mod alerts;
mod api_keys;
mod assets;
mod audit;
mod calls;
mod click_to_call;
mod deliveries;
mod form;
mod links;
mod numbers;
mod session;
mod throttle;
mod users;
mod view;
mod webhooks;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::service::{Failure, IntoFailure, Services};

pub use session::{SESSION_COOKIE, SIGNIN_COOKIE};
pub use throttle::SignInThrottle;

/// What every page can reach: the operations, and the sign-in limits.
#[derive(Clone)]
pub struct WebState {
    /// Shared, not copied: the state is cloned for every request.
    pub svc: Arc<Services>,
    /// How many sign-ins are checked, and from whom.
    pub sign_in: SignInThrottle,
}

/// Every page and form of the web page (the app puts [`security_headers`] on every answer).
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(session::home))
        .merge(session::router())
        .merge(webhooks::router())
        .merge(deliveries::router())
        .merge(numbers::router())
        .merge(alerts::router())
        .merge(api_keys::router())
        .merge(calls::router())
        .merge(click_to_call::router())
        .merge(users::router())
        .merge(links::router())
        .merge(audit::router())
        .merge(assets::router())
        .route_layer(axum::middleware::from_fn(form::refuse_bad_request_line))
        .with_state(state)
}

/// What a page or form can fail with; each becomes a page a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not signed in (or the session expired): off to the sign-in page, then back to `next`.
    #[error("sign in to continue")]
    SignIn { next: String },
    /// Nothing by that id in the signed-in account (another account's pages are 404 too).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A form without this session's CSRF token.
    #[error("this form has expired or did not come from callhook; reload the page and try again")]
    Csrf,
    /// A malformed request (a form body that cannot be read).
    #[error("{0}")]
    BadRequest(String),
    /// A refusal or failure of an operation the page has no better answer for.
    #[error(transparent)]
    Failed(Failure),
    /// A template failed to render (a bug).
    #[error("cannot render the page: {0}")]
    Template(#[from] askama::Error),
}

/// Every service error (and the store's below them) becomes a page; "not found" is the
/// same page whichever kind of thing is missing.
impl<E: IntoFailure> From<E> for WebError {
    fn from(e: E) -> Self {
        match e.into_failure() {
            Failure::NotFound(what) => WebError::NotFound(what),
            f => WebError::Failed(f),
        }
    }
}

pub type WebResult<T> = Result<T, WebError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    title: &'static str,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            WebError::SignIn { next } => {
                let to = if next.is_empty() || next == "/" {
                    "/signin".to_owned()
                } else {
                    format!("/signin?next={}", form::urlencode(&next))
                };
                return Redirect::to(&to).into_response();
            }
            WebError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "Page not found",
                format!("There is no such {what} in your account."),
            ),
            e @ WebError::Csrf => (StatusCode::FORBIDDEN, "Request refused", e.to_string()),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m),
            WebError::Failed(Failure::Conflict(m)) => (StatusCode::CONFLICT, "Not possible", m),
            WebError::Failed(Failure::ConflictOn(f)) => {
                (StatusCode::CONFLICT, "Not possible", f.to_string())
            }
            WebError::Failed(Failure::Invalid(f)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "Not valid", f.to_string())
            }
            WebError::Failed(Failure::Forbidden(m)) => {
                (StatusCode::FORBIDDEN, "Not allowed", sentence(&m))
            }
            WebError::Failed(Failure::TooMany { message, .. }) => {
                (StatusCode::TOO_MANY_REQUESTS, "Not now", message)
            }
            WebError::Failed(Failure::Unavailable) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "callhook is shutting down or overloaded; try again in a moment.".to_owned(),
            ),
            WebError::Failed(e) => {
                tracing::error!(error = ?e, "web page error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Something went wrong on our side; it has been logged.".to_owned(),
                )
            }
            WebError::Template(e) => {
                tracing::error!(error = %e, "cannot render a page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Something went wrong on our side; it has been logged.".to_owned(),
                )
            }
        };
        let page = ErrorPage {
            status: status.as_u16(),
            title,
            message,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, title).into_response(),
        }
    }
}

/// A message of the operations (`changes need …`) as a sentence on a page.
fn sentence(m: &str) -> String {
    let mut chars = m.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// Renders a page template into a response.
fn page(t: &impl Template) -> WebResult<Response> {
    Ok(Html(t.render()?).into_response())
}

/// Puts the headers every answer carries on `resp`, pages and API alike: no caching of
/// account data (but for `/assets/`), no framing, no content sniffing, and a content security
/// policy that allows only our own scripts and styles (none inline). The app's one outer
/// middleware calls it for every answer.
pub fn security_headers(resp: &mut Response, is_asset: bool) {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
