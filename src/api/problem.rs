//! Errors as RFC 9457 `application/problem+json`, mapped from every layer's errors in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::core::validate::{FieldError, FieldErrors};
use crate::service::{Failure, IntoFailure};

/// What an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials, or ones we do not know.
    #[error("missing or unknown bearer token")]
    Unauthorized,
    /// The caller may not do this (an account key on an operator route, or the reverse).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing by that id in the caller's account.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is malformed (not JSON, a bad query string).
    #[error("{0}")]
    BadRequest(String),
    /// Fields that break the rules, every one of them.
    #[error("{0}")]
    Invalid(FieldErrors),
    #[error("{0}")]
    Conflict(String),
    /// A conflict with what these fields name, every one of them.
    #[error("{0}")]
    ConflictOn(FieldErrors),
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    #[error("this method is not allowed on this route")]
    MethodNotAllowed,
    /// Something broke on our side; logged with context, answered without details.
    #[error("internal error: {0}")]
    Internal(anyhow::Error),
    #[error("the service is shutting down or overloaded")]
    Unavailable,
    /// A limit says not now (the message names it); try again after this many seconds.
    #[error("{0}")]
    TooMany(String, u64),
}

impl ApiError {
    /// One invalid field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let mut e = FieldErrors::default();
        e.push(field, message);
        ApiError::Invalid(e)
    }
}

/// Every service error, and the store's, field and internal errors below it, read as what
/// they mean to an API caller.
impl<E: IntoFailure> From<E> for ApiError {
    fn from(e: E) -> Self {
        match e.into_failure() {
            Failure::NotFound(what) => ApiError::NotFound(what),
            Failure::Invalid(f) => ApiError::Invalid(f),
            Failure::Conflict(m) => ApiError::Conflict(m),
            Failure::ConflictOn(f) => ApiError::ConflictOn(f),
            Failure::Forbidden(m) => ApiError::Forbidden(m),
            Failure::Unavailable => ApiError::Unavailable,
            Failure::TooMany {
                message,
                retry_after,
            } => ApiError::TooMany(message, retry_after.as_secs_f64().ceil().max(1.0) as u64),
            Failure::Internal(e) => ApiError::Internal(e),
        }
    }
}

/// The problem document (RFC 9457).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// For validation problems: every bad field and what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "Not Found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad Request"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Validation failed"),
            ApiError::Conflict(_) | ApiError::ConflictOn(_) => (StatusCode::CONFLICT, "Conflict"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
            ApiError::TooMany(..) => (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
        };
        let detail = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "something went wrong on our side; it has been logged".to_owned()
            }
            ApiError::Invalid(f) => format!(
                "{} field{} {} invalid: {f}",
                f.0.len(),
                if f.0.len() == 1 { "" } else { "s" },
                if f.0.len() == 1 { "is" } else { "are" }
            ),
            other => other.to_string(),
        };
        let retry_after = match &self {
            ApiError::TooMany(_, secs) => Some(*secs),
            _ => None,
        };
        let errors = match self {
            ApiError::Invalid(f) | ApiError::ConflictOn(f) => Some(f.0),
            _ => None,
        };
        let body = Problem {
            kind: "about:blank",
            title,
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
