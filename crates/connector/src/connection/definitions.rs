//! The three connection types as flow designers see them: their keys, labels, descriptions and
//! inputs, turned into the WIT definitions on export.

use crate::bindings::dynamics::connector::types::{self as wit, ConnectionKind};
use crate::definition::{InputDef, Kind, inputs_to_wit};

pub const AUTH_CODE: &str = "oauth2-auth-code";
pub const CLIENT_CREDENTIALS: &str = "oauth2-client-credentials";
pub const PASSWORD: &str = "oauth2-password";
pub const CLIENT_CERTIFICATE: &str = "oauth2-client-certificate";
pub const FEDERATED: &str = "oauth2-federated-credential";
pub const MANAGED_IDENTITY: &str = "managed-identity";

pub(super) const WEB_API_URL: InputDef = InputDef::new("webApiUrl", "Web API URL", Kind::Text)
    .required()
    .comments("Your organization's Microsoft Dynamics 365 Web API URL.")
    .example("https://REPLACE-ME.crm.dynamics.com/");

const AUTH_CODE_SCOPES: InputDef = InputDef::new("scopes", "Scopes", Kind::Text)
    .comments("A space-delimited set of one or more scopes to get the user's permission to access.")
    .example("https://REPLACE-ME.crm.dynamics.com/user_impersonation offline_access");

const CLIENT_ID: InputDef = InputDef::new("clientId", "Client ID", Kind::Text).required();

const CLIENT_SECRET: InputDef = InputDef::new("clientSecret", "Client Secret", Kind::Secret);

pub(super) const AUTHORIZE_URL: InputDef = InputDef::new("authorizeUrl", "Authorize URL", Kind::Text)
    .default("https://login.microsoftonline.com/common/oauth2/v2.0/authorize")
    .comments("The OAuth 2.0 authorization endpoint. Replace common with your tenant ID for single-tenant apps.");

const AUTH_CODE_TOKEN_URL: InputDef = InputDef::new("tokenUrl", "Token URL", Kind::Text)
    .default("https://login.microsoftonline.com/common/oauth2/v2.0/token")
    .comments(
        "The OAuth 2.0 token endpoint. Replace common with your tenant ID for single-tenant apps.",
    );

pub(super) const TOKEN_URL: InputDef = InputDef::new("tokenUrl", "Token URL", Kind::Text)
    .comments("This can be found by visiting your app in Azure portal and selecting 'Endpoints'")
    .example("https://login.microsoftonline.com/REPLACE-ME-TENANT-ID/oauth2/v2.0/token");

pub(super) const TENANT_ID: InputDef = InputDef::new("tenantId", "Tenant ID", Kind::Text).comments(
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

pub(super) const API_VERSION: InputDef = InputDef::new("apiVersion", "API Version", Kind::Text)
    .comments("The Web API version: v9.2 by default, v8.2 for older servers. Empty uses the version in the Web API URL, or v9.2.")
    .example("v9.2");

pub(super) const SERVICE: InputDef = InputDef::new("service", "Service", Kind::Picklist)
    .choices(&[
        ("Dataverse / Dynamics 365 (/api/data/vX.Y)", "dataverse"),
        ("Finance & Operations (/data)", "finance-operations"),
    ])
    .comments("Which OData API the environment serves. Empty picks Finance & Operations for operations.dynamics.com hosts and URLs ending in /data, Dataverse otherwise.");

/// Filled by the host, never typed: see `wit/CHANGES.md` (host-filled fields).
pub(super) const CLIENT_ASSERTION: InputDef =
    InputDef::new("clientAssertion", "Client Assertion", Kind::Secret).comments(
        "Filled in by the host at each sign-in from Assertion File or Assertion Variable; leave empty. A host without those can put the external identity token here itself.",
    );

pub(super) const CLIENT_ASSERTION_FILE: InputDef =
    InputDef::new("clientAssertionFile", "Assertion File", Kind::Text).comments(
        "A file holding the external identity token, which the host reads at each sign-in (it is rotated): Kubernetes workload identity's AZURE_FEDERATED_TOKEN_FILE, such as /var/run/secrets/azure/tokens/azure-identity-token.",
    );

pub(super) const CLIENT_ASSERTION_VARIABLE: InputDef =
    InputDef::new("clientAssertionVariable", "Assertion Variable", Kind::Text).comments(
        "The name of an environment variable of the host holding the external identity token, read at each sign-in (such as a CI job's OIDC token).",
    );

const MANAGED_IDENTITY_CLIENT_ID: InputDef = InputDef::new(
    "managedIdentityClientId",
    "Managed Identity Client ID",
    Kind::Text,
)
.comments(
    "For a user-assigned managed identity, its client ID; leave empty for the system-assigned one.",
);

const IDENTITY_ENDPOINT: InputDef = InputDef::new("identityEndpoint", "Identity Endpoint", Kind::Text)
    .comments("Leave empty: the host asks the managed identity endpoint of where it runs (IDENTITY_ENDPOINT on App Service, Functions and Container Apps; the Instance Metadata Service on VMs and AKS nodes). Set it only for a local token service with the IMDS interface.");

/// The authority origin the seed's default Authorize and Token URLs use.
pub(super) const GLOBAL_AUTHORITY: &str = "https://login.microsoftonline.com";

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
    ConnectionType {
        key: CLIENT_CERTIFICATE,
        label: "MS Dynamics OAuth 2.0 Client Certificate",
        description: "OAuth 2.0 client credentials for Microsoft Dynamics signed with a certificate instead of a secret, for tenants that forbid client secrets. Upload the certificate to your app registration (Certificates & secrets > Certificates), add the app as an **Application User** in the Power Platform admin center with a security role, and give the certificate with its private key here (PEM or PFX). The connector signs a short-lived client assertion (PS256 by default) for each token request; the key never leaves the connection.",
        kind: ConnectionKind::Oauth2ClientCredentials,
        inputs: &[
            WEB_API_URL,
            TOKEN_URL,
            CLIENT_CREDENTIALS_SCOPES,
            CLIENT_CREDENTIALS_ID,
            super::certificate::CERTIFICATE,
            super::certificate::CERTIFICATE_PASSWORD,
            super::certificate::SIGNING_ALGORITHM,
            TENANT_ID,
            API_VERSION,
            SERVICE,
        ],
    },
    ConnectionType {
        key: FEDERATED,
        label: "MS Dynamics OAuth 2.0 Federated Credential",
        description: "OAuth 2.0 client credentials for Microsoft Dynamics with no secret at all: Entra ID trusts an identity token another issuer gives this workload (Kubernetes workload identity, GitHub Actions or another CI's OIDC token). Add a federated identity credential to your app registration naming the token's issuer and subject (audience api://AzureADTokenExchange), add the app as an **Application User**, and name the file or environment variable holding the token: the host reads it at each sign-in and the connector sends it as the client assertion.",
        kind: ConnectionKind::Oauth2ClientCredentials,
        inputs: &[
            WEB_API_URL,
            TOKEN_URL,
            CLIENT_CREDENTIALS_SCOPES,
            CLIENT_CREDENTIALS_ID,
            CLIENT_ASSERTION_FILE,
            CLIENT_ASSERTION_VARIABLE,
            CLIENT_ASSERTION,
            TENANT_ID,
            API_VERSION,
            SERVICE,
        ],
    },
    ConnectionType {
        key: MANAGED_IDENTITY,
        label: "MS Dynamics Managed Identity",
        description: "Microsoft Dynamics as the managed identity of the Azure resource the host runs on (VM, App Service, Functions, Container Apps, AKS): no secret, certificate or token file to keep. Enable the identity on the resource and add it as an **Application User** in the Power Platform admin center with a security role. The host fetches the token from the resource's managed identity endpoint; the connector only ever sees the access token.",
        kind: ConnectionKind::Oauth2ClientCredentials,
        inputs: &[
            WEB_API_URL,
            MANAGED_IDENTITY_CLIENT_ID,
            IDENTITY_ENDPOINT,
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
