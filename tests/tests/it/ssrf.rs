//! SSRF protection of the one HTTP sender and of the create/update URL check (SPEC §8), against
//! real local listeners on loopback. Needs no local stack.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use axum::body::Bytes;
use axum::http::{HeaderMap as AxumHeaders, StatusCode, header};
use axum::response::{IntoResponse, Response};
use webhooks_aws::egress::check_url;
use webhooks_aws::http::{Answer, HttpSender, MAX_RESPONSE_BYTES, SendOutcome, USER_AGENT};
use webhooks_core::ports::SignedRequest;
use webhooks_core::ssrf::AllowedTargets;
use webhooks_core::validation::{UrlPolicy, validate_url};

/// Long enough for any local exchange; the timeout test uses its own.
const TIMEOUT: Duration = Duration::from_secs(10);

fn sender(allowed: &str) -> Result<HttpSender> {
    Ok(HttpSender::new(TIMEOUT, AllowedTargets::parse(allowed)?)?)
}

async fn post(sender: &HttpSender, url: &str) -> SendOutcome {
    let headers = std::collections::BTreeMap::new();
    let request = SignedRequest {
        url,
        headers: &headers,
        webhook_message_id: "msg_test",
        timestamp: 0,
        body: r#"{"type":"WEBHOOK_HEALTH_CHECK"}"#.to_owned(),
        secrets: &[],
    };
    sender.send_signed(request).await
}

/// A listener that answers nothing and counts the TCP connections it accepts: any connection
/// at all means a refused target was reached.
#[derive(Debug, Clone)]
struct Tripwire {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Tripwire {
    async fn bind(addr: &str) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let tripwire = Self { addr: listener.local_addr()?, connections: Arc::default() };
        let connections = Arc::clone(&tripwire.connections);
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                // Kept open and silent, so a client waits rather than seeing a reset.
                open.push(stream);
            }
        });
        Ok(tripwire)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A receiver that records each request and answers with `respond`.
#[derive(Debug, Clone)]
struct Receiver {
    addr: SocketAddr,
    requests: Arc<std::sync::Mutex<Vec<(AxumHeaders, Bytes)>>>,
}

impl Receiver {
    async fn start<F, Fut>(respond: F) -> Result<Self>
    where
        F: Fn() -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Response> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let receiver = Self { addr: listener.local_addr()?, requests: Arc::default() };
        let requests = Arc::clone(&receiver.requests);
        let app = axum::Router::new().fallback(move |headers: AxumHeaders, body: Bytes| {
            let requests = Arc::clone(&requests);
            let respond = respond.clone();
            async move {
                if let Ok(mut r) = requests.lock() {
                    r.push((headers, body));
                }
                respond().await
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(receiver)
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn requests(&self) -> Vec<(AxumHeaders, Bytes)> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// How a hostile URL must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Blocked,
    DnsFailed,
    /// A public name that resolves to a refused address when DNS works, and does not resolve
    /// when it does not: refused either way.
    BlockedOrDnsFailed,
}

impl Expect {
    fn accepts(self, code: Option<&str>) -> bool {
        match self {
            Self::Blocked => code == Some("blocked_address"),
            Self::DnsFailed => code == Some("dns_failed"),
            Self::BlockedOrDnsFailed => matches!(code, Some("blocked_address" | "dns_failed")),
        }
    }
}

/// Hostile URLs, `{p}` standing for the port of a tripwire on 127.0.0.1 and `{p6}` for one on
/// ::1 (the same port when the host has no IPv6 loopback).
fn hostile_corpus() -> Vec<(&'static str, Expect)> {
    use Expect::{Blocked, BlockedOrDnsFailed, DnsFailed};
    vec![
        // Loopback in every spelling the URL parser normalises, on a live listener's port.
        ("http://127.0.0.1:{p}/hook", Blocked),
        ("https://127.0.0.1:{p}/hook", Blocked),
        ("http://127.1:{p}/", Blocked),
        ("http://127.0.0.1.:{p}/", Blocked),
        ("http://127.000.000.001:{p}/", Blocked),
        ("http://2130706433:{p}/", Blocked),
        ("http://0x7f000001:{p}/", Blocked),
        ("http://017700000001:{p}/", Blocked),
        ("http://0x7f.0.0.1:{p}/", Blocked),
        ("http://0x7f.1:{p}/", Blocked),
        ("http://0177.0.0.1:{p}/", Blocked),
        ("http://127.255.255.254:{p}/", Blocked),
        ("http://127%2e0%2e0%2e1:{p}/", Blocked),
        ("http://１２７.０.０.１:{p}/", Blocked),
        ("http://[::1]:{p6}/", Blocked),
        ("http://[0:0:0:0:0:0:0:1]:{p6}/", Blocked),
        ("http://[::ffff:127.0.0.1]:{p}/", Blocked),
        ("http://[0:0:0:0:0:ffff:7f00:1]:{p}/", Blocked),
        ("http://[::127.0.0.1]:{p}/", Blocked),
        ("http://localhost:{p}/", Blocked),
        ("http://LocalHost:{p}/", Blocked),
        // "This network" / unspecified: Linux delivers a connection to 0.0.0.0 to loopback.
        ("http://0.0.0.0:{p}/", Blocked),
        ("http://0:{p}/", Blocked),
        ("http://[::]:{p6}/", Blocked),
        // Cloud metadata and link-local.
        ("http://169.254.169.254/latest/meta-data/", Blocked),
        ("http://2852039166/latest/meta-data/", Blocked),
        ("http://0xa9fea9fe/latest/meta-data/", Blocked),
        ("http://0251.0376.0251.0376/", Blocked),
        ("http://[::ffff:169.254.169.254]/", Blocked),
        ("http://[fd00:ec2::254]/latest/meta-data/", Blocked),
        ("http://[fe80::1]/", Blocked),
        ("http://[fe80::1%25eth0]/", Blocked),
        ("http://[fe80::1%eth0]:{p6}/", Blocked),
        // Private, shared and special-purpose IPv4.
        ("http://10.0.0.1/", Blocked),
        ("http://10.255.255.254/", Blocked),
        ("http://172.16.0.1/", Blocked),
        ("http://172.31.255.254/", Blocked),
        ("http://192.168.0.1/", Blocked),
        ("http://192.168.255.254/", Blocked),
        ("http://100.64.0.1/", Blocked),
        ("http://100.127.255.254/", Blocked),
        ("http://192.0.0.1/", Blocked),
        ("http://192.0.2.1/", Blocked),
        ("http://198.51.100.1/", Blocked),
        ("http://203.0.113.1/", Blocked),
        ("http://198.18.0.1/", Blocked),
        ("http://224.0.0.1/", Blocked),
        ("http://239.255.255.250/", Blocked),
        ("http://240.0.0.1/", Blocked),
        ("http://255.255.255.255/", Blocked),
        // Special IPv6, and IPv6 that carries or routes to (private) IPv4.
        ("http://[2001:db8::1]/", Blocked),
        ("http://[fc00::1]/", Blocked),
        ("http://[ff02::1]/", Blocked),
        ("http://[2001::1]/", Blocked),
        ("http://[100::1]/", Blocked),
        ("http://[64:ff9b::7f00:1]/", Blocked),
        ("http://[64:ff9b::a9fe:a9fe]/", Blocked),
        ("http://[64:ff9b::10.0.0.1]/", Blocked),
        ("http://[64:ff9b:1::c0a8:101]/", Blocked),
        ("http://[2002:7f00:1::]/", Blocked),
        ("http://[2002:a00:1::1]/", Blocked),
        ("http://[2002:c0a8:101::1]/", Blocked),
        ("http://[2002:a9fe:a9fe::1]/", Blocked),
        // Names that do not resolve (reserved TLDs).
        ("http://does-not-exist.invalid/", DnsFailed),
        ("https://nothing.test/hook", DnsFailed),
        // Public names pointing at loopback (resolve only where DNS works).
        ("http://127.0.0.1.nip.io:{p}/", BlockedOrDnsFailed),
        ("http://localtest.me:{p}/", BlockedOrDnsFailed),
    ]
}

#[tokio::test]
async fn hostile_urls_are_refused_before_any_connection() -> Result<()> {
    // GIVEN tripwires on the loopback addresses and a sender with no exceptions
    let v4 = Tripwire::bind("127.0.0.1:0").await?;
    let v6 = Tripwire::bind("[::1]:0").await.ok();
    let p6 = v6.as_ref().map_or(v4.addr.port(), |t| t.addr.port());
    let sender = sender("")?;
    let none = AllowedTargets::none();
    let corpus = hostile_corpus();
    assert!(corpus.len() >= 40, "{} URLs", corpus.len());

    // WHEN each URL is sent to, concurrently (names may take up to the DNS limit)
    let mut sends = tokio::task::JoinSet::new();
    for (template, expected) in corpus {
        let url = template.replace("{p6}", &p6.to_string()).replace("{p}", &v4.addr.port().to_string());
        let sender = sender.clone();
        let none = none.clone();
        sends.spawn(async move {
            let outcome = post(&sender, &url).await;
            // The API's path: the syntax check, then the address check.
            let checked = match validate_url(&url, UrlPolicy { allow_http: true }) {
                Ok(parsed) => Some(check_url(&parsed, &none).await.err().map(|r| r.code())),
                Err(_) => None,
            };
            (url, expected, outcome, checked)
        });
    }

    // THEN every send is a failed attempt with the expected code and no response
    let mut failures = Vec::new();
    while let Some(joined) = sends.join_next().await {
        let (url, expected, outcome, checked) = joined?;
        if !expected.accepts(outcome.error_code()) || outcome.status().is_some() || outcome.succeeded() {
            failures.push(format!("send {url}: {outcome:?}, expected {expected:?}"));
        }
        // AND the create/update check refuses it too (a zoned literal does not even parse: the
        // API's syntax check refuses it first)
        match checked {
            Some(code) if !expected.accepts(code) => failures.push(format!("check_url {url}: {code:?}")),
            None if !url.contains('%') => failures.push(format!("{url} failed the syntax check")),
            _ => {}
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    // AND nothing ever connected to the listeners
    assert_eq!(v4.connections(), 0);
    assert_eq!(v6.map_or(0, |t| t.connections()), 0);
    Ok(())
}

#[tokio::test]
async fn a_redirect_is_a_failed_attempt_and_its_location_is_not_followed() -> Result<()> {
    // GIVEN an allowed loopback tripwire the redirects could lead to
    let elsewhere = Tripwire::bind("127.0.0.1:0").await?;
    let sender = sender("127.0.0.0/8")?;
    for location in ["http://169.254.169.254/latest/meta-data/".to_owned(), format!("http://{}/", elsewhere.addr)] {
        for status in [StatusCode::FOUND, StatusCode::MOVED_PERMANENTLY, StatusCode::TEMPORARY_REDIRECT] {
            // AND an allowed receiver on 127.0.0.1 that redirects there
            let target = location.clone();
            let receiver = Receiver::start(move || {
                let target = target.clone();
                async move { (status, [(header::LOCATION, target)]).into_response() }
            })
            .await?;

            // WHEN sent to
            let outcome = post(&sender, &receiver.url()).await;

            // THEN the attempt failed with the redirect's status and no error
            assert_eq!(outcome.status(), Some(status.as_u16()), "{location}: {outcome:?}");
            assert_eq!(outcome.error_code(), None, "{location}");
            assert!(!outcome.succeeded(), "{location}");
            // AND the receiver got exactly one request, the Location none
            assert_eq!(receiver.requests().len(), 1, "{location}");
        }
    }
    assert_eq!(elsewhere.connections(), 0);
    Ok(())
}

#[tokio::test]
async fn an_allowed_loopback_receiver_gets_the_request_and_at_most_64_kib_is_read() -> Result<()> {
    // GIVEN a loopback receiver answering 200 with a body four times the read limit
    let big: Vec<u8> = (0..4 * MAX_RESPONSE_BYTES).map(|i| (i % 251) as u8).collect();
    let body = Bytes::from(big.clone());
    let receiver = Receiver::start(move || {
        let body = body.clone();
        async move { (StatusCode::OK, [(header::RETRY_AFTER, "7")], body).into_response() }
    })
    .await?;
    // AND loopback allowed by WEBHOOKS_ALLOWED_TARGETS
    let sender = sender("127.0.0.0/8,::1/128")?;

    for url in [receiver.url(), format!("http://localhost:{}/hook", receiver.addr.port())] {
        // WHEN sent to, by address and by a name resolving to loopback
        let outcome = post(&sender, &url).await;

        // THEN it succeeded and exactly the first 64 KiB of the response were kept
        assert!(outcome.succeeded(), "{url}: {outcome:?}");
        assert_eq!(outcome.status(), Some(200));
        let Answer::Response { body, retry_after, .. } = &outcome.answer else {
            anyhow::bail!("{url}: no response: {outcome:?}");
        };
        assert_eq!(body.len(), MAX_RESPONSE_BYTES, "{url}");
        assert_eq!(body.as_slice(), &big[..MAX_RESPONSE_BYTES], "{url}");
        assert_eq!(retry_after.as_deref(), Some("7"));
    }
    // AND the receiver got both requests, with the body and the product's user agent
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    for (headers, body) in requests {
        assert_eq!(body.as_ref(), br#"{"type":"WEBHOOK_HEALTH_CHECK"}"#);
        assert_eq!(headers.get(header::USER_AGENT).map(|v| v.as_bytes()), Some(USER_AGENT.as_bytes()));
    }
    Ok(())
}

#[tokio::test]
async fn allowed_targets_are_the_only_exception_and_empty_means_none() -> Result<()> {
    // GIVEN a loopback receiver
    let receiver = Receiver::start(|| async { StatusCode::NO_CONTENT.into_response() }).await?;
    let url = receiver.url();
    let parsed = validate_url(&url, UrlPolicy { allow_http: true }).map_err(|e| anyhow::anyhow!(e.message))?;
    // (WEBHOOKS_ALLOWED_TARGETS, refusal code or None when allowed)
    let cases = [
        ("", Some("blocked_address")),
        ("10.0.0.0/8", Some("blocked_address")),
        ("127.0.0.2/32", Some("blocked_address")),
        ("127.0.0.1", None),
        ("127.0.0.0/8", None),
    ];
    for (allowed, expected) in cases {
        // WHEN sent to and checked with these exceptions
        let outcome = post(&sender(allowed)?, &url).await;
        let checked = check_url(&parsed, &AllowedTargets::parse(allowed)?).await.err().map(|r| r.code());
        // THEN refused or allowed as listed, by both paths
        assert_eq!(outcome.error_code(), expected, "{allowed:?}: {outcome:?}");
        assert_eq!(checked, expected, "{allowed:?}");
    }
    // AND only the allowed sends reached the receiver
    assert_eq!(receiver.requests().len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_receiver_slower_than_the_total_timeout_is_a_timeout() -> Result<()> {
    // GIVEN a receiver that answers after 5 s, and one that accepts and never answers
    let slow = Receiver::start(|| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        StatusCode::OK.into_response()
    })
    .await?;
    let silent = Tripwire::bind("127.0.0.1:0").await?;
    // AND a sender whose total timeout is 300 ms
    let sender = HttpSender::new(Duration::from_millis(300), AllowedTargets::parse("127.0.0.0/8")?)?;

    for url in [slow.url(), format!("http://{}/hook", silent.addr)] {
        // WHEN sent to
        let outcome = post(&sender, &url).await;
        // THEN a failed attempt with `timeout`, well before the receiver would have answered
        assert_eq!(outcome.error_code(), Some("timeout"), "{url}: {outcome:?}");
        assert_eq!(outcome.status(), None);
        assert!((250..2000).contains(&outcome.duration_ms), "{url}: {} ms", outcome.duration_ms);
    }
    assert_eq!(slow.requests().len(), 1);
    assert_eq!(silent.connections(), 1);
    Ok(())
}

#[tokio::test]
async fn a_closed_port_is_connection_failed() -> Result<()> {
    // GIVEN an allowed loopback port nothing listens on
    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    // WHEN sent to THEN the attempt failed to connect
    let outcome = post(&sender("127.0.0.0/8")?, &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(outcome.error_code(), Some("connection_failed"), "{outcome:?}");
    Ok(())
}

/// The child-process half of [`proxy_variables_are_ignored`]: what it runs is chosen by
/// these variables.
const CHILD_MODE: &str = "WEBHOOKS_SSRF_CHILD_MODE";
const CHILD_URL: &str = "WEBHOOKS_SSRF_CHILD_URL";
const PROXY_VARIABLES: [&str; 6] = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];

#[tokio::test]
async fn proxy_variables_are_ignored() -> Result<()> {
    // GIVEN a receiver, and a "proxy" that counts the connections it gets
    let receiver = Receiver::start(|| async { StatusCode::OK.into_response() }).await?;
    let proxy = Tripwire::bind("127.0.0.1:0").await?;
    let proxy_url = format!("http://{}", proxy.addr);

    // WHEN a process with every proxy variable pointing at it sends through the HttpSender
    run_child("sender", &receiver.url(), &proxy_url).await?;
    // THEN the request went straight to the receiver, the proxy saw nothing
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(proxy.connections(), 0);

    // AND, as a control, a default reqwest client in the same environment does use the proxy
    run_child("default_client", &receiver.url(), &proxy_url).await?;
    assert!(proxy.connections() >= 1, "the proxy variables were not in effect");
    assert_eq!(receiver.requests().len(), 1);
    Ok(())
}

/// Runs [`proxy_child`] in a child process of this test binary with the proxy variables set
/// (setting them in this process would need `unsafe`, which the workspace forbids).
async fn run_child(mode: &str, url: &str, proxy_url: &str) -> Result<()> {
    // The test's name as the harness knows it: its module path without the binary's name.
    let (_, module) = module_path!().split_once("::").unwrap_or(("", module_path!()));
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command.arg(format!("{module}::proxy_child")).args(["--exact", "--ignored", "--test-threads=1"]);
    command.env(CHILD_MODE, mode).env(CHILD_URL, url).env_remove("NO_PROXY").env_remove("no_proxy");
    command.env_remove("REQUEST_METHOD");
    for variable in PROXY_VARIABLES {
        command.env(variable, proxy_url);
    }
    // Blocking wait off the runtime's threads: the receiver and proxy must keep serving.
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success() && stdout.contains("1 passed"),
        "child {mode} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[tokio::test]
#[ignore = "a child process of `proxy_variables_are_ignored`, which sets its environment"]
async fn proxy_child() -> Result<()> {
    let (Ok(mode), Ok(url)) = (std::env::var(CHILD_MODE), std::env::var(CHILD_URL)) else {
        return Ok(());
    };
    match mode.as_str() {
        "sender" => {
            let outcome = post(&sender("127.0.0.0/8")?, &url).await;
            ensure!(outcome.succeeded(), "{outcome:?}");
        }
        "default_client" => {
            // Its result does not matter: the proxy accepts and never answers.
            let client = reqwest::Client::builder().timeout(Duration::from_millis(500)).build()?;
            let _ = client.post(&url).body("{}").send().await;
        }
        other => return Err(anyhow::anyhow!("unknown child mode {other}")).context(CHILD_MODE),
    }
    Ok(())
}
