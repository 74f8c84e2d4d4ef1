//! The `http` import: one place where every outgoing request is checked and sent.
//!
//! A request may go only to an origin the connection declared (its environment and token
//! endpoint) or to a host the operator allowed explicitly. Loopback and private addresses are
//! refused unless allowed. Redirects are never followed; one that points to a host that is not
//! allowed is reported as `redirect-denied`. Response bodies are capped, and the timeout of each
//! request is bounded by what is left of the invocation's time.

use std::io::Read;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ureq::http;

use crate::bindings::dynamics::connector::http::{HttpError, Request, Response};

/// Which destinations a call may reach.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    /// `scheme://host:port` with the port always written out.
    origins: Vec<String>,
    /// Host names allowed on any port and scheme.
    hosts: Vec<String>,
    /// Whether loopback and private addresses may be reached.
    allow_private: bool,
}

impl AllowList {
    pub fn new(allow_private: bool, extra_hosts: &[String]) -> AllowList {
        AllowList {
            origins: Vec::new(),
            hosts: extra_hosts
                .iter()
                .map(|host| host.trim().to_ascii_lowercase())
                .collect(),
            allow_private,
        }
    }

    /// Adds an origin the connection declared (`scheme://host[:port]`); malformed ones are skipped.
    pub fn add_origin(&mut self, origin: &str) {
        if let Some(target) = Target::parse(origin) {
            let normalized = target.origin();
            if !self.origins.contains(&normalized) {
                self.origins.push(normalized);
            }
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
        if self.origins.contains(&target.origin()) || self.hosts.contains(&target.host) {
            None
        } else {
            Some(format!(
                "{} is not an origin of this connection nor an allowed host",
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

    fn is_private(&self) -> bool {
        if self.host == "localhost" || self.host.ends_with(".localhost") {
            return true;
        }
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => {
                ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified()
            }
            Ok(IpAddr::V6(ip)) => {
                ip.is_loopback()
                    || ip.is_unspecified()
                    || (ip.segments()[0] & 0xfe00) == 0xfc00
                    || (ip.segments()[0] & 0xffc0) == 0xfe80
            }
            Err(_) => false,
        }
    }
}

/// Sends with a shared connection pool.
#[derive(Clone)]
pub struct Sender {
    agent: ureq::Agent,
    max_response_bytes: u64,
}

impl Sender {
    pub fn new(max_response_bytes: u64) -> Sender {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!(
                "dynamics-connector-host/",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        Sender {
            agent: config.into(),
            max_response_bytes,
        }
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
        let mut body = Vec::new();
        let limit = self.max_response_bytes;
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

    #[test]
    fn declared_origins_pass_and_everything_else_is_refused() {
        let mut allow = AllowList::new(false, &[]);
        allow.add_origin("https://contoso.crm.dynamics.com");
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
    fn loopback_and_private_addresses_need_explicit_permission() {
        let mut closed = AllowList::new(false, &[]);
        closed.add_origin("http://127.0.0.1:8080");
        assert!(
            closed
                .refusal("http://127.0.0.1:8080/")
                .unwrap()
                .contains("loopback")
        );
        assert!(closed.refusal("http://10.0.0.1/").is_some());
        assert!(closed.refusal("http://[::1]:8080/").is_some());
        let mut open = AllowList::new(true, &[]);
        open.add_origin("http://127.0.0.1:8080");
        assert_eq!(open.refusal("http://127.0.0.1:8080/api"), None);
        assert!(open.refusal("http://127.0.0.1:8081/api").is_some());
    }

    #[test]
    fn extra_hosts_are_allowed_on_any_port() {
        let allow = AllowList::new(false, &["login.example.com".to_string()]);
        assert_eq!(
            allow.refusal("https://login.example.com/t/oauth2/v2.0/token"),
            None
        );
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
