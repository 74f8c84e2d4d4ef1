//! Sign-in that enterprises allow: certificate credentials (PEM and PFX, PS256 and RS256), each
//! refused assertion with its AADSTS code and hint, and the key kept out of every output.

use std::io::{Read as _, Write as _};

use dataverse::encoding::{base64_decode, base64_encode, percent_decode, percent_encode};
use dataverse_emulator::{Emulator, TestCertificate};
use dynamics_host::{Connection, ConnectorError, describe_error};
use e2e_tests::{Answered, emulator, host, host_with_memory_log, json};

/// A certificate connection to the emulator's confidential app.
fn certificate_connection(
    emulator: &Emulator,
    certificate: &str,
    password: Option<&str>,
    algorithm: &str,
) -> Connection {
    let mut fields = vec![
        ("webApiUrl".to_string(), emulator.base_url()),
        ("tokenUrl".to_string(), emulator.token_url()),
        ("clientId".to_string(), emulator.credentials().client_id),
        ("certificate".to_string(), certificate.to_string()),
        ("signingAlgorithm".to_string(), algorithm.to_string()),
    ];
    if let Some(password) = password {
        fields.push(("certificatePassword".to_string(), password.to_string()));
    }
    Connection {
        definition: "oauth2-client-certificate".to_string(),
        fields,
        token: None,
    }
}

fn pem(certificate: &TestCertificate) -> String {
    format!(
        "{}\n{}",
        certificate.private_key_pem, certificate.certificate_pem
    )
}

/// The token request the component sent: its form fields.
fn token_form(emulator: &Emulator) -> Vec<(String, String)> {
    let token_path = emulator
        .token_url()
        .trim_start_matches(&emulator.base_url())
        .to_string();
    let request = emulator
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == token_path)
        .expect("a token request was sent");
    String::from_utf8_lossy(&request.body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k, true), percent_decode(v, true)))
        .collect()
}

fn base64url(data: &[u8]) -> String {
    base64_encode(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// POSTs a form over plain HTTP/1.1 (the emulator's loopback token endpoint): status and body.
fn post_form(url: &str, body: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = std::net::TcpStream::connect(authority).expect("connects");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("sends");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reads");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn jwt_part(token: &str, index: usize) -> serde_json::Value {
    let part = token.split('.').nth(index).expect("a JWT part");
    let bytes = base64_decode(&part.replace('-', "+").replace('_', "/")).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

fn signs_in_then_reads_the_current_user(emulator: &Emulator, mut connection: Connection) {
    let output = host()
        .run_action("get-current-user", &mut connection, "{}")
        .answered()
        .expect("the certificate signs in");
    assert_eq!(
        json(&output)["userId"],
        emulator.credentials().application_user_id.as_str()
    );
    assert!(connection.token.is_some(), "a token was acquired");
}

#[test]
fn a_pkcs8_pem_certificate_signs_a_ps256_assertion_naming_the_certificate_by_its_sha256_thumbprint()
{
    let emulator = emulator();
    let certificate = emulator.certificate();
    let connection = certificate_connection(&emulator, &pem(certificate), None, "PS256");

    signs_in_then_reads_the_current_user(&emulator, connection);

    let form = token_form(&emulator);
    assert_eq!(field(&form, "grant_type"), Some("client_credentials"));
    assert_eq!(
        field(&form, "client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(field(&form, "client_secret"), None);
    let assertion = field(&form, "client_assertion").expect("an assertion");
    let header = jwt_part(assertion, 0);
    assert_eq!(header["alg"], "PS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["x5t#S256"], certificate.thumbprint_sha256.as_str());
    assert!(header.get("x5t").is_none(), "no legacy SHA-1 thumbprint");
    let claims = jwt_part(assertion, 1);
    let client_id = emulator.credentials().client_id;
    assert_eq!(claims["aud"], emulator.token_url().as_str());
    assert_eq!(claims["iss"], client_id.as_str());
    assert_eq!(claims["sub"], client_id.as_str());
    let (nbf, exp) = (
        claims["nbf"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert!(exp > nbf && exp - nbf <= 600, "a short-lived assertion");
    assert!(claims["jti"].as_str().is_some_and(|jti| jti.len() == 36));
}

#[test]
fn a_pkcs1_pem_key_signs_rs256() {
    let emulator = emulator();
    let certificate = emulator.certificate();
    let text = format!(
        "{}{}",
        certificate.certificate_pem, certificate.rsa_private_key_pem
    );
    signs_in_then_reads_the_current_user(
        &emulator,
        certificate_connection(&emulator, &text, None, "RS256"),
    );
    let form = token_form(&emulator);
    let header = jwt_part(field(&form, "client_assertion").unwrap(), 0);
    assert_eq!(header["alg"], "RS256");
}

#[test]
fn a_pfx_with_its_password_signs_in_and_a_wrong_password_is_refused_before_any_request() {
    let emulator = emulator();
    let certificate = emulator.certificate();
    signs_in_then_reads_the_current_user(
        &emulator,
        certificate_connection(
            &emulator,
            &certificate.pfx_base64,
            Some(&certificate.pfx_password),
            "PS256",
        ),
    );

    emulator.clear_requests();
    let mut wrong = certificate_connection(
        &emulator,
        &certificate.pfx_base64,
        Some("not-the-password"),
        "PS256",
    );
    let problem = host()
        .run_action("get-current-user", &mut wrong, "{}")
        .answered()
        .expect_err("a wrong password cannot open the PFX");
    assert_eq!(problem.field.as_deref(), Some("certificate"));
    assert!(
        problem.message.contains("Certificate Password"),
        "{}",
        problem.message
    );
    assert!(emulator.requests().is_empty(), "nothing was sent");
}

#[test]
fn a_key_and_a_certificate_that_do_not_belong_together_are_refused_before_any_request() {
    let emulator = emulator();
    let text = format!(
        "{}{}",
        emulator.unregistered_certificate().private_key_pem,
        emulator.certificate().certificate_pem
    );
    let mut connection = certificate_connection(&emulator, &text, None, "PS256");
    let problem = host()
        .run_action("get-current-user", &mut connection, "{}")
        .answered()
        .expect_err("refused");
    assert_eq!(problem.field.as_deref(), Some("certificate"));
    assert!(
        problem.message.contains("does not belong"),
        "{}",
        problem.message
    );
    assert!(emulator.requests().is_empty(), "nothing was sent");
}

fn refused(emulator: &Emulator, mut connection: Connection) -> ConnectorError {
    let problem = host()
        .run_action("get-current-user", &mut connection, "{}")
        .answered()
        .expect_err("the sign-in is refused");
    assert!(connection.token.is_none());
    // The refused sign-in reached nothing but the token endpoint.
    assert!(
        emulator
            .requests()
            .iter()
            .all(|r| r.path.contains("/oauth2/v2.0/token"))
    );
    problem
}

#[test]
fn a_certificate_not_registered_to_the_app_gets_aadsts700027_and_says_to_upload_it() {
    let emulator = emulator();
    let connection = certificate_connection(
        &emulator,
        &pem(emulator.unregistered_certificate()),
        None,
        "PS256",
    );
    let problem = refused(&emulator, connection);
    assert_eq!(problem.service_code.as_deref(), Some("AADSTS700027"));
    assert!(
        problem
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("upload the certificate")),
        "{problem:?}"
    );
}

#[test]
fn an_assertion_outside_its_valid_time_gets_aadsts700024_and_says_to_check_the_clock() {
    let emulator = emulator();
    // The token service's clock runs an hour ahead: the fresh assertion has long expired.
    emulator.shift_assertion_clock(3600);
    let connection = certificate_connection(&emulator, &pem(emulator.certificate()), None, "PS256");
    let problem = refused(&emulator, connection);
    assert_eq!(problem.service_code.as_deref(), Some("AADSTS700024"));
    assert!(
        problem.hint.as_deref().is_some_and(|h| h.contains("clock")),
        "{problem:?}"
    );
}

#[test]
fn an_assertion_for_another_audience_gets_aadsts700023_and_says_to_check_the_token_url() {
    let emulator = emulator();
    let mut connection =
        certificate_connection(&emulator, &pem(emulator.certificate()), None, "PS256");
    // The assertion's audience is the token URL as configured; with a query it is not the
    // token endpoint Entra knows itself by.
    for (key, value) in &mut connection.fields {
        if key == "tokenUrl" {
            value.push_str("?slice=testslice");
        }
    }
    let problem = refused(&emulator, connection);
    assert_eq!(problem.service_code.as_deref(), Some("AADSTS700023"));
    assert!(
        problem
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("Token URL")),
        "{problem:?}"
    );
}

#[test]
fn each_sign_in_signs_a_new_assertion_and_a_tampered_one_is_refused_by_the_token_endpoint() {
    let emulator = emulator();
    let connection = certificate_connection(&emulator, &pem(emulator.certificate()), None, "PS256");
    signs_in_then_reads_the_current_user(&emulator, connection.clone());
    let form = token_form(&emulator);
    let assertion = field(&form, "client_assertion").unwrap().to_string();
    emulator.clear_requests();
    signs_in_then_reads_the_current_user(&emulator, connection);
    let second = token_form(&emulator);
    let second = field(&second, "client_assertion").unwrap();
    assert_ne!(
        jwt_part(&assertion, 1)["jti"],
        jwt_part(second, 1)["jti"],
        "a new jti for each assertion"
    );

    let post = |assertion: &str| -> (u16, serde_json::Value) {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| {
                let v = if k == "client_assertion" {
                    assertion
                } else {
                    v
                };
                format!("{}={}", percent_encode(k), percent_encode(v))
            })
            .collect();
        let (status, answer) = post_form(&emulator.token_url(), &body.join("&"));
        (status, serde_json::from_str(&answer).expect("JSON"))
    };
    // The same assertion again while valid is accepted, as Entra does for MSAL, which resends
    // the assertion it signed for its ten minutes.
    let (status, answer) = post(&assertion);
    assert_eq!(status, 200, "{answer}");
    assert!(answer["access_token"].is_string());
    // The claims changed after signing: the signature no longer verifies.
    let mut parts: Vec<String> = assertion.split('.').map(str::to_string).collect();
    let mut claims = jwt_part(&assertion, 1);
    claims["jti"] = "another-jti".into();
    parts[1] = base64url(claims.to_string().as_bytes());
    let (status, answer) = post(&parts.join("."));
    assert_eq!(status, 401);
    assert_eq!(answer["error_codes"][0], 700027);
}

#[test]
fn the_key_and_the_pfx_password_never_reach_logs_errors_or_outputs() {
    let emulator = emulator();
    let certificate = emulator.certificate();
    let (logged_host, log) = host_with_memory_log();
    // A key line from the middle of the PEM, the PFX and its password.
    let key_line = certificate
        .private_key_pem
        .lines()
        .nth(5)
        .expect("a PEM body line")
        .to_string();
    let secrets = [
        key_line.as_str(),
        &certificate.pfx_base64[40..100],
        certificate.pfx_password.as_str(),
    ];

    let mut texts = Vec::new();
    let mut good = certificate_connection(
        &emulator,
        &certificate.pfx_base64,
        Some(&certificate.pfx_password),
        "PS256",
    );
    logged_host.ensure_token(&mut good).expect("signed in");
    texts.push(
        logged_host
            .test_connection(&good)
            .expect("the connection test passes"),
    );
    for mut bad in [
        certificate_connection(&emulator, &certificate.pfx_base64, Some("wrong"), "PS256"),
        certificate_connection(
            &emulator,
            &pem(emulator.unregistered_certificate()),
            None,
            "PS256",
        ),
        certificate_connection(
            &emulator,
            &format!("{}junk", certificate.private_key_pem),
            None,
            "PS256",
        ),
    ] {
        let problem = logged_host
            .run_action("get-current-user", &mut bad, "{}")
            .answered()
            .expect_err("refused");
        texts.push(describe_error(&problem));
        texts.push(format!("{problem:?}"));
    }
    texts.extend(log.lines().iter().map(|line| format!("{line:?}")));
    for text in &texts {
        for secret in secrets {
            assert!(!text.contains(secret), "a secret leaked into: {text}");
        }
    }
}

/// A directory of its own for a test's files, removed at the end.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "dynamics-e2e-sign-in-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A federated connection whose identity token the host reads from `path`.
fn federated_connection(emulator: &Emulator, path: &std::path::Path) -> Connection {
    Connection {
        definition: "oauth2-federated-credential".to_string(),
        fields: vec![
            ("webApiUrl".to_string(), emulator.base_url()),
            ("tokenUrl".to_string(), emulator.token_url()),
            ("clientId".to_string(), emulator.credentials().client_id),
            (
                "clientAssertionFile".to_string(),
                path.display().to_string(),
            ),
        ],
        token: None,
    }
}

#[test]
fn a_federated_connection_signs_in_with_the_token_the_host_reads_from_its_file_at_each_sign_in() {
    let emulator = emulator();
    let temp = TempDir::new("federated");
    let token_file = temp.0.join("azure-identity-token");
    let first = emulator.federated_token(
        emulator.federated_subject(),
        "api://AzureADTokenExchange",
        600,
    );
    std::fs::write(&token_file, &first).unwrap();
    let store = dynamics_host::TokenStore::open(temp.0.join("tokens.json"));
    let manager = dynamics_host::TokenManager::new(host(), &store);
    let mut connection = federated_connection(&emulator, &token_file);

    let output = manager
        .run_action("federated", &mut connection, "get-current-user", "{}")
        .answered()
        .expect("the federated credential signs in");
    assert_eq!(
        json(&output)["userId"],
        emulator.credentials().application_user_id.as_str()
    );
    let form = token_form(&emulator);
    assert_eq!(field(&form, "client_assertion"), Some(first.as_str()));
    assert_eq!(
        field(&form, "client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    // The token never leaves the host's hands into the stored connection.
    let stored = std::fs::read_to_string(temp.0.join("tokens.json")).unwrap();
    assert!(!stored.contains(&first));

    // Kubernetes rotates the file: the next sign-in reads the new token.
    let second = emulator.federated_token(
        emulator.federated_subject(),
        "api://AzureADTokenExchange",
        900,
    );
    std::fs::write(&token_file, &second).unwrap();
    emulator.clear_requests();
    let mut again = federated_connection(&emulator, &token_file);
    manager
        .renew("federated", &mut again)
        .answered()
        .expect("signs in again");
    assert_eq!(
        field(&token_form(&emulator), "client_assertion"),
        Some(second.as_str())
    );
}

#[test]
fn a_federated_token_the_app_does_not_trust_gets_its_aadsts_code_and_hint() {
    let emulator = emulator();
    let temp = TempDir::new("federated-refused");
    let token_file = temp.0.join("token");
    let store = dynamics_host::TokenStore::open(temp.0.join("tokens.json"));
    let manager = dynamics_host::TokenManager::new(host(), &store);
    for (token, code, hint) in [
        (
            emulator.federated_token(
                "system:serviceaccount:default:someone-else",
                "api://AzureADTokenExchange",
                600,
            ),
            "AADSTS700213",
            "Federated credentials",
        ),
        (
            emulator.federated_token(emulator.federated_subject(), "api://other", 600),
            "AADSTS700212",
            "Federated credentials",
        ),
        (
            emulator.federated_token(
                emulator.federated_subject(),
                "api://AzureADTokenExchange",
                -3600,
            ),
            "AADSTS700024",
            "read a fresh one",
        ),
    ] {
        std::fs::write(&token_file, token).unwrap();
        let mut connection = federated_connection(&emulator, &token_file);
        let problem = manager
            .run_action("refused", &mut connection, "get-current-user", "{}")
            .answered()
            .expect_err("refused");
        assert_eq!(problem.service_code.as_deref(), Some(code), "{problem:?}");
        assert!(
            problem.hint.as_deref().is_some_and(|h| h.contains(hint)),
            "{problem:?}"
        );
    }
}

#[test]
fn a_federated_connection_whose_file_is_missing_is_refused_naming_the_field_before_any_request() {
    let emulator = emulator();
    let temp = TempDir::new("federated-missing");
    let store = dynamics_host::TokenStore::open(temp.0.join("tokens.json"));
    let manager = dynamics_host::TokenManager::new(host(), &store);
    let mut connection = federated_connection(&emulator, &temp.0.join("no-such-token"));
    let problem = manager
        .run_action("missing", &mut connection, "get-current-user", "{}")
        .answered()
        .expect_err("refused");
    assert_eq!(problem.field.as_deref(), Some("clientAssertionFile"));
    assert!(
        problem.message.contains("no-such-token"),
        "{}",
        problem.message
    );
    assert!(emulator.requests().is_empty(), "nothing was sent");
}

/// A managed identity connection whose host asks the emulator's IMDS-shaped endpoint.
fn managed_identity_connection(emulator: &Emulator) -> Connection {
    Connection {
        definition: "managed-identity".to_string(),
        fields: vec![
            ("webApiUrl".to_string(), emulator.base_url()),
            (
                "identityEndpoint".to_string(),
                format!("{}/metadata/identity/oauth2/token", emulator.base_url()),
            ),
        ],
        token: None,
    }
}

#[test]
fn a_managed_identity_connection_gets_its_token_from_the_host_and_the_component_only_sees_it() {
    let emulator = emulator();
    let temp = TempDir::new("managed-identity");
    let store = dynamics_host::TokenStore::open(temp.0.join("tokens.json"));
    let manager = dynamics_host::TokenManager::new(host(), &store);
    let mut connection = managed_identity_connection(&emulator);

    let output = manager
        .run_action("mi", &mut connection, "get-current-user", "{}")
        .answered()
        .expect("the managed identity signs in");
    assert_eq!(
        json(&output)["userId"],
        emulator.credentials().application_user_id.as_str()
    );
    let requests = emulator.requests();
    let identity = requests
        .iter()
        .find(|r| r.path.starts_with("/metadata/identity/oauth2/token"))
        .expect("the host asked the managed identity endpoint");
    assert_eq!(identity.method, "GET");
    assert_eq!(identity.header("metadata"), Some("true"));
    assert!(
        identity.path.contains(&format!(
            "resource={}",
            percent_encode(&emulator.base_url())
        )),
        "{}",
        identity.path
    );
    assert!(
        requests
            .iter()
            .all(|r| !r.path.contains("/oauth2/v2.0/token")),
        "no token endpoint request: the component got the token from the host"
    );
}

#[test]
fn a_managed_identity_connection_without_a_host_that_fetches_its_token_says_so() {
    let emulator = emulator();
    let mut connection = managed_identity_connection(&emulator);
    let problem = host()
        .run_action("get-current-user", &mut connection, "{}")
        .answered()
        .expect_err("the component cannot get the token itself");
    assert_eq!(problem.code, dynamics_host::ErrorCode::Unsupported);
    assert!(problem.hint.is_some());
    assert!(emulator.requests().is_empty(), "nothing was sent");
}

#[test]
fn the_managed_identity_endpoint_wants_the_metadata_header_and_a_known_resource() {
    let emulator = emulator();
    let url = format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={}",
        emulator.base_url(),
        percent_encode(&emulator.base_url())
    );
    let (status, _) = get(&url, &[]);
    assert_eq!(status, 400, "without Metadata: true");
    let (status, body) = get(&url, &[("Metadata", "true")]);
    assert_eq!(status, 200, "{body}");
    let body = json(&body);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_string(), "IMDS answers strings");
    let elsewhere = url.replace(
        &percent_encode(&emulator.base_url()),
        &percent_encode("https://other.crm.dynamics.com"),
    );
    let (status, body) = get(&elsewhere, &[("Metadata", "true")]);
    assert_eq!(status, 400);
    assert_eq!(json(&body)["error"], "invalid_resource");
}

/// A GET over plain HTTP/1.1: status and body.
fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = std::net::TcpStream::connect(authority).expect("connects");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("sends");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reads");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
