//! The Entra ID side of the emulator over HTTP: the token and authorize endpoints, the OpenID
//! configuration documents (v2.0 and v1.0), the signing keys, instance discovery, sign-out and
//! UserInfo. The grants themselves are in [`crate::auth`].
//!
//! Every URL written here uses the scheme and host the request came in on, so an emulator
//! served over HTTPS (or reached as `localhost`) names itself as clients reach it.

use std::collections::HashMap;

use base64::Engine;

use crate::auth::{Auth, TokenAnswer, aad_error};
use crate::server::App;

/// Status, headers, body.
pub type Parts = (u16, Vec<(String, String)>, Vec<u8>);

/// Answers the identity paths; None for every other path.
pub fn route(
    app: &App,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    origin: &str,
) -> Option<Parts> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let parts = match (method, segs.as_slice()) {
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => token(app, tenant, headers, body, origin),
        ("GET", [tenant, "oauth2", "v2.0", "authorize"]) => authorize(app, tenant, query),
        ("GET" | "POST", [tenant, "oauth2", "v2.0", "logout"]) => logout(app, tenant, query),
        ("GET", [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
            with_tenant(app, tenant, |auth| configuration_v2(auth, tenant, origin))
        }
        ("GET", [tenant, ".well-known", "openid-configuration"]) => {
            with_tenant(app, tenant, |auth| configuration_v1(auth, tenant, origin))
        }
        ("GET", [tenant, "discovery", "v2.0", "keys"]) => with_tenant(app, tenant, |auth| {
            let issuer = issuer_v2_for(auth, tenant, origin);
            json(200, &crate::keys::signing_key().jwks(Some(&issuer)))
        }),
        ("GET", [tenant, "discovery", "keys"]) => with_tenant(app, tenant, |_| {
            json(200, &crate::keys::signing_key().jwks(None))
        }),
        ("GET", [tenant, "discovery", "instance"]) => {
            with_tenant(app, tenant, |_| instance_discovery(query, origin))
        }
        ("GET" | "POST", ["oidc", "userinfo"]) => userinfo(app, headers),
        ("GET", ["metadata", "identity", "oauth2", "token"]) => {
            crate::managed_identity::token(app, query, headers, origin)
        }
        // Advertised by the v1.0 configuration (as Entra's is) but not emulated.
        (_, [_, "oauth2", "token" | "authorize" | "devicecode" | "logout"])
        | (_, [_, "oauth2", "v2.0", "devicecode"]) => not_emulated(path),
        _ => return None,
    };
    Some(parts)
}

fn json(status: u16, body: &serde_json::Value) -> Parts {
    (
        status,
        vec![
            (
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            ),
            // Entra serves its metadata to browsers of any origin.
            ("Access-Control-Allow-Origin".into(), "*".into()),
        ],
        body.to_string().into_bytes(),
    )
}

fn answer(a: TokenAnswer) -> Parts {
    json(a.0, &a.1)
}

/// Runs `f` when the tenant is the emulator's (id or name), `organizations` or `common`;
/// otherwise answers AADSTS90002 as Entra's metadata endpoints do.
fn with_tenant(app: &App, tenant: &str, f: impl FnOnce(&Auth) -> Parts) -> Parts {
    let Ok(auth) = app.auth.lock() else {
        return json(500, &serde_json::json!({"error": "server_error"}));
    };
    let known = tenant.eq_ignore_ascii_case(&auth.tenant_id)
        || tenant.eq_ignore_ascii_case(&auth.tenant_name)
        || matches!(tenant, "organizations" | "common");
    if !known {
        let (_, mut body) = aad_error(
            400,
            "invalid_tenant",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
            None,
        );
        body["error"] = "invalid_tenant".into();
        return json(400, &body);
    }
    f(&auth)
}

/// A specific tenant (by id or name) is named by its id in every URL of the configuration, as
/// Entra does; `organizations` and `common` keep their name.
fn path_tenant<'a>(auth: &'a Auth, tenant: &'a str) -> &'a str {
    if matches!(tenant, "organizations" | "common") {
        tenant
    } else {
        &auth.tenant_id
    }
}

/// The v2.0 issuer of a configuration: the tenant's, or `{tenantid}` literally for the
/// multi-tenant authorities (v2-protocols-oidc: validate `iss` against the token's `tid`).
fn issuer_v2_for(auth: &Auth, tenant: &str, origin: &str) -> String {
    if matches!(tenant, "organizations" | "common") {
        format!("{origin}/{{tenantid}}/v2.0")
    } else {
        auth.issuer_v2(origin)
    }
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`: the OpenID Provider Configuration
/// Document of Microsoft identity platform, "OpenID Connect on the Microsoft identity platform"
/// (learn.microsoft.com/entra/identity-platform/v2-protocols-oidc, "Fetch the OpenID
/// configuration document"), with the fields OpenID Connect Discovery 1.0 §3 requires
/// (`issuer`, `authorization_endpoint`, `jwks_uri`, `response_types_supported`,
/// `subject_types_supported`, `id_token_signing_alg_values_supported`) and the others Entra's
/// document carries. MSAL refuses a document without `authorization_endpoint`,
/// `token_endpoint`, `issuer` and `jwks_uri`, and an issuer on another host.
fn configuration_v2(auth: &Auth, tenant: &str, origin: &str) -> Parts {
    let t = path_tenant(auth, tenant);
    let base = format!("{origin}/{t}");
    json(
        200,
        &serde_json::json!({
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "jwks_uri": format!("{base}/discovery/v2.0/keys"),
            "response_modes_supported": ["query"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer_v2_for(auth, tenant, origin),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{origin}/oidc/userinfo"),
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "nbf", "nonce", "preferred_username",
                "name", "tid", "oid", "ver", "email", "uti"
            ],
            "grant_types_supported": [
                "authorization_code", "client_credentials", "refresh_token", "password"
            ],
            "code_challenge_methods_supported": ["S256", "plain"],
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }),
    )
}

/// `GET /{tenant}/.well-known/openid-configuration`: the v1.0 document ("Microsoft identity
/// platform v1.0 and v2.0 endpoints": the v1.0 authority has no `/v2.0` path segment; its
/// endpoints are `/oauth2/token` and `/oauth2/authorize`, its issuer
/// `https://sts.windows.net/{tenant id}/`, here on the emulator's own host). The v1.0 token and
/// authorize endpoints themselves are not emulated (they answer 501).
fn configuration_v1(auth: &Auth, tenant: &str, origin: &str) -> Parts {
    let t = path_tenant(auth, tenant);
    let base = format!("{origin}/{t}");
    let issuer = if matches!(tenant, "organizations" | "common") {
        format!("{origin}/{{tenantid}}/")
    } else {
        auth.issuer_v1(origin)
    };
    json(
        200,
        &serde_json::json!({
            "token_endpoint": format!("{base}/oauth2/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "jwks_uri": format!("{base}/discovery/keys"),
            "response_modes_supported": ["query"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "scopes_supported": ["openid"],
            "issuer": issuer,
            "microsoft_multi_refresh_token": true,
            "authorization_endpoint": format!("{base}/oauth2/authorize"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/oauth2/logout"),
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "nbf", "nonce", "name", "tid", "oid", "ver",
                "upn", "unique_name"
            ],
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }),
    )
}

/// `GET /common/discovery/instance?api-version=1.1&authorization_endpoint=...`: the cloud
/// instance metadata MSAL asks for when the authority is not in `knownAuthorities` (MSAL's
/// "instance discovery", documented with MSAL's authority options). The emulator is one cloud
/// whose aliases are the names it is reached by.
fn instance_discovery(query: &str, origin: &str) -> Parts {
    let q: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    let tenant = q
        .get("authorization_endpoint")
        .and_then(|a| a.split_once("://"))
        .and_then(|(_, rest)| rest.split('/').nth(1))
        .filter(|t| !t.is_empty())
        .unwrap_or("common")
        .to_string();
    let port = host.rsplit_once(':').map(|(_, p)| p);
    let mut aliases = vec![host.to_string()];
    if let Some(port) = port {
        for alias in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
            if !aliases.contains(&alias) {
                aliases.push(alias);
            }
        }
    }
    json(
        200,
        &serde_json::json!({
            "tenant_discovery_endpoint":
                format!("{origin}/{tenant}/v2.0/.well-known/openid-configuration"),
            "api-version": "1.1",
            "metadata": [{
                "preferred_network": host,
                "preferred_cache": host,
                "aliases": aliases,
            }],
        }),
    )
}

/// `GET /{tenant}/oauth2/v2.0/logout`: "Send a sign-out request" (v2-protocols-oidc): ends the
/// session and redirects to `post_logout_redirect_uri` (with `state`) when one is given.
fn logout(app: &App, tenant: &str, query: &str) -> Parts {
    let q: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if let Ok(auth) = app.auth.lock()
        && !(tenant.eq_ignore_ascii_case(&auth.tenant_id)
            || tenant.eq_ignore_ascii_case(&auth.tenant_name)
            || matches!(tenant, "organizations" | "common"))
    {
        return answer(aad_error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
            None,
        ));
    }
    match q.get("post_logout_redirect_uri") {
        Some(uri) => {
            let mut location = uri.clone();
            if let Some(state) = q.get("state") {
                let sep = if uri.contains('?') { '&' } else { '?' };
                location.push(sep);
                location.push_str("state=");
                location.extend(form_urlencoded::byte_serialize(state.as_bytes()));
            }
            (302, vec![("Location".into(), location)], Vec::new())
        }
        None => (
            200,
            vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            b"<!doctype html><title>Signed out</title><p>You signed out of your account.</p>"
                .to_vec(),
        ),
    }
}

/// `GET /oidc/userinfo` with a delegated bearer token: "Microsoft identity platform UserInfo
/// endpoint" (userinfo): `sub` (the same pairwise value as the id token's), `name`, `email`.
fn userinfo(app: &App, headers: &[(String, String)]) -> Parts {
    let bearer = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        });
    let Ok(auth) = app.auth.lock() else {
        return json(500, &serde_json::json!({"error": "server_error"}));
    };
    match bearer.as_deref().and_then(|t| auth.userinfo(t)) {
        Some(info) => json(200, &info),
        None => (
            401,
            vec![(
                "WWW-Authenticate".into(),
                "Bearer error=\"invalid_token\"".into(),
            )],
            Vec::new(),
        ),
    }
}

fn not_emulated(path: &str) -> Parts {
    json(
        501,
        &serde_json::json!({
            "error": "not_implemented",
            "error_description": format!(
                "The emulator does not emulate {path}: use the v2.0 endpoints \
                 (/{{tenant}}/oauth2/v2.0/token and /{{tenant}}/oauth2/v2.0/authorize)."
            ),
        }),
    )
}

fn token(
    app: &App,
    tenant: &str,
    headers: &[(String, String)],
    body: &[u8],
    origin: &str,
) -> Parts {
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let basic = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            let dec = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Some((dec(id), dec(secret)))
        });
    // The first origin issues the tokens; every one names the environment as a resource.
    let origins = vec![
        origin.to_string(),
        app.base_url(),
        format!("{}://localhost:{}", app.scheme, app.addr.port()),
    ];
    // The F&O environment is a resource of its own (fno): its tokens name it as audience.
    let origins: Vec<String> = origins
        .into_iter()
        .chain(app.fno_addr.iter().flat_map(|a| {
            [
                format!("{}://127.0.0.1:{}", app.scheme, a.port()),
                format!("{}://localhost:{}", app.scheme, a.port()),
            ]
        }))
        .collect();
    let (status, json) = match app.auth.lock() {
        Ok(mut auth) => auth.token(tenant, &form, basic, &origins),
        Err(_) => (500, serde_json::json!({"error": "server_error"})),
    };
    (
        status,
        vec![
            (
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            ),
            ("Cache-Control".into(), "no-store, no-cache".into()),
            ("Pragma".into(), "no-cache".into()),
        ],
        json.to_string().into_bytes(),
    )
}

fn authorize(app: &App, tenant: &str, query: &str) -> Parts {
    let q: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let result = match app.auth.lock() {
        Ok(mut auth) => auth.authorize(tenant, &q),
        Err(_) => Err((500, serde_json::json!({"error": "server_error"}))),
    };
    match result {
        Ok(location) => (302, vec![("Location".into(), location)], Vec::new()),
        Err(a) => answer(a),
    }
}
