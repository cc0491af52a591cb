//! The HTTP sender: one pooled reqwest client per execution environment, built for calling
//! URLs that customers control: no redirects, no proxy from the environment, a total timeout,
//! bounded response reads.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// Response bodies are read up to this much (SPEC §5); the rest is not downloaded.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// A TCP/TLS connection must be up within this, whatever the total timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections are kept this long for the next delivery to the same host.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// `user-agent` of every request.
pub const USER_AGENT: &str = concat!("granular-webhooks/", env!("CARGO_PKG_VERSION"));

/// What happened to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Why it failed without a (complete) response: `timeout`, `connect`, `blocked_address`, ...
    pub error: Option<String>,
    /// Up to `MAX_RESPONSE_BYTES` of the response body.
    pub body: Vec<u8>,
    pub retry_after: Option<String>,
    pub duration_ms: u64,
}

impl SendOutcome {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Could not build the client (bad TLS set-up); fatal at start.
#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP client")]
pub struct ClientBuildError(#[source] reqwest::Error);

/// Sends signed deliveries.
#[derive(Debug, Clone)]
pub struct HttpSender {
    client: reqwest::Client,
    timeout: Duration,
}

impl HttpSender {
    /// `timeout` covers the whole request and response (`WEBHOOKS_DELIVERY_TIMEOUT`).
    pub fn new(timeout: Duration) -> Result<Self, ClientBuildError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(USER_AGENT)
            .build()
            .map_err(ClientBuildError)?;
        Ok(Self { client, timeout })
    }

    /// POSTs `body` to `url` with `headers`; never fails, the outcome says what happened.
    pub async fn post(&self, url: &str, headers: HeaderMap, body: String) -> SendOutcome {
        let started = Instant::now();
        let mut outcome = SendOutcome { status: None, error: None, body: Vec::new(), retry_after: None, duration_ms: 0 };
        let exchange = async {
            let mut response = self.client.post(url).headers(headers).body(body).send().await?;
            outcome.status = Some(response.status().as_u16());
            outcome.retry_after =
                response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            while let Some(chunk) = response.chunk().await? {
                let room = MAX_RESPONSE_BYTES - outcome.body.len();
                outcome.body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if outcome.body.len() == MAX_RESPONSE_BYTES {
                    break;
                }
            }
            Ok::<(), reqwest::Error>(())
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => outcome.error = Some(classify(&e)),
            Err(_) => outcome.error = Some("timeout".to_owned()),
        }
        outcome.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        outcome
    }
}

fn classify(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection_failed".into()
    } else if e.is_body() || e.is_decode() {
        "response_incomplete".into()
    } else if e.is_request() {
        "request_failed".into()
    } else {
        "http_error".into()
    }
}

/// Adds one header, skipping names or values HTTP would refuse (validated at the API already).
pub fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        headers.insert(n, v);
    }
}
