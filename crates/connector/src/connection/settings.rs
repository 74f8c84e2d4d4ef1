//! The settings an invocation derives from a connection: its fields checked against the
//! connection type's inputs, the environment understood from the pasted URL, the identity
//! endpoints (national clouds, tenant segments) and the scopes.

use dataverse::environment::{Cloud, Environment, Service, origin_of};

use super::definitions::{
    API_VERSION, AUTHORIZE_URL, GLOBAL_AUTHORITY, SERVICE, TENANT_ID, TOKEN_URL, TYPES, WEB_API_URL,
};
use crate::bindings::dynamics::connector::types::{Connection, ConnectionKind};
use crate::definition::InputDef;
use crate::error::{Result, invalid_field, invalid_input};
use crate::log;

/// What an invocation needs from a connection, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kind: ConnectionKind,
    pub environment: Environment,
    pub token_url: String,
    pub authorize_url: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The connection type's key, such as `oauth2-client-certificate`.
    pub definition: &'static str,
    /// Certificate connections: the key and certificate (PEM or base64 PFX), the PFX password
    /// and the assertion's `alg`.
    pub certificate: Option<String>,
    pub certificate_password: Option<String>,
    pub signing_algorithm: Option<String>,
    /// Federated connections: the external identity token the host read for this call.
    pub client_assertion: Option<String>,
}

impl Settings {
    pub fn from_connection(connection: &Connection) -> Result<Settings> {
        let connection_type = TYPES
            .iter()
            .find(|t| t.key == connection.definition)
            .ok_or_else(|| {
                let known: Vec<&str> = TYPES.iter().map(|t| t.key).collect();
                invalid_field(
                    "connection",
                    Some("Connection"),
                    format!(
                        "unknown connection type {:?}; expected one of {}",
                        connection.definition,
                        known.join(", ")
                    ),
                )
            })?;
        for (key, _) in &connection.fields {
            if !connection_type.inputs.iter().any(|input| input.key == key) {
                return Err(invalid_field(
                    key,
                    None,
                    format!("the {} connection has no such field", connection_type.label),
                ));
            }
        }
        let field = |definition: &InputDef| -> Result<Option<String>> {
            let value = connection
                .fields
                .iter()
                .find(|(key, _)| key == definition.key)
                .map(|(_, value)| value.trim().to_string())
                .filter(|value| !value.is_empty())
                .or(definition.default.map(str::to_string));
            if value.is_none() && definition.required {
                return Err(invalid_input(definition, "is required for this connection"));
            }
            Ok(value)
        };
        let by_key = |key: &str| {
            connection_type
                .inputs
                .iter()
                .find(|input| input.key == key)
                .copied()
        };
        let get = |key: &str| -> Result<Option<String>> {
            by_key(key).map(|d| field(&d)).unwrap_or(Ok(None))
        };

        // Only what the user entered, without the definition's default.
        let given = |key: &str| {
            connection
                .fields
                .iter()
                .find(|(field, _)| field == key)
                .map(|(_, value)| value.trim().to_string())
                .filter(|value| !value.is_empty())
        };

        let web_api_url = get("webApiUrl")?.unwrap_or_default();
        let mut environment = Environment::parse(&web_api_url)
            .map_err(|problem| invalid_input(&WEB_API_URL, problem.to_string()))?;
        if let Some(version) = get("apiVersion")? {
            environment = environment
                .with_api_version(&version.to_ascii_lowercase())
                .map_err(|problem| invalid_input(&API_VERSION, problem.to_string()))?;
        }
        if let Some(service) = get("service")? {
            let service = Service::parse(&service).ok_or_else(|| {
                invalid_input(
                    &SERVICE,
                    format!("{service:?} is not a service; choose dataverse or finance-operations"),
                )
            })?;
            environment = environment.with_service(service);
        }
        // The seed's defaults name the global authority; national clouds have their own.
        let in_cloud = |key: &str, url: String| -> String {
            let national = !matches!(environment.cloud, Cloud::Global | Cloud::Local);
            match url.strip_prefix(GLOBAL_AUTHORITY) {
                Some(rest) if national && given(key).is_none() => {
                    format!("{}{rest}", environment.authority_origin())
                }
                _ => url,
            }
        };
        let token_url = match (get("tokenUrl")?, get("tenantId")?) {
            (Some(url), _) => {
                let definition = by_key("tokenUrl").unwrap_or(TOKEN_URL);
                let url = check_endpoint(&definition, &in_cloud("tokenUrl", url))?;
                check_tenant_segment(&definition, &url, connection_type.kind)?;
                url
            }
            (None, Some(tenant)) => {
                if !tenant
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                {
                    return Err(invalid_input(
                        &TENANT_ID,
                        format!("{tenant:?} is not a tenant ID or domain"),
                    ));
                }
                dataverse::entra::token_url(environment.cloud.authority_origin(), &tenant)
            }
            // A managed identity's token comes from the host, never from a token endpoint.
            (None, None) if connection_type.key == super::definitions::MANAGED_IDENTITY => {
                String::new()
            }
            (None, None) => {
                return Err(invalid_input(
                    &TOKEN_URL,
                    "is required when Tenant ID is empty",
                ));
            }
        };
        let authorize_url = match get("authorizeUrl")? {
            Some(url) => Some(check_endpoint(
                &AUTHORIZE_URL,
                &in_cloud("authorizeUrl", url),
            )?),
            None => None,
        };
        let scopes = match (get("scopes")?, connection_type.kind) {
            (Some(scopes), ConnectionKind::Oauth2ClientCredentials) => {
                let kept: Vec<&str> = scopes
                    .split_whitespace()
                    .filter(|s| *s != "offline_access")
                    .collect();
                if kept.len() != scopes.split_whitespace().count() {
                    log::warn(
                        "removed offline_access from the scopes: Entra ID refuses it for client credentials",
                    );
                }
                kept.join(" ")
            }
            (Some(scopes), _) => scopes,
            (None, ConnectionKind::Oauth2AuthorizationCode) => environment.delegated_scopes(),
            (None, ConnectionKind::Oauth2ClientCredentials) => environment.default_scope(),
            (None, ConnectionKind::Oauth2Password) => {
                format!("{}/user_impersonation", environment.origin)
            }
        };
        Ok(Settings {
            kind: connection_type.kind,
            environment,
            token_url,
            authorize_url,
            client_id: get("clientId")?.unwrap_or_default(),
            client_secret: get("clientSecret")?,
            scopes,
            username: get("username")?,
            password: get("password")?,
            definition: connection_type.key,
            certificate: get("certificate")?,
            certificate_password: get("certificatePassword")?,
            signing_algorithm: get("signingAlgorithm")?,
            client_assertion: get("clientAssertion")?,
        })
    }

    /// The origins this connection may reach: environment, token and authorize endpoints.
    pub fn endpoints(&self) -> Vec<String> {
        let mut origins = vec![self.environment.origin.clone()];
        for url in [Some(&self.token_url), self.authorize_url.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(origin) = origin_of(url)
                && !origins.contains(&origin)
            {
                origins.push(origin);
            }
        }
        origins
    }
}

/// App-only and password sign-ins need a tenant in the token URL: Entra refuses them on `common`
/// and `consumers` (and app-only on `organizations` too).
fn check_tenant_segment(definition: &InputDef, url: &str, kind: ConnectionKind) -> Result<()> {
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(url)
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    let tenant = path
        .split('/')
        .nth(1)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let refused: &[&str] = match kind {
        ConnectionKind::Oauth2ClientCredentials => &["common", "consumers", "organizations"],
        ConnectionKind::Oauth2Password => &["common", "consumers"],
        ConnectionKind::Oauth2AuthorizationCode => &[],
    };
    if refused.contains(&tenant.as_str()) {
        return Err(invalid_input(
            definition,
            format!(
                "{url:?} uses the {tenant:?} endpoint, which this sign-in cannot use; replace {tenant} with your tenant ID or domain"
            ),
        ));
    }
    Ok(())
}

/// Checks an identity endpoint URL: absolute, https (http only on loopback), no credentials.
fn check_endpoint(definition: &InputDef, url: &str) -> Result<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid_input(
            definition,
            format!("{url:?} is not an absolute URL"),
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let Some((host, _)) = dataverse::environment::split_host_port(authority) else {
        return Err(invalid_input(
            definition,
            format!("{url:?} has no valid host"),
        ));
    };
    let loopback = dataverse::environment::is_loopback_host(host);
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(url.to_string()),
        "http" if loopback => Ok(url.to_string()),
        _ => Err(invalid_input(definition, format!("{url:?} must use https"))),
    }
}
