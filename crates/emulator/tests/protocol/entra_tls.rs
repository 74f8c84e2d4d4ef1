//! The emulator over HTTPS (`Config::tls`) and its Entra ID metadata: the OpenID configuration
//! documents, the key set that verifies every token, and absolute URLs that name the scheme and
//! host the emulator is reached on.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dataverse_emulator::{Config, Emulator};
use serde_json::Value;
use support::{Answer, answer};

fn tls_emulator() -> Emulator {
    Emulator::start(
        Config {
            rows_per_table: 5,
            tls: true,
            ..Default::default()
        },
        0,
    )
    .unwrap()
}

/// A client that trusts the emulator's CA and nothing else.
fn tls_agent(emu: &Emulator) -> ureq::Agent {
    let pem = emu.ca_certificate_pem().expect("a CA with tls");
    let ca = ureq::tls::Certificate::from_pem(pem.as_bytes()).unwrap();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![ca])))
                .build(),
        )
        .build()
        .into()
}

fn get(agent: &ureq::Agent, url: &str) -> Answer {
    answer(agent.get(url).call())
}

fn token(agent: &ureq::Agent, emu: &Emulator, form: &[(&str, &str)]) -> Value {
    let a = answer(agent.post(&emu.token_url()).send_form(form.iter().copied()));
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()
}

/// Verifies a compact JWS against the key set (RS256, key chosen by `kid`) and returns its
/// claims.
fn verify(jwks: &Value, jwt: &str) -> Value {
    let mut parts = jwt.split('.');
    let (h, c, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is published");
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap();
    let public = rsa::PublicKey::new(
        rsa::BoxedUint::from_be_slice_vartime(&n),
        rsa::BoxedUint::from_be_slice_vartime(&e),
    )
    .unwrap();
    public
        .pkcs1v15_verify::<rsa::sha2::Sha256>(
            format!("{h}.{c}").as_bytes(),
            &URL_SAFE_NO_PAD.decode(s).unwrap(),
        )
        .expect("signature verifies against jwks_uri");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).unwrap()).unwrap()
}

#[test]
fn over_https_every_absolute_url_says_https_and_names_the_host_used() {
    let emu = tls_emulator();
    assert_eq!(emu.scheme(), "https");
    assert!(emu.base_url().starts_with("https://127.0.0.1:"));
    let ca_file = emu.ca_certificate_path().unwrap().to_path_buf();
    assert_eq!(
        std::fs::read_to_string(&ca_file).unwrap(),
        emu.ca_certificate_pem().unwrap()
    );
    let agent = tls_agent(&emu);
    let auth = format!("Bearer {}", emu.issue_token_for_tests());

    // nextLink and @odata.context
    let page = answer(
        agent
            .get(&format!("{}/accounts?$select=name", emu.web_api_url()))
            .header("Authorization", &auth)
            .header("Prefer", "odata.maxpagesize=2")
            .call(),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let body = page.json();
    let base = emu.base_url();
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{base}/api/data/v9.2/$metadata")),
        "{body}"
    );
    assert!(
        body["@odata.nextLink"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{base}/api/data/v9.2/accounts?")),
        "{body}"
    );

    // OData-EntityId of a create
    let created = answer(
        agent
            .post(&format!("{}/accounts", emu.web_api_url()))
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(r#"{"name":"Over TLS"}"#),
    );
    assert_eq!(created.status, 204, "{}", created.body);
    assert!(
        created
            .header("OData-EntityId")
            .unwrap()
            .starts_with(&format!("{base}/api/data/v9.2/accounts(")),
    );

    // deltaLink
    let tracked = answer(
        agent
            .get(&format!("{}/accounts?$select=name", emu.web_api_url()))
            .header("Authorization", &auth)
            .header("Prefer", "odata.track-changes")
            .call(),
    );
    assert_eq!(tracked.status, 200, "{}", tracked.body);
    assert!(
        tracked.json()["@odata.deltaLink"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{base}/api/data/v9.2/accounts?")),
    );

    // Reached as localhost (the certificate names it too), the URLs say localhost.
    let local = format!("https://localhost:{}", emu.port());
    let who = answer(
        agent
            .get(&format!("{local}/api/data/v9.2/accounts?$top=1"))
            .header("Authorization", &auth)
            .call(),
    );
    assert_eq!(who.status, 200, "{}", who.body);
    assert!(
        who.json()["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{local}/api/data/v9.2/"))
    );
    let config = get(
        &agent,
        &format!(
            "{local}/{}/v2.0/.well-known/openid-configuration",
            emu.credentials().tenant_id
        ),
    )
    .json();
    assert!(
        config["token_endpoint"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{local}/"))
    );

    // Plain HTTP to the TLS port gets no answer.
    let plain = support::agent(Duration::from_secs(5))
        .get(&format!("http://127.0.0.1:{}/api/data/v9.2/", emu.port()))
        .call();
    assert!(plain.is_err() || plain.unwrap().status().as_u16() >= 400);

    emu.stop();
    assert!(
        !ca_file.exists(),
        "the generated CA file is removed on stop"
    );
}

#[test]
fn a_client_that_does_not_trust_the_ca_is_refused() {
    let emu = tls_emulator();
    let untrusting = support::agent(Duration::from_secs(5));
    assert!(
        untrusting
            .get(&emu.openid_configuration_url())
            .call()
            .is_err()
    );
}

#[test]
fn the_openid_configuration_names_the_keys_that_verify_every_token() {
    let emu = tls_emulator();
    let agent = tls_agent(&emu);
    let c = emu.credentials();
    let base = emu.base_url();
    let tenant = &c.tenant_id;

    let doc = get(&agent, &emu.openid_configuration_url());
    assert_eq!(doc.status, 200);
    assert_eq!(doc.header("Access-Control-Allow-Origin"), Some("*"));
    let doc = doc.json();
    // OpenID Connect Discovery 1.0 §3 (required) and what MSAL reads.
    for field in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "end_session_endpoint",
        "scopes_supported",
        "claims_supported",
    ] {
        assert!(!doc[field].is_null(), "{field} missing: {doc}");
    }
    assert_eq!(doc["issuer"], format!("{base}/{tenant}/v2.0"));
    assert_eq!(doc["token_endpoint"], emu.token_url());
    assert_eq!(doc["authorization_endpoint"], emu.authorize_url());
    assert_eq!(doc["id_token_signing_alg_values_supported"][0], "RS256");
    assert_eq!(doc["subject_types_supported"][0], "pairwise");

    // By tenant name the endpoints name the tenant id, as Entra's do.
    let by_name = get(
        &agent,
        &format!("{base}/emulator.onmicrosoft.com/v2.0/.well-known/openid-configuration"),
    )
    .json();
    assert_eq!(by_name["issuer"], doc["issuer"]);
    assert_eq!(by_name["token_endpoint"], doc["token_endpoint"]);
    // organizations: its own endpoints, the issuer template Entra publishes.
    let orgs = get(
        &agent,
        &format!("{base}/organizations/v2.0/.well-known/openid-configuration"),
    )
    .json();
    assert_eq!(orgs["issuer"], format!("{base}/{{tenantid}}/v2.0"));
    assert_eq!(
        orgs["token_endpoint"],
        format!("{base}/organizations/oauth2/v2.0/token")
    );
    // An unknown tenant: AADSTS90002.
    let unknown = get(
        &agent,
        &format!("{base}/no-such-tenant/v2.0/.well-known/openid-configuration"),
    );
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["error_codes"][0], 90002);

    // v1.0
    let v1 = get(
        &agent,
        &format!("{base}/{tenant}/.well-known/openid-configuration"),
    )
    .json();
    assert_eq!(v1["issuer"], format!("{base}/{tenant}/"));
    assert_eq!(
        v1["token_endpoint"],
        format!("{base}/{tenant}/oauth2/token")
    );
    assert_eq!(v1["id_token_signing_alg_values_supported"][0], "RS256");
    let v1_keys = get(&agent, v1["jwks_uri"].as_str().unwrap()).json();
    let v1_token = answer(
        agent
            .post(v1["token_endpoint"].as_str().unwrap())
            .send_form([("grant_type", "client_credentials")]),
    );
    assert_eq!(v1_token.status, 501, "not emulated, and says so");

    let jwks = get(&agent, doc["jwks_uri"].as_str().unwrap()).json();
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert_eq!(jwks["keys"][0]["use"], "sig");
    assert_eq!(jwks["keys"][0]["issuer"], doc["issuer"]);
    assert_eq!(v1_keys["keys"][0]["kid"], jwks["keys"][0]["kid"]);

    // Password grant with openid and client_info, as MSAL asks.
    let scope = format!("{} openid profile offline_access", emu.default_scope());
    let grant = token(
        &agent,
        &emu,
        &[
            ("grant_type", "password"),
            ("client_id", &c.public_client_id),
            ("username", &c.username),
            ("password", &c.password),
            ("scope", &scope),
            ("client_info", "1"),
        ],
    );
    let id = verify(&jwks, grant["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], doc["issuer"]);
    assert_eq!(id["aud"], c.public_client_id.as_str());
    assert_eq!(id["tid"], tenant.as_str());
    assert_eq!(id["ver"], "2.0");
    assert_eq!(id["preferred_username"], c.username.as_str());
    for claim in ["sub", "oid", "name", "iat", "nbf", "exp", "uti"] {
        assert!(!id[claim].is_null(), "{claim} missing: {id}");
    }
    let info: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(grant["client_info"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(info["uid"], id["oid"]);
    assert_eq!(info["utid"], tenant.as_str());
    let at = verify(&jwks, grant["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], base.as_str());
    assert_eq!(at["iss"], v1["issuer"]);
    assert_eq!(at["oid"], id["oid"]);
    assert_eq!(at["scp"], "user_impersonation");

    // The Web API takes the token; UserInfo answers the id token's subject.
    let who = answer(
        agent
            .get(&format!("{}/WhoAmI", emu.web_api_url()))
            .header(
                "Authorization",
                &format!("Bearer {}", grant["access_token"].as_str().unwrap()),
            )
            .call(),
    );
    assert_eq!(who.status, 200);
    assert_eq!(who.json()["UserId"], c.user_id.as_str());
    let userinfo = answer(
        agent
            .get(&format!("{base}/oidc/userinfo"))
            .header(
                "Authorization",
                &format!("Bearer {}", grant["access_token"].as_str().unwrap()),
            )
            .call(),
    );
    assert_eq!(userinfo.json()["sub"], id["sub"]);

    // Client credentials: an app-only token, signed the same way.
    let app = token(
        &agent,
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("scope", &emu.default_scope()),
        ],
    );
    assert!(app.get("id_token").is_none() && app.get("refresh_token").is_none());
    let at = verify(&jwks, app["access_token"].as_str().unwrap());
    assert_eq!(at["idtyp"], "app");
    assert_eq!(at["appid"], c.client_id.as_str());
}

#[test]
fn a_used_refresh_token_stays_valid_until_revoked() {
    let emu = Emulator::start(
        Config {
            rows_per_table: 2,
            ..Default::default()
        },
        0,
    )
    .unwrap();
    let agent = support::agent(Duration::from_secs(20));
    let c = emu.credentials();
    let scope = format!("{} offline_access", emu.default_scope());
    let first = token(
        &agent,
        &emu,
        &[
            ("grant_type", "password"),
            ("client_id", &c.public_client_id),
            ("username", &c.username),
            ("password", &c.password),
            ("scope", &scope),
        ],
    );
    let rt = first["refresh_token"].as_str().unwrap().to_string();
    let refresh = |rt: &str| {
        answer(agent.post(&emu.token_url()).send_form([
            ("grant_type", "refresh_token"),
            ("client_id", c.public_client_id.as_str()),
            ("refresh_token", rt),
        ]))
    };
    let second = refresh(&rt);
    assert_eq!(second.status, 200, "{}", second.body);
    assert_ne!(second.json()["refresh_token"].as_str().unwrap(), rt);
    let again = refresh(&rt);
    assert_eq!(again.status, 200, "the used refresh token still works");
    emu.revoke_refresh_tokens();
    let revoked = refresh(&rt);
    assert_eq!(revoked.status, 400);
    assert_eq!(revoked.json()["error_codes"][0], 50173);
}
