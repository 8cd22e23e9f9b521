//! Request extractors that answer in problem+json: the caller ([`Caller`], authenticated by
//! [`crate::service::auth`]), JSON bodies ([`JsonBody`]), query strings ([`ApiQuery`]), list
//! paging ([`ListParams`]) and callhook's own address as the caller reached it ([`BaseUrl`]).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiState;
use super::problem::ApiError;
use crate::core::validate::{bad_request_line, nul_fields};
pub use crate::service::auth::Caller;
use crate::service::auth::{self, AuthError};
use crate::store::PageRequest;

/// Largest JSON body accepted, unless a route sets its own [`BodyLimit`].
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// A route's own body limit, set as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        match auth::authenticate(&state.svc, token).await {
            Ok(caller) => {
                let account = match &caller {
                    Caller::Account(actor) => actor.account().as_str(),
                    Caller::Operator => "operator",
                };
                tracing::Span::current().record("account", account);
                Ok(caller)
            }
            Err(AuthError::Unknown) => Err(ApiError::Unauthorized),
            Err(e) => Err(e.into()),
        }
    }
}

/// callhook's address for links made for people to open (an invitation): `public_url`, else
/// the address the caller reached ([`crate::edge::base_url`]).
pub struct BaseUrl(pub String);

impl FromRequestParts<ApiState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let peer = crate::edge::peer(parts);
        Ok(BaseUrl(crate::edge::base_url(
            peer,
            &parts.headers,
            &state.svc.settings,
        )))
    }
}

/// A JSON body, parsed but not yet validated: handlers validate it field by field so that
/// every problem is reported at once.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json"
            && !(mime.starts_with("application/") && mime.ends_with("+json"))
        {
            return Err(ApiError::UnsupportedMediaType);
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(ApiError::TooLarge(limit));
        }
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|e| {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                    || e.to_string().contains("length limit");
                if too_large {
                    ApiError::TooLarge(limit)
                } else {
                    ApiError::BadRequest(format!("could not read the body: {e}"))
                }
            })?;
        if bytes.is_empty() {
            return Err(ApiError::BadRequest(
                "the body is empty; send a JSON object".into(),
            ));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
        let nul = nul_fields(&value);
        if !nul.is_empty() {
            return Err(ApiError::Invalid(nul));
        }
        Ok(JsonBody(value))
    }
}

/// Refuses a request whose path parameters or query fields hold NUL or are not UTF-8, with a
/// 422 naming them, before any handler (or the database) sees them. A route layer, so it
/// knows the route's parameter names.
pub async fn refuse_bad_request_line(
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let bad = bad_request_line(route.as_deref(), req.uri().path(), req.uri().query());
    if !bad.is_empty() {
        return ApiError::Invalid(bad).into_response();
    }
    next.run(req).await
}

impl JsonBody {
    /// The body as a JSON object, or a 422 saying it must be one.
    pub fn object(&self) -> Result<&serde_json::Map<String, Value>, ApiError> {
        self.0.as_object().ok_or_else(|| {
            ApiError::field(
                "",
                format!(
                    "the body must be a JSON object, not {}",
                    crate::core::validate::kind(&self.0)
                ),
            )
        })
    }
}

/// A query string, with errors as problem+json.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(ApiQuery)
            .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))
    }
}

pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;

/// `?limit=&after=` on every list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

impl ListParams {
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::field("limit", format!("must be 1 to {MAX_PAGE}")));
        }
        Ok(PageRequest {
            limit,
            after: self.after.clone().filter(|a| !a.is_empty()),
        })
    }
}
