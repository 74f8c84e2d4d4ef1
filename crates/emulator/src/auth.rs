//! An Entra ID-shaped token service: `/{tenant}/oauth2/v2.0/token` for the client-credentials,
//! authorization-code (with PKCE), refresh-token and password grants, an authorize endpoint
//! that approves at once, and RS256-signed tokens (see [`crate::keys`]) the Web API validates.
//! The HTTP side (discovery documents, keys, routing) is in [`crate::entra`].
//!
//! Each behaviour follows a page of the Microsoft identity platform documentation
//! (learn.microsoft.com/entra/identity-platform/...):
//! - `v2-oauth2-client-creds-grant-flow`: client credentials, `{resource}/.default` only, no
//!   refresh token, no id token.
//! - `v2-oauth-ropc`: the password grant; a refresh token only with `offline_access`.
//! - `v2-oauth2-auth-code-flow`: codes are single use and bound to the client, redirect URI and
//!   PKCE challenge; `refresh_token` is returned when `offline_access` was requested (the
//!   scopes consented at `/authorize` count, so a redemption that omits it still gets one);
//!   `id_token` when `openid` was.
//! - `refresh-tokens`: a refresh token replaces itself with a fresh one on every use, and "the
//!   Microsoft identity platform doesn't revoke old refresh tokens when used to fetch new
//!   access tokens": they stay valid until revoked ([`Auth::revoke_refresh_tokens`]).
//! - `id-token-claims-reference`: v2.0 id tokens carry `aud` (the client id), `iss` (the
//!   configuration's issuer), `iat`, `nbf`, `exp`, `name`, `preferred_username`, `oid`, `sub`
//!   (pairwise: one value per user and application), `tid`, `uti`, `ver` `2.0`, and the
//!   `nonce` sent to `/authorize`.
//! - `access-token-claims-reference`: Dataverse accepts v1.0 access tokens (`ver` `1.0`, `iss`
//!   `{issuer host}/{tenant id}/`, `aud` the environment URL) with `appid`, `appidacr`, `oid`,
//!   `sub`, `tid`, `idtyp`, and `scp` (delegated) or no scopes (app-only).
//! - `client_info` (MSAL's protocol extension, sent when a request carries `client_info=1`):
//!   base64url JSON `{"uid": <object id>, "utid": <tenant id>}` MSAL keys its account cache on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::datetime;
use crate::guid::Guid;

/// An app registration.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub client_id: String,
    /// None for a public client (no secret accepted).
    pub client_secret: Option<String>,
    pub display_name: String,
    /// False makes every grant fail with AADSTS65001 (consent missing).
    pub consented: bool,
    /// Allowed redirect URIs for the authorization-code flow; empty allows any.
    pub redirect_uris: Vec<String>,
}

/// A user who can sign in with the password or authorization-code grants.
#[derive(Debug, Clone)]
pub struct UserConfig {
    pub username: String,
    pub password: String,
    /// Password grant fails with AADSTS50076 for this user.
    pub mfa_required: bool,
}

/// Who a token speaks for.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub user: Guid,
    /// The application the token was issued to.
    pub client_id: String,
    /// False for app-only (client credentials) tokens.
    pub delegated: bool,
    pub expires: Instant,
    /// The `aud` claim: the resource the token is for (Dataverse's or F&O's environment URL).
    pub audience: String,
}

#[derive(Debug, Clone)]
struct CodeInfo {
    client_id: String,
    redirect_uri: String,
    scope: String,
    challenge: Option<(String, String)>,
    nonce: Option<String>,
    user: Guid,
    expires: Instant,
}

/// What a delegated token answer carries besides the access token.
#[derive(Debug, Clone)]
struct Extras {
    /// Issue a refresh token (offline_access requested or consented).
    offline: bool,
    /// Issue an id token (openid requested or consented).
    openid: bool,
    /// The nonce sent to /authorize, copied into the id token.
    nonce: Option<String>,
    /// The client asked for client_info (`client_info=1`).
    client_info: bool,
}

#[derive(Debug, Clone)]
struct RefreshInfo {
    client_id: String,
    scope: String,
    user: Guid,
}

/// Token service state.
pub struct Auth {
    pub tenant_id: String,
    pub tenant_name: String,
    pub apps: Vec<AppConfig>,
    pub users: Vec<(UserConfig, Guid)>,
    pub application_user: Guid,
    pub lifetime: Duration,
    /// Users who must register for MFA first: the password grant answers AADSTS50079.
    pub mfa_registration_pending: Vec<String>,
    /// The origin tokens are issued from when no request names one (tokens made for tests).
    pub origin: String,
    /// Display names (the `name` claim), by user.
    names: HashMap<Guid, String>,
    /// Entra object ids (the `oid` claim; systemuser.azureactivedirectoryobjectid), by user.
    object_ids: HashMap<Guid, String>,
    tokens: HashMap<String, TokenInfo>,
    codes: HashMap<String, CodeInfo>,
    used_codes: HashMap<String, ()>,
    refresh: HashMap<String, RefreshInfo>,
    counter: u64,
    key: u64,
    /// Certificates registered to apps and the client assertions already used.
    pub assertions: crate::assertions::Assertions,
}

/// A token endpoint answer: status, JSON body.
pub type TokenAnswer = (u16, serde_json::Value);

fn trace_ids() -> (String, String) {
    let t = datetime::now_secs() as u64;
    (
        Guid::from_seed(t, 0x7ace).to_string(),
        Guid::from_seed(t, 0xc044).to_string(),
    )
}

/// An AADSTS-shaped error body.
pub fn aad_error(
    status: u16,
    error: &str,
    code: u32,
    message: &str,
    suberror: Option<&str>,
) -> TokenAnswer {
    let (trace, corr) = trace_ids();
    let now = datetime::format_iso(datetime::now_secs()).replace('T', " ");
    let mut body = serde_json::json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {now}"),
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    if let Some(s) = suberror {
        body["suberror"] = serde_json::Value::String(s.into());
    }
    (status, body)
}

fn missing(param: &str) -> TokenAnswer {
    aad_error(
        400,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{param}'."),
        None,
    )
}

/// The resource scopes a token request may name, given the origins the emulator answers on.
fn check_scope(
    scope: &str,
    origins: &[String],
    tenant_name: &str,
    app_only: bool,
) -> Result<(), TokenAnswer> {
    let mut resource_scopes = 0;
    for s in scope.split_whitespace() {
        if matches!(s, "openid" | "profile" | "offline_access" | "email") {
            if app_only {
                return Err(invalid_scope(scope));
            }
            continue;
        }
        let Some((resource, perm)) = s.rsplit_once('/') else {
            return Err(invalid_scope(scope));
        };
        if !resource.starts_with("http://") && !resource.starts_with("https://") {
            return Err(invalid_scope(scope));
        }
        let resource = resource.trim_end_matches('/');
        if !origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(resource))
        {
            return Err(aad_error(
                400,
                "invalid_resource",
                500011,
                &format!(
                    "The resource principal named {resource} was not found in the tenant named {tenant_name}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
                ),
                None,
            ));
        }
        match perm {
            ".default" => {}
            "user_impersonation" if !app_only => {}
            _ => return Err(invalid_scope(scope)),
        }
        resource_scopes += 1;
    }
    if resource_scopes != 1 {
        return Err(invalid_scope(scope));
    }
    Ok(())
}

fn invalid_scope(scope: &str) -> TokenAnswer {
    aad_error(
        400,
        "invalid_scope",
        70011,
        &format!(
            "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
        ),
        None,
    )
}

impl Auth {
    pub fn new(
        tenant_id: String,
        tenant_name: String,
        apps: Vec<AppConfig>,
        users: Vec<(UserConfig, Guid)>,
        application_user: Guid,
        lifetime: Duration,
    ) -> Auth {
        let key = std::collections::hash_map::RandomState::new();
        let key = std::hash::BuildHasher::hash_one(&key, 0x5eed_u64);
        // The test certificate is registered to the first confidential app, as the secret is.
        let mut assertions = crate::assertions::Assertions::default();
        assertions.registered_to = apps
            .iter()
            .find(|a| a.client_secret.is_some())
            .map(|a| a.client_id.clone())
            .into_iter()
            .collect();
        // So is the federated identity credential (its issuer's origin is set with `origin`).
        assertions.federated = assertions
            .registered_to
            .iter()
            .map(|client_id| crate::assertions::FederatedCredential {
                client_id: client_id.clone(),
                issuer: String::new(),
                subject: crate::assertions::FEDERATED_SUBJECT.into(),
                audiences: vec![crate::assertions::TOKEN_EXCHANGE_AUDIENCE.into()],
            })
            .collect();
        Auth {
            tenant_id,
            tenant_name,
            apps,
            users,
            application_user,
            lifetime,
            mfa_registration_pending: Vec::new(),
            origin: String::new(),
            names: HashMap::new(),
            object_ids: HashMap::new(),
            tokens: HashMap::new(),
            codes: HashMap::new(),
            used_codes: HashMap::new(),
            refresh: HashMap::new(),
            counter: 0,
            key,
            assertions,
        }
    }

    fn opaque(&mut self, kind: &str) -> String {
        self.counter += 1;
        let mut h = Sha256::new();
        h.update(self.key.to_le_bytes());
        h.update(self.counter.to_le_bytes());
        h.update(kind.as_bytes());
        format!("{kind}.{}", URL_SAFE_NO_PAD.encode(h.finalize()))
    }

    /// Sets the display name (`name` claim) and the Entra object id (`oid` claim) of a user.
    pub fn set_profile(&mut self, user: Guid, name: Option<String>, object_id: Option<String>) {
        if let Some(name) = name {
            self.names.insert(user, name);
        }
        if let Some(oid) = object_id {
            self.object_ids.insert(user, oid);
        }
    }

    /// The user's Entra object id: what Dataverse matches with
    /// systemuser.azureactivedirectoryobjectid (the systemuserid when none is known).
    fn object_id(&self, user: Guid) -> String {
        self.object_ids
            .get(&user)
            .cloned()
            .unwrap_or_else(|| user.to_string())
    }

    /// Issues an app-only access token for `user` (the application user of the first app).
    pub fn issue(&mut self, user: Guid) -> String {
        let client_id = self
            .apps
            .first()
            .map(|a| a.client_id.clone())
            .unwrap_or_default();
        let origin = self.origin.clone();
        self.access_token(&origin, &origin, user, &client_id, None, true)
    }

    /// An app-only access token for the application user whose audience is `aud` (the F&O
    /// environment's tests use it).
    pub fn issue_for_audience(&mut self, user: Guid, aud: &str) -> String {
        let client_id = self
            .apps
            .first()
            .map(|a| a.client_id.clone())
            .unwrap_or_default();
        let origin = self.origin.clone();
        self.access_token(&origin, aud, user, &client_id, None, true)
    }

    /// The v2.0 issuer: `{origin}/{tenant id}/v2.0`, as the v2.0 configuration names it.
    pub fn issuer_v2(&self, origin: &str) -> String {
        format!("{origin}/{}/v2.0", self.tenant_id)
    }

    /// The v1.0 issuer: `{origin}/{tenant id}/` (Entra's is `https://sts.windows.net/{tid}/`).
    pub fn issuer_v1(&self, origin: &str) -> String {
        format!("{origin}/{}/", self.tenant_id)
    }

    fn username(&self, user: Guid) -> String {
        self.users
            .iter()
            .find(|(_, g)| *g == user)
            .map(|(u, _)| u.username.clone())
            .unwrap_or_default()
    }

    /// The pairwise subject of `user` for `client_id` (id-token-claims-reference: "the same
    /// user signing into two different apps receives two different values").
    fn subject(&self, user: Guid, client_id: &str) -> String {
        let mut h = Sha256::new();
        h.update(user.0);
        h.update(client_id.to_ascii_lowercase().as_bytes());
        URL_SAFE_NO_PAD.encode(&h.finalize()[..32])
    }

    /// A unique token id (`uti`).
    fn uti(&mut self) -> String {
        let t = self.opaque("uti");
        t["uti.".len().."uti.".len() + 22].to_string()
    }

    /// Signs an access token for `user` and remembers it when `known` (an app without an
    /// application user gets a token the environment does not know). `scp` is None for
    /// app-only tokens.
    fn access_token(
        &mut self,
        origin: &str,
        aud: &str,
        user: Guid,
        client_id: &str,
        scp: Option<&str>,
        known: bool,
    ) -> String {
        let now = datetime::now_secs();
        let exp = now + self.lifetime.as_secs() as i64;
        let confidential = self
            .apps
            .iter()
            .any(|a| a.client_id == client_id && a.client_secret.is_some());
        let mut claims = serde_json::json!({
            "aud": aud,
            "iss": self.issuer_v1(origin),
            "iat": now,
            "nbf": now,
            "exp": exp,
            "appid": client_id,
            "appidacr": if confidential { "1" } else { "0" },
            "oid": self.object_id(user),
            "sub": self.subject(user, client_id),
            "tid": self.tenant_id,
            "uti": self.uti(),
            "ver": "1.0",
        });
        match scp {
            Some(scp) => {
                let username = self.username(user);
                claims["idtyp"] = "user".into();
                claims["scp"] = scp.into();
                claims["amr"] = serde_json::json!(["pwd"]);
                claims["name"] = self.names.get(&user).cloned().unwrap_or_default().into();
                claims["upn"] = username.clone().into();
                claims["unique_name"] = username.into();
            }
            None => {
                claims["idtyp"] = "app".into();
                claims["idp"] = self.issuer_v1(origin).into();
            }
        }
        let token = crate::keys::signing_key().sign(&claims);
        if known {
            self.tokens.insert(
                token.clone(),
                TokenInfo {
                    user,
                    client_id: client_id.into(),
                    delegated: scp.is_some(),
                    expires: Instant::now() + self.lifetime,
                    audience: aud.into(),
                },
            );
        }
        token
    }

    /// The token's identity when it is known and not expired.
    pub fn validate(&self, token: &str) -> Option<&TokenInfo> {
        self.tokens
            .get(token)
            .filter(|t| t.expires > Instant::now())
    }

    /// The UserInfo claims of a delegated access token that is known and not expired.
    pub fn userinfo(&self, token: &str) -> Option<serde_json::Value> {
        let info = self.validate(token).filter(|i| i.delegated)?;
        let username = self.username(info.user);
        Some(serde_json::json!({
            "sub": self.subject(info.user, &info.client_id),
            "name": self.names.get(&info.user).cloned().unwrap_or_else(|| username.clone()),
            "email": username,
        }))
    }

    /// Makes every issued access token expire now.
    pub fn expire_all(&mut self) {
        let now = Instant::now();
        for t in self.tokens.values_mut() {
            t.expires = now;
        }
    }

    /// Revokes every refresh token.
    pub fn revoke_refresh_tokens(&mut self) {
        self.refresh.clear();
    }

    /// From now on the password grant tells `username` to register for MFA (AADSTS50079).
    pub fn require_mfa_registration(&mut self, username: &str) {
        self.mfa_registration_pending
            .push(username.to_ascii_lowercase());
    }

    /// Only the first app has an application user in the environment (the seed creates it);
    /// the others get app-only tokens the Web API refuses, as Dataverse does.
    fn has_application_user(&self, client_id: &str) -> bool {
        self.apps
            .first()
            .is_some_and(|app| app.client_id == client_id)
    }

    fn tenant_ok(&self, tenant: &str, allow_orgs: bool) -> bool {
        tenant.eq_ignore_ascii_case(&self.tenant_id)
            || tenant.eq_ignore_ascii_case(&self.tenant_name)
            || (allow_orgs && tenant == "organizations")
    }

    fn unknown_tenant(tenant: &str) -> TokenAnswer {
        aad_error(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
            None,
        )
    }

    fn app(&self, client_id: &str) -> Result<AppConfig, TokenAnswer> {
        self.apps
            .iter()
            .find(|a| a.client_id == client_id)
            .cloned()
            .ok_or_else(|| {
                aad_error(
                    400,
                    "unauthorized_client",
                    700016,
                    &format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", self.tenant_name),
                    None,
                )
            })
    }

    fn consent(app: &AppConfig) -> Result<(), TokenAnswer> {
        if app.consented {
            return Ok(());
        }
        Err(aad_error(
            400,
            "invalid_grant",
            65001,
            &format!(
                "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource.",
                app.client_id, app.display_name
            ),
            Some("consent_required"),
        ))
    }

    /// Handles `POST /{tenant}/oauth2/v2.0/token`. `basic` is a decoded HTTP Basic credential.
    /// `origins` are the origins the emulator answers on (the resources a scope may name); the
    /// first is the one the request was sent to, which issues the tokens.
    pub fn token(
        &mut self,
        tenant: &str,
        form: &HashMap<String, String>,
        basic: Option<(String, String)>,
        origins: &[String],
    ) -> TokenAnswer {
        let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
        if !self.tenant_ok(
            tenant,
            matches!(grant, "password" | "authorization_code" | "refresh_token"),
        ) {
            return Self::unknown_tenant(tenant);
        }
        if grant.is_empty() {
            return missing("grant_type");
        }
        let (client_id, secret) = match (form.get("client_id"), basic) {
            (_, Some((id, secret))) => (id, Some(secret)),
            (Some(id), None) => (id.clone(), form.get("client_secret").cloned()),
            (None, None) => return missing("client_id"),
        };
        let app = match self.app(&client_id) {
            Ok(a) => a,
            Err(e) => return e,
        };
        // A certificate (or federated) credential stands in for the secret: see `assertions`.
        let assertion = form.get("client_assertion");
        if let Some(assertion) = assertion {
            if app.client_secret.is_none() || secret.is_some() {
                return aad_error(
                    401,
                    "invalid_client",
                    700025,
                    "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
                    None,
                );
            }
            let audiences: Vec<String> = origins
                .iter()
                .flat_map(|origin| {
                    [&self.tenant_id, &self.tenant_name]
                        .map(|t| format!("{origin}/{t}/oauth2/v2.0/token"))
                })
                .collect();
            if let Err(e) = self.assertions.verify(
                form.get("client_assertion_type").map(String::as_str),
                assertion,
                &client_id,
                &audiences,
            ) {
                return e;
            }
        }
        match (&app.client_secret, &secret) {
            (Some(_), None) if assertion.is_some() => {}
            (None, Some(_)) => {
                return aad_error(
                    401,
                    "invalid_client",
                    700025,
                    "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
                    None,
                );
            }
            (Some(expected), Some(given)) if expected != given => {
                return aad_error(
                    401,
                    "invalid_client",
                    7000215,
                    &format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                    None,
                );
            }
            (Some(_), None) if grant == "client_credentials" => {
                return aad_error(
                    401,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                    None,
                );
            }
            _ => {}
        }
        match grant {
            "client_credentials" => {
                let Some(scope) = form.get("scope") else {
                    return missing("scope");
                };
                if let Err(e) = check_scope(scope, origins, &self.tenant_name, true) {
                    return e;
                }
                if let Err(e) = Self::consent(&app) {
                    return e;
                }
                let origin = origins.first().cloned().unwrap_or_default();
                let aud = resource_of(scope).unwrap_or_else(|| origin.clone());
                let token = if self.has_application_user(&client_id) {
                    let user = self.application_user;
                    self.access_token(&origin, &aud, user, &client_id, None, true)
                } else {
                    // Entra issues the token; the environment knows no such principal.
                    let principal = Guid::from_seed(0xa99, self.counter);
                    self.access_token(&origin, &aud, principal, &client_id, None, false)
                };
                self.answer(token, None, None)
            }
            "password" => {
                let (Some(username), Some(password)) = (form.get("username"), form.get("password"))
                else {
                    return missing(if form.contains_key("username") {
                        "password"
                    } else {
                        "username"
                    });
                };
                let Some(scope) = form.get("scope") else {
                    return missing("scope");
                };
                if let Err(e) = check_scope(scope, origins, &self.tenant_name, false) {
                    return e;
                }
                let Some((user, uid)) = self
                    .users
                    .iter()
                    .find(|(u, _)| u.username.eq_ignore_ascii_case(username))
                    .cloned()
                else {
                    return aad_error(
                        400,
                        "invalid_grant",
                        50034,
                        &format!(
                            "The user account {{EmailHidden}} does not exist in the {} directory. To sign into this application, the account must be added to the directory.",
                            self.tenant_name
                        ),
                        None,
                    );
                };
                if user.password != *password {
                    return aad_error(
                        400,
                        "invalid_grant",
                        50126,
                        "Error validating credentials due to invalid username or password.",
                        None,
                    );
                }
                if self
                    .mfa_registration_pending
                    .contains(&user.username.to_ascii_lowercase())
                {
                    return aad_error(
                        400,
                        "invalid_grant",
                        50079,
                        "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access the resource.",
                        Some("basic_action"),
                    );
                }
                if user.mfa_required {
                    return aad_error(
                        400,
                        "invalid_grant",
                        50076,
                        "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource.",
                        Some("basic_action"),
                    );
                }
                if let Err(e) = Self::consent(&app) {
                    return e;
                }
                let extras = Extras {
                    offline: has_scope(scope, "offline_access"),
                    openid: has_scope(scope, "openid"),
                    nonce: None,
                    client_info: wants_client_info(form),
                };
                self.delegated(origins, uid, &client_id, scope, extras)
            }
            "authorization_code" => {
                let Some(code) = form.get("code") else {
                    return missing("code");
                };
                if self.used_codes.contains_key(code) {
                    return aad_error(
                        400,
                        "invalid_grant",
                        54005,
                        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
                        None,
                    );
                }
                let Some(info) = self.codes.remove(code) else {
                    return aad_error(
                        400,
                        "invalid_grant",
                        70000,
                        "The provided value for the 'code' parameter is not valid.",
                        None,
                    );
                };
                self.used_codes.insert(code.clone(), ());
                if info.expires < Instant::now() {
                    return aad_error(
                        400,
                        "invalid_grant",
                        70008,
                        "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
                        None,
                    );
                }
                if info.client_id != client_id {
                    return aad_error(
                        400,
                        "invalid_grant",
                        70000,
                        "The provided value for the 'code' parameter is not valid. The code was issued to a different client.",
                        None,
                    );
                }
                if form.get("redirect_uri").map(String::as_str) != Some(info.redirect_uri.as_str())
                {
                    return aad_error(
                        400,
                        "invalid_grant",
                        70000,
                        "The provided value for the input parameter 'redirect_uri' is not valid. The value must exactly match the redirect URI used to obtain the authorization code.",
                        None,
                    );
                }
                if let Some((challenge, method)) = &info.challenge {
                    let Some(verifier) = form.get("code_verifier") else {
                        return missing("code_verifier");
                    };
                    let computed = if method.eq_ignore_ascii_case("S256") {
                        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
                    } else {
                        verifier.clone()
                    };
                    if computed != *challenge {
                        return aad_error(
                            400,
                            "invalid_grant",
                            501481,
                            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                            None,
                        );
                    }
                }
                if let Err(e) = Self::consent(&app) {
                    return e;
                }
                // What was consented at /authorize holds for the redemption too.
                let scope = form.get("scope").cloned().unwrap_or(info.scope.clone());
                let extras = Extras {
                    offline: has_scope(&scope, "offline_access")
                        || has_scope(&info.scope, "offline_access"),
                    openid: has_scope(&scope, "openid") || has_scope(&info.scope, "openid"),
                    nonce: info.nonce.clone(),
                    client_info: wants_client_info(form),
                };
                self.delegated(origins, info.user, &client_id, &scope, extras)
            }
            "refresh_token" => {
                let Some(rt) = form.get("refresh_token") else {
                    return missing("refresh_token");
                };
                // Not removed: a used refresh token stays valid (refresh-tokens).
                let Some(info) = self.refresh.get(rt).cloned() else {
                    return aad_error(
                        400,
                        "invalid_grant",
                        50173,
                        "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
                        None,
                    );
                };
                if info.client_id != client_id {
                    return aad_error(
                        400,
                        "invalid_grant",
                        70000,
                        "Provided grant is invalid or malformed: the refresh token was issued to a different client.",
                        None,
                    );
                }
                if let Err(e) = Self::consent(&app) {
                    return e;
                }
                let scope = form.get("scope").cloned().unwrap_or(info.scope);
                if let Err(e) = check_scope(&scope, origins, &self.tenant_name, false) {
                    return e;
                }
                // A refresh token replaces itself with a fresh one on every use.
                let extras = Extras {
                    offline: true,
                    openid: has_scope(&scope, "openid"),
                    nonce: None,
                    client_info: wants_client_info(form),
                };
                self.delegated(origins, info.user, &client_id, &scope, extras)
            }
            other => aad_error(
                400,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
                None,
            ),
        }
    }

    fn delegated(
        &mut self,
        origins: &[String],
        user: Guid,
        client_id: &str,
        scope: &str,
        extras: Extras,
    ) -> TokenAnswer {
        let origin = origins.first().cloned().unwrap_or_default();
        // The resource scope names the permission: `.default` grants the consented one.
        let scp = scope
            .split_whitespace()
            .filter_map(|s| s.rsplit_once('/'))
            .map(|(_, p)| {
                if p == ".default" {
                    "user_impersonation"
                } else {
                    p
                }
            })
            .next()
            .unwrap_or("user_impersonation")
            .to_string();
        let aud = resource_of(scope).unwrap_or_else(|| origin.clone());
        let token = self.access_token(&origin, &aud, user, client_id, Some(&scp), true);
        let refresh = extras.offline.then(|| {
            let rt = self.opaque("dvemu-rt");
            let mut kept = scope.to_string();
            if !has_scope(&kept, "offline_access") {
                kept.push_str(" offline_access");
            }
            self.refresh.insert(
                rt.clone(),
                RefreshInfo {
                    client_id: client_id.into(),
                    scope: kept,
                    user,
                },
            );
            rt
        });
        let id_token = extras
            .openid
            .then(|| self.id_token(&origin, user, client_id, scope, extras.nonce.as_deref()));
        let scope_out = scope
            .split_whitespace()
            .filter(|s| *s != "offline_access")
            .collect::<Vec<_>>()
            .join(" ");
        let (status, mut body) = self.answer(token, refresh, id_token);
        body["scope"] = serde_json::Value::String(scope_out);
        if extras.client_info {
            let info = serde_json::json!({"uid": self.object_id(user), "utid": self.tenant_id});
            body["client_info"] = URL_SAFE_NO_PAD.encode(info.to_string()).into();
        }
        (status, body)
    }

    /// A v2.0 id token (id-token-claims-reference), signed like every token.
    fn id_token(
        &mut self,
        origin: &str,
        user: Guid,
        client_id: &str,
        scope: &str,
        nonce: Option<&str>,
    ) -> String {
        let now = datetime::now_secs();
        let username = self.username(user);
        let mut claims = serde_json::json!({
            "aud": client_id,
            "iss": self.issuer_v2(origin),
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime.as_secs() as i64,
            "name": self.names.get(&user).cloned().unwrap_or_else(|| username.clone()),
            "preferred_username": username,
            "oid": self.object_id(user),
            "sub": self.subject(user, client_id),
            "tid": self.tenant_id,
            "uti": self.uti(),
            "ver": "2.0",
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        if has_scope(scope, "email") {
            claims["email"] = self.username(user).into();
        }
        crate::keys::signing_key().sign(&claims)
    }

    fn answer(
        &self,
        token: String,
        refresh: Option<String>,
        id_token: Option<String>,
    ) -> TokenAnswer {
        let secs = self.lifetime.as_secs();
        let mut body = serde_json::json!({
            "token_type": "Bearer",
            "expires_in": secs,
            "ext_expires_in": secs,
            "access_token": token,
        });
        if let Some(rt) = refresh {
            body["refresh_token"] = serde_json::Value::String(rt);
        }
        if let Some(it) = id_token {
            body["id_token"] = serde_json::Value::String(it);
        }
        (200, body)
    }

    /// Handles `GET /{tenant}/oauth2/v2.0/authorize`: approves at once. Returns the redirect
    /// location, or an error answer when no redirect is safe.
    pub fn authorize(
        &mut self,
        tenant: &str,
        q: &HashMap<String, String>,
    ) -> Result<String, TokenAnswer> {
        if !self.tenant_ok(tenant, true) {
            return Err(Self::unknown_tenant(tenant));
        }
        let Some(client_id) = q.get("client_id") else {
            return Err(missing("client_id"));
        };
        let app = self.app(client_id)?;
        let Some(redirect) = q.get("redirect_uri") else {
            return Err(missing("redirect_uri"));
        };
        if !app.redirect_uris.is_empty() && !app.redirect_uris.contains(redirect) {
            return Err(aad_error(
                400,
                "invalid_request",
                50011,
                &format!(
                    "The redirect URI '{redirect}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."
                ),
                None,
            ));
        }
        let sep = if redirect.contains('?') { '&' } else { '?' };
        let state = q
            .get("state")
            .map(|s| format!("&state={}", enc(s)))
            .unwrap_or_default();
        let fail = |error: &str, desc: &str| {
            format!(
                "{redirect}{sep}error={error}&error_description={}{state}",
                enc(desc)
            )
        };
        if q.get("response_type").map(String::as_str) != Some("code") {
            return Ok(fail(
                "unsupported_response_type",
                "AADSTS700054: response_type 'code' is required by the emulator.",
            ));
        }
        let scope = q.get("scope").cloned().unwrap_or_default();
        if !app.consented {
            return Ok(fail(
                "consent_required",
                &format!(
                    "AADSTS65001: The user or administrator has not consented to use the application with ID '{client_id}'."
                ),
            ));
        }
        let user = match q.get("login_hint") {
            Some(hint) => match self
                .users
                .iter()
                .find(|(u, _)| u.username.eq_ignore_ascii_case(hint))
            {
                Some((_, g)) => *g,
                None => {
                    return Ok(fail(
                        "invalid_request",
                        "AADSTS50034: The user account does not exist in the directory.",
                    ));
                }
            },
            None => self.users.first().map(|(_, g)| *g).unwrap_or_default(),
        };
        let challenge = q.get("code_challenge").map(|c| {
            (
                c.clone(),
                q.get("code_challenge_method")
                    .cloned()
                    .unwrap_or_else(|| "plain".into()),
            )
        });
        let code = self.opaque("dvemu-code");
        self.codes.insert(
            code.clone(),
            CodeInfo {
                client_id: client_id.clone(),
                redirect_uri: redirect.clone(),
                scope,
                challenge,
                nonce: q.get("nonce").cloned(),
                user,
                expires: Instant::now() + Duration::from_secs(600),
            },
        );
        Ok(format!("{redirect}{sep}code={}{state}", enc(&code)))
    }
}

/// The resource a scope names (`https://host/.default` gives `https://host`): the `aud` of the
/// access token.
fn resource_of(scope: &str) -> Option<String> {
    scope
        .split_whitespace()
        .filter_map(|s| s.rsplit_once('/'))
        .map(|(r, _)| r.trim_end_matches('/').to_string())
        .find(|r| r.starts_with("http://") || r.starts_with("https://"))
}

fn has_scope(scope: &str, name: &str) -> bool {
    scope.split_whitespace().any(|s| s == name)
}

fn wants_client_info(form: &HashMap<String, String>) -> bool {
    form.get("client_info").map(String::as_str) == Some("1")
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:9";

    fn auth() -> Auth {
        Auth::new(
            "tenant-1".into(),
            "Emulator".into(),
            vec![
                AppConfig {
                    client_id: "app".into(),
                    client_secret: Some("s3cret".into()),
                    display_name: "App".into(),
                    consented: true,
                    redirect_uris: vec![],
                },
                AppConfig {
                    client_id: "noconsent".into(),
                    client_secret: Some("x".into()),
                    display_name: "No Consent".into(),
                    consented: false,
                    redirect_uris: vec![],
                },
            ],
            vec![
                (
                    UserConfig {
                        username: "u@x".into(),
                        password: "pw".into(),
                        mfa_required: false,
                    },
                    Guid::from_seed(1, 1),
                ),
                (
                    UserConfig {
                        username: "mfa@x".into(),
                        password: "pw".into(),
                        mfa_required: true,
                    },
                    Guid::from_seed(1, 2),
                ),
            ],
            Guid::from_seed(2, 2),
            Duration::from_secs(3599),
        )
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn code_of(a: &TokenAnswer) -> u64 {
        a.1["error_codes"][0].as_u64().unwrap_or(0)
    }

    fn origins() -> Vec<String> {
        vec![BASE.to_string()]
    }

    #[test]
    fn client_credentials_issue_a_token_that_validates_until_expired() {
        let mut a = auth();
        let (status, body) = a.token(
            "tenant-1",
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("client_secret", "s3cret"),
                ("scope", &format!("{BASE}/.default")),
            ]),
            None,
            &origins(),
        );
        assert_eq!(status, 200);
        assert_eq!(body["expires_in"], 3599);
        assert!(body.get("refresh_token").is_none());
        let token = body["access_token"].as_str().unwrap().to_string();
        assert_eq!(a.validate(&token).unwrap().user, Guid::from_seed(2, 2));
        a.expire_all();
        assert!(a.validate(&token).is_none());
    }

    #[test]
    fn token_errors_carry_their_aadsts_codes() {
        let mut a = auth();
        let scope = format!("{BASE}/.default");
        let cc = |id: &str, secret: &str, scope: &str| {
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", scope),
            ])
        };
        let r = a.token("tenant-1", &cc("app", "wrong", &scope), None, &origins());
        assert_eq!(
            (r.0, code_of(&r), r.1["error"].as_str()),
            (401, 7000215, Some("invalid_client"))
        );
        let r = a.token(
            "other-tenant",
            &cc("app", "s3cret", &scope),
            None,
            &origins(),
        );
        assert_eq!(code_of(&r), 90002);
        let r = a.token("tenant-1", &cc("ghost", "s3cret", &scope), None, &origins());
        assert_eq!(code_of(&r), 700016);
        let r = a.token(
            "tenant-1",
            &cc("app", "s3cret", "https://contoso.crm.dynamics.com/.default"),
            None,
            &origins(),
        );
        assert_eq!(
            (code_of(&r), r.1["error"].as_str()),
            (500011, Some("invalid_resource"))
        );
        let r = a.token(
            "tenant-1",
            &cc("app", "s3cret", &format!("{BASE}/bogus")),
            None,
            &origins(),
        );
        assert_eq!(code_of(&r), 70011);
        let r = a.token("tenant-1", &cc("noconsent", "x", &scope), None, &origins());
        assert_eq!(
            (code_of(&r), r.1["suberror"].as_str()),
            (65001, Some("consent_required"))
        );
    }

    #[test]
    fn trailing_slash_resource_scope_is_accepted() {
        let mut a = auth();
        let r = a.token(
            "tenant-1",
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("client_secret", "s3cret"),
                ("scope", &format!("{BASE}//.default")),
            ]),
            None,
            &origins(),
        );
        assert_eq!(r.0, 200);
    }

    #[test]
    fn password_grant_checks_password_and_mfa() {
        let mut a = auth();
        let scope = format!("{BASE}/user_impersonation offline_access");
        let pw = |u: &str, p: &str| {
            form(&[
                ("grant_type", "password"),
                ("client_id", "app"),
                ("username", u),
                ("password", p),
                ("scope", &scope),
            ])
        };
        let ok = a.token("tenant-1", &pw("u@x", "pw"), None, &origins());
        assert_eq!(ok.0, 200);
        assert!(ok.1["refresh_token"].is_string());
        assert_eq!(
            code_of(&a.token("tenant-1", &pw("u@x", "nope"), None, &origins())),
            50126
        );
        assert_eq!(
            code_of(&a.token("tenant-1", &pw("mfa@x", "pw"), None, &origins())),
            50076
        );
    }

    #[test]
    fn users_pending_mfa_enrollment_get_50079_from_the_password_grant() {
        let mut a = auth();
        a.require_mfa_registration("MFA@x");
        let answer = a.token(
            "tenant-1",
            &form(&[
                ("grant_type", "password"),
                ("client_id", "app"),
                ("username", "mfa@x"),
                ("password", "pw"),
                ("scope", &format!("{BASE}/user_impersonation")),
            ]),
            None,
            &origins(),
        );
        assert_eq!(code_of(&answer), 50079);
    }

    #[test]
    fn an_app_without_an_application_user_gets_a_token_the_web_api_refuses() {
        let mut a = auth();
        a.apps.push(AppConfig {
            client_id: "other".into(),
            client_secret: Some("pw2".into()),
            display_name: "Other".into(),
            consented: true,
            redirect_uris: vec![],
        });
        let (status, body) = a.token(
            "tenant-1",
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "other"),
                ("client_secret", "pw2"),
                ("scope", &format!("{BASE}/.default")),
            ]),
            None,
            &origins(),
        );
        assert_eq!(status, 200);
        let token = body["access_token"].as_str().unwrap();
        assert!(a.validate(token).is_none());
    }

    #[test]
    fn authorization_code_with_pkce_then_refresh_tokens_that_stay_valid_until_revoked() {
        let mut a = auth();
        let verifier = "ThisIsntRandomButItNeedsToBe43CharactersLong";
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let q = form(&[
            ("client_id", "app"),
            ("response_type", "code"),
            ("redirect_uri", "http://localhost/cb"),
            (
                "scope",
                &format!("{BASE}/user_impersonation offline_access"),
            ),
            ("state", "xyz"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        let loc = a.authorize("tenant-1", &q).unwrap();
        assert!(
            loc.starts_with("http://localhost/cb?code=") && loc.ends_with("&state=xyz"),
            "{loc}"
        );
        let code = loc
            .split("code=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        let code: String = form_urlencoded::parse(format!("c={code}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        let redeem = |v: &str| {
            form(&[
                ("grant_type", "authorization_code"),
                ("client_id", "app"),
                ("code", &code),
                ("redirect_uri", "http://localhost/cb"),
                ("code_verifier", v),
            ])
        };
        let bad = a.token("tenant-1", &redeem("wrong-verifier"), None, &origins());
        assert_eq!(code_of(&bad), 501481);
        // A code is single use, even after a failed attempt.
        let again = a.token("tenant-1", &redeem(verifier), None, &origins());
        assert_eq!(code_of(&again), 54005);

        let loc = a.authorize("tenant-1", &q).unwrap();
        let code = loc
            .split("code=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string();
        let code: String = form_urlencoded::parse(format!("c={code}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        let ok = a.token(
            "tenant-1",
            &form(&[
                ("grant_type", "authorization_code"),
                ("client_id", "app"),
                ("code", &code),
                ("redirect_uri", "http://localhost/cb"),
                ("code_verifier", verifier),
            ]),
            None,
            &origins(),
        );
        assert_eq!(ok.0, 200, "{}", ok.1);
        let rt1 = ok.1["refresh_token"].as_str().unwrap().to_string();
        let r = |rt: &str| {
            form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "app"),
                ("refresh_token", rt),
            ])
        };
        let second = a.token("tenant-1", &r(&rt1), None, &origins());
        assert_eq!(second.0, 200);
        let rt2 = second.1["refresh_token"].as_str().unwrap().to_string();
        assert_ne!(rt1, rt2, "a fresh refresh token comes with every use");
        // refresh-tokens: "doesn't revoke old refresh tokens when used".
        let again = a.token("tenant-1", &r(&rt1), None, &origins());
        assert_eq!(again.0, 200, "{}", again.1);
        a.revoke_refresh_tokens();
        assert_eq!(
            code_of(&a.token("tenant-1", &r(&rt1), None, &origins())),
            50173
        );
        assert_eq!(
            code_of(&a.token("tenant-1", &r(&rt2), None, &origins())),
            50173
        );
    }

    fn code_from(location: &str) -> String {
        let query = location.split_once('?').unwrap().1;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    }

    fn claims(token: &str) -> serde_json::Value {
        crate::keys::signing_key()
            .verify(token)
            .expect("signed RS256 by the published key")
    }

    #[test]
    fn a_redemption_gets_a_signed_id_token_with_the_nonce_and_client_info() {
        let mut a = auth();
        a.set_profile(
            Guid::from_seed(1, 1),
            Some("Ada Admin".into()),
            Some("00000000-0000-0000-0000-00000000aad1".into()),
        );
        let loc = a
            .authorize(
                "tenant-1",
                &form(&[
                    ("client_id", "app"),
                    ("response_type", "code"),
                    ("redirect_uri", "http://localhost/cb"),
                    (
                        "scope",
                        &format!("{BASE}/user_impersonation openid profile offline_access"),
                    ),
                    ("nonce", "n-0S6_WzA2Mj"),
                ]),
            )
            .unwrap();
        // The redemption names neither offline_access nor openid: both were consented.
        let ok = a.token(
            "tenant-1",
            &form(&[
                ("grant_type", "authorization_code"),
                ("client_id", "app"),
                ("client_secret", "s3cret"),
                ("code", &code_from(&loc)),
                ("redirect_uri", "http://localhost/cb"),
                ("scope", &format!("{BASE}/user_impersonation")),
                ("client_info", "1"),
            ]),
            None,
            &origins(),
        );
        assert_eq!(ok.0, 200, "{}", ok.1);
        assert!(ok.1["refresh_token"].is_string());
        let user = "00000000-0000-0000-0000-00000000aad1";
        let id = claims(ok.1["id_token"].as_str().unwrap());
        assert_eq!(id["aud"], "app");
        assert_eq!(id["iss"], format!("{BASE}/tenant-1/v2.0"));
        assert_eq!(id["iss"], a.issuer_v2(BASE));
        assert_eq!(id["tid"], "tenant-1");
        assert_eq!(id["oid"], user);
        assert_eq!(id["ver"], "2.0");
        assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
        assert_eq!(id["name"], "Ada Admin");
        assert_eq!(id["preferred_username"], "u@x");
        assert_eq!(id["sub"].as_str().unwrap().len(), 43);
        assert_ne!(id["sub"], *user, "sub is pairwise, not the object id");
        let now = datetime::now_secs();
        assert!(id["iat"].as_i64().unwrap() <= now && id["nbf"].as_i64().unwrap() <= now);
        assert_eq!(
            id["exp"].as_i64().unwrap() - id["iat"].as_i64().unwrap(),
            3599
        );
        let info: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(ok.1["client_info"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(info, serde_json::json!({"uid": user, "utid": "tenant-1"}));

        let access = ok.1["access_token"].as_str().unwrap();
        let at = claims(access);
        assert_eq!(at["aud"], BASE);
        assert_eq!(at["iss"], format!("{BASE}/tenant-1/"));
        assert_eq!(at["ver"], "1.0");
        assert_eq!(at["scp"], "user_impersonation");
        assert_eq!(at["oid"], user);
        assert_eq!(at["appid"], "app");
        assert_eq!(a.validate(access).unwrap().user, Guid::from_seed(1, 1));
        assert_eq!(a.userinfo(access).unwrap()["sub"], id["sub"]);
    }

    #[test]
    fn client_info_and_id_tokens_only_when_asked_for() {
        let mut a = auth();
        let ok = a.token(
            "tenant-1",
            &form(&[
                ("grant_type", "password"),
                ("client_id", "app"),
                ("username", "u@x"),
                ("password", "pw"),
                ("scope", &format!("{BASE}/user_impersonation")),
            ]),
            None,
            &origins(),
        );
        assert_eq!(ok.0, 200);
        for absent in ["client_info", "id_token", "refresh_token"] {
            assert!(ok.1.get(absent).is_none(), "{absent}");
        }
        let cc = a.token(
            "tenant-1",
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("client_secret", "s3cret"),
                ("scope", &format!("{BASE}/.default")),
                ("client_info", "1"),
            ]),
            None,
            &origins(),
        );
        assert!(cc.1.get("client_info").is_none() && cc.1.get("id_token").is_none());
        let at = claims(cc.1["access_token"].as_str().unwrap());
        assert_eq!(at["idtyp"], "app");
        assert_eq!(at["appidacr"], "1");
        assert!(at.get("scp").is_none());
    }
}
