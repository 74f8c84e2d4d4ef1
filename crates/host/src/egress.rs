//! The host's own egress policy: which hosts any component may reach, and which addresses no
//! connection may reach unless the operator says so.
//!
//! A call may reach an origin only when both agree: the component asks for it (the connection's
//! `endpoints`), and the host's policy allows its host (the host patterns below, declared in
//! `component.yaml` as `allowedOutboundHosts` and extended by the operator with `--allow-host`).
//! A component that names another host gets nothing. Private, loopback, link-local, shared
//! (100.64.0.0/10) and IPv4-mapped or -translated forms of them are refused on the address a
//! name resolves to, at connect time ([`GuardedResolver`]), so a name that resolves to 127.0.0.1
//! is refused like 127.0.0.1 itself.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// The hosts this host lets the Dynamics component reach: Dataverse and Finance & Operations in
/// every cloud (commercial and GCC, GCC High, DoD, China), and Entra ID's sign-in hosts of those
/// clouds (learn.microsoft.com/power-platform/admin/online-requirements,
/// learn.microsoft.com/entra/identity-platform/authentication-national-cloud).
pub const DEFAULT_HOST_PATTERNS: &[&str] = &[
    "*.dynamics.com",
    "*.microsoftdynamics.us",
    "*.appsplatform.us",
    "*.dynamics.cn",
    "login.microsoftonline.com",
    "login.microsoft.com",
    "login.windows.net",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
];

/// A host name, or `*.suffix` for any name under that suffix (not the suffix itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    /// Reads `contoso.example`, `*.example.com`, or a pasted URL's host; None for anything that
    /// is not a host name (`*` alone, `*.com`-like wildcards over a top-level domain, spaces).
    pub fn parse(text: &str) -> Option<HostPattern> {
        let text = text.trim().to_ascii_lowercase();
        let host = text
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(&text)
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = match host.rsplit_once(':') {
            Some((name, port))
                if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') =>
            {
                name
            }
            _ => host,
        };
        let bare = host.strip_prefix("*.").unwrap_or(host);
        let valid = !bare.is_empty()
            && bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        // `*.com` would let out half the internet: a wildcard needs two labels under it.
        let wildcard_too_wide = host.starts_with("*.") && !bare.contains('.');
        (valid && !wildcard_too_wide).then(|| HostPattern(host.to_string()))
    }

    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self.0.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            None => host == self.0,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host side of the policy: host patterns and whether private addresses may be reached.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    pub hosts: Vec<HostPattern>,
    /// Loopback, private, link-local and shared addresses (the emulator, a lab proxy).
    pub allow_private: bool,
}

impl Default for EgressPolicy {
    fn default() -> EgressPolicy {
        EgressPolicy {
            hosts: DEFAULT_HOST_PATTERNS
                .iter()
                .filter_map(|pattern| HostPattern::parse(pattern))
                .collect(),
            allow_private: false,
        }
    }
}

impl EgressPolicy {
    /// Whether the host lets a component name `host` at all. A literal private address is the
    /// operator's to allow (`allow_private`), as it cannot match a host pattern.
    pub fn permits_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Some(ip) = parse_ip(host) {
            return self.allow_private && is_private(ip)
                || self.hosts.iter().any(|pattern| pattern.matches(host));
        }
        if is_local_name(host) {
            return self.allow_private;
        }
        self.hosts.iter().any(|pattern| pattern.matches(host))
    }
}

/// `localhost` and names under it resolve to loopback by definition (RFC 6761).
pub fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

fn parse_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Addresses that reach this machine or a private network rather than the public internet.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0 // "this network" (RFC 791)
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments (RFC 6890)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking (RFC 2544)
        || a >= 240 // reserved (RFC 1112)
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    // IPv4 inside IPv6 (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64 64:ff9b::/96) reaches
    // the IPv4 address it carries.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_private_v4(v4);
    }
    let segments = ip.segments();
    if segments[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return is_private_v4(Ipv4Addr::new(a, b, c, d));
    }
    // IPv4-translated (::ffff:0:a.b.c.d, RFC 2765) and local-use NAT64 (64:ff9b:1::/48,
    // RFC 8215) carry an IPv4 address in their last 32 bits too.
    if segments[..6] == [0, 0, 0, 0, 0xffff, 0] || segments[..3] == [0x64, 0xff9b, 1] {
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return is_private_v4(Ipv4Addr::new(a, b, c, d));
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return is_private_v4(Ipv4Addr::new(a, b, c, d));
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local (RFC 4193)
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated, still routed privately)
}

/// The error a refused address travels in through the HTTP client, recognised by its type.
#[derive(Debug)]
pub struct PrivateAddress {
    pub host: String,
    pub address: IpAddr,
}

impl fmt::Display for PrivateAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} resolves to {}, a loopback or private address, which this host does not allow",
            self.host, self.address
        )
    }
}

impl std::error::Error for PrivateAddress {}

/// Resolves names as usual, then refuses private addresses unless allowed: the connection is
/// made to the addresses checked here, so a name cannot resolve to a public address for the
/// check and to loopback for the connection.
///
/// `pinned` names resolve to the given address without asking DNS, as curl's `--resolve` does
/// (an operator routing a host to a private endpoint); they are checked like any other answer.
#[derive(Debug, Default)]
pub struct GuardedResolver {
    inner: DefaultResolver,
    allow_private: bool,
    pinned: Vec<(String, IpAddr)>,
}

impl GuardedResolver {
    pub fn new(allow_private: bool, pinned: Vec<(String, IpAddr)>) -> GuardedResolver {
        GuardedResolver {
            inner: DefaultResolver::default(),
            allow_private,
            pinned: pinned
                .into_iter()
                .map(|(host, ip)| (host.to_ascii_lowercase(), ip))
                .collect(),
        }
    }
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let pinned = self.pinned.iter().find(|(name, _)| *name == host);
        let addresses = match pinned {
            Some((_, ip)) => {
                let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                    Some("http") => 80,
                    _ => 443,
                });
                let mut addresses = self.empty();
                addresses.push(SocketAddr::new(*ip, port));
                addresses
            }
            None => self.inner.resolve(uri, config, timeout)?,
        };
        if self.allow_private {
            return Ok(addresses);
        }
        let refused = addresses
            .iter()
            .map(SocketAddr::ip)
            .find(|ip| is_private(*ip));
        match refused {
            // One private address is enough to refuse: a name that mixes public and private
            // answers is a rebinding attempt, not a Dataverse host.
            Some(address) => Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                PrivateAddress { host, address },
            ))),
            None => Ok(addresses),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_hosts_under_them_and_nothing_else() {
        let dynamics = HostPattern::parse("*.dynamics.com").unwrap();
        assert!(dynamics.matches("contoso.crm.dynamics.com"));
        assert!(dynamics.matches("Contoso.API.crm4.dynamics.com."));
        assert!(!dynamics.matches("dynamics.com"));
        assert!(!dynamics.matches("evildynamics.com"));
        assert!(!dynamics.matches("contoso.crm.dynamics.com.evil.example"));
        let exact = HostPattern::parse("https://login.microsoftonline.com:443/x").unwrap();
        assert!(exact.matches("login.microsoftonline.com"));
        assert!(!exact.matches("x.login.microsoftonline.com"));
        for bad in ["*", "*.com", "a b", "", "*."] {
            assert_eq!(HostPattern::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_default_policy_allows_dataverse_fo_and_entra_in_every_cloud_only() {
        let policy = EgressPolicy::default();
        for host in [
            "contoso.crm.dynamics.com",
            "contoso.operations.dynamics.com",
            "contoso.crm.microsoftdynamics.us",
            "contoso.crm.appsplatform.us",
            "contoso.crm.dynamics.cn",
            "login.microsoftonline.com",
            "login.microsoftonline.us",
            "login.chinacloudapi.cn",
        ] {
            assert!(policy.permits_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "127.0.0.1",
            "localhost",
            "10.0.0.8",
            "::ffff:127.0.0.1",
            "[::1]",
            "169.254.169.254",
            "graph.microsoft.com",
        ] {
            assert!(!policy.permits_host(host), "{host}");
        }
        let lab = EgressPolicy {
            allow_private: true,
            ..EgressPolicy::default()
        };
        assert!(lab.permits_host("127.0.0.1"));
        assert!(lab.permits_host("localhost"));
        assert!(!lab.permits_host("evil.example"), "private is not any host");
    }

    #[test]
    fn private_addresses_include_shared_mapped_and_translated_forms() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "::ffff:0:127.0.0.1",
            "64:ff9b:1::7f00:1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in [
            "20.42.73.1",
            "100.128.0.1",
            "2603:1030::1",
            "::ffff:20.42.73.1",
        ] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }
}
