//! The three connection types, their inputs, and the settings an invocation derives from them.

use dataverse::environment::{Cloud, Environment, Service};
use dataverse::retry::RetryPolicy;
use serde_json::{Map, Value, json};

use crate::bindings::dynamics::connector::types::{
    self as wit, Connection, ConnectionKind, ConnectorError, ErrorCode,
};
use crate::client::{Client, Request};
use crate::definition::{InputDef, Kind, inputs_to_wit};
use crate::error::{Result, error, invalid_field, invalid_input, with_hint};
use crate::log;

pub const AUTH_CODE: &str = "oauth2-auth-code";
pub const CLIENT_CREDENTIALS: &str = "oauth2-client-credentials";
pub const PASSWORD: &str = "oauth2-password";

const WEB_API_URL: InputDef = InputDef::new("webApiUrl", "Web API URL", Kind::Text)
    .required()
    .comments("Your organization's Microsoft Dynamics 365 Web API URL.")
    .example("https://REPLACE-ME.crm.dynamics.com/");

const AUTH_CODE_SCOPES: InputDef = InputDef::new("scopes", "Scopes", Kind::Text)
    .comments("A space-delimited set of one or more scopes to get the user's permission to access.")
    .example("https://REPLACE-ME.crm.dynamics.com/user_impersonation offline_access");

const CLIENT_ID: InputDef = InputDef::new("clientId", "Client ID", Kind::Text).required();

const CLIENT_SECRET: InputDef = InputDef::new("clientSecret", "Client Secret", Kind::Secret);

const AUTHORIZE_URL: InputDef = InputDef::new("authorizeUrl", "Authorize URL", Kind::Text)
    .default("https://login.microsoftonline.com/common/oauth2/v2.0/authorize")
    .comments("The OAuth 2.0 authorization endpoint. Replace common with your tenant ID for single-tenant apps.");

const AUTH_CODE_TOKEN_URL: InputDef = InputDef::new("tokenUrl", "Token URL", Kind::Text)
    .default("https://login.microsoftonline.com/common/oauth2/v2.0/token")
    .comments(
        "The OAuth 2.0 token endpoint. Replace common with your tenant ID for single-tenant apps.",
    );

const TOKEN_URL: InputDef = InputDef::new("tokenUrl", "Token URL", Kind::Text)
    .comments("This can be found by visiting your app in Azure portal and selecting 'Endpoints'")
    .example("https://login.microsoftonline.com/REPLACE-ME-TENANT-ID/oauth2/v2.0/token");

const TENANT_ID: InputDef = InputDef::new("tenantId", "Tenant ID", Kind::Text).comments(
    "Your Entra ID tenant ID or domain; used to build the token URL when Token URL is empty.",
);

const CLIENT_CREDENTIALS_SCOPES: InputDef = InputDef::new("scopes", "Scopes", Kind::Text)
    .comments("This should be your Dynamics URL with '/.default' appened to it")
    .example("https://REPLACE-ME.crm.dynamics.com/.default");

const CLIENT_CREDENTIALS_ID: InputDef = InputDef::new("clientId", "Client ID", Kind::Text)
    .required()
    .comments("Generated when you register an app in Azure portal");

const CLIENT_CREDENTIALS_SECRET: InputDef =
    InputDef::new("clientSecret", "Client secret value", Kind::Secret)
        .required()
        .comments("Generated when you register an app in Azure portal");

const PASSWORD_CLIENT_SECRET: InputDef =
    InputDef::new("clientSecret", "Client Secret", Kind::Secret)
        .comments("Only for confidential client apps; leave empty for a public client.");

const USERNAME: InputDef = InputDef::new("username", "Username", Kind::Text)
    .required()
    .comments("The user's sign-in name, such as someone@contoso.onmicrosoft.com.");

const PASSWORD_INPUT: InputDef = InputDef::new("password", "Password", Kind::Secret).required();

const PASSWORD_SCOPES: InputDef = InputDef::new("scopes", "Scopes", Kind::Text).comments(
    "A space-delimited set of scopes; defaults to your Dynamics URL with '/user_impersonation'.",
);

const API_VERSION: InputDef = InputDef::new("apiVersion", "API Version", Kind::Text)
    .comments("The Web API version: v9.2 by default, v8.2 for older servers. Empty uses the version in the Web API URL, or v9.2.")
    .example("v9.2");

const SERVICE: InputDef = InputDef::new("service", "Service", Kind::Picklist)
    .choices(&[
        ("Dataverse / Dynamics 365 (/api/data/vX.Y)", "dataverse"),
        ("Finance & Operations (/data)", "finance-operations"),
    ])
    .comments("Which OData API the environment serves. Empty picks Finance & Operations for operations.dynamics.com hosts and URLs ending in /data, Dataverse otherwise.");

/// The authority origin the seed's default Authorize and Token URLs use.
const GLOBAL_AUTHORITY: &str = "https://login.microsoftonline.com";

/// One connection type: its definition and inputs.
pub struct ConnectionType {
    pub key: &'static str,
    pub label: &'static str,
    pub description: &'static str,
    pub kind: ConnectionKind,
    pub inputs: &'static [InputDef],
}

pub const TYPES: &[ConnectionType] = &[
    ConnectionType {
        key: AUTH_CODE,
        label: "MS Dynamics OAuth 2.0 Auth Code",
        description: "Microsoft Dynamics 365 OAuth Connection. The OAuth 2.0 auth code flow allows your user grant permission to your integration to interact with Dynamics on their behalf. Register an app in Azure with the Dynamics CRM `user_impersonation` permission, and include `offline_access` in the scopes so the connection can refresh its token.",
        kind: ConnectionKind::Oauth2AuthorizationCode,
        inputs: &[
            WEB_API_URL,
            AUTH_CODE_SCOPES,
            CLIENT_ID,
            CLIENT_SECRET,
            AUTHORIZE_URL,
            AUTH_CODE_TOKEN_URL,
            API_VERSION,
            SERVICE,
        ],
    },
    ConnectionType {
        key: CLIENT_CREDENTIALS,
        label: "MS Dynamics OAuth 2.0 Client Credentials",
        description: "OAuth 2.0 Client Credentials Connectivity for Microsoft Dynamics. The OAuth 2.0 client credentials flow allows your user to create an **Application User** to send requests to Dynamics on their behalf: register an app in Azure, then add it as an application user in the Power Platform admin center with a security role.",
        kind: ConnectionKind::Oauth2ClientCredentials,
        inputs: &[
            WEB_API_URL,
            TOKEN_URL,
            CLIENT_CREDENTIALS_SCOPES,
            CLIENT_CREDENTIALS_ID,
            CLIENT_CREDENTIALS_SECRET,
            TENANT_ID,
            API_VERSION,
            SERVICE,
        ],
    },
    ConnectionType {
        key: PASSWORD,
        label: "MS Dynamics OAuth 2.0 Password",
        description: "OAuth 2.0 resource owner password credentials for Microsoft Dynamics: signs in with a user name and password. Users with multi-factor authentication cannot use it (Entra answers AADSTS50076); use the auth code connection for them.",
        kind: ConnectionKind::Oauth2Password,
        inputs: &[
            WEB_API_URL,
            TOKEN_URL,
            CLIENT_ID,
            PASSWORD_CLIENT_SECRET,
            USERNAME,
            PASSWORD_INPUT,
            PASSWORD_SCOPES,
            TENANT_ID,
            API_VERSION,
            SERVICE,
        ],
    },
];

pub fn definitions() -> Vec<wit::ConnectionDefinition> {
    TYPES
        .iter()
        .map(|t| wit::ConnectionDefinition {
            key: t.key.to_string(),
            label: t.label.to_string(),
            description: t.description.to_string(),
            kind: t.kind,
            inputs: inputs_to_wit(t.inputs),
        })
        .collect()
}

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

pub use dataverse::environment::origin_of;

/// The connection test: signs in when it can, asks WhoAmI, and reads the user's and business
/// unit's names. Returns what the connection resolved to (Web API root, scope, cloud) so the
/// user sees how the pasted URL was understood.
pub fn test(connection: &Connection) -> Result<String> {
    let settings = Settings::from_connection(connection)?;
    let can_acquire = settings.kind != ConnectionKind::Oauth2AuthorizationCode;
    let (mut token, mut fresh) = match &connection.token {
        Some(token) => (token.clone(), false),
        None if can_acquire => (crate::auth::acquire(&settings)?, true),
        None => {
            return Err(with_hint(
                error(
                    ErrorCode::Unauthenticated,
                    "the connection is not signed in yet",
                ),
                "sign in first (with the CLI: dynamics login -c <connection file>)",
            ));
        }
    };
    let mut output = Map::new();
    output.insert(
        "connectionType".into(),
        connection.definition.clone().into(),
    );
    output.insert(
        "environment".into(),
        settings.environment.origin.clone().into(),
    );
    output.insert("cloud".into(), settings.environment.cloud.name().into());
    output.insert("service".into(), settings.environment.service.key().into());
    output.insert(
        "webApiRoot".into(),
        settings.environment.web_api_root().into(),
    );
    if settings.environment.service == Service::Dataverse {
        output.insert(
            "apiVersion".into(),
            settings.environment.api_version.clone().into(),
        );
    }
    output.insert("scope".into(), settings.scopes.clone().into());
    output.insert("tokenUrl".into(), settings.token_url.clone().into());

    if settings.environment.service == Service::FinanceOperations {
        let client = Client::new(&settings, Some(&token));
        let root = format!("{}/", settings.environment.web_api_root());
        client
            .send(Request::new("GET", root), RetryPolicy::RECORDS)?
            .into_success()
            .map_err(|failure| explain_refusal(failure, &settings, true))?;
        return Ok(Value::Object(output).to_string());
    }

    let who = loop {
        let client = Client::new(&settings, Some(&token));
        match client.get_json("WhoAmI") {
            Ok(who) => break who,
            // A stored token may simply be stale: get a fresh one once, then judge.
            Err(failure) if !fresh && can_acquire && failure.code == ErrorCode::Unauthenticated => {
                token = crate::auth::acquire(&settings)?;
                fresh = true;
            }
            Err(failure) => return Err(explain_refusal(failure, &settings, fresh)),
        }
    };
    let client = Client::new(&settings, Some(&token));
    let id = |name: &str| {
        who.get(name)
            .and_then(Value::as_str)
            .and_then(dataverse::guid::parse)
    };
    let (Some(user_id), Some(business_unit_id)) = (id("UserId"), id("BusinessUnitId")) else {
        return Err(crate::error::malformed(
            "WhoAmI answered without UserId and BusinessUnitId GUIDs",
        ));
    };
    output.insert("userId".into(), user_id.clone().into());
    output.insert("businessUnitId".into(), business_unit_id.clone().into());
    if let Some(organization_id) = id("OrganizationId") {
        output.insert("organizationId".into(), organization_id.into());
    }
    // Names are a courtesy: a role without read access to them must not fail the test.
    let mut warnings = Vec::new();
    match client.get_json(&format!(
        "systemusers({user_id})?$select=fullname,domainname"
    )) {
        Ok(user) => {
            for (from, to) in [("fullname", "userName"), ("domainname", "domainName")] {
                if let Some(value) = user.get(from).filter(|value| value.is_string()) {
                    output.insert(to.into(), value.clone());
                }
            }
        }
        Err(failure) => warnings.push(format!(
            "could not read the user's name: {}",
            failure.message
        )),
    }
    match client.get_json(&format!("businessunits({business_unit_id})?$select=name")) {
        Ok(unit) => {
            if let Some(name) = unit.get("name").filter(|value| value.is_string()) {
                output.insert("businessUnitName".into(), name.clone());
            }
        }
        Err(failure) => warnings.push(format!(
            "could not read the business unit's name: {}",
            failure.message
        )),
    }
    if !warnings.is_empty() {
        output.insert("warnings".into(), json!(warnings));
    }
    Ok(Value::Object(output).to_string())
}

/// Adds what to do when the environment refuses a token Entra just issued: the identity exists
/// in the tenant but not (or without a role) in the environment.
fn explain_refusal(failure: ConnectorError, settings: &Settings, fresh: bool) -> ConnectorError {
    let refused = matches!(
        failure.code,
        ErrorCode::Unauthenticated | ErrorCode::Forbidden
    );
    if refused && fresh {
        let hint = match settings.kind {
            ConnectionKind::Oauth2ClientCredentials => format!(
                "Entra issued a token but the environment refused it: create an application user for client ID {} in the Power Platform admin center (Environment > Settings > Users + permissions > Application users) and give it a security role",
                settings.client_id
            ),
            _ => "Entra issued a token but the environment refused the user: add the user to the environment (license, security group) and give them a security role".to_string(),
        };
        let message = format!(
            "the environment refused a freshly issued token: {}",
            failure.message
        );
        return ConnectorError {
            message,
            hint: Some(hint),
            ..failure
        };
    }
    if failure.code == ErrorCode::NotFound {
        let hint = format!(
            "{} was not found: check the Web API URL, the API version (v9.2, or v8.2 for older servers) and the Service (Dataverse or Finance & Operations)",
            settings.environment.web_api_root()
        );
        return with_hint(failure, hint);
    }
    if failure.code == ErrorCode::Unauthenticated && failure.hint.is_none() {
        return with_hint(failure, "the token was refused: sign in again");
    }
    failure
}
