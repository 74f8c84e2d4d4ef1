//! The `http` import: one place where every outgoing request is checked and sent.
//!
//! A request may go only to an origin the connection declared (its environment and token
//! endpoint) that the host's own egress policy also allows ([`crate::egress`]): the component
//! asks, the host decides. Loopback and private addresses are refused unless allowed, both as
//! literals and as what a name resolves to when connecting. Redirects are never followed; one
//! that points to a host that is not allowed is reported as `redirect-denied`. Response bodies
//! are capped, and the timeout of each request is bounded by what is left of the invocation's
//! time.

use std::io::Read;
use std::time::{Duration, Instant};

use ureq::http;

use crate::bindings::dynamics::connector::http::{HttpError, Request, Response};
use crate::egress::{EgressPolicy, GuardedResolver, PrivateAddress, is_local_name, is_private};

/// Which destinations one call may reach: the declared origins the policy allowed.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    /// `scheme://host:port` with the port always written out.
    origins: Vec<String>,
    /// Origins the component declared that the host's policy refused, for the error message.
    refused: Vec<String>,
    /// Whether loopback and private addresses may be reached.
    allow_private: bool,
}

impl AllowList {
    pub fn new(allow_private: bool) -> AllowList {
        AllowList {
            origins: Vec::new(),
            refused: Vec::new(),
            allow_private,
        }
    }

    /// Adds an origin the connection declared (`scheme://host[:port]`) when `policy` allows its
    /// host; malformed ones are skipped.
    pub fn add_origin(&mut self, origin: &str, policy: &EgressPolicy) {
        let Some(target) = Target::parse(origin) else {
            return;
        };
        let normalized = target.origin();
        if !policy.permits_host(&target.host) {
            if !self.refused.contains(&normalized) {
                self.refused.push(normalized);
            }
            return;
        }
        if !self.origins.contains(&normalized) {
            self.origins.push(normalized);
        }
    }

    /// Why `url` may not be reached, or None when it may.
    pub fn refusal(&self, url: &str) -> Option<String> {
        let Some(target) = Target::parse(url) else {
            return Some(format!("{url:?} is not an absolute http(s) URL"));
        };
        if target.is_private() && !self.allow_private {
            return Some(format!(
                "{} is a loopback or private address, which this host does not allow",
                target.host
            ));
        }
        if self.origins.contains(&target.origin()) {
            None
        } else if self.refused.contains(&target.origin()) {
            Some(format!(
                "{} is not a host this host's egress policy allows (Dataverse, Finance & Operations and Entra ID hosts; an operator adds others with --allow-host)",
                target.host
            ))
        } else {
            Some(format!(
                "{} is not an origin of this connection",
                target.origin()
            ))
        }
    }
}

/// The parts of a URL the policy looks at.
struct Target {
    scheme: String,
    host: String,
    port: u16,
}

impl Target {
    fn parse(url: &str) -> Option<Target> {
        let uri: http::Uri = url.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return None,
        };
        let host = uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if host.is_empty() || uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return None;
        }
        Some(Target {
            port: uri.port_u16().unwrap_or(default_port),
            scheme,
            host,
        })
    }

    fn origin(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.host, self.port)
    }

    /// A literal private address or a local name; names that resolve to one are refused when
    /// connecting ([`GuardedResolver`]).
    fn is_private(&self) -> bool {
        is_local_name(&self.host) || self.host.parse().is_ok_and(is_private)
    }
}

/// Sends with a shared connection pool.
#[derive(Clone)]
pub struct Sender {
    agent: ureq::Agent,
    max_response_bytes: u64,
}

impl Sender {
    pub fn new(
        max_response_bytes: u64,
        network: &crate::host::NetworkPolicy,
    ) -> anyhow::Result<Sender> {
        let mut roots = Vec::new();
        for pem in &network.root_certificates {
            let mut found = false;
            for item in ureq::tls::parse_pem(pem) {
                if let ureq::tls::PemItem::Certificate(certificate) =
                    item.map_err(|e| anyhow::anyhow!("reading a CA certificate: {e}"))?
                {
                    roots.push(certificate);
                    found = true;
                }
            }
            anyhow::ensure!(found, "a CA certificate file holds no PEM certificate");
        }
        let mut tls = ureq::tls::TlsConfig::builder();
        if !roots.is_empty() {
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&roots));
        }
        let config = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!(
                "dynamics-connector-host/",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            GuardedResolver::new(network.allow_private, network.pinned.clone()),
        );
        Ok(Sender {
            agent,
            max_response_bytes,
        })
    }

    /// Sends `request` if `allow` permits, waiting at most until `deadline`.
    pub fn send(
        &self,
        request: Request,
        allow: &AllowList,
        deadline: Instant,
    ) -> Result<Response, HttpError> {
        if let Some(reason) = allow.refusal(&request.url) {
            return Err(HttpError::Denied(reason));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err(HttpError::Timeout);
        }
        let timeout = match request.timeout_ms {
            Some(ms) => left.min(Duration::from_millis(u64::from(ms))),
            None => left,
        };
        let mut builder = http::Request::builder()
            .method(request.method.as_str())
            .uri(request.url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let result = if request.body.is_empty()
            && matches!(request.method.as_str(), "GET" | "HEAD" | "DELETE")
        {
            let built = builder
                .body(())
                .map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
            let configured = self
                .agent
                .configure_request(built)
                .timeout_global(Some(timeout))
                .build();
            self.agent.run(configured)
        } else {
            let built = builder
                .body(request.body)
                .map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
            let configured = self
                .agent
                .configure_request(built)
                .timeout_global(Some(timeout))
                .build();
            self.agent.run(configured)
        };
        let mut response = result.map_err(transport_error)?;
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        if (300..400).contains(&status)
            && let Some((_, location)) = headers.iter().find(|(name, _)| name == "location")
        {
            let absolute = resolve_location(&request.url, location);
            if let Some(reason) = allow.refusal(&absolute) {
                return Err(HttpError::RedirectDenied(reason));
            }
        }
        let limit = self.max_response_bytes;
        // One allocation for a body whose length is announced: grown by doubling instead, a
        // page of 5,000 rows is copied and freed a dozen times (a tenth of a loopback read).
        // The announcement is only trusted up to the limit.
        let announced = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let mut body = Vec::with_capacity(announced.min(limit.saturating_add(1)) as usize);
        let mut reader = response
            .body_mut()
            .with_config()
            .limit(limit.saturating_add(1))
            .reader();
        match reader
            .by_ref()
            .take(limit.saturating_add(1))
            .read_to_end(&mut body)
        {
            Ok(_) if body.len() as u64 > limit => return Err(HttpError::TooLarge(limit)),
            Ok(_) => {}
            Err(problem) => return Err(read_error(problem, limit)),
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn transport_error(error: ureq::Error) -> HttpError {
    match error {
        ureq::Error::Io(problem)
            if problem
                .get_ref()
                .is_some_and(|inner| inner.is::<PrivateAddress>()) =>
        {
            HttpError::Denied(problem.to_string())
        }
        ureq::Error::Timeout(_) => HttpError::Timeout,
        ureq::Error::BodyExceedsLimit(limit) => HttpError::TooLarge(limit),
        ureq::Error::BadUri(problem) => HttpError::InvalidRequest(problem),
        ureq::Error::Http(problem) => HttpError::InvalidRequest(problem.to_string()),
        other => HttpError::ConnectionFailed(other.to_string()),
    }
}

fn read_error(problem: std::io::Error, limit: u64) -> HttpError {
    let text = problem.to_string();
    if text.to_ascii_lowercase().contains("timeout")
        || problem.kind() == std::io::ErrorKind::TimedOut
    {
        HttpError::Timeout
    } else if text.contains("limit") {
        HttpError::TooLarge(limit)
    } else {
        HttpError::ConnectionFailed(format!("the response was cut off: {text}"))
    }
}

/// An absolute URL for a `Location` header relative to `base`.
fn resolve_location(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if let Some(network_path) = location.strip_prefix("//") {
        format!("{scheme}://{network_path}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        format!("{scheme}://{authority}/{location}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow_private: bool, extra: &[&str]) -> EgressPolicy {
        let mut policy = EgressPolicy {
            allow_private,
            ..EgressPolicy::default()
        };
        policy.hosts.extend(
            extra
                .iter()
                .filter_map(|h| crate::egress::HostPattern::parse(h)),
        );
        policy
    }

    #[test]
    fn declared_origins_the_policy_allows_pass_and_everything_else_is_refused() {
        let policy = policy(false, &[]);
        let mut allow = AllowList::new(false);
        allow.add_origin("https://contoso.crm.dynamics.com", &policy);
        assert_eq!(
            allow.refusal("https://contoso.crm.dynamics.com/api/data/v9.2/WhoAmI"),
            None
        );
        assert_eq!(
            allow.refusal("https://contoso.crm.dynamics.com:443/x"),
            None
        );
        assert!(allow.refusal("http://contoso.crm.dynamics.com/x").is_some());
        assert!(allow.refusal("https://evil.example/x").is_some());
        assert!(
            allow
                .refusal("https://contoso.crm.dynamics.com@evil.example/")
                .is_some()
        );
        assert!(allow.refusal("not a url").is_some());
    }

    #[test]
    fn a_component_that_declares_a_host_outside_the_policy_gets_nothing() {
        let policy = policy(false, &[]);
        let mut allow = AllowList::new(false);
        allow.add_origin("https://exfiltrate.example", &policy);
        allow.add_origin("https://contoso.crm.dynamics.com", &policy);
        let refusal = allow.refusal("https://exfiltrate.example/steal").unwrap();
        assert!(refusal.contains("egress policy"), "{refusal}");
        // The operator can widen the policy; the component must still declare the host.
        let widened = self::policy(false, &["exfiltrate.example"]);
        let mut allow = AllowList::new(false);
        allow.add_origin("https://exfiltrate.example", &widened);
        assert_eq!(allow.refusal("https://exfiltrate.example/x"), None);
        assert!(allow.refusal("https://other.example/x").is_some());
    }

    #[test]
    fn loopback_and_private_addresses_need_explicit_permission() {
        let closed_policy = policy(false, &[]);
        let mut closed = AllowList::new(false);
        closed.add_origin("http://127.0.0.1:8080", &closed_policy);
        assert!(
            closed
                .refusal("http://127.0.0.1:8080/")
                .unwrap()
                .contains("loopback")
        );
        assert!(closed.refusal("http://10.0.0.1/").is_some());
        assert!(closed.refusal("http://[::1]:8080/").is_some());
        assert!(
            closed
                .refusal("http://[::ffff:127.0.0.1]:8080/")
                .unwrap()
                .contains("loopback")
        );
        assert!(
            closed
                .refusal("http://100.64.0.1/")
                .unwrap()
                .contains("private")
        );
        let open_policy = policy(true, &[]);
        let mut open = AllowList::new(true);
        open.add_origin("http://127.0.0.1:8080", &open_policy);
        assert_eq!(open.refusal("http://127.0.0.1:8080/api"), None);
        assert!(open.refusal("http://127.0.0.1:8081/api").is_some());
    }

    #[test]
    fn relative_locations_resolve_against_the_request() {
        assert_eq!(
            resolve_location("https://a.example/x/y?q", "/z"),
            "https://a.example/z"
        );
        assert_eq!(
            resolve_location("https://a.example/x", "//b.example/z"),
            "https://b.example/z"
        );
        assert_eq!(
            resolve_location("https://a.example/x", "https://c.example/"),
            "https://c.example/"
        );
    }
}
