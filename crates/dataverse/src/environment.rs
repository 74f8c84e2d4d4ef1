//! The environment a connection talks to, from the URL a user pasted.
//!
//! Users paste `contoso.crm.dynamics.com`, `https://contoso.crm.dynamics.com/`, the `.api.`
//! host, or a full Web API URL with a version. All of them name the same environment; this
//! module turns them into one origin, a Web API root and the scopes Entra ID expects.

use std::fmt;

/// The Web API version used when the URL does not name one.
pub const DEFAULT_API_VERSION: &str = "v9.2";

/// Why a pasted environment URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvironmentError {
    /// Nothing was entered.
    #[error("the environment URL is empty; enter it like https://contoso.crm.dynamics.com")]
    Empty,
    /// A scheme other than https (http is accepted for loopback emulators only).
    #[error(
        "the environment URL must use https (http is accepted only for a local emulator), got {0:?}"
    )]
    Scheme(String),
    /// A query string or fragment, which no environment URL has.
    #[error("the environment URL must not contain a query string or fragment: {0:?}")]
    QueryOrFragment(String),
    /// The host part is missing or malformed.
    #[error("the environment URL has no valid host name: {0:?}")]
    Host(String),
    /// The host is not a Dynamics 365 / Dataverse host of any cloud.
    #[error("{0:?} is not a Dynamics 365 host; expected a name like contoso.crm.dynamics.com")]
    NotDynamics(String),
    /// A Web API version segment that is not `vN.N`.
    #[error("the Web API version {0:?} is not valid; expected something like v9.2")]
    Version(String),
}

/// Which service answers at the environment: the Dataverse Web API or Finance & Operations OData.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Dataverse / Dynamics 365 Customer Engagement: `origin/api/data/vX.Y`.
    Dataverse,
    /// Dynamics 365 Finance & Operations: `origin/data`.
    FinanceOperations,
}

impl Service {
    /// Reads a connection's choice: `dataverse` or `finance-operations` (a few spellings).
    pub fn parse(text: &str) -> Option<Service> {
        match text.trim().to_ascii_lowercase().as_str() {
            "dataverse" | "crm" | "ce" | "dynamics-365" | "dynamics365" => Some(Service::Dataverse),
            "finance-operations"
            | "finance-and-operations"
            | "finance & operations"
            | "fno"
            | "f&o"
            | "fo" => Some(Service::FinanceOperations),
            _ => None,
        }
    }

    /// The key a connection stores.
    pub fn key(self) -> &'static str {
        match self {
            Service::Dataverse => "dataverse",
            Service::FinanceOperations => "finance-operations",
        }
    }
}

/// Which sovereign cloud an environment lives in; decides the Entra authority host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Commercial cloud and GCC (`*.dynamics.com`).
    Global,
    /// US Government GCC High (`*.microsoftdynamics.us`).
    UsGovHigh,
    /// US Government DoD (`*.appsplatform.us`).
    UsGovDod,
    /// China operated by 21Vianet (`*.dynamics.cn`).
    China,
    /// A local emulator on a loopback address.
    Local,
}

impl Cloud {
    /// The Entra ID authority origin for this cloud.
    pub fn authority_origin(self) -> &'static str {
        match self {
            Cloud::Global | Cloud::Local => "https://login.microsoftonline.com",
            Cloud::UsGovHigh | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// A short name for messages and connection tests.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Global => "Global",
            Cloud::UsGovHigh => "US Government GCC High",
            Cloud::UsGovDod => "US Government DoD",
            Cloud::China => "China (21Vianet)",
            Cloud::Local => "local emulator",
        }
    }
}

/// A normalized Dataverse (or Finance & Operations) environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// `scheme://host[:port]`, without a trailing slash and without `.api.`.
    pub origin: String,
    /// The host name, lower case.
    pub host: String,
    /// The Web API version segment, such as `v9.2`.
    pub api_version: String,
    /// Which cloud the host belongs to.
    pub cloud: Cloud,
    /// Dataverse Web API or Finance & Operations OData.
    pub service: Service,
}

const DYNAMICS_SUFFIXES: &[(&str, Cloud)] = &[
    (".dynamics.com", Cloud::Global),
    (".microsoftdynamics.us", Cloud::UsGovHigh),
    (".appsplatform.us", Cloud::UsGovDod),
    (".dynamics.cn", Cloud::China),
];

impl Environment {
    /// Normalizes what a user pasted into an environment.
    pub fn parse(pasted: &str) -> Result<Environment, EnvironmentError> {
        let text = pasted.trim();
        if text.is_empty() {
            return Err(EnvironmentError::Empty);
        }
        if text.contains('?') || text.contains('#') {
            return Err(EnvironmentError::QueryOrFragment(text.to_string()));
        }
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
            None => (None, text),
        };
        let (authority, path) = match rest.find('/') {
            Some(index) => (&rest[..index], &rest[index..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(EnvironmentError::Host(text.to_string()));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| EnvironmentError::Host(text.to_string()))?;
        let host = host.to_ascii_lowercase();
        let loopback = is_loopback_host(&host);
        // A local emulator pasted without a scheme speaks plain http; everything else https.
        let scheme = scheme.unwrap_or_else(|| if loopback { "http" } else { "https" }.to_string());
        match scheme.as_str() {
            "https" => {}
            "http" if loopback => {}
            other => return Err(EnvironmentError::Scheme(other.to_string())),
        }
        let cloud = if loopback {
            Cloud::Local
        } else {
            DYNAMICS_SUFFIXES
                .iter()
                .find(|(suffix, _)| host.ends_with(suffix) && host.len() > suffix.len())
                .map(|(_, cloud)| *cloud)
                .ok_or_else(|| EnvironmentError::NotDynamics(host.clone()))?
        };
        let host = match host.split_once(".api.") {
            Some((org, region)) if !loopback => format!("{org}.{region}"),
            _ => host,
        };
        let api_version = version_from_path(path)?.unwrap_or(DEFAULT_API_VERSION.to_string());
        let service = if is_operations_path(path) || host.contains(".operations.") {
            Service::FinanceOperations
        } else {
            Service::Dataverse
        };
        let origin = match port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        Ok(Environment {
            origin,
            host,
            api_version,
            cloud,
            service,
        })
    }

    /// The same environment served by another service (Finance & Operations or Dataverse).
    pub fn with_service(mut self, service: Service) -> Environment {
        self.service = service;
        self
    }

    /// The same environment with another Web API version.
    pub fn with_api_version(mut self, version: &str) -> Result<Environment, EnvironmentError> {
        if !is_version(version) {
            return Err(EnvironmentError::Version(version.to_string()));
        }
        self.api_version = version.to_string();
        Ok(self)
    }

    /// The OData service root without a trailing slash: `origin/api/data/vX.Y` for Dataverse,
    /// `origin/data` for Finance & Operations.
    pub fn web_api_root(&self) -> String {
        match self.service {
            Service::Dataverse => format!("{}/api/data/{}", self.origin, self.api_version),
            Service::FinanceOperations => format!("{}/data", self.origin),
        }
    }

    /// The Entra ID authority origin that issues tokens for this environment.
    pub fn authority_origin(&self) -> &'static str {
        self.cloud.authority_origin()
    }

    /// The app-only scope, `origin/.default`.
    pub fn default_scope(&self) -> String {
        format!("{}/.default", self.origin)
    }

    /// The delegated scopes of the authorization-code flow.
    pub fn delegated_scopes(&self) -> String {
        format!("{}/user_impersonation offline_access", self.origin)
    }

    /// True when `url` is absolute and on this environment: the one check of "is this link ours"
    /// (next links, delta links, Raw Request URLs, where the bearer token may go).
    pub fn owns_url(&self, url: &str) -> bool {
        origin_of(url).is_some_and(|origin| self.is_own_origin(&origin))
    }

    /// True when `origin` (`scheme://host[:port]`) is this environment, `.api.` host included.
    pub fn is_own_origin(&self, origin: &str) -> bool {
        let lower = origin.to_ascii_lowercase();
        if lower == self.origin {
            return true;
        }
        match lower.split_once(".api.") {
            Some((org, region)) => format!("{org}.{region}") == self.origin,
            None => false,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)
    }
}

/// `scheme://host[:port]` of an absolute URL, lower case; None for a relative one.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || scheme.is_empty() {
        return None;
    }
    Some(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    ))
}

/// True for `localhost`, `127.x.x.x` and `[::1]`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host == "::1"
        || host
            .strip_prefix("127.")
            .is_some_and(|rest| rest.split('.').all(|part| part.parse::<u8>().is_ok()))
}

/// Splits `host[:port]` (IPv6 in brackets); None when malformed.
pub fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.is_empty() {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &authority[..end + 2];
        let after = &rest[end + 1..];
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return None,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let valid_host = !host.is_empty()
        && (host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if !valid_host || host.starts_with('.') || host.ends_with('.') || host.contains("..") {
        return None;
    }
    let port = match port {
        Some(text) => Some(text.parse::<u16>().ok().filter(|port| *port != 0)?),
        None => None,
    };
    Some((host, port))
}

fn version_from_path(path: &str) -> Result<Option<String>, EnvironmentError> {
    let mut segments = path.split('/').filter(|segment| !segment.is_empty());
    match (segments.next(), segments.next(), segments.next()) {
        (Some(api), Some(data), Some(version))
            if api.eq_ignore_ascii_case("api") && data.eq_ignore_ascii_case("data") =>
        {
            let version = version.to_ascii_lowercase();
            if is_version(&version) {
                Ok(Some(version))
            } else {
                Err(EnvironmentError::Version(version))
            }
        }
        _ => Ok(None),
    }
}

/// True for a path whose first segment is `data` (Finance & Operations OData root).
fn is_operations_path(path: &str) -> bool {
    path.split('/')
        .find(|segment| !segment.is_empty())
        .is_some_and(|segment| segment.eq_ignore_ascii_case("data"))
}

/// True for `vN.N`, such as `v9.2`.
pub fn is_version(text: &str) -> bool {
    text.strip_prefix('v').is_some_and(|numbers| {
        let mut parts = numbers.split('.');
        let major = parts
            .next()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let minor = parts
            .next()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        major && minor && parts.next().is_none()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_forms_of_one_environment_normalize_to_the_same_origin() {
        for pasted in [
            "contoso.crm.dynamics.com",
            "https://contoso.crm.dynamics.com",
            "https://contoso.crm.dynamics.com/",
            "  HTTPS://Contoso.CRM.dynamics.com/  ",
            "https://contoso.api.crm.dynamics.com/",
            "https://contoso.crm.dynamics.com/api/data/v9.2/",
            "contoso.api.crm.dynamics.com/api/data/v9.2",
            "https://contoso.crm.dynamics.com/main.aspx",
        ] {
            let environment = Environment::parse(pasted).unwrap();
            assert_eq!(
                environment.origin, "https://contoso.crm.dynamics.com",
                "{pasted}"
            );
            assert_eq!(
                environment.web_api_root(),
                "https://contoso.crm.dynamics.com/api/data/v9.2"
            );
            assert_eq!(
                environment.default_scope(),
                "https://contoso.crm.dynamics.com/.default"
            );
            assert_eq!(environment.cloud, Cloud::Global);
        }
    }

    #[test]
    fn version_in_the_path_is_kept_and_national_clouds_are_recognised() {
        let environment =
            Environment::parse("https://onprem.crm4.dynamics.com/api/data/v8.2").unwrap();
        assert_eq!(environment.api_version, "v8.2");
        assert_eq!(
            Environment::parse("x.crm.microsoftdynamics.us")
                .unwrap()
                .cloud,
            Cloud::UsGovHigh
        );
        assert_eq!(
            Environment::parse("x.crm.appsplatform.us").unwrap().cloud,
            Cloud::UsGovDod
        );
        assert_eq!(
            Environment::parse("x.crm.dynamics.cn").unwrap().cloud,
            Cloud::China
        );
        assert_eq!(
            Cloud::China.authority_origin(),
            "https://login.chinacloudapi.cn"
        );
    }

    #[test]
    fn loopback_emulators_may_use_http_with_a_port() {
        let environment = Environment::parse("http://127.0.0.1:8080/api/data/v9.2").unwrap();
        assert_eq!(environment.origin, "http://127.0.0.1:8080");
        assert_eq!(environment.cloud, Cloud::Local);
        assert!(environment.is_own_origin("http://127.0.0.1:8080"));
        assert!(!environment.is_own_origin("http://127.0.0.1:8081"));
    }

    #[test]
    fn bad_pastes_are_refused_with_the_reason() {
        type Expectation = fn(&EnvironmentError) -> bool;
        let cases: &[(&str, Expectation)] = &[
            ("", |e| matches!(e, EnvironmentError::Empty)),
            ("https://contoso.crm.dynamics.com/?appid=1", |e| {
                matches!(e, EnvironmentError::QueryOrFragment(_))
            }),
            ("http://contoso.crm.dynamics.com", |e| {
                matches!(e, EnvironmentError::Scheme(_))
            }),
            ("ftp://contoso.crm.dynamics.com", |e| {
                matches!(e, EnvironmentError::Scheme(_))
            }),
            ("https://example.com", |e| {
                matches!(e, EnvironmentError::NotDynamics(_))
            }),
            ("https://dynamics.com.evil.net", |e| {
                matches!(e, EnvironmentError::NotDynamics(_))
            }),
            ("https://user@contoso.crm.dynamics.com", |e| {
                matches!(e, EnvironmentError::Host(_))
            }),
            ("https://contoso.crm.dynamics.com:99999", |e| {
                matches!(e, EnvironmentError::Host(_))
            }),
            ("https://contoso.crm.dynamics.com/api/data/latest", |e| {
                matches!(e, EnvironmentError::Version(_))
            }),
        ];
        for (pasted, expected) in cases {
            let error = Environment::parse(pasted).unwrap_err();
            assert!(expected(&error), "{pasted:?} gave {error:?}");
        }
    }

    #[test]
    fn finance_and_operations_is_recognised_by_path_or_host_and_uses_the_data_root() {
        for pasted in [
            "https://contoso.operations.dynamics.com/data",
            "contoso.operations.dynamics.com",
            "https://contoso.sandbox.operations.dynamics.com/data/Customers",
        ] {
            let environment = Environment::parse(pasted).unwrap();
            assert_eq!(environment.service, Service::FinanceOperations, "{pasted}");
            assert!(environment.web_api_root().ends_with(".dynamics.com/data"));
            assert!(
                environment
                    .default_scope()
                    .ends_with(".dynamics.com/.default")
            );
        }
        let chosen = Environment::parse("https://contoso.crm.dynamics.com")
            .unwrap()
            .with_service(Service::FinanceOperations);
        assert_eq!(
            chosen.web_api_root(),
            "https://contoso.crm.dynamics.com/data"
        );
        assert_eq!(
            Service::parse("Finance-Operations"),
            Some(Service::FinanceOperations)
        );
        assert_eq!(Service::parse("dataverse"), Some(Service::Dataverse));
        assert_eq!(Service::parse("sap"), None);
    }

    #[test]
    fn each_national_cloud_gets_its_own_authority_host() {
        for (pasted, cloud, authority) in [
            (
                "contoso.crm.dynamics.com",
                Cloud::Global,
                "https://login.microsoftonline.com",
            ),
            (
                "contoso.crm9.dynamics.com",
                Cloud::Global,
                "https://login.microsoftonline.com",
            ),
            (
                "contoso.crm.microsoftdynamics.us",
                Cloud::UsGovHigh,
                "https://login.microsoftonline.us",
            ),
            (
                "contoso.crm.appsplatform.us",
                Cloud::UsGovDod,
                "https://login.microsoftonline.us",
            ),
            (
                "contoso.crm.dynamics.cn",
                Cloud::China,
                "https://login.chinacloudapi.cn",
            ),
        ] {
            let environment = Environment::parse(pasted).unwrap();
            assert_eq!(environment.cloud, cloud, "{pasted}");
            assert_eq!(environment.authority_origin(), authority, "{pasted}");
        }
    }

    #[test]
    fn a_loopback_emulator_pasted_without_a_scheme_is_reached_over_http() {
        let environment = Environment::parse("127.0.0.1:8080").unwrap();
        assert_eq!(environment.origin, "http://127.0.0.1:8080");
        let environment = Environment::parse("localhost:9000/api/data/v8.2/").unwrap();
        assert_eq!(
            environment.web_api_root(),
            "http://localhost:9000/api/data/v8.2"
        );
    }
}
