//! The one mapping from API errors to responses: `{"error":{"code","message","field"?,"details"?}}`.
//! A 5xx never shows internals; the cause is logged instead.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use webhooks_aws::dynamodb::StoreError;
use webhooks_core::validation::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No hint which part was wrong: missing header, bad shape, unknown or revoked key.
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// A 409 `conflict` whose `details.reason` says which (e.g. `idempotency_key_reused`).
    #[error("{message}")]
    ConflictBecause { message: String, reason: &'static str },
    #[error("{message}")]
    HealthCheckFailed { message: String, details: Value },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{}", .0.message)]
    Validation(FieldError),
    /// Over a rate limit: retry after this many seconds (`Retry-After`).
    #[error("{message}")]
    RateLimited { message: String, retry_after_seconds: u64 },
    /// A dependency failed; the cause is logged, never shown.
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(FieldError::new(field, message))
    }
}

/// A dependency that failed (randomness, KMS, ...): 503, its cause kept for the log.
pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError::Unavailable(Box::new(e))
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::Validation(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => {
                Self::Conflict("the resource was changed concurrently; read it and try again".into())
            }
            StoreError::LimitReached => Self::Conflict("this key owns the most webhooks it may have".into()),
            StoreError::InvalidCursor => Self::validation("cursor", "cursor is not one this API handed out"),
            other => Self::Unavailable(Box::new(other)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) | Self::ConflictBecause { .. } => (StatusCode::CONFLICT, "conflict"),
            Self::HealthCheckFailed { .. } => (StatusCode::CONFLICT, "health_check_failed"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Validation(_) => (StatusCode::BAD_REQUEST, "validation_failed"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        let mut error = json!({"code": code, "message": self.to_string()});
        match &self {
            Self::Validation(e) => error["field"] = json!(e.field),
            Self::HealthCheckFailed { details, .. } => error["details"] = details.clone(),
            Self::ConflictBecause { reason, .. } => error["details"] = json!({"reason": reason}),
            Self::Unavailable(cause) => {
                tracing::error!(error = %webhooks_aws::error_chain(cause.as_ref()), "request failed");
                error["message"] = json!("the service is temporarily unavailable; retrying is safe");
            }
            _ => {}
        }
        let mut response = (status, Json(json!({"error": error}))).into_response();
        if let Self::RateLimited { retry_after_seconds, .. } = &self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(*retry_after_seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
