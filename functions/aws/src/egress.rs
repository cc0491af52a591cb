//! Egress to URLs that customers control (SPEC §8): which addresses a webhook URL may reach, at
//! create/update ([`check_url`]) and at every send (the settings of the one client that
//! [`HttpSender`](crate::http::HttpSender) builds, used for deliveries, health checks and tests).
//!
//! Whether an address is acceptable is decided by `webhooks_core::ssrf`; this module only
//! resolves names and applies that decision where it cannot be bypassed:
//!
//! - IP-literal hosts are checked before any DNS ([`parse_target`]): reqwest hands a literal
//!   straight to the connector and never asks a resolver about it. The host is read with the
//!   `url` crate, the parser reqwest itself uses, so decimal, octal, hex and shortened IPv4 forms
//!   and bracketed IPv6 are judged as the connector would see them. IPv6 zone ids do not parse;
//!   a zoned literal is judged by its address (a zone names an interface of this host).
//! - Names go through [`resolve_name`], the one resolution function of both paths: at most
//!   [`DNS_TIMEOUT`] (no answer in time = does not resolve), and the name is refused if ANY
//!   address is refused, so a rebinding answer mixing public and private addresses gets nowhere.
//!   At send time it is installed as reqwest's resolver, which hands only the checked addresses
//!   to the connector: there is no second lookup.
//! - No proxy from the environment (a proxy would resolve the name itself) and no redirects
//!   (a `Location` is never followed; the 3xx is the attempt's response).
//!
//! `WEBHOOKS_ALLOWED_TARGETS` ([`AllowedTargets`]) is the only exception.
//!
//! # Error codes of a failed send (`SendFailure`, recorded by their code)
//!
//! | code | meaning |
//! |---|---|
//! | `blocked_address` | the host is, or resolves to at least one, refused address; no connection was made |
//! | `dns_failed` | the name gave no address within 3 s (error, no answer or empty answer); no connection was made |
//! | `invalid_url` | the URL does not parse or is not an http(s) URL; no connection was made |
//! | `timeout` | the whole exchange did not finish within the delivery timeout (connecting included) |
//! | `connection_failed` | no TCP or TLS connection (refused, reset, handshake or certificate failure) |
//! | `response_incomplete` | the response started but its body broke off |
//! | `request_failed` | the request could not be sent on an established connection |
//! | `http_error` | any other HTTP-level failure |
//!
//! A 3xx, like a 4xx or 5xx, is not an error code: the outcome carries its status and counts as
//! a failed attempt.
//!
//! This module must not depend on the storage or queue adapters.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use url::{Host, Url};
use webhooks_core::attempt::SendFailure;
use webhooks_core::ssrf::{AllowedTargets, SsrfError, check_ip};
use webhooks_core::validation::FieldError;

/// A name must resolve within this (SPEC §8); a resolver that does not answer in time makes the
/// name "does not resolve" rather than holding a delivery or an API call.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a target was refused before any connection was attempted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The host is, or resolves to, an address that is neither globally reachable nor allowed.
    #[error(transparent)]
    Blocked(#[from] SsrfError),
    /// The name gave no address.
    #[error("`{host}` does not resolve")]
    DnsFailed {
        host: String,
        #[source]
        cause: DnsFailure,
    },
    /// The URL does not parse, or has no host.
    #[error("the URL does not parse or has no host")]
    InvalidUrl,
}

impl Refusal {
    /// The failure a refusal makes of an attempt.
    pub fn kind(&self) -> SendFailure {
        match self {
            Self::Blocked(SsrfError::BlockedAddress(_)) => SendFailure::BlockedAddress,
            Self::DnsFailed { .. } => SendFailure::DnsFailed,
            Self::InvalidUrl => SendFailure::InvalidUrl,
        }
    }

    /// The stable code of the refusal, as recorded for a failed attempt (module docs).
    pub fn code(&self) -> &'static str {
        self.kind().code()
    }
}

/// Why a name gave no address.
#[derive(Debug, thiserror::Error)]
pub enum DnsFailure {
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("the answer holds no address")]
    NoAddress,
    #[error("the lookup failed")]
    Lookup(#[source] io::Error),
}

/// Why [`check_url`] refused a webhook URL. The API answers 400 `validation_failed` with
/// `field: url` and [`message`](Self::message).
#[derive(Debug, thiserror::Error)]
#[error("{}", self.message())]
pub struct UrlRefusal(#[source] Refusal);

impl UrlRefusal {
    /// The user-facing message. It never names the addresses a name resolved to: that would let
    /// API users map the service's internal DNS.
    pub fn message(&self) -> &'static str {
        match self.0 {
            Refusal::Blocked(_) => {
                "`url` must point to a publicly reachable host (not a private, loopback, link-local or \
                 otherwise reserved address)"
            }
            Refusal::DnsFailed { .. } => "`url` host does not resolve",
            Refusal::InvalidUrl => "`url` must have a host",
        }
    }

    /// The refusal's code, for logs (`blocked_address`, `dns_failed`, `invalid_url`).
    pub fn code(&self) -> &'static str {
        self.0.code()
    }

    /// The refusal itself (with the refused address or the DNS cause), for logs.
    pub fn refusal(&self) -> &Refusal {
        &self.0
    }

    /// The API's field error: `field: url`.
    pub fn to_field_error(&self) -> FieldError {
        FieldError::new("url", self.message())
    }
}

/// The create/update check of a webhook URL (SPEC §8): an IP-literal host is checked directly;
/// a name must resolve within [`DNS_TIMEOUT`] and every address it resolves to must be allowed.
pub async fn check_url(url: &Url, allowed: &AllowedTargets) -> Result<(), UrlRefusal> {
    let host = url.host().ok_or(UrlRefusal(Refusal::InvalidUrl))?;
    resolve_host(&host, allowed).await.map(drop).map_err(UrlRefusal)
}

/// The addresses `host` may be connected to: an IP literal as is, once checked; a name through
/// [`resolve_name`].
pub async fn resolve_host(host: &Host<&str>, allowed: &AllowedTargets) -> Result<Vec<IpAddr>, Refusal> {
    match *host {
        Host::Ipv4(v4) => literal(IpAddr::V4(v4), allowed),
        Host::Ipv6(v6) => literal(IpAddr::V6(v6), allowed),
        Host::Domain(name) => resolve_name(name, allowed).await,
    }
}

fn literal(ip: IpAddr, allowed: &AllowedTargets) -> Result<Vec<IpAddr>, Refusal> {
    check_ip(ip, allowed)?;
    Ok(vec![ip])
}

/// Resolves `name` (at most [`DNS_TIMEOUT`]) with the system resolver and returns its addresses
/// only if every one of them is allowed. The one resolution function of both the create/update
/// check and the send path.
pub async fn resolve_name(name: &str, allowed: &AllowedTargets) -> Result<Vec<IpAddr>, Refusal> {
    let lookup = async {
        // Port 0: the connector puts the URL's port on each address.
        tokio::net::lookup_host((name, 0)).await.map(|addrs| addrs.map(|a| a.ip()).collect())
    };
    bounded_lookup(name, DNS_TIMEOUT, lookup, allowed).await
}

/// Waits at most `limit` for `lookup`, then judges its answer.
async fn bounded_lookup<F>(
    name: &str,
    limit: Duration,
    lookup: F,
    allowed: &AllowedTargets,
) -> Result<Vec<IpAddr>, Refusal>
where
    F: Future<Output = io::Result<Vec<IpAddr>>>,
{
    let dns_failed = |cause| Refusal::DnsFailed { host: name.to_owned(), cause };
    match tokio::time::timeout(limit, lookup).await {
        Ok(Ok(answer)) => judge(name, answer, allowed),
        Ok(Err(e)) => Err(dns_failed(DnsFailure::Lookup(e))),
        Err(_) => Err(dns_failed(DnsFailure::TimedOut(limit))),
    }
}

/// The decision on one DNS answer: refused when empty or when any address is refused
/// (one private address among public ones is enough); otherwise the distinct addresses, in the
/// resolver's order.
fn judge(name: &str, answer: Vec<IpAddr>, allowed: &AllowedTargets) -> Result<Vec<IpAddr>, Refusal> {
    if answer.is_empty() {
        return Err(Refusal::DnsFailed { host: name.to_owned(), cause: DnsFailure::NoAddress });
    }
    let mut addrs = Vec::with_capacity(answer.len());
    for ip in answer {
        check_ip(ip, allowed)?;
        if !addrs.contains(&ip) {
            addrs.push(ip);
        }
    }
    Ok(addrs)
}

/// Parses a send's URL with the parser reqwest uses and checks an IP-literal host (reqwest would
/// connect to it without asking the resolver). A name is left to [`CheckedResolver`].
pub(crate) fn parse_target(url: &str, allowed: &AllowedTargets) -> Result<Url, Refusal> {
    let Ok(parsed) = Url::parse(url) else {
        // A zone id scopes an address to an interface of this host: never a receiver. Say
        // `blocked_address` when the address itself is refused, as for any other literal.
        return Err(match zoned_ipv6_literal(url) {
            Some(ip) => check_ip(IpAddr::V6(ip), allowed).err().map_or(Refusal::InvalidUrl, Refusal::from),
            None => Refusal::InvalidUrl,
        });
    };
    match parsed.host() {
        Some(Host::Ipv4(v4)) => check_ip(IpAddr::V4(v4), allowed)?,
        Some(Host::Ipv6(v6)) => check_ip(IpAddr::V6(v6), allowed)?,
        Some(Host::Domain(_)) => {}
        None => return Err(Refusal::InvalidUrl),
    }
    Ok(parsed)
}

/// The address of a bracketed IPv6 host with a zone id (`[fe80::1%25eth0]`, `[fe80::1%eth0]`),
/// which the `url` crate refuses to parse.
fn zoned_ipv6_literal(url: &str) -> Option<Ipv6Addr> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '\\', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let inside = host.strip_prefix('[')?.split(']').next()?;
    let (address, _zone) = inside.split_once('%')?;
    address.parse().ok()
}

/// The reqwest resolver of the send path: [`resolve_name`], handing only checked addresses to
/// the connector.
#[derive(Debug, Clone)]
struct CheckedResolver {
    allowed: Arc<AllowedTargets>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = Arc::clone(&self.allowed);
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve_name(&name, &allowed).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The security settings of every client that calls customer URLs: the checked resolver, no
/// proxy from the environment, no redirects. Requests must still go through [`parse_target`]
/// first, for IP-literal hosts.
pub(crate) fn client_builder(allowed: AllowedTargets) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(CheckedResolver { allowed: Arc::new(allowed) })
        .no_hickory_dns()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_only(crate::tls::reqwest_roots())
}

/// The refusal somewhere in an error's causes, if a request failed because of one.
pub(crate) fn find_refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refusal> {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if let Some(refusal) = e.downcast_ref::<Refusal>() {
            return Some(refusal);
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestError = Box<dyn std::error::Error>;
    type TestResult = Result<(), TestError>;

    fn ips(list: &[&str]) -> Result<Vec<IpAddr>, std::net::AddrParseError> {
        list.iter().map(|s| s.parse()).collect()
    }

    /// The code of `judge`'s verdict, or the accepted addresses.
    fn verdict(answer: &[&str], allowed: &AllowedTargets) -> Result<Result<Vec<IpAddr>, &'static str>, TestError> {
        Ok(judge("hooks.example.com", ips(answer)?, allowed).map_err(|r| r.code()))
    }

    #[test]
    fn one_refused_address_refuses_the_whole_answer() -> TestResult {
        let none = AllowedTargets::none();
        // (answer, refused)
        let cases: [(&[&str], bool); 9] = [
            (&["93.184.216.34"], false),
            (&["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"], false),
            (&["93.184.216.34", "10.0.0.1"], true),
            (&["10.0.0.1", "93.184.216.34"], true),
            (&["1.1.1.1", "8.8.8.8", "169.254.169.254", "9.9.9.9"], true),
            (&["2606:4700::1", "fd00:ec2::254"], true),
            (&["2606:4700::1", "::ffff:8.8.8.8"], true),
            (&["8.8.8.8", "127.0.0.1"], true),
            (&["8.8.8.8", "::1"], true),
        ];
        for (answer, refused) in cases {
            // GIVEN a DNS answer WHEN judged with no exceptions THEN refused iff any address is
            let got = verdict(answer, &none)?;
            if refused {
                assert_eq!(got, Err("blocked_address"), "{answer:?}");
            } else {
                assert_eq!(got, Ok(ips(answer)?), "{answer:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn the_refusal_names_the_first_refused_address() -> TestResult {
        // GIVEN a public address followed by two private ones WHEN judged
        let got = judge("h", ips(&["8.8.8.8", "192.168.1.1", "10.0.0.1"])?, &AllowedTargets::none());
        // THEN the first refused address is reported
        let first: IpAddr = "192.168.1.1".parse()?;
        assert!(matches!(got, Err(Refusal::Blocked(SsrfError::BlockedAddress(ip))) if ip == first), "{got:?}");
        Ok(())
    }

    #[test]
    fn allowed_targets_are_the_only_exception() -> TestResult {
        let local = AllowedTargets::parse("127.0.0.0/8,::1/128")?;
        // GIVEN loopback answers WHEN the loopback networks are allowed THEN they pass
        assert_eq!(verdict(&["127.0.0.1", "::1"], &local)?, Ok(ips(&["127.0.0.1", "::1"])?));
        assert_eq!(verdict(&["127.0.0.1", "8.8.8.8"], &local)?, Ok(ips(&["127.0.0.1", "8.8.8.8"])?));
        // AND an address outside them is still refused, even next to allowed ones
        assert_eq!(verdict(&["127.0.0.1", "10.0.0.1"], &local)?, Err("blocked_address"));
        assert_eq!(verdict(&["::1", "::ffff:127.0.0.1"], &local)?, Err("blocked_address"));
        // AND with only 127.0.0.0/8 allowed, a name that also resolves to ::1 is refused
        let v4_only = AllowedTargets::parse("127.0.0.0/8")?;
        assert_eq!(verdict(&["127.0.0.1", "::1"], &v4_only)?, Err("blocked_address"));
        // AND the empty setting means no exceptions
        assert_eq!(verdict(&["127.0.0.1"], &AllowedTargets::parse("")?)?, Err("blocked_address"));
        Ok(())
    }

    #[test]
    fn an_empty_answer_does_not_resolve() -> TestResult {
        // GIVEN an answer with no address WHEN judged THEN the name does not resolve
        let got = judge("empty.example.com", Vec::new(), &AllowedTargets::parse("0.0.0.0/0,::/0")?);
        let no_address = matches!(&got, Err(Refusal::DnsFailed { cause: DnsFailure::NoAddress, host })
            if host == "empty.example.com");
        assert!(no_address, "{got:?}");
        assert_eq!(got.map_err(|r| r.code()), Err("dns_failed"));
        Ok(())
    }

    #[test]
    fn duplicate_addresses_are_handed_over_once() -> TestResult {
        // GIVEN an answer that repeats an address WHEN judged THEN each address once, in order
        let got = verdict(&["8.8.8.8", "1.1.1.1", "8.8.8.8"], &AllowedTargets::none())?;
        assert_eq!(got, Ok(ips(&["8.8.8.8", "1.1.1.1"])?));
        Ok(())
    }

    #[tokio::test]
    async fn a_resolver_that_does_not_answer_in_time_does_not_resolve() {
        // GIVEN a lookup that never answers WHEN bounded THEN dns_failed once the limit passes
        let never = std::future::pending::<io::Result<Vec<IpAddr>>>();
        let limit = Duration::from_millis(20);
        let got = bounded_lookup("slow.example.com", limit, never, &AllowedTargets::none()).await;
        assert!(matches!(got, Err(Refusal::DnsFailed { cause: DnsFailure::TimedOut(_), .. })));
    }

    #[tokio::test]
    async fn a_failed_lookup_does_not_resolve() {
        // GIVEN a lookup that fails WHEN bounded THEN dns_failed with the cause kept
        let failing = async { Err::<Vec<IpAddr>, _>(io::Error::other("NXDOMAIN")) };
        let got = bounded_lookup("nx.example.com", DNS_TIMEOUT, failing, &AllowedTargets::none()).await;
        assert!(matches!(got, Err(Refusal::DnsFailed { cause: DnsFailure::Lookup(_), .. })));
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback_and_is_refused() -> TestResult {
        // GIVEN the system resolver WHEN localhost is resolved with no exceptions THEN refused
        let got = resolve_name("localhost", &AllowedTargets::none()).await;
        assert_eq!(got.map_err(|r| r.code()), Err("blocked_address"));
        // AND with loopback allowed, its loopback addresses are handed over
        let addrs = resolve_name("localhost", &AllowedTargets::parse("127.0.0.0/8,::1/128")?).await?;
        assert!(!addrs.is_empty() && addrs.iter().all(IpAddr::is_loopback), "{addrs:?}");
        Ok(())
    }

    #[test]
    fn literal_hosts_are_checked_before_any_dns() -> TestResult {
        let none = AllowedTargets::none();
        // (URL, refusal code or None when it may proceed)
        let cases = [
            ("http://127.0.0.1/", Some("blocked_address")),
            ("http://0x7f.1/", Some("blocked_address")),
            ("http://[::ffff:7f00:1]/", Some("blocked_address")),
            ("http://[fe80::1%25eth0]/", Some("blocked_address")),
            ("http://[fe80::1%eth0]:8080/x", Some("blocked_address")),
            ("http://user@[fd00::1%25en0]/", Some("blocked_address")),
            ("http://[2606:4700::1%25eth0]/", Some("invalid_url")),
            ("not a url", Some("invalid_url")),
            ("https://8.8.8.8/hook", None),
            ("https://[2606:4700:4700::1111]/", None),
            ("https://hooks.example.com/", None),
        ];
        for (url, expected) in cases {
            // GIVEN a send's URL WHEN parsed as a target THEN refused exactly when its literal is
            assert_eq!(parse_target(url, &none).err().map(|r| r.code()), expected, "{url}");
        }
        // AND an allowed literal passes
        assert!(parse_target("http://127.0.0.1:8080/", &AllowedTargets::parse("127.0.0.0/8")?).is_ok());
        Ok(())
    }

    #[tokio::test]
    async fn check_url_messages_never_name_resolved_addresses() -> TestResult {
        // GIVEN a name resolving to loopback WHEN checked THEN a user-facing refusal on `url`
        let refusal = check_url(&Url::parse("http://localhost/hook")?, &AllowedTargets::none())
            .await
            .err()
            .ok_or("localhost was accepted")?;
        let field = refusal.to_field_error();
        assert_eq!(field.field, "url");
        assert_eq!(refusal.code(), "blocked_address");
        assert!(!field.message.contains("127.0.0.1") && !field.message.contains("::1"), "{}", field.message);
        // AND a public literal passes
        check_url(&Url::parse("https://8.8.8.8/")?, &AllowedTargets::none()).await?;
        Ok(())
    }
}
