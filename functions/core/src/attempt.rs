//! What one POST to a receiver came to, as a typed value, and what it means for the delivery
//! (SPEC §5, §6): the HTTP adapter reports the facts; the classification lives here.

use time::OffsetDateTime;

use crate::reliability::AttemptResult;
use crate::retry::parse_retry_after;

/// Why a request got no (complete) response. Each has the stable code recorded in the
/// delivery log's `error` and in the webhook's `last_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendFailure {
    /// The target resolves to an address the service may not reach (SPEC §8); no connection
    /// was made.
    BlockedAddress,
    /// The host name gave no address.
    DnsFailed,
    /// The URL does not parse, or has no host.
    InvalidUrl,
    /// No complete answer within the delivery timeout.
    Timeout,
    /// No connection could be made.
    ConnectionFailed,
    /// The answer started but its body broke off.
    ResponseIncomplete,
    /// The request could not be sent.
    RequestFailed,
    /// Any other HTTP-level failure.
    HttpError,
}

impl SendFailure {
    pub const ALL: [SendFailure; 8] = [
        Self::BlockedAddress,
        Self::DnsFailed,
        Self::InvalidUrl,
        Self::Timeout,
        Self::ConnectionFailed,
        Self::ResponseIncomplete,
        Self::RequestFailed,
        Self::HttpError,
    ];

    pub const fn code(self) -> &'static str {
        match self {
            Self::BlockedAddress => "blocked_address",
            Self::DnsFailed => "dns_failed",
            Self::InvalidUrl => "invalid_url",
            Self::Timeout => "timeout",
            Self::ConnectionFailed => "connection_failed",
            Self::ResponseIncomplete => "response_incomplete",
            Self::RequestFailed => "request_failed",
            Self::HttpError => "http_error",
        }
    }

    /// The failure of a stable code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.code() == code)
    }
}

/// The receiver's answer, or why there was none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A complete response (its body read up to the sender's limit).
    Response {
        status: u16,
        body: Vec<u8>,
        /// The `Retry-After` header, as sent.
        retry_after: Option<String>,
    },
    /// No complete response.
    Failed(SendFailure),
}

/// One request and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub answer: Answer,
    pub duration_ms: u64,
}

impl SendOutcome {
    /// A response with `status` and `body`.
    pub fn response(status: u16, body: impl Into<Vec<u8>>, retry_after: Option<String>, duration_ms: u64) -> Self {
        Self { answer: Answer::Response { status, body: body.into(), retry_after }, duration_ms }
    }

    /// No response, for `failure`.
    pub fn failed(failure: SendFailure, duration_ms: u64) -> Self {
        Self { answer: Answer::Failed(failure), duration_ms }
    }

    /// A 2xx within the timeout.
    pub fn succeeded(&self) -> bool {
        matches!(self.answer, Answer::Response { status: 200..=299, .. })
    }

    /// The HTTP status, when a response arrived.
    pub fn status(&self) -> Option<u16> {
        match self.answer {
            Answer::Response { status, .. } => Some(status),
            Answer::Failed(_) => None,
        }
    }

    /// The failure's code, when no response arrived.
    pub fn error_code(&self) -> Option<&'static str> {
        match self.answer {
            Answer::Response { .. } => None,
            Answer::Failed(f) => Some(f.code()),
        }
    }

    /// What the webhook's `last_error` says of a failed attempt: the failure's code, or the
    /// status (`HTTP 500`).
    pub fn failure_text(&self) -> String {
        match &self.answer {
            Answer::Response { status, .. } => format!("HTTP {status}"),
            Answer::Failed(f) => f.code().to_owned(),
        }
    }

    /// The first `limit` bytes of the response body, as text (lossy).
    pub fn body_excerpt(&self, limit: usize) -> Option<String> {
        match &self.answer {
            Answer::Response { body, .. } => Some(String::from_utf8_lossy(&body[..body.len().min(limit)]).into_owned()),
            Answer::Failed(_) => Some(String::new()),
        }
    }

    /// What the attempt means for the delivery (SPEC §6, §10): a 2xx succeeded; a 410 says
    /// the endpoint is gone; a 429 with `Retry-After` (seconds or an HTTP date, read at `now`)
    /// asks to slow down; a 429 or 503 may say when to come back; anything else failed.
    pub fn classify(&self, now: OffsetDateTime) -> AttemptResult {
        match &self.answer {
            Answer::Response { status: 200..=299, .. } => AttemptResult::Succeeded,
            Answer::Response { status: 410, .. } => AttemptResult::Gone,
            Answer::Response { status: 429, retry_after: Some(value), .. }
                if let Some(wait) = parse_retry_after(value, now) =>
            {
                AttemptResult::SlowDown { retry_after: wait }
            }
            Answer::Response { status: 429 | 503, retry_after, .. } => {
                AttemptResult::Failed { retry_after: retry_after.as_deref().and_then(|v| parse_retry_after(v, now)) }
            }
            Answer::Response { .. } | Answer::Failed(_) => AttemptResult::Failed { retry_after: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000)
    }

    #[test]
    fn every_status_class_means_what_spec_6_says() {
        // GIVEN answers of every kind WHEN classified THEN 2xx succeeds, 410 is gone, 429 and
        // 503 carry their Retry-After, everything else failed without one
        let cases = [
            (SendOutcome::response(200, "", None, 1), AttemptResult::Succeeded),
            (SendOutcome::response(299, "", None, 1), AttemptResult::Succeeded),
            (SendOutcome::response(410, "", None, 1), AttemptResult::Gone),
            (
                SendOutcome::response(429, "", Some("7".into()), 1),
                AttemptResult::SlowDown { retry_after: Duration::from_secs(7) },
            ),
            (SendOutcome::response(429, "", None, 1), AttemptResult::Failed { retry_after: None }),
            (SendOutcome::response(429, "", Some("soon".into()), 1), AttemptResult::Failed { retry_after: None }),
            (
                SendOutcome::response(503, "", Some("120".into()), 1),
                AttemptResult::Failed { retry_after: Some(Duration::from_secs(120)) },
            ),
            (SendOutcome::response(500, "", Some("7".into()), 1), AttemptResult::Failed { retry_after: None }),
            (SendOutcome::response(301, "", None, 1), AttemptResult::Failed { retry_after: None }),
            (SendOutcome::failed(SendFailure::Timeout, 1), AttemptResult::Failed { retry_after: None }),
        ];
        for (outcome, expected) in cases {
            assert_eq!(outcome.classify(at()), expected, "{outcome:?}");
        }
    }

    #[test]
    fn a_failure_is_described_by_its_code_or_its_status() {
        // GIVEN a refused target and a 500 THEN their texts are the code and the status
        let refused = SendOutcome::failed(SendFailure::BlockedAddress, 0);
        assert_eq!(refused.failure_text(), "blocked_address");
        assert_eq!(refused.error_code(), Some("blocked_address"));
        assert_eq!(refused.status(), None);
        let error = SendOutcome::response(500, "oops, this is long", None, 3);
        assert_eq!(error.failure_text(), "HTTP 500");
        assert_eq!(error.body_excerpt(4).as_deref(), Some("oops"));
        // AND every code reads back as its failure
        for f in SendFailure::ALL {
            assert_eq!(SendFailure::from_code(f.code()), Some(f));
        }
    }
}
