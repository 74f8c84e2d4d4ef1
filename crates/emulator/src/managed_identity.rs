//! The managed identity endpoint of the host a workload runs on, as Azure's Instance Metadata
//! Service (IMDS) serves it: the token a host fetches for a managed-identity connection.
//!
//! "How to use managed identities for Azure resources on an Azure VM to acquire an access token"
//! (<https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token>):
//! `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=<resource>` (optionally
//! `client_id` for a user-assigned identity) with the header `Metadata: true`, which IMDS
//! requires so that a request forwarded by a server-side request forgery cannot get a token;
//! the answer is JSON whose values are all strings: `access_token`, `expires_in`, `expires_on`,
//! `not_before`, `resource`, `token_type` `Bearer`. Without the header it answers 400; a
//! resource the tenant does not know gets 400 `invalid_resource`.
//!
//! The emulator answers on its own origin (IMDS is `http://169.254.169.254`), and the identity is
//! the application user of the confidential app, so the token works against the environment as a
//! client-credentials one does.

use std::collections::HashMap;

use crate::entra::Parts;
use crate::server::App;

/// Answers `GET /metadata/identity/oauth2/token`.
pub fn token(app: &App, query: &str, headers: &[(String, String)], origin: &str) -> Parts {
    let query: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let metadata = headers
        .iter()
        .any(|(k, v)| k == "metadata" && v.eq_ignore_ascii_case("true"));
    if !metadata {
        return answer(
            400,
            serde_json::json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
        );
    }
    let Some(resource) = query.get("resource").filter(|r| !r.is_empty()) else {
        return answer(
            400,
            serde_json::json!({"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"}),
        );
    };
    let origins = [
        origin.to_string(),
        app.base_url(),
        format!("{}://localhost:{}", app.scheme, app.addr.port()),
    ];
    let audience = resource.trim_end_matches('/');
    if !origins.iter().any(|o| o == audience) {
        return answer(
            400,
            serde_json::json!({
                "error": "invalid_resource",
                "error_description": format!("AADSTS500011: The resource principal named {resource} was not found in the tenant. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."),
            }),
        );
    }
    let Ok(mut auth) = app.auth.lock() else {
        return answer(500, serde_json::json!({"error": "server_error"}));
    };
    let user = auth.application_user;
    let token = auth.issue_for_audience(user, audience);
    let lifetime = auth.lifetime.as_secs() as i64;
    let now = crate::datetime::now_secs();
    answer(
        200,
        serde_json::json!({
            "access_token": token,
            "client_id": query.get("client_id").cloned().unwrap_or_else(|| auth.apps.first().map(|a| a.client_id.clone()).unwrap_or_default()),
            "expires_in": lifetime.to_string(),
            "expires_on": (now + lifetime).to_string(),
            "ext_expires_in": lifetime.to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    )
}

fn answer(status: u16, body: serde_json::Value) -> Parts {
    (
        status,
        vec![(
            "Content-Type".into(),
            "application/json; charset=utf-8".into(),
        )],
        body.to_string().into_bytes(),
    )
}
