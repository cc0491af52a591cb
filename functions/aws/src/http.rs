//! The HTTP sender: one pooled reqwest client per execution environment, the only way the
//! service calls URLs that customers control (deliveries, health checks, tests). Its egress
//! rules (no refused address, checked before connecting; no redirects; no proxy from the
//! environment) are in [`crate::egress`], with the error codes of a failed send; this module adds
//! a connect and a total timeout and bounded response reads.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
pub use webhooks_core::attempt::{Answer, SendFailure, SendOutcome};
use webhooks_core::payload::request_headers;
use webhooks_core::ports::SignedRequest;
use webhooks_core::ssrf::AllowedTargets;

use crate::egress::{self, Refusal};

/// Response bodies are read up to this much (SPEC §5); the rest is not downloaded.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// A TCP/TLS connection must be up within this, whatever the total timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections are kept this long for the next delivery to the same host.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// `user-agent` of every request.
pub const USER_AGENT: &str = concat!("granular-webhooks/", env!("CARGO_PKG_VERSION"));

/// Could not build the client (bad TLS set-up); fatal at start.
#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP client")]
pub struct ClientBuildError(#[source] reqwest::Error);

/// Sends signed deliveries, health checks and tests.
#[derive(Debug, Clone)]
pub struct HttpSender {
    client: reqwest::Client,
    allowed: AllowedTargets,
    timeout: Duration,
}

impl HttpSender {
    /// `timeout` covers the whole request and response (`WEBHOOKS_DELIVERY_TIMEOUT`); `allowed`
    /// are the only non-global networks it may reach (`WEBHOOKS_ALLOWED_TARGETS`).
    pub fn new(timeout: Duration, allowed: AllowedTargets) -> Result<Self, ClientBuildError> {
        let client = egress::client_builder(allowed.clone())
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(USER_AGENT)
            .build()
            .map_err(ClientBuildError)?;
        Ok(Self { client, allowed, timeout })
    }

    /// POSTs a delivery (or a health check or test) signed as Standard Webhooks says, with
    /// the webhook's own headers; never fails, the outcome says what happened.
    pub async fn send_signed(&self, request: SignedRequest<'_>) -> SendOutcome {
        let mut headers = HeaderMap::new();
        for (name, value) in request_headers(
            request.headers,
            request.webhook_message_id,
            request.timestamp,
            &request.body,
            request.secrets,
        ) {
            insert(&mut headers, &name, &value);
        }
        self.post(request.url, headers, request.body).await
    }

    /// POSTs `body` to `url` with `headers`; never fails, the outcome says what happened. A
    /// refused target is a failed attempt (`blocked_address`, `dns_failed`, `invalid_url`) for
    /// which no connection was made.
    async fn post(&self, url: &str, headers: HeaderMap, body: String) -> SendOutcome {
        let started = Instant::now();
        let exchange = async {
            // The same parsed URL goes to reqwest, so the literal checked is the one connected to.
            let target = egress::parse_target(url, &self.allowed).map_err(Failure::Refused)?;
            let mut response = self.client.post(target).headers(headers).body(body).send().await?;
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let mut received = Vec::new();
            // Stop at the limit: the rest is never downloaded, the connection is dropped.
            while let Some(chunk) = response.chunk().await? {
                let room = MAX_RESPONSE_BYTES - received.len();
                received.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if received.len() == MAX_RESPONSE_BYTES {
                    break;
                }
            }
            Ok::<Answer, Failure>(Answer::Response { status, body: received, retry_after })
        };
        let answer = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => Answer::Failed(e.kind()),
            Err(_) => Answer::Failed(SendFailure::Timeout),
        };
        SendOutcome { answer, duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX) }
    }
}

/// Why a send failed.
#[derive(Debug)]
enum Failure {
    /// Refused before reqwest saw the URL (an IP literal, or a URL that does not parse).
    Refused(Refusal),
    Http(reqwest::Error),
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        Self::Http(e)
    }
}

impl Failure {
    fn kind(&self) -> SendFailure {
        match self {
            Self::Refused(r) => r.kind(),
            Self::Http(e) => classify(e),
        }
    }
}

fn classify(e: &reqwest::Error) -> SendFailure {
    // A refusal of the resolver comes back wrapped in reqwest's and hyper's connect errors.
    if let Some(refusal) = egress::find_refusal(e) {
        refusal.kind()
    } else if e.is_timeout() {
        SendFailure::Timeout
    } else if e.is_connect() {
        SendFailure::ConnectionFailed
    } else if e.is_body() || e.is_decode() {
        SendFailure::ResponseIncomplete
    } else if e.is_builder() {
        SendFailure::InvalidUrl
    } else if e.is_request() {
        SendFailure::RequestFailed
    } else {
        SendFailure::HttpError
    }
}

/// Adds one header, skipping names or values HTTP would refuse (validated at the API already).
fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        headers.insert(n, v);
    }
}
