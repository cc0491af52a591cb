//! Which addresses the service may send to (SPEC §8): only globally reachable ones, per the IANA
//! IPv4 and IPv6 special-purpose address registries, with IPv4-mapped, NAT64 and 6to4 addresses
//! refused outright (they can smuggle a private IPv4 address), and with
//! `WEBHOOKS_ALLOWED_TARGETS` as the only exception.
//!
//! The same check runs at create/update (on every resolved address, and on IP literals via
//! [`host_literal`]) and before every send, on the address actually connected to. Resolution
//! itself belongs to the adapter; this module only judges addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;
use url::{Host, Url};

/// IPv4 networks that are not globally reachable (IANA IPv4 special-purpose registry, plus
/// multicast), as (network, prefix length). Ranges inside another are listed for the record.
///
/// 192.0.0.0/24 is refused whole, although 192.0.0.9/32 (PCP anycast) and 192.0.0.10/32 (TURN
/// anycast) are globally reachable: neither is ever a webhook receiver.
const REFUSED_V4: [(Ipv4Addr, u8); 17] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),          // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),         // private use
    (Ipv4Addr::new(100, 64, 0, 0), 10),      // shared address space (CGNAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),        // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),     // link-local, incl. cloud metadata 169.254.169.254
    (Ipv4Addr::new(172, 16, 0, 0), 12),      // private use
    (Ipv4Addr::new(192, 0, 0, 0), 24),       // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),       // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),     // deprecated 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),     // private use
    (Ipv4Addr::new(198, 18, 0, 0), 15),      // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24),    // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),     // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),        // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),        // reserved
    (Ipv4Addr::new(255, 255, 255, 255), 32), // limited broadcast (inside 240/4)
    (Ipv4Addr::new(192, 0, 0, 170), 31),     // NAT64 discovery (inside 192.0.0/24)
];

/// IPv6 networks refused inside 2000::/3 or named for the record; everything outside 2000::/3
/// (global unicast) is refused anyway.
///
/// 2001::/23 is refused whole, although a few of its assignments (e.g. AMT 2001:3::/32, AS112
/// 2001:4:112::/48, ORCHIDv2 2001:20::/28) are globally reachable: none is a webhook receiver.
const REFUSED_V6: [(Ipv6Addr, u8); 16] = [
    (Ipv6Addr::UNSPECIFIED, 128),                         // ::/128
    (Ipv6Addr::LOCALHOST, 128),                           // ::1/128
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),     // IPv4-mapped: refused outright
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),  // NAT64 well-known prefix
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),  // NAT64 local use
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),      // discard-only
    (Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0), 64),      // dummy prefix
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),     // IETF assignments: Teredo, benchmarking, ORCHID
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),     // 6to4
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),     // documentation
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16),     // segment routing SIDs
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),      // unique local, incl. fd00:ec2::254
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),     // link-local
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),      // multicast
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96),          // deprecated IPv4-compatible
];

/// Global unicast, 2000::/3: the only IPv6 space that may be globally reachable.
const GLOBAL_UNICAST_V6: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

fn in_v4(ip: Ipv4Addr, (network, prefix): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(network) & mask
}

fn in_v6(ip: Ipv6Addr, (network, prefix): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(network) & mask
}

/// Whether `ip` is globally reachable: not in any refused special-purpose range, and for IPv6
/// inside global unicast 2000::/3. IPv4-mapped, NAT64 and 6to4 addresses are never globally
/// reachable here, whatever IPv4 address they carry.
pub fn is_globally_reachable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !REFUSED_V4.iter().any(|range| in_v4(v4, *range)),
        IpAddr::V6(v6) => in_v6(v6, GLOBAL_UNICAST_V6) && !REFUSED_V6.iter().any(|range| in_v6(v6, *range)),
    }
}

/// Why a `WEBHOOKS_ALLOWED_TARGETS` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` in WEBHOOKS_ALLOWED_TARGETS is not a CIDR like 127.0.0.0/8 or ::1/128")]
pub struct AllowedTargetsError {
    pub entry: String,
    #[source]
    pub source: ipnet::AddrParseError,
}

/// The networks exempt from the check (`WEBHOOKS_ALLOWED_TARGETS`), for local development and
/// tests. Empty means no exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedTargets {
    networks: Vec<IpNet>,
}

impl AllowedTargets {
    /// No exceptions.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a comma list of CIDRs (whitespace around entries tolerated). The empty (or blank)
    /// string means no exceptions; any other entry, including an empty one between commas, must
    /// be a CIDR. A bare address is taken as a single host (/32 or /128).
    pub fn parse(s: &str) -> Result<Self, AllowedTargetsError> {
        if s.trim().is_empty() {
            return Ok(Self::none());
        }
        let networks = s
            .split(',')
            .map(str::trim)
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|e| entry.parse::<IpAddr>().map(IpNet::from).map_err(|_| e))
                    .map(|net| net.trunc())
                    .map_err(|source| AllowedTargetsError { entry: entry.to_owned(), source })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { networks })
    }

    /// Whether `ip` is inside one of the allowed networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// The networks, normalised to their network address.
    pub fn networks(&self) -> &[IpNet] {
        &self.networks
    }
}

impl FromStr for AllowedTargets {
    type Err = AllowedTargetsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A refused target address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    #[error("{0} is not a globally reachable address")]
    BlockedAddress(IpAddr),
}

impl SsrfError {
    /// The stable code of the refusal, as logged for a failed attempt (`blocked_address`).
    pub const fn code(&self) -> &'static str {
        match self {
            Self::BlockedAddress(_) => "blocked_address",
        }
    }
}

/// Whether the service may connect to `ip`: allowed when inside `allowed` (checked first), else
/// only when globally reachable.
pub fn check_ip(ip: IpAddr, allowed: &AllowedTargets) -> Result<(), SsrfError> {
    if allowed.contains(ip) || is_globally_reachable(ip) { Ok(()) } else { Err(SsrfError::BlockedAddress(ip)) }
}

/// The URL's host when it is an IP literal (to check without DNS), `None` for a domain name.
///
/// The `url` parser has already turned decimal, octal, hex and shortened IPv4 forms into an
/// address and removed IPv6 brackets; IPv6 zone ids do not parse at all.
pub fn host_literal(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        Host::Domain(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::{UrlPolicy, validate_url};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// How a hostile URL is refused.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Refused {
        /// The URL does not even validate.
        AtParse,
        /// It validates; its literal address fails `check_ip`.
        AtAddress,
    }

    /// The verdict for a URL with no exceptions: `Ok` with its literal host if it may be sent
    /// to (or `None` for a name to resolve), else how it was refused.
    fn verdict(url: &str) -> Result<Option<IpAddr>, Refused> {
        let url = validate_url(url, UrlPolicy { allow_http: true }).map_err(|_| Refused::AtParse)?;
        match host_literal(&url) {
            Some(ip) => check_ip(ip, &AllowedTargets::none()).map(|()| Some(ip)).map_err(|_| Refused::AtAddress),
            None => Ok(None),
        }
    }

    #[test]
    fn hostile_urls_are_refused() {
        use Refused::{AtAddress, AtParse};
        // (URL, how it is refused)
        let cases = [
            // Loopback, in every spelling URL parsers accept.
            ("http://127.0.0.1/", AtAddress),
            ("http://127.1/", AtAddress),
            ("http://127.0.0.1./", AtAddress),
            ("http://2130706433/", AtAddress),
            ("http://0x7f.1/", AtAddress),
            ("http://0x7f000001/", AtAddress),
            ("http://017700000001/", AtAddress),
            ("http://0177.0.0.1/", AtAddress),
            ("http://127.000.000.001/", AtAddress),
            ("http://１２７.０.０.１/", AtAddress),
            ("https://127.255.255.254:8443/x", AtAddress),
            ("http://[::1]/", AtAddress),
            ("http://[0:0:0:0:0:0:0:1]/", AtAddress),
            ("http://[::ffff:127.0.0.1]/", AtAddress),
            ("http://[::ffff:7f00:1]/", AtAddress),
            ("http://[::127.0.0.1]/", AtAddress),
            // "This network" and unspecified.
            ("http://0/", AtAddress),
            ("http://0.0.0.0/", AtAddress),
            ("http://[::]/", AtAddress),
            // Cloud metadata and link-local.
            ("http://169.254.169.254/latest/meta-data/", AtAddress),
            ("http://2852039166/", AtAddress),
            ("http://0xa9.0xfe.0xa9.0xfe/", AtAddress),
            ("http://[::ffff:169.254.169.254]/", AtAddress),
            ("http://[fd00:ec2::254]/", AtAddress),
            ("http://[fe80::1]/", AtAddress),
            ("http://[febf:ffff::1]/", AtAddress),
            ("http://[fe80::1%25eth0]/", AtParse),
            ("http://[fe80::1%eth0]/", AtParse),
            // Private, shared and special IPv4.
            ("http://10.0.0.1/", AtAddress),
            ("http://10.255.255.255/", AtAddress),
            ("http://172.16.0.1/", AtAddress),
            ("http://172.31.255.255/", AtAddress),
            ("http://192.168.1.1/", AtAddress),
            ("http://100.64.0.1/", AtAddress),
            ("http://100.127.255.255/", AtAddress),
            ("http://192.0.0.1/", AtAddress),
            ("http://192.0.0.170/", AtAddress),
            ("http://192.0.2.10/", AtAddress),
            ("http://192.88.99.1/", AtAddress),
            ("http://198.18.0.1/", AtAddress),
            ("http://198.19.255.255/", AtAddress),
            ("http://198.51.100.7/", AtAddress),
            ("http://203.0.113.9/", AtAddress),
            ("http://224.0.0.1/", AtAddress),
            ("http://239.255.255.250/", AtAddress),
            ("http://240.0.0.1/", AtAddress),
            ("http://255.255.255.255/", AtAddress),
            // IPv6 that carries or routes to IPv4, and other special IPv6.
            ("http://[64:ff9b::a9fe:a9fe]/", AtAddress),
            ("http://[64:ff9b::808:808]/", AtAddress),
            ("http://[64:ff9b:1::1]/", AtAddress),
            ("http://[2002:a9fe:a9fe::1]/", AtAddress),
            ("http://[2002:808:808::1]/", AtAddress),
            ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", AtAddress),
            ("http://[2001:2::1]/", AtAddress),
            ("http://[2001:10::1]/", AtAddress),
            ("http://[2001:1ff:ffff::1]/", AtAddress),
            ("http://[2001:db8::1]/", AtAddress),
            ("http://[3fff::1]/", AtAddress),
            ("http://[3fff:fff:ffff::1]/", AtAddress),
            ("http://[5f00::1]/", AtAddress),
            ("http://[100::1]/", AtAddress),
            ("http://[fc00::1]/", AtAddress),
            ("http://[fdff:ffff::1]/", AtAddress),
            ("http://[ff02::1]/", AtAddress),
            ("http://[4000::1]/", AtAddress),
            ("http://[1fff:ffff::1]/", AtAddress),
            // Tricks on the URL itself.
            ("http://example.com@127.0.0.1/", AtParse),
            ("http://127.0.0.1#@example.com/", AtParse),
            ("http://127.0.0.1 @example.com/", AtParse),
            ("http://[::1/", AtParse),
            ("gopher://127.0.0.1:25/", AtParse),
            ("file:///etc/passwd", AtParse),
        ];
        assert!(cases.len() >= 40);
        for (url, expected) in cases {
            // GIVEN a hostile URL WHEN validated and its literal host checked THEN it is refused
            assert_eq!(verdict(url), Err(expected), "{url}");
        }
    }

    #[test]
    fn global_addresses_pass() -> TestResult {
        // GIVEN globally reachable addresses, many just outside a refused range
        #[rustfmt::skip]
        let global = [
            "1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "93.184.216.34", "100.63.255.255",
            "100.128.0.0", "126.255.255.255", "128.0.0.0", "169.253.255.255", "169.255.0.0",
            "172.15.255.255", "172.32.0.0", "192.0.1.1", "192.0.3.0", "192.31.196.1", "192.52.193.1",
            "192.88.98.255", "192.88.100.0", "192.167.255.255", "192.169.0.0", "192.175.48.1",
            "198.17.255.255", "198.20.0.0", "198.51.99.255", "198.51.101.0", "203.0.112.255",
            "203.0.114.0", "223.255.255.255",
            "2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001::1", "2001:200::1",
            "2001:db7:ffff::1", "2001:db9::1", "2003::1", "2620:4f:8000::1", "3ffe::1", "3fff:1000::1",
            "2000::1", "2c0f:fb50::1",
        ];
        for ip in global {
            let ip: IpAddr = ip.parse()?;
            // WHEN checked with no exceptions THEN it passes
            assert!(is_globally_reachable(ip), "{ip}");
            assert_eq!(check_ip(ip, &AllowedTargets::none()), Ok(()), "{ip}");
        }
        // AND URLs naming them pass too, as do domain names (judged after resolution)
        assert_eq!(verdict("https://1.1.1.1/hook"), Ok(Some("1.1.1.1".parse()?)));
        assert_eq!(verdict("https://[2606:4700:4700::1111]:8443/"), Ok(Some("2606:4700:4700::1111".parse()?)));
        assert_eq!(verdict("https://example.com/"), Ok(None));
        Ok(())
    }

    #[test]
    fn range_edges_are_exact() -> TestResult {
        // (address, globally reachable)
        #[rustfmt::skip]
        let cases = [
            ("0.255.255.255", false), ("1.0.0.0", true),
            ("9.255.255.255", true), ("10.0.0.0", false), ("10.255.255.255", false), ("11.0.0.0", true),
            ("100.63.255.255", true), ("100.64.0.0", false), ("100.127.255.255", false), ("100.128.0.0", true),
            ("126.255.255.255", true), ("127.0.0.0", false), ("127.255.255.255", false), ("128.0.0.0", true),
            ("172.15.255.255", true), ("172.16.0.0", false), ("172.31.255.255", false), ("172.32.0.0", true),
            ("198.17.255.255", true), ("198.18.0.0", false), ("198.19.255.255", false), ("198.20.0.0", true),
            ("223.255.255.255", true), ("224.0.0.0", false),
            ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false), ("2000::", true),
            ("2000::ffff:7f00:1", true),
            ("2001::", false), ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", false), ("2001:200::", true),
            ("2001:db8::", false), ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", false), ("2001:db9::", true),
            ("2001:dc7:ffff::", true),
            ("2001:ffff::", true), ("2002::", false), ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false), ("2003::", true),
            ("3ffe:ffff::", true), ("3fff::", false), ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("3fff:1000::", true), ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true), ("4000::", false),
        ];
        for (ip, expected) in cases {
            // GIVEN an address on a range boundary WHEN judged THEN exactly as the registry says
            let ip: IpAddr = ip.parse()?;
            assert_eq!(is_globally_reachable(ip), expected, "{ip}");
        }
        Ok(())
    }

    #[test]
    fn ipv4_mapped_and_translated_forms_are_refused_even_for_public_ipv4() -> TestResult {
        // GIVEN a public IPv4 address carried inside IPv6 in each translated form
        for ip in ["::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "64:ff9b:1::808:808", "2002:808:808::1", "::8.8.8.8"] {
            // WHEN judged THEN refused: it could as well carry a private address
            assert!(!is_globally_reachable(ip.parse()?), "{ip}");
        }
        Ok(())
    }

    #[test]
    fn allowed_targets_parsing_table() {
        // (input, parsed networks or an error)
        let cases: Vec<(&str, Result<Vec<&str>, ()>)> = vec![
            ("", Ok(vec![])),
            ("   ", Ok(vec![])),
            ("127.0.0.0/8,::1/128", Ok(vec!["127.0.0.0/8", "::1/128"])),
            (" 127.0.0.0/8 , ::1/128 ", Ok(vec!["127.0.0.0/8", "::1/128"])),
            ("10.1.2.3/8", Ok(vec!["10.0.0.0/8"])),
            ("192.168.1.10", Ok(vec!["192.168.1.10/32"])),
            ("fd00::1", Ok(vec!["fd00::1/128"])),
            ("0.0.0.0/0", Ok(vec!["0.0.0.0/0"])),
            ("127.0.0.0/33", Err(())),
            ("::1/129", Err(())),
            ("localhost", Err(())),
            ("127.0.0.0/8,", Err(())),
            ("127.0.0.0/8,,::1/128", Err(())),
            ("127.0.0.0/8;::1/128", Err(())),
            ("127.0.0.0/", Err(())),
        ];
        for (input, expected) in cases {
            // GIVEN a WEBHOOKS_ALLOWED_TARGETS value WHEN parsed THEN these networks or an error
            let got = AllowedTargets::parse(input)
                .map(|t| t.networks().iter().map(ToString::to_string).collect::<Vec<_>>())
                .map_err(|_| ());
            let expected = expected.map(|nets| nets.into_iter().map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(got, expected, "{input:?}");
        }
    }

    #[test]
    fn bad_allowed_target_names_the_entry() {
        // GIVEN a list with one bad entry WHEN parsed THEN the error names it
        let got = AllowedTargets::parse("127.0.0.0/8, nope ").map_err(|e| e.entry);
        assert_eq!(got, Err("nope".to_owned()));
    }

    #[test]
    fn allowed_targets_are_the_only_exception() -> TestResult {
        let local = AllowedTargets::parse("127.0.0.0/8,::1/128")?;
        // (address, exceptions, allowed)
        let cases = [
            ("127.0.0.1", &local, true),
            ("127.9.9.9", &local, true),
            ("::1", &local, true),
            ("10.0.0.1", &local, false),
            ("169.254.169.254", &local, false),
            ("::ffff:127.0.0.1", &local, false),
            ("8.8.8.8", &local, true),
            ("127.0.0.1", &AllowedTargets::none(), false),
            ("::1", &AllowedTargets::none(), false),
        ];
        for (ip, allowed, expected) in cases {
            // GIVEN an address and the exceptions WHEN checked THEN allowed only as listed
            let ip: IpAddr = ip.parse()?;
            let got = check_ip(ip, allowed);
            assert_eq!(got.is_ok(), expected, "{ip}");
            if let Err(e) = got {
                assert_eq!(e, SsrfError::BlockedAddress(ip));
                assert_eq!(e.code(), "blocked_address");
            }
        }
        Ok(())
    }

    #[test]
    fn host_literal_table() -> TestResult {
        // (URL, literal host)
        let cases = [
            ("http://2130706433/", Some("127.0.0.1")),
            ("http://0x7f.1/", Some("127.0.0.1")),
            ("http://017700000001/", Some("127.0.0.1")),
            ("http://0/", Some("0.0.0.0")),
            ("http://[::ffff:127.0.0.1]/", Some("::ffff:127.0.0.1")),
            ("http://[FD00:EC2::254]:80/", Some("fd00:ec2::254")),
            ("https://example.com/", None),
            ("https://1.2.3.4.nip.io/", None),
        ];
        for (url, expected) in cases {
            // GIVEN a URL WHEN its host is read THEN the normalised IP literal, or none for names
            let url = Url::parse(url)?;
            let expected = expected.map(str::parse::<IpAddr>).transpose()?;
            assert_eq!(host_literal(&url), expected, "{url}");
        }
        Ok(())
    }
}
