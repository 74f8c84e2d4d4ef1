//! Token requests to Entra ID (or any OAuth 2.0 token endpoint) for the three connection types.

use dataverse::encoding::{base64_encode, percent_encode};
use dataverse::entra::{TokenResponse, form_body, read_token_error};
use dataverse::retry::RetryPolicy;
use sha2::{Digest, Sha256};

use crate::bindings::dynamics::connector::types::{ConnectionKind, ErrorCode, Token};
use crate::bindings::exports::dynamics::connector::connections::AuthorizationRequest;
use crate::client::{Client, Request};
use crate::connection::Settings;
use crate::error::{Result, error, from_entra, malformed, with_hint};

/// Client credentials or password grant, depending on the connection type.
pub fn acquire(settings: &Settings) -> Result<Token> {
    match settings.kind {
        ConnectionKind::Oauth2ClientCredentials
            if settings.definition == crate::connection::CLIENT_CERTIFICATE =>
        {
            with_assertion_hint(certificate_grant(settings))
        }
        ConnectionKind::Oauth2ClientCredentials
            if settings.definition == crate::connection::FEDERATED =>
        {
            with_assertion_hint(federated_grant(settings))
        }
        ConnectionKind::Oauth2ClientCredentials
            if settings.definition == crate::connection::MANAGED_IDENTITY =>
        {
            Err(with_hint(
                error(
                    ErrorCode::Unsupported,
                    "a managed identity connection gets its token from the host, which asks the managed identity endpoint of where it runs",
                ),
                "run it through a host that supports managed identity (the dynamics CLI's token manager does), on an Azure resource with the identity enabled",
            ))
        }
        ConnectionKind::Oauth2ClientCredentials => {
            let secret = settings.client_secret.as_deref().unwrap_or_default();
            request_token(
                settings,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &settings.client_id),
                    ("client_secret", secret),
                    ("scope", &settings.scopes),
                ],
            )
        }
        ConnectionKind::Oauth2Password => {
            let mut form = vec![
                ("grant_type", "password"),
                ("client_id", settings.client_id.as_str()),
                ("username", settings.username.as_deref().unwrap_or_default()),
                ("password", settings.password.as_deref().unwrap_or_default()),
                ("scope", settings.scopes.as_str()),
            ];
            if let Some(secret) = settings.client_secret.as_deref() {
                form.push(("client_secret", secret));
            }
            request_token(settings, &form)
        }
        ConnectionKind::Oauth2AuthorizationCode => Err(with_hint(
            error(
                ErrorCode::Unsupported,
                "an auth code connection gets its token by signing in, not on demand",
            ),
            "sign in through the host's login command",
        )),
    }
}

/// Client credentials with a client assertion signed by the connection's certificate.
fn certificate_grant(settings: &Settings) -> Result<Token> {
    let certificate = crate::connection::SigningCertificate::load(
        settings.certificate.as_deref().unwrap_or_default(),
        settings.certificate_password.as_deref(),
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let assertion = certificate.assertion(
        settings.signing_algorithm.as_deref().unwrap_or("PS256"),
        &settings.client_id,
        &settings.token_url,
        now,
    )?;
    assertion_grant(settings, &assertion)
}

/// Client credentials with the external identity token the host read for this call.
fn federated_grant(settings: &Settings) -> Result<Token> {
    let Some(assertion) = settings.client_assertion.as_deref() else {
        return Err(with_hint(
            error(
                ErrorCode::InvalidInput,
                "input \"clientAssertion\" (Client Assertion) is empty: the host supplies no identity token for this federated connection",
            ),
            "name the token's file in Assertion File or its environment variable in Assertion Variable, and use a host that reads them (the dynamics CLI does)",
        ));
    };
    assertion_grant(settings, assertion)
}

fn assertion_grant(settings: &Settings, assertion: &str) -> Result<Token> {
    request_token(
        settings,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &settings.client_id),
            ("client_assertion_type", crate::connection::JWT_BEARER),
            ("client_assertion", assertion),
            ("scope", &settings.scopes),
        ],
    )
}

/// Adds what to do for the AADSTS codes of a refused client assertion.
fn with_assertion_hint(result: Result<Token>) -> Result<Token> {
    result.map_err(|mut problem| {
        if problem.hint.is_none()
            && let Some(hint) = problem
                .service_code
                .as_deref()
                .and_then(crate::connection::assertion_hint)
        {
            problem.hint = Some(hint.to_string());
        }
        problem
    })
}

/// The authorization URL with a fresh state and PKCE S256 challenge.
pub fn begin(settings: &Settings, redirect_uri: &str) -> Result<AuthorizationRequest> {
    require_auth_code(settings)?;
    let authorize_url = settings.authorize_url.as_deref().ok_or_else(|| {
        error(
            ErrorCode::InvalidInput,
            "the connection has no Authorize URL",
        )
    })?;
    let state = random_token(24)?;
    let code_verifier = random_token(48)?;
    let challenge = base64_url(&Sha256::digest(code_verifier.as_bytes()));
    let separator = if authorize_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!(
        "{authorize_url}{separator}client_id={}&response_type=code&redirect_uri={}&response_mode=query&scope={}&state={}&code_challenge={}&code_challenge_method=S256",
        percent_encode(&settings.client_id),
        percent_encode(redirect_uri),
        percent_encode(&settings.scopes),
        percent_encode(&state),
        percent_encode(&challenge),
    );
    Ok(AuthorizationRequest {
        url,
        state,
        code_verifier,
    })
}

/// Exchanges an authorization code (with its PKCE verifier) for tokens.
pub fn exchange(
    settings: &Settings,
    redirect_uri: &str,
    code: &str,
    code_verifier: &str,
) -> Result<Token> {
    require_auth_code(settings)?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", settings.client_id.as_str()),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", code_verifier),
        ("scope", settings.scopes.as_str()),
    ];
    if let Some(secret) = settings.client_secret.as_deref() {
        form.push(("client_secret", secret));
    }
    request_token(settings, &form)
}

/// Uses a refresh token. Entra may rotate it; the new one is in the answer.
pub fn refresh(settings: &Settings, refresh_token: &str) -> Result<Token> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", settings.client_id.as_str()),
        ("refresh_token", refresh_token),
        ("scope", settings.scopes.as_str()),
    ];
    if let Some(secret) = settings.client_secret.as_deref() {
        form.push(("client_secret", secret));
    }
    let mut token = request_token(settings, &form)?;
    if token.refresh_token.is_none() {
        token.refresh_token = Some(refresh_token.to_string());
    }
    Ok(token)
}

fn require_auth_code(settings: &Settings) -> Result<()> {
    if settings.kind == ConnectionKind::Oauth2AuthorizationCode {
        Ok(())
    } else {
        Err(error(
            ErrorCode::Unsupported,
            "only auth code connections sign in through a browser",
        ))
    }
}

fn request_token(settings: &Settings, form: &[(&str, &str)]) -> Result<Token> {
    let client = Client::for_identity(settings);
    let request = Request::new("POST", settings.token_url.clone())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json");
    let request = Request {
        body: form_body(form).into_bytes(),
        ..request
    };
    let response = client.send(
        request,
        // Throttling and outages of the token endpoint are retried like the service's own.
        RetryPolicy {
            max_retries: 2,
            exponential: true,
            retry_on: dataverse::retry::RetryOn::Transient,
            ..RetryPolicy::NONE
        },
    )?;
    if !response.is_success() {
        return Err(from_entra(read_token_error(
            response.status,
            &response.body,
        )));
    }
    let parsed: TokenResponse = serde_json::from_slice(&response.body).map_err(|problem| {
        malformed(format!(
            "the token endpoint answered without a usable token: {problem}"
        ))
    })?;
    Ok(Token {
        access_token: parsed.access_token,
        token_type: parsed.token_type,
        refresh_token: parsed.refresh_token,
        expires_in_secs: parsed.expires_in,
        scope: parsed.scope,
    })
}

fn random_token(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|problem| {
        error(
            ErrorCode::Internal,
            format!("no randomness available: {problem}"),
        )
    })?;
    Ok(base64_url(&buffer))
}

fn base64_url(data: &[u8]) -> String {
    base64_encode(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}
