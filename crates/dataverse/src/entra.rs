//! Entra ID (Azure AD) token endpoint: request bodies, token responses, and `AADSTS` errors
//! turned into a hint a user can act on.

use serde::Deserialize;
use serde_json::Value;

use crate::encoding::percent_encode;

/// A token endpoint's success answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Usually `Bearer`.
    #[serde(default = "bearer")]
    pub token_type: String,
    /// Lifetime in seconds.
    #[serde(default, deserialize_with = "number_or_string")]
    pub expires_in: Option<u32>,
    /// Present when `offline_access` was granted.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Granted scopes.
    #[serde(default)]
    pub scope: Option<String>,
}

fn bearer() -> String {
    "Bearer".to_string()
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(match value {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    })
}

/// Whether an Entra failure is about who you are or what you may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntraErrorKind {
    /// Credentials, tenant, application or sign-in are wrong: sign in again or fix the connection.
    Unauthenticated,
    /// Signed in, but consent or permission is missing.
    Forbidden,
    /// The endpoint failed or answered in an unknown shape.
    Upstream,
}

/// A token endpoint's failure, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraError {
    /// HTTP status of the answer.
    pub status: u16,
    /// Broad kind.
    pub kind: EntraErrorKind,
    /// The OAuth `error` value, such as `invalid_client`.
    pub error: String,
    /// `AADSTS` code, such as `AADSTS7000215`.
    pub aadsts: Option<String>,
    /// First line of `error_description`, without trace and correlation IDs.
    pub description: String,
    /// What to do, for the codes users meet most.
    pub hint: Option<String>,
}

/// Hints for the `AADSTS` codes users meet most, and whether each is about identity or consent.
const AADSTS_HINTS: &[(&str, EntraErrorKind, &str)] = &[
    (
        "AADSTS500011",
        EntraErrorKind::Unauthenticated,
        "the resource was not found in the tenant: check the Web API URL (and so the scope), and that the app is registered in the tenant of that environment",
    ),
    (
        "AADSTS65001",
        EntraErrorKind::Forbidden,
        "consent is missing: an administrator must grant admin consent for the app's Dynamics CRM permission",
    ),
    (
        "AADSTS7000215",
        EntraErrorKind::Unauthenticated,
        "the client secret is wrong: enter the secret's Value, not its Secret ID, and check it has not expired",
    ),
    (
        "AADSTS700016",
        EntraErrorKind::Unauthenticated,
        "the application (client) ID was not found in this tenant: check the client ID and the tenant in the token URL",
    ),
    (
        "AADSTS90002",
        EntraErrorKind::Unauthenticated,
        "the tenant was not found: check the tenant ID or domain in the token URL",
    ),
    (
        "AADSTS70011",
        EntraErrorKind::Unauthenticated,
        "the scope is not valid: use <environment URL>/.default for client credentials, or <environment URL>/user_impersonation for user sign-in",
    ),
    (
        "AADSTS50126",
        EntraErrorKind::Unauthenticated,
        "the user name or password is wrong",
    ),
    (
        "AADSTS50076",
        EntraErrorKind::Forbidden,
        "the user must use multi-factor authentication, which the password grant cannot do: use the authorization-code connection instead",
    ),
    (
        "AADSTS50079",
        EntraErrorKind::Forbidden,
        "the user must register for multi-factor authentication, which the password grant cannot do: use the authorization-code connection instead",
    ),
    (
        "AADSTS70008",
        EntraErrorKind::Unauthenticated,
        "the authorization code or refresh token has expired or was revoked: sign in again",
    ),
    (
        "AADSTS700082",
        EntraErrorKind::Unauthenticated,
        "the refresh token has expired from inactivity: sign in again",
    ),
    (
        "AADSTS50173",
        EntraErrorKind::Unauthenticated,
        "the refresh token was revoked (the password changed or the session ended): sign in again",
    ),
    (
        "AADSTS7000222",
        EntraErrorKind::Unauthenticated,
        "the client secret has expired: create a new secret for the app and enter its Value",
    ),
    (
        "AADSTS7000218",
        EntraErrorKind::Unauthenticated,
        "the client secret is missing: enter the secret's Value in Client Secret",
    ),
    (
        "AADSTS700025",
        EntraErrorKind::Unauthenticated,
        "the app is a public client, which must not send a secret: leave Client Secret empty",
    ),
    (
        "AADSTS50034",
        EntraErrorKind::Unauthenticated,
        "the user account does not exist in this tenant: check the user name and the tenant in the token URL",
    ),
    (
        "AADSTS9001023",
        EntraErrorKind::Unauthenticated,
        "this sign-in cannot use the common or consumers endpoint: put your tenant ID in the token URL",
    ),
    (
        "AADSTS50194",
        EntraErrorKind::Unauthenticated,
        "the app is single-tenant, so the common endpoint cannot be used: put your tenant ID in the token and authorize URLs",
    ),
    (
        "AADSTS54005",
        EntraErrorKind::Unauthenticated,
        "the authorization code was already used: sign in again",
    ),
    (
        "AADSTS50011",
        EntraErrorKind::Unauthenticated,
        "the redirect URI is not registered for the app: add it under Authentication in the app registration",
    ),
    (
        "AADSTS501481",
        EntraErrorKind::Unauthenticated,
        "the PKCE code verifier does not match the challenge: start the sign-in again",
    ),
];

/// Reads a token endpoint's error answer.
pub fn read_token_error(status: u16, body: &[u8]) -> EntraError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|value| value.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let error = field("error");
    let full_description = field("error_description");
    let aadsts = full_description
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|word| word.starts_with("AADSTS") && word.len() > 6)
        .map(str::to_string)
        .or_else(|| {
            parsed
                .as_ref()
                .and_then(|value| value.get("error_codes"))
                .and_then(Value::as_array)
                .and_then(|codes| codes.first())
                .and_then(Value::as_u64)
                .map(|code| format!("AADSTS{code}"))
        });
    let description = full_description
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let known = aadsts
        .as_deref()
        .and_then(|code| AADSTS_HINTS.iter().find(|(known, _, _)| *known == code));
    let kind = match known {
        Some((_, kind, _)) => *kind,
        None if parsed.is_none() => EntraErrorKind::Upstream,
        None if error == "invalid_grant" || error == "invalid_client" || status == 401 => {
            EntraErrorKind::Unauthenticated
        }
        None if status == 403 || error == "consent_required" => EntraErrorKind::Forbidden,
        None if status >= 500 => EntraErrorKind::Upstream,
        None => EntraErrorKind::Unauthenticated,
    };
    let description = if description.is_empty() {
        let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
        format!(
            "the token endpoint answered HTTP {status}: {}",
            snippet.trim()
        )
    } else {
        description
    };
    EntraError {
        status,
        kind,
        error,
        aadsts,
        description,
        hint: known.map(|(_, _, hint)| hint.to_string()),
    }
}

/// The v2.0 token endpoint of `tenant` on `authority_origin`.
pub fn token_url(authority_origin: &str, tenant: &str) -> String {
    format!("{authority_origin}/{tenant}/oauth2/v2.0/token")
}

/// The v2.0 authorize endpoint of `tenant` on `authority_origin`.
pub fn authorize_url(authority_origin: &str, tenant: &str) -> String {
    format!("{authority_origin}/{tenant}/oauth2/v2.0/authorize")
}

/// An `application/x-www-form-urlencoded` body.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_reads_numbers_given_as_strings() {
        let response: TokenResponse = serde_json::from_str(
            r#"{"token_type":"Bearer","expires_in":"3599","access_token":"abc"}"#,
        )
        .unwrap();
        assert_eq!(response.expires_in, Some(3599));
        assert_eq!(response.refresh_token, None);
    }

    #[test]
    fn aadsts_codes_become_a_kind_and_a_hint() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: 1\r\nCorrelation ID: 2","error_codes":[7000215]}"#;
        let error = read_token_error(401, body);
        assert_eq!(error.aadsts.as_deref(), Some("AADSTS7000215"));
        assert_eq!(error.kind, EntraErrorKind::Unauthenticated);
        assert!(error.hint.unwrap().contains("Value, not its Secret ID"));
        assert!(!error.description.contains("Trace ID"));

        let consent = read_token_error(
            400,
            br#"{"error":"invalid_grant","error_description":"AADSTS65001: The user or administrator has not consented.","error_codes":[65001]}"#,
        );
        assert_eq!(consent.kind, EntraErrorKind::Forbidden);
    }

    #[test]
    fn codes_only_in_error_codes_are_found_and_html_is_upstream() {
        let error = read_token_error(400, br#"{"error":"invalid_request","error_codes":[90002]}"#);
        assert_eq!(error.aadsts.as_deref(), Some("AADSTS90002"));
        let html = read_token_error(502, b"<html>gateway</html>");
        assert_eq!(html.kind, EntraErrorKind::Upstream);
        assert!(html.description.contains("HTTP 502"));
    }

    #[test]
    fn form_bodies_escape_secrets_with_reserved_characters() {
        assert_eq!(
            form_body(&[
                ("client_secret", "a+b/c=d&e"),
                ("grant_type", "client_credentials")
            ]),
            "client_secret=a%2Bb%2Fc%3Dd%26e&grant_type=client_credentials"
        );
    }
}
