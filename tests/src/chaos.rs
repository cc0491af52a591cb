//! Misbehaving receivers and the local stack's fault proxy, for tests that prove nothing is
//! lost when everything around the service fails now and then.
//!
//! [`ChaosReceiver`] is a raw HTTP/1.1 server on `127.0.0.1:0` (a plain TCP listener, so it can
//! also hang up without answering): for a seeded, random fraction of the requests it answers
//! 5xx, 429 with `Retry-After`, resets or closes the connection, or answers too late; the rest
//! get 200. It verifies every request's signature when it arrives (the Standard Webhooks
//! library refuses timestamps older than 5 minutes, so a long run cannot verify at the end).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::Stack;

/// How a [`ChaosReceiver`] misbehaves.
#[derive(Debug, Clone, Copy)]
pub struct Chaos {
    /// Fraction of requests that fail (0 = a well-behaved receiver).
    pub failure_rate: f64,
    /// How long a slow answer takes (make it longer than `WEBHOOKS_DELIVERY_TIMEOUT`).
    pub slow: Duration,
    pub seed: u64,
}

/// What the receiver did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Answer {
    /// 200 in time: the only answer that counts as delivered.
    Ok,
    /// 500, 502 or 503.
    ServerError(u16),
    /// 429 with `Retry-After` (1 or 2 seconds).
    TooManyRequests,
    /// The connection reset (RST) without an answer.
    Reset,
    /// The connection closed (FIN) without an answer.
    Closed,
    /// 200, but later than the sender waits.
    Slow,
    /// 503 during an outage (see [`ChaosReceiver::outage`]).
    Outage,
}

impl Answer {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ServerError(_) => "5xx",
            Self::TooManyRequests => "429",
            Self::Reset => "reset",
            Self::Closed => "closed",
            Self::Slow => "slow",
            Self::Outage => "outage",
        }
    }
}

/// One request a [`ChaosReceiver`] got.
#[derive(Debug, Clone)]
pub struct ChaosRequest {
    pub at: Instant,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub answer: Answer,
    /// A 200 was written in full, in time: the sender saw a success.
    pub delivered: bool,
    /// The signature verified with the secret given to [`ChaosReceiver::verify_with`] (None:
    /// no secret yet).
    pub verified: Option<bool>,
}

impl ChaosRequest {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

#[derive(Debug)]
struct Inner {
    chaos: Chaos,
    rng: Mutex<u64>,
    calm: AtomicBool,
    outage_until: Mutex<Option<Instant>>,
    /// An outage that starts once this many requests arrived: (requests, duration).
    outage_later: Mutex<Option<(usize, Duration)>>,
    secret: Mutex<Option<String>>,
    requests: Mutex<Vec<ChaosRequest>>,
}

/// A receiver that fails at random (see the module documentation).
#[derive(Debug, Clone)]
pub struct ChaosReceiver {
    pub url: String,
    inner: Arc<Inner>,
}

/// splitmix64: small, seedable, good enough to pick faults.
fn next_u64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform number in [0, 1).
pub fn next_unit(state: &mut u64) -> f64 {
    (next_u64(state) >> 11) as f64 / (1u64 << 53) as f64
}

impl ChaosReceiver {
    pub async fn start(chaos: Chaos) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let inner = Arc::new(Inner {
            chaos,
            rng: Mutex::new(chaos.seed),
            calm: AtomicBool::new(false),
            outage_until: Mutex::new(None),
            outage_later: Mutex::new(None),
            secret: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
        });
        let served = inner.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, served.clone()));
            }
        });
        Ok(Self { url, inner })
    }

    /// Verifies every later request with this webhook secret (`whsec_...`).
    pub fn verify_with(&self, secret: &str) -> Result<()> {
        standardwebhooks::Webhook::new(secret).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if let Ok(mut s) = self.inner.secret.lock() {
            *s = Some(secret.to_owned());
        }
        Ok(())
    }

    /// From now on every request gets a 200 in time (the receiver is fixed).
    pub fn calm(&self) {
        self.inner.calm.store(true, Ordering::SeqCst);
    }

    /// Every request gets 503 for `duration` from now (unless calmed).
    pub fn outage(&self, duration: Duration) {
        if let Ok(mut until) = self.inner.outage_until.lock() {
            *until = Some(Instant::now() + duration);
        }
    }

    /// Every request gets 503 for `duration` once `requests` requests have arrived (so the
    /// outage meets traffic however long the pipeline takes to reach this receiver).
    pub fn outage_after(&self, requests: usize, duration: Duration) {
        if let Ok(mut later) = self.inner.outage_later.lock() {
            *later = Some((requests, duration));
        }
    }

    /// Ends an outage now (or cancels one not yet started).
    pub fn end_outage(&self) {
        if let Ok(mut later) = self.inner.outage_later.lock() {
            *later = None;
        }
        if let Ok(mut until) = self.inner.outage_until.lock() {
            *until = None;
        }
    }

    pub fn requests(&self) -> Vec<ChaosRequest> {
        self.inner.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// How many requests got each kind of answer, by [`Answer::label`].
    pub fn answers(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for r in self.requests() {
            *counts.entry(r.answer.label()).or_insert(0) += 1;
        }
        counts
    }
}

impl Inner {
    fn decide(&self) -> Answer {
        if self.calm.load(Ordering::SeqCst) {
            return Answer::Ok;
        }
        let seen = self.requests.lock().map(|r| r.len()).unwrap_or(0);
        if let Ok(mut later) = self.outage_later.lock()
            && let Some((after, duration)) = *later
            && seen >= after
        {
            *later = None;
            if let Ok(mut until) = self.outage_until.lock() {
                *until = Some(Instant::now() + duration);
            }
        }
        if self.outage_until.lock().ok().and_then(|u| *u).is_some_and(|u| Instant::now() < u) {
            return Answer::Outage;
        }
        let Ok(mut rng) = self.rng.lock() else { return Answer::Ok };
        if next_unit(&mut rng) >= self.chaos.failure_rate {
            return Answer::Ok;
        }
        let kind = next_unit(&mut rng);
        match kind {
            k if k < 0.30 => Answer::ServerError([500, 502, 503][(next_u64(&mut rng) % 3) as usize]),
            k if k < 0.50 => Answer::TooManyRequests,
            k if k < 0.65 => Answer::Reset,
            k if k < 0.75 => Answer::Closed,
            _ => Answer::Slow,
        }
    }

    fn retry_after(&self) -> u64 {
        self.rng.lock().map(|mut r| 1 + next_u64(&mut r) % 2).unwrap_or(1)
    }

    fn verify(&self, body: &[u8], headers: &http::HeaderMap) -> Option<bool> {
        let secret = self.secret.lock().ok()?.clone()?;
        let verifier = standardwebhooks::Webhook::new(&secret).ok()?;
        Some(verifier.verify(body, headers).is_ok())
    }

    fn record(&self, request: ChaosRequest) {
        if let Ok(mut r) = self.requests.lock() {
            r.push(request);
        }
    }
}

/// One request off the connection: headers and body (by `content-length`). None at the end
/// of the connection or on anything this small parser does not handle.
async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(http::HeaderMap, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut headers = http::HeaderMap::new();
    let mut head_bytes = line.len();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).await.ok()?;
        head_bytes += n;
        if n == 0 || head_bytes > 64 * 1024 {
            return None;
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':')?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
        let value = http::HeaderValue::from_str(value.trim()).ok()?;
        headers.append(name, value);
    }
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return None; // the sender always sends a content-length
    }
    let length: usize =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
    if length > 1024 * 1024 {
        return None;
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    Some((headers, body))
}

fn response(status: u16, reason: &str, extra: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n{extra}\r\nok").into_bytes()
}

async fn connection(stream: TcpStream, inner: Arc<Inner>) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream);
    while let Some((headers, body)) = read_request(&mut reader).await {
        let answer = inner.decide();
        let verified = inner.verify(&body, &headers);
        let mut request = ChaosRequest { at: Instant::now(), headers, body, answer, delivered: false, verified };
        let bytes = match answer {
            Answer::Reset => {
                let stream = reader.into_inner();
                let _ = stream.set_zero_linger();
                drop(stream);
                inner.record(request);
                return;
            }
            Answer::Closed => {
                drop(reader);
                inner.record(request);
                return;
            }
            Answer::Slow => {
                tokio::time::sleep(inner.chaos.slow).await;
                response(200, "OK", "")
            }
            Answer::Ok => response(200, "OK", ""),
            Answer::ServerError(status) => response(status, "Error", ""),
            Answer::Outage => response(503, "Service Unavailable", ""),
            Answer::TooManyRequests => {
                response(429, "Too Many Requests", &format!("retry-after: {}\r\n", inner.retry_after()))
            }
        };
        let written = reader.get_mut().write_all(&bytes).await.is_ok() && reader.get_mut().flush().await.is_ok();
        request.delivered = answer == Answer::Ok && written;
        inner.record(request);
        if !written {
            return;
        }
    }
}

// ------------------------------------------------------------------------- the fault proxy

/// The fault proxy's URL (`fault_proxy_url` in stack.json), when the stack runs one
/// (`WEBHOOKS_LOCAL_FAULT_RATE` above 0).
pub fn fault_proxy_url(stack: &Stack) -> Result<Option<String>> {
    Ok(stack.info.fault_proxy_url.clone())
}

/// What the fault proxy injected so far (`GET /_faults`).
pub async fn faults(proxy_url: &str) -> Result<Value> {
    Ok(reqwest::get(format!("{proxy_url}/_faults")).await?.error_for_status()?.json().await?)
}

/// Changes the fraction of failing requests at run time (`POST /_faults`).
pub async fn set_fault_rate(proxy_url: &str, rate: f64) -> Result<Value> {
    let r = reqwest::Client::new()
        .post(format!("{proxy_url}/_faults"))
        .json(&serde_json::json!({"rate": rate}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("setting the fault rate: {}", r.status());
    }
    Ok(r.json().await?)
}
