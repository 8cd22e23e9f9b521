//! Posted forms: the body read as ordered `name=value` pairs (so repeated fields such as
//! header rows and checkboxes keep their order), checked against the session's CSRF token
//! before any handler sees them.

use axum::extract::{FromRequest, FromRequestParts, Request};

use super::WebError;
use super::WebState;
use super::session::Signed;
use crate::core::credentials::tokens_match;
use crate::core::validate::{FieldErrors, NUL_MESSAGE, bad_request_line};
use crate::service::Failure;

/// Largest form body we read; the webhook form with 20 headers is far below it.
const MAX_FORM: usize = 256 * 1024;

/// The name of the hidden field that carries the CSRF token in every form.
pub const CSRF_FIELD: &str = "csrf";

/// Ordered `name=value` pairs of a form or query string.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// Reads `a=1&b=2`; a malformed string is refused rather than half read.
    pub fn parse(s: &str) -> Result<Fields, WebError> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(s)
            .map(Fields)
            .map_err(|e| WebError::BadRequest(format!("the form could not be read: {e}")))
    }

    /// The first value named `name`, trimmed; `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every value named `name`, in order, untrimmed.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// A form posted by a signed-in admin, its CSRF token already checked. Every POST of the
/// web page (sign-in aside, which has its own check) takes one, so none can forget it.
pub struct PostForm {
    pub signed: Signed,
    pub fields: Fields,
}

impl FromRequest<WebState> for PostForm {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &WebState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let fields = read_body(body).await?;
        if !tokens_match(fields.get(CSRF_FIELD), &signed.session.csrf) {
            tracing::warn!(user = %signed.user.id, path = %parts.uri.path(), "form refused: bad CSRF token");
            return Err(WebError::Csrf);
        }
        Ok(PostForm { signed, fields })
    }
}

/// Reads an urlencoded body of at most [`MAX_FORM`] bytes.
pub async fn read_body(body: axum::body::Body) -> Result<Fields, WebError> {
    let bytes = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| WebError::BadRequest(format!("the form is larger than {MAX_FORM} bytes")))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| WebError::BadRequest("the form is not UTF-8".into()))?;
    let fields = Fields::parse(text)?;
    let mut bad = FieldErrors::default();
    for (k, v) in &fields.0 {
        if k.contains('\0') || v.contains('\0') {
            bad.push(k.replace('\0', "\\u0000"), NUL_MESSAGE);
        }
    }
    if !bad.is_empty() {
        return Err(WebError::Failed(Failure::Invalid(bad)));
    }
    Ok(fields)
}

/// Refuses a page whose path parameters or query fields hold NUL or are not UTF-8 (a 422
/// page naming them), before any handler or the database sees them.
pub async fn refuse_bad_request_line(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let bad = bad_request_line(route.as_deref(), req.uri().path(), req.uri().query());
    if !bad.is_empty() {
        return WebError::Failed(Failure::Invalid(bad)).into_response();
    }
    next.run(req).await
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
