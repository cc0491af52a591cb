//! Idempotent POSTs (SPEC §10): `POST /v1/webhooks`, `POST /v1/api-keys` and `POST /v1/events`
//! take an `Idempotency-Key` header. A repeat by the same caller key with the same header within
//! 24 h gets the first answer (same status, same body, plus `Idempotent-Replayed: true`) and
//! does nothing else; the same header with another request is 409 `conflict`
//! (`idempotency_key_reused`).
//!
//! A handler checks the caller, its permission and the request (SPEC §7's order) first, then
//! hands the work to [`Idempotency::run`]: one caller can never read another's answer, and an
//! invalid request claims nothing. Only successful answers are kept: a failed request (4xx or
//! 5xx) gives its claim up, so repeating it runs it again. A request arriving while another
//! with the same header runs waits up to [`IN_PROGRESS_WAIT`] for its answer, then gets 409
//! `conflict` (`idempotency_key_in_progress`). The records live in `webhooks_aws::idempotency`.

use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;
use webhooks_aws::idempotency::{Begun, StoredAnswer};
use webhooks_core::signing::sha256_hex;

use crate::AppState;
use crate::auth::Caller;
use crate::body::media_type;
use crate::error::{ApiError, unavailable};

/// The request header (case-insensitive on the wire).
pub const HEADER: &str = "Idempotency-Key";
/// Longest header value (SPEC §10).
pub const MAX_KEY_CHARS: usize = 255;
/// The response header marking a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// `details.reason` of a header reused for another request.
pub const REASON_REUSED: &str = "idempotency_key_reused";
/// `details.reason` of a header whose first request is still running.
pub const REASON_IN_PROGRESS: &str = "idempotency_key_in_progress";
/// How long a repeat waits for the first request with its header to finish: a double click
/// then gets the first answer; a first request slower than this (a webhook URL whose DNS
/// lookup hangs takes up to 3 s) leaves the repeat a 409 to retry.
pub const IN_PROGRESS_WAIT: Duration = Duration::from_secs(5);
/// How often a waiting repeat looks again.
const IN_PROGRESS_POLL: Duration = Duration::from_millis(100);

/// The `Idempotency-Key` header, as the OpenAPI document states it.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// Makes the request safe to repeat: a repeat by the same key with the same header within
    /// 24 h gets the first answer (marked `Idempotent-Replayed: true`) and does nothing else; the
    /// same header with another request is 409 `conflict` (`details.reason`:
    /// `idempotency_key_reused`), and one sent while the first still runs waits for it (409
    /// `idempotency_key_in_progress` after 5 s). Only successful answers are kept. 1 to 255
    /// visible ASCII characters, e.g. a UUID.
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 255, pattern = "^[!-~]+$")]
    pub idempotency_key: Option<String>,
}

/// Whether `value` can be an `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub fn is_valid_key(value: &[u8]) -> bool {
    (1..=MAX_KEY_CHARS).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic)
}

/// The request's `Idempotency-Key`: `None` when absent; 400 when invalid or given twice.
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(ApiError::validation(HEADER, "give the Idempotency-Key header once"));
    }
    match value.to_str() {
        Ok(key) if is_valid_key(key.as_bytes()) => Ok(Some(key.to_owned())),
        _ => Err(ApiError::validation(HEADER, "Idempotency-Key must be 1 to 255 visible ASCII characters")),
    }
}

/// For [`Idempotency::run`]: an answer that shows no secret.
pub fn no_secret<T>(_: &T) -> Option<&str> {
    None
}

/// What makes two requests the same: the operation, the body's media type and its bytes.
pub fn fingerprint(operation: &str, headers: &HeaderMap, body: &[u8]) -> String {
    let media_type = media_type(headers).unwrap_or_default();
    sha256_hex(&format!("{operation}\u{0}{media_type}\u{0}{}", String::from_utf8_lossy(body)))
}

/// What a request does about a record another request with its header left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// The same request, finished: its answer.
    Replay,
    /// The same request, still running: wait for it.
    Wait,
    /// Another request under the same header: 409.
    Reused,
}

/// The decision for a request with `fingerprint` meeting a record of `recorded` (finished
/// when `done`).
pub fn repeat(recorded: &str, done: bool, fingerprint: &str) -> Repeat {
    match (recorded == fingerprint, done) {
        (false, _) => Repeat::Reused,
        (true, true) => Repeat::Replay,
        (true, false) => Repeat::Wait,
    }
}

/// An operation about to run for a caller, with or without an `Idempotency-Key`.
#[derive(Debug)]
pub struct Idempotency {
    caller: String,
    key: Option<String>,
    fingerprint: String,
}

impl Idempotency {
    /// The request `operation` (`"POST /v1/webhooks"`) of `caller`; 400 when its header is
    /// invalid. Called once the request was checked, right before the work.
    pub fn of(caller: &Caller, operation: &str, headers: &HeaderMap, body: &Bytes) -> Result<Self, ApiError> {
        Ok(Self {
            caller: caller.id().to_owned(),
            key: key_of(headers)?,
            fingerprint: fingerprint(operation, headers, body),
        })
    }

    /// Runs `work` once per header: without one, simply runs it; with one, replays a finished
    /// request's answer, waits for a running one, or claims the header, runs `work` and keeps
    /// its answer if it succeeded. `secret` names the part of the answer shown once (kept
    /// encrypted).
    pub async fn run<T, F>(
        self,
        state: &AppState,
        secret: fn(&T) -> Option<&str>,
        work: F,
    ) -> Result<Response, ApiError>
    where
        T: Serialize,
        F: Future<Output = Result<(StatusCode, Json<T>), ApiError>>,
    {
        let Some(header) = self.key else {
            return work.await.map(IntoResponse::into_response);
        };
        let store = &state.idempotency;
        let deadline = tokio::time::Instant::now() + IN_PROGRESS_WAIT;
        let claim = loop {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let (recorded, answer) = match store.begin(&self.caller, &header, &self.fingerprint, now).await {
                Ok(Begun::Claimed(claim)) => break claim,
                Ok(Begun::Done { fingerprint, answer }) => (fingerprint, Some(answer)),
                Ok(Begun::InProgress { fingerprint }) => (fingerprint, None),
                Err(e) => return Err(unavailable(e)),
            };
            match (repeat(&recorded, answer.is_some(), &self.fingerprint), answer) {
                (Repeat::Replay, Some(kept)) => return store.open(kept).await.map(replayed).map_err(unavailable),
                (Repeat::Wait, _) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(IN_PROGRESS_POLL).await;
                }
                (Repeat::Wait, _) => {
                    return Err(ApiError::ConflictBecause {
                        message: "a request with this Idempotency-Key is still in progress; repeat it in a moment"
                            .into(),
                        reason: REASON_IN_PROGRESS,
                    });
                }
                _ => {
                    return Err(ApiError::ConflictBecause {
                        message: "this Idempotency-Key was already used for another request; use a new one".into(),
                        reason: REASON_REUSED,
                    });
                }
            }
        };
        let outcome = work.await;
        let answer = outcome.and_then(|(status, Json(value))| {
            let body = serde_json::to_string(&value).map_err(unavailable)?;
            Ok((StoredAnswer { status: status.as_u16(), body }, secret(&value).map(str::to_owned)))
        });
        match answer {
            Ok((answer, secret)) => {
                if let Err(e) = store.complete(&claim, &answer, secret.as_deref()).await {
                    // The work is done: answer it. The claim stays until its lease expires, so
                    // a repeat meanwhile is a 409 rather than a second run.
                    tracing::error!(error = %webhooks_aws::error_chain(&e), "could not keep an idempotent answer");
                }
                Ok(json_response(answer, false))
            }
            Err(e) => {
                if let Err(release) = store.release(&claim).await {
                    tracing::warn!(error = %webhooks_aws::error_chain(&release), "could not release an idempotency claim; it expires");
                }
                Err(e)
            }
        }
    }
}

fn replayed(answer: StoredAnswer) -> Response {
    json_response(answer, true)
}

fn json_response(answer: StoredAnswer, replayed: bool) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response =
        (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], answer.body).into_response();
    if replayed {
        response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            if let (Ok(name), Ok(value)) =
                (axum::http::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value))
            {
                h.append(name, value);
            }
        }
        h
    }

    #[test]
    fn a_key_is_1_to_255_visible_ascii_characters() {
        assert!(is_valid_key(b"a"));
        assert!(is_valid_key(b"8e3b0f4c-1d2e-4f5a-9b6c-7d8e9f0a1b2c"));
        assert!(is_valid_key("!~".repeat(127).as_bytes()));
        assert!(is_valid_key("x".repeat(255).as_bytes()));
        assert!(!is_valid_key(b""));
        assert!(!is_valid_key("x".repeat(256).as_bytes()));
        for bad in [&b"a b"[..], b"tab\t", b"\x7f", b"caf\xc3\xa9", b"\x00"] {
            assert!(!is_valid_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_header_is_optional_and_refused_with_its_name_when_invalid_or_repeated() -> Result<(), ApiError> {
        // GIVEN no header, a good one, a bad one and two
        assert_eq!(key_of(&headers(&[]))?, None);
        assert_eq!(key_of(&headers(&[("idempotency-key", b"k-1")]))?.as_deref(), Some("k-1"));
        for h in [
            headers(&[("Idempotency-Key", b"")]),
            headers(&[("Idempotency-Key", b"with space")]),
            headers(&[("Idempotency-Key", "x".repeat(256).as_bytes())]),
            headers(&[("Idempotency-Key", b"a"), ("Idempotency-Key", b"a")]),
        ] {
            // WHEN it is read THEN it is a 400 naming the header
            match key_of(&h) {
                Err(ApiError::Validation(e)) => assert_eq!(e.field, HEADER),
                other => panic!("{h:?}: {other:?}"),
            }
        }
        Ok(())
    }

    #[test]
    fn the_same_request_is_the_same_operation_media_type_and_bytes() {
        let json = headers(&[("content-type", b"application/json; charset=utf-8")]);
        let batch = headers(&[("content-type", b"application/cloudevents-batch+json")]);
        let one = fingerprint("POST /v1/webhooks", &json, br#"{"url":"https://a.example"}"#);
        assert_eq!(one, fingerprint("POST /v1/webhooks", &json, br#"{"url":"https://a.example"}"#));
        assert_ne!(one, fingerprint("POST /v1/webhooks", &json, br#"{"url":"https://b.example"}"#));
        assert_ne!(one, fingerprint("POST /v1/api-keys", &json, br#"{"url":"https://a.example"}"#));
        assert_ne!(one, fingerprint("POST /v1/webhooks", &batch, br#"{"url":"https://a.example"}"#));
    }

    #[test]
    fn a_repeat_replays_waits_or_is_refused_by_what_was_recorded() {
        assert_eq!(repeat("f1", true, "f1"), Repeat::Replay);
        assert_eq!(repeat("f1", false, "f1"), Repeat::Wait);
        assert_eq!(repeat("f1", true, "f2"), Repeat::Reused);
        assert_eq!(repeat("f1", false, "f2"), Repeat::Reused);
    }

    #[tokio::test]
    async fn a_reused_key_is_a_conflict_with_its_reason() -> Result<(), Box<dyn std::error::Error>> {
        let response = ApiError::ConflictBecause { message: "m".into(), reason: REASON_REUSED }.into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body: Value = serde_json::from_slice(&axum::body::to_bytes(response.into_body(), usize::MAX).await?)?;
        assert_eq!(body["error"]["code"], "conflict");
        assert_eq!(body["error"]["details"], serde_json::json!({"reason": REASON_REUSED}));
        Ok(())
    }

    #[test]
    fn a_replay_is_the_first_answer_marked_as_replayed() {
        let body = r#"{"accepted":2}"#.to_owned();
        let response = replayed(StoredAnswer { status: 202, body });
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers().get(REPLAYED_HEADER).and_then(|v| v.to_str().ok()), Some("true"));
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
    }

    #[test]
    fn the_document_states_the_header_on_the_three_creating_posts_only() {
        let doc = serde_json::to_value(crate::openapi::document()).unwrap_or_default();
        let mut with_header = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
                if let Some(p) = parameters.iter().find(|p| p["name"] == HEADER) {
                    assert_eq!(p["in"], "header");
                    assert_ne!(p["required"], Value::Bool(true));
                    assert_eq!(p["schema"]["minLength"], 1);
                    assert_eq!(p["schema"]["maxLength"], MAX_KEY_CHARS);
                    assert_eq!(p["schema"]["pattern"], "^[!-~]+$");
                    with_header.push(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
        with_header.sort();
        assert_eq!(with_header, ["POST /v1/api-keys", "POST /v1/events", "POST /v1/webhooks"]);
    }
}
