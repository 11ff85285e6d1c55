//! Which addresses a webhook may reach.
//!
//! Public unicast addresses only, unless the server is configured to allow private targets (a
//! receiver on the same network, or tests). The rule is an allow-list for IPv6 (global unicast
//! 2000::/3 minus its special blocks) and a deny-list of the special-purpose blocks for IPv4;
//! IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by the IPv4
//! address they lead to, since that is where the packets end up.

use std::error::Error;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Host;

/// Longer URLs are refused: no receiver needs more, and it bounds what is stored and logged.
pub const MAX_URL_LEN: usize = 2048;

/// Why a URL can't be a webhook target, worded for the user who entered it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("the URL is {0} bytes long; a webhook URL may be at most {MAX_URL_LEN}")]
    TooLong(usize),
    #[error("the URL cannot be parsed: {0}")]
    Unparsable(String),
    #[error("the URL's scheme \"{0}\" is not allowed; webhooks are sent over http or https")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error(
        "the URL carries a user name or password (user:pass@host); receivers authenticate \
         deliveries by their signature, so credentials do not belong in the URL"
    )]
    Userinfo,
    #[error("the URL has a fragment (#…), which is never sent to the receiver; remove it")]
    Fragment,
    #[error(
        "the URL's host {ip} is {kind}; webhooks may reach only public addresses unless the \
         server allows private targets"
    )]
    NotPublic { ip: IpAddr, kind: &'static str },
}

/// Checks a webhook URL and returns it normalised (as it will be requested).
///
/// A host name is accepted whatever it resolves to today: it is resolved again at every
/// delivery, through [`GuardedResolver`]. An IP literal, in any spelling the URL standard
/// normalises (`2130706433`, `0x7f.1`, `[::ffff:127.0.0.1]`), is judged here.
pub fn check_url(url: &str, allow_private: bool) -> Result<Url, UrlProblem> {
    if url.len() > MAX_URL_LEN {
        return Err(UrlProblem::TooLong(url.len()));
    }
    let parsed = Url::parse(url).map_err(|e| UrlProblem::Unparsable(e.to_string()))?;
    // Normalising can lengthen a URL (percent-encoding); what is stored must fit too.
    if parsed.as_str().len() > MAX_URL_LEN {
        return Err(UrlProblem::TooLong(parsed.as_str().len()));
    }
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlProblem::Scheme(parsed.scheme().to_owned()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlProblem::Userinfo);
    }
    if parsed.fragment().is_some() {
        return Err(UrlProblem::Fragment);
    }
    let ip = match parsed.host() {
        None => return Err(UrlProblem::NoHost),
        Some(Host::Domain(_)) => None,
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
    };
    if let Some(ip) = ip
        && !allow_private
        && let Some(kind) = refusal(ip)
    {
        return Err(UrlProblem::NotPublic { ip, kind });
    }
    Ok(parsed)
}

/// Whether a webhook may connect to `ip` when private targets are not allowed.
pub fn allowed(ip: IpAddr) -> bool {
    refusal(ip).is_none()
}

/// What kind of non-public address `ip` is, or `None` for a public one.
fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => refusal_v4(ip),
        IpAddr::V6(ip) => refusal_v6(ip),
    }
}

const PRIVATE: &str = "a private address";
const DOCUMENTATION: &str = "a documentation address";
const BENCHMARKING: &str = "a benchmarking address";

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_broadcast() {
        return Some("the broadcast address");
    }
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "an unspecified (\"this network\") address",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => PRIVATE,
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (127, _, _) => "a loopback address",
        (169, 254, _) => "a link-local address (where cloud metadata services answer)",
        (192, 0, 0) => "an IETF protocol assignment address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => DOCUMENTATION,
        (192, 88, 99) => "a 6to4 relay anycast address",
        (198, 18..=19, _) => BENCHMARKING,
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved address",
        _ => return None,
    })
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("the unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    if let Some(v4) = embedded_v4(ip) {
        return refusal_v4(v4);
    }
    let s = ip.segments();
    // Outside global unicast: unique local (fc00::/7, which holds AWS's fd00:ec2::254), link-local,
    // site-local, multicast, discard-only, local-use NAT64 and everything still unassigned.
    if s[0] & 0xe000 != 0x2000 {
        return Some(match s[0] {
            0xfc00..=0xfdff => "a unique local (private) address",
            0xfe80..=0xfebf => "a link-local address",
            0xfec0..=0xfeff => "a site-local address",
            0xff00..=0xffff => "a multicast address",
            _ => "a reserved address",
        });
    }
    match (s[0], s[1], s[2]) {
        // Teredo tunnels to an obfuscated IPv4 address: not worth judging, never a real receiver.
        (0x2001, 0x0000, _) => Some("a Teredo tunnel address"),
        (0x2001, 0x0002, 0x0000) => Some(BENCHMARKING),
        (0x2001, 0x0db8, _) => Some(DOCUMENTATION),
        (0x3fff, 0x0000..=0x0fff, _) => Some(DOCUMENTATION),
        _ => None,
    }
}

/// The IPv4 address an IPv6 address leads to: IPv4-mapped (::ffff:0:0/96), IPv4-compatible
/// (::/96), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        _ => None,
    }
}

/// A host name that resolved, but only to addresses a webhook may not reach.
#[derive(Debug)]
pub struct NonPublicHost {
    pub host: String,
}

impl fmt::Display for NonPublicHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} resolved only to non-public addresses; webhooks may reach only public addresses unless the \
             server allows private targets",
            self.host
        )
    }
}

impl Error for NonPublicHost {}

/// The resolver deliveries use: the system's resolver, with non-public answers dropped.
///
/// Filtering the addresses the connection is actually made to, rather than checking a name
/// beforehand, is what defeats DNS rebinding (a name that is public when checked and 127.0.0.1
/// when connected to).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    allow_private: bool,
}

impl GuardedResolver {
    pub fn new(allow_private: bool) -> GuardedResolver {
        GuardedResolver { allow_private }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept: Vec<SocketAddr> = found.filter(|addr| allow_private || allowed(addr.ip())).collect();
            if kept.is_empty() && !allow_private {
                return Err(Box::new(NonPublicHost { host }) as Box<dyn Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ip: &str) -> bool {
        allowed(ip.parse().unwrap())
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in ["8.8.8.8", "1.1.1.1", "93.184.216.34", "172.15.255.255", "172.32.0.1", "100.63.255.255"] {
            assert!(ok(ip), "{ip}");
        }
        for ip in ["2606:4700:4700::1111", "2a00:1450:4001:82a::200e", "2001:4860:4860::8888"] {
            assert!(ok(ip), "{ip}");
        }
    }

    #[test]
    fn loopback_and_unspecified_are_refused() {
        for ip in ["127.0.0.1", "127.255.255.254", "0.0.0.0", "0.1.2.3", "::1", "::"] {
            assert!(!ok(ip), "{ip}");
        }
    }

    #[test]
    fn private_and_shared_v4_are_refused() {
        for ip in ["10.0.0.5", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1"] {
            assert!(!ok(ip), "{ip}");
        }
        assert!(!ok("100.127.255.255"));
    }

    #[test]
    fn link_local_and_metadata_are_refused() {
        for ip in ["169.254.169.254", "169.254.0.1", "fe80::1", "febf::1"] {
            assert!(!ok(ip), "{ip}");
        }
    }

    #[test]
    fn unique_local_and_site_local_v6_are_refused() {
        for ip in ["fc00::1", "fd12:3456::1", "fd00:ec2::254", "fec0::1", "feff::1"] {
            assert!(!ok(ip), "{ip}");
        }
    }

    #[test]
    fn multicast_broadcast_and_reserved_are_refused() {
        for ip in ["224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "250.1.2.3", "ff02::1", "ff0e::1"] {
            assert!(!ok(ip), "{ip}");
        }
    }

    #[test]
    fn documentation_benchmarking_and_protocol_blocks_are_refused() {
        for ip in [
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.8",
            "2001:db8::1",
            "2001:2::1",
            "3fff::1",
        ] {
            assert!(!ok(ip), "{ip}");
        }
    }

    #[test]
    fn v6_forms_of_v4_are_judged_by_the_v4_address() {
        // IPv4-mapped, IPv4-compatible, NAT64, 6to4.
        for ip in ["::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "::10.1.2.3"] {
            assert!(!ok(ip), "{ip}");
        }
        for ip in ["64:ff9b::127.0.0.1", "64:ff9b::a00:1", "2002:7f00:1::", "2002:c0a8:101::1", "2002:a9fe:a9fe::1"] {
            assert!(!ok(ip), "{ip}");
        }
        for ip in ["::ffff:8.8.8.8", "::8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            assert!(ok(ip), "{ip}");
        }
    }

    #[test]
    fn unassigned_and_special_v6_are_refused() {
        // Discard-only, local-use NAT64, Teredo, and space outside 2000::/3.
        for ip in ["100::1", "64:ff9b:1::a00:1", "2001::1", "4000::1", "1::1"] {
            assert!(!ok(ip), "{ip}");
        }
    }

    #[test]
    fn ordinary_urls_pass_normalised() {
        let url = check_url("https://hooks.example.com/in?x=1", false).unwrap();
        assert_eq!(url.as_str(), "https://hooks.example.com/in?x=1");
        let url = check_url("HTTP://Example.COM:8080", false).unwrap();
        assert_eq!(url.as_str(), "http://example.com:8080/");
        assert!(check_url("https://8.8.8.8/hook", false).is_ok());
        assert!(check_url("https://[2606:4700:4700::1111]/hook", false).is_ok());
        // A name is judged when it is resolved, at delivery.
        assert!(check_url("http://localhost:8080/", false).is_ok());
    }

    #[test]
    fn malformed_urls_are_refused() {
        assert_eq!(check_url("ftp://example.com/", false), Err(UrlProblem::Scheme("ftp".into())));
        assert_eq!(check_url("file:///etc/passwd", false), Err(UrlProblem::Scheme("file".into())));
        assert_eq!(check_url("https://user:pw@example.com/", false), Err(UrlProblem::Userinfo));
        assert_eq!(check_url("https://user@example.com/", false), Err(UrlProblem::Userinfo));
        assert_eq!(check_url("https://example.com/#top", false), Err(UrlProblem::Fragment));
        assert_eq!(check_url("https://example.com/#", false), Err(UrlProblem::Fragment));
        assert!(matches!(check_url("http://", false), Err(UrlProblem::Unparsable(_))));
        assert!(matches!(check_url("example.com/hook", false), Err(UrlProblem::Unparsable(_))));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(check_url(&long, false), Err(UrlProblem::TooLong(long.len())));
        let at_limit = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN - 20));
        assert!(check_url(&at_limit, false).is_ok());
    }

    #[test]
    fn ip_literals_in_any_spelling_are_judged() {
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::1]:8080/",
            "http://0/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
        ] {
            assert!(matches!(check_url(url, false), Err(UrlProblem::NotPublic { .. })), "{url}");
            assert!(check_url(url, true).is_ok(), "{url}");
        }
    }

    #[test]
    fn a_refused_literal_says_why_in_english() {
        let problem = check_url("http://10.0.0.5/hook", false).unwrap_err();
        assert_eq!(
            problem.to_string(),
            "the URL's host 10.0.0.5 is a private address; webhooks may reach only public addresses unless the \
             server allows private targets"
        );
        let problem = check_url("http://2130706433/", false).unwrap_err();
        assert!(problem.to_string().starts_with("the URL's host 127.0.0.1 is a loopback address;"), "{problem}");
    }

    #[tokio::test]
    async fn the_resolver_drops_non_public_answers() {
        let refused = GuardedResolver::new(false).resolve("localhost".parse().unwrap()).await.err().unwrap();
        assert!(refused.to_string().starts_with("localhost resolved only to non-public addresses"), "{refused}");
        let found: Vec<SocketAddr> =
            GuardedResolver::new(true).resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(found.iter().any(|addr| addr.ip().is_loopback()), "{found:?}");
    }
}
