//! Request bodies: media type, size and JSON, checked in SPEC §7's order (415, 413, 400)
//! after authentication, permission and existence.

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::Value;

use crate::error::ApiError;

/// Largest configuration request body (SPEC §7).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The media type of the request, lowercased, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("content-type")?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
}

/// A required JSON body.
pub fn json(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    if media_type(headers).as_deref() != Some("application/json") {
        return Err(ApiError::UnsupportedMediaType("send the body as application/json".into()));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge("request bodies are at most 64 KiB".into()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::validation("", format!("the body is not valid JSON: {e}")))
}

/// A body that may be left out (any or no content type then), JSON when given; a JSON `null`
/// says the same as no body.
pub fn optional_json(headers: &HeaderMap, body: &Bytes) -> Result<Option<Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    json(headers, body).map(|v| Some(v).filter(|v| !v.is_null()))
}
