//! Connections: every grant through the built component against the emulator's token endpoint,
//! tokens kept fresh by the harness's token store, Entra errors turned into hints, pasted
//! environment URLs, the connection test, and where secrets may go.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataverse_emulator::{AppConfig, Config, Emulator};
use dynamics_host::tokens::unix_now;
use dynamics_host::{Connection, ErrorCode, TokenManager, TokenStore, describe_error};
use e2e_tests::{
    Answered, client_credentials, connected, emulator, host, host_with_memory_log, json,
};
use host_harness::login::{self, LoginError, LoginOptions};

// ---------------------------------------------------------------------------------------------
// helpers

/// A token store in a directory of its own, removed on drop.
struct TempStore {
    dir: PathBuf,
    store: TokenStore,
}

impl TempStore {
    fn new() -> TempStore {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dynamics-e2e-tokens-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = TokenStore::open(dir.join("state").join("tokens.json"));
        TempStore { dir, store }
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn field(mut connection: Connection, key: &str, value: &str) -> Connection {
    connection.fields.retain(|(existing, _)| existing != key);
    connection.fields.push((key.to_string(), value.to_string()));
    connection
}

fn password_connection(emulator: &Emulator) -> Connection {
    let credentials = emulator.credentials();
    Connection {
        definition: "oauth2-password".to_string(),
        fields: vec![
            ("webApiUrl".to_string(), emulator.base_url()),
            ("tokenUrl".to_string(), emulator.token_url()),
            ("clientId".to_string(), credentials.public_client_id),
            ("username".to_string(), credentials.username),
            ("password".to_string(), credentials.password),
        ],
        token: None,
    }
}

fn auth_code_connection(emulator: &Emulator) -> Connection {
    Connection {
        definition: "oauth2-auth-code".to_string(),
        fields: vec![
            ("webApiUrl".to_string(), emulator.base_url()),
            (
                "clientId".to_string(),
                emulator.credentials().public_client_id,
            ),
            ("authorizeUrl".to_string(), emulator.authorize_url()),
            ("tokenUrl".to_string(), emulator.token_url()),
        ],
        token: None,
    }
}

/// A plain HTTP/1.1 GET that does not follow redirects: status, headers (lower case), body.
fn http_get(url: &str) -> (u16, Vec<(String, String)>, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(authority).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Signs in through the harness's loopback listener the way a browser would: the authorize
/// URL is fetched without following its redirect, then the redirect is delivered to the
/// listener. Returns the listener's page and the outcome.
/// Signs the auth-code connection in under key "ac", as a person would in the browser.
fn signed_in(manager: &TokenManager<'_>, emulator: &Emulator) {
    browser_sign_in(manager, "ac", &auth_code_connection(emulator), |location| {
        location
    })
    .1
    .expect("the sign-in completes");
}

fn browser_sign_in(
    manager: &TokenManager<'_>,
    key: &str,
    connection: &Connection,
    tamper: impl FnOnce(String) -> String,
) -> (String, Result<login::LoginOutcome, LoginError>) {
    let pending = login::begin(manager, connection, &LoginOptions::default()).unwrap();
    assert!(pending.redirect_uri.starts_with("http://127.0.0.1:"));
    assert!(pending.redirect_uri.ends_with("/callback"));
    let (status, headers, _) = http_get(&pending.authorization_url);
    assert_eq!(status, 302, "the emulator approves at once");
    let location = header(&headers, "location")
        .expect("a redirect")
        .to_string();
    assert!(location.starts_with(&pending.redirect_uri), "{location}");
    let location = tamper(location);
    std::thread::scope(|scope| {
        let browser = scope.spawn(move || {
            // A browser also asks for a favicon; the listener must not take it for the redirect.
            let favicon = location.replace("/callback", "/favicon.ico");
            let (status, _, _) = http_get(favicon.split('?').next().unwrap_or_default());
            assert_eq!(status, 404);
            http_get(&location).2
        });
        let outcome = pending.finish(manager, key, connection, Duration::from_secs(20));
        (browser.join().unwrap(), outcome)
    })
}

/// A loopback HTTP server that records what it receives and answers one fixed response.
struct Recorder {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Recorder {
    fn start(status: u16, body: &'static str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopping) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut raw = Vec::new();
                let mut buffer = [0u8; 4096];
                while let Ok(read) = stream.read(&mut buffer) {
                    if read == 0 {
                        break;
                    }
                    raw.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&raw).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .filter_map(|line| line.split_once(':'))
                            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                            .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            break;
                        }
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&raw).into_owned());
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Recorder {
            url,
            requests,
            stop,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn token_paths(emulator: &Emulator) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/oauth2/v2.0/token"))
        .count()
}

// ---------------------------------------------------------------------------------------------
// each grant type

#[test]
fn client_credentials_token_is_acquired_once_stored_and_reused_by_the_next_action() {
    let emulator = emulator();
    let temp = TempStore::new();
    let manager = TokenManager::new(host(), &temp.store);

    for _ in 0..2 {
        let mut connection = client_credentials(&emulator);
        let output = manager
            .run_action("cc", &mut connection, "get-current-user", "{}")
            .unwrap();
        assert_eq!(
            json(&output)["userId"],
            emulator.credentials().application_user_id.as_str()
        );
    }

    assert_eq!(
        token_paths(&emulator),
        1,
        "the second action used the stored token"
    );
    let stored = temp.store.get("cc").unwrap().expect("a stored token");
    assert_eq!(stored.connection_type, "oauth2-client-credentials");
    assert!(stored.expires_at.unwrap() > unix_now() + 3000);
    assert!(
        !stored.binding.contains_key("clientSecret"),
        "secrets are not part of the binding"
    );
}

#[test]
fn password_grant_signs_the_user_in_and_get_current_user_returns_that_user() {
    let emulator = emulator();
    let temp = TempStore::new();
    let manager = TokenManager::new(host(), &temp.store);
    let mut connection = password_connection(&emulator);

    let output = manager
        .run_action("pw", &mut connection, "get-current-user", "{}")
        .unwrap();

    assert_eq!(
        json(&output)["userId"],
        emulator.credentials().user_id.as_str()
    );
    let form = String::from_utf8(emulator.requests()[0].body.clone()).unwrap();
    assert!(form.contains("grant_type=password"));
    assert!(
        !form.contains("client_secret"),
        "a public client sends no secret"
    );
}

#[test]
fn auth_code_login_on_the_loopback_listener_stores_tokens_and_get_current_user_succeeds() {
    let emulator = emulator();
    let temp = TempStore::new();
    let manager = TokenManager::new(host(), &temp.store);
    let connection = auth_code_connection(&emulator);

    let (page, outcome) = browser_sign_in(&manager, "ac", &connection, |location| location);

    let outcome = outcome.unwrap();
    assert!(page.contains("You are signed in"), "{page}");
    assert!(
        outcome.refreshable,
        "offline_access is in the default scopes"
    );
    let authorize = emulator
        .requests()
        .into_iter()
        .find(|request| request.path.contains("/authorize?"))
        .unwrap();
    assert!(authorize.path.contains("code_challenge_method=S256"));
    assert!(authorize.path.contains("offline_access"));
    let exchange = emulator
        .requests()
        .into_iter()
        .find(|request| request.path.ends_with("/token"))
        .unwrap();
    let form = String::from_utf8(exchange.body).unwrap();
    assert!(form.contains("grant_type=authorization_code"));
    assert!(form.contains("code_verifier="));

    let mut connection = auth_code_connection(&emulator);
    let output = manager
        .run_action("ac", &mut connection, "get-current-user", "{}")
        .unwrap();
    assert_eq!(
        json(&output)["userId"],
        emulator.credentials().user_id.as_str()
    );
}

#[test]
fn a_redirect_with_another_state_is_refused_and_nothing_is_stored() {
    let emulator = emulator();
    let temp = TempStore::new();
    let manager = TokenManager::new(host(), &temp.store);
    let connection = auth_code_connection(&emulator);

    let (page, outcome) = browser_sign_in(&manager, "ac", &connection, |location| {
        let (before, after) = location.split_once("state=").unwrap();
        format!(
            "{before}state=forged{}",
            &after[after.find('&').unwrap_or(after.len())..]
        )
    });

    match outcome {
        Err(LoginError::Failed(reason)) => assert!(reason.contains("state"), "{reason}"),
        other => panic!("expected a refused state, got {other:?}"),
    }
    assert!(page.contains("Sign-in refused"));
    assert!(temp.store.get("ac").unwrap().is_none());
    assert_eq!(token_paths(&emulator), 0, "the code was never exchanged");
}

#[test]
fn an_auth_code_connection_without_a_sign_in_says_to_run_login() {
    let emulator = emulator();
    let temp = TempStore::new();
    let manager = TokenManager::new(host(), &temp.store);

    let failure = manager
        .run_action(
            "nobody",
            &mut auth_code_connection(&emulator),
            "get-current-user",
            "{}",
        )
        .answered()
        .unwrap_err();

    assert_eq!(failure.code, ErrorCode::Unauthenticated);
    assert!(failure.hint.unwrap().contains("dynamics login"));
    assert!(emulator.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// tokens that stay fresh

#[test]
fn a_token_near_expiry_is_refreshed_before_the_action_without_the_user_noticing() {
    let emulator = emulator();
    let temp = TempStore::new();
    let manager = TokenManager::new(host(), &temp.store);
    signed_in(&manager, &emulator);
    let before = temp.store.get("ac").unwrap().unwrap();
    emulator.clear_requests();

    // Four minutes before expiry: inside the five-minute margin.
    let later = TokenManager::new(host(), &temp.store).at_time(before.expires_at.unwrap() - 240);
    let output = later
        .run_action(
            "ac",
            &mut auth_code_connection(&emulator),
            "get-current-user",
            "{}",
        )
        .unwrap();

    assert_eq!(
        json(&output)["userId"],
        emulator.credentials().user_id.as_str()
    );
    let requests = emulator.requests();
    assert!(requests[0].path.ends_with("/token"), "refreshed first");
    let form = String::from_utf8(requests[0].body.clone()).unwrap();
    assert!(form.contains("grant_type=refresh_token"));
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.path.starts_with("/api/data/"))
    );
    let after = temp.store.get("ac").unwrap().unwrap();
    assert_ne!(after.access_token, before.access_token);
    assert_ne!(
        after.refresh_token, before.refresh_token,
        "the rotated refresh token replaced the old one"
    );
}

#[test]
fn an_access_token_the_service_rejects_is_refreshed_once_and_the_action_succeeds() {
    let emulator = emulator();
    let temp = TempStore::new();
    let manager = TokenManager::new(host(), &temp.store);
    signed_in(&manager, &emulator);
    emulator.expire_tokens();
    emulator.clear_requests();

    let output = manager
        .run_action(
            "ac",
            &mut auth_code_connection(&emulator),
            "get-current-user",
            "{}",
        )
        .unwrap();

    assert_eq!(
        json(&output)["userId"],
        emulator.credentials().user_id.as_str()
    );
    let statuses: Vec<String> = emulator
        .requests()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.method,
                r.path.split('?').next().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(statuses[0], "GET /api/data/v9.2/WhoAmI", "{statuses:?}");
    assert!(statuses[1].starts_with("POST ") && statuses[1].ends_with("/token"));
    assert_eq!(statuses[2], "GET /api/data/v9.2/WhoAmI");
}

#[test]
fn a_revoked_refresh_token_gives_unauthenticated_with_a_hint_to_sign_in_again() {
    let emulator = emulator();
    let temp = TempStore::new();
    let manager = TokenManager::new(host(), &temp.store);
    signed_in(&manager, &emulator);
    emulator.revoke_refresh_tokens();
    emulator.expire_tokens();

    let failure = manager
        .run_action(
            "ac",
            &mut auth_code_connection(&emulator),
            "get-current-user",
            "{}",
        )
        .answered()
        .unwrap_err();

    assert_eq!(failure.code, ErrorCode::Unauthenticated);
    assert_eq!(failure.service_code.as_deref(), Some("AADSTS50173"));
    assert!(failure.hint.as_deref().unwrap().contains("sign in again"));
    assert!(
        temp.store.get("ac").unwrap().is_none(),
        "the dead refresh token is forgotten"
    );
}

#[cfg(unix)]
#[test]
fn the_token_store_file_is_owner_only_in_an_owner_only_directory() {
    use std::os::unix::fs::PermissionsExt as _;
    let emulator = emulator();
    let temp = TempStore::new();
    let manager = TokenManager::new(host(), &temp.store);
    manager
        .run_action(
            "cc",
            &mut client_credentials(&emulator),
            "get-current-user",
            "{}",
        )
        .unwrap();

    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(temp.store.path()), 0o600);
    assert_eq!(mode(temp.store.path().parent().unwrap()), 0o700);
    let status = temp.store.status(unix_now()).unwrap();
    assert_eq!(status.len(), 1);
    assert!(status[0].valid);
}

#[test]
fn a_stored_token_is_not_reused_once_the_connection_points_elsewhere() {
    let emulator = emulator();
    let temp = TempStore::new();
    let manager = TokenManager::new(host(), &temp.store);
    manager
        .run_action(
            "cc",
            &mut client_credentials(&emulator),
            "get-current-user",
            "{}",
        )
        .unwrap();

    let moved = field(
        client_credentials(&emulator),
        "webApiUrl",
        &format!("http://localhost:{}", emulator.port()),
    );
    assert!(manager.stored("cc", &moved).unwrap().is_none());
    assert!(
        manager
            .stored("cc", &client_credentials(&emulator))
            .unwrap()
            .is_some()
    );
}

// ---------------------------------------------------------------------------------------------
// Entra errors

#[test]
fn every_entra_error_of_the_issue_yields_its_code_and_a_hint() {
    let emulator = emulator();
    let credentials = emulator.credentials();
    let unconsented_secret = Config::default()
        .apps
        .into_iter()
        .find(|app| app.client_id == credentials.unconsented_client_id)
        .and_then(|app| app.client_secret)
        .unwrap();
    let password = password_connection(&emulator);
    let cases: Vec<(&str, Connection, ErrorCode, &str)> = vec![
        (
            "AADSTS7000215",
            field(
                client_credentials(&emulator),
                "clientSecret",
                "a-secret-id-not-its-value",
            ),
            ErrorCode::Unauthenticated,
            "Value, not its Secret ID",
        ),
        (
            "AADSTS90002",
            field(
                client_credentials(&emulator),
                "tokenUrl",
                &format!(
                    "{}/no-such-tenant.onmicrosoft.com/oauth2/v2.0/token",
                    emulator.base_url()
                ),
            ),
            ErrorCode::Unauthenticated,
            "tenant was not found",
        ),
        (
            "AADSTS700016",
            field(
                client_credentials(&emulator),
                "clientId",
                "0b0b0b0b-1111-2222-3333-444455556666",
            ),
            ErrorCode::Unauthenticated,
            "client) ID was not found",
        ),
        (
            "AADSTS500011",
            field(
                client_credentials(&emulator),
                "webApiUrl",
                "http://127.0.0.2:1",
            ),
            ErrorCode::Unauthenticated,
            "check the Web API URL",
        ),
        (
            "AADSTS65001",
            field(
                field(
                    client_credentials(&emulator),
                    "clientId",
                    &credentials.unconsented_client_id,
                ),
                "clientSecret",
                &unconsented_secret,
            ),
            ErrorCode::Forbidden,
            "admin consent",
        ),
        (
            "AADSTS70011",
            field(
                client_credentials(&emulator),
                "scopes",
                &format!("{}/user_impersonation", emulator.base_url()),
            ),
            ErrorCode::Unauthenticated,
            "scope is not valid",
        ),
        (
            "AADSTS50126",
            field(password.clone(), "password", "not-the-password"),
            ErrorCode::Unauthenticated,
            "user name or password is wrong",
        ),
        (
            "AADSTS50076",
            field(password.clone(), "username", &credentials.mfa_username),
            ErrorCode::Forbidden,
            "use the authorization-code connection",
        ),
        (
            "AADSTS50079",
            field(password.clone(), "username", &credentials.mfa_username),
            ErrorCode::Forbidden,
            "register for multi-factor",
        ),
    ];
    for (code, connection, expected, hint) in cases {
        if code == "AADSTS50079" {
            emulator.require_mfa_registration(&credentials.mfa_username);
        }
        let failure = host().acquire_token(&connection).answered().unwrap_err();
        assert_eq!(failure.service_code.as_deref(), Some(code), "{failure:?}");
        assert_eq!(failure.code, expected, "{code}");
        let said = failure.hint.clone().unwrap_or_default();
        assert!(said.contains(hint), "{code}: hint {said:?}");
        assert!(
            failure.message.contains(code),
            "{code}: {}",
            failure.message
        );
        assert!(matches!(failure.http_status, Some(400 | 401)), "{code}");
    }
}

#[test]
fn a_token_url_on_the_common_endpoint_is_refused_for_app_only_sign_in_before_any_request() {
    let emulator = emulator();
    let connection = field(
        client_credentials(&emulator),
        "tokenUrl",
        "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    );

    let failure = host().acquire_token(&connection).answered().unwrap_err();

    assert_eq!(failure.code, ErrorCode::InvalidInput);
    assert_eq!(failure.field.as_deref(), Some("tokenUrl"));
    assert!(failure.message.contains("tenant ID"));
    assert!(emulator.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// the environment URL, API version, service and cloud

#[test]
fn pasted_environment_urls_normalize_to_one_origin_scope_and_web_api_root() {
    let emulator = emulator();
    let base = emulator.base_url();
    let port = emulator.port();
    // (pasted, expected origin)
    let good = [
        (
            "contoso.crm.dynamics.com",
            "https://contoso.crm.dynamics.com",
        ),
        (
            "https://contoso.crm.dynamics.com",
            "https://contoso.crm.dynamics.com",
        ),
        (
            "https://contoso.crm.dynamics.com/",
            "https://contoso.crm.dynamics.com",
        ),
        (
            "  HTTPS://Contoso.CRM4.Dynamics.com  ",
            "https://contoso.crm4.dynamics.com",
        ),
        (
            "https://contoso.api.crm.dynamics.com",
            "https://contoso.crm.dynamics.com",
        ),
        (
            "https://contoso.crm.dynamics.com/api/data/v9.2/",
            "https://contoso.crm.dynamics.com",
        ),
        (
            "https://contoso.crm.dynamics.com/main.aspx",
            "https://contoso.crm.dynamics.com",
        ),
        (
            "contoso.crm.microsoftdynamics.us",
            "https://contoso.crm.microsoftdynamics.us",
        ),
        (
            "contoso.crm.dynamics.cn/",
            "https://contoso.crm.dynamics.cn",
        ),
    ];
    for (pasted, origin) in good {
        let connection = field(auth_code_connection(&emulator), "webApiUrl", pasted);
        let endpoints = host().endpoints(&connection).unwrap();
        assert_eq!(endpoints[0], origin, "{pasted}");
        let request = host()
            .begin_authorization(&connection, "http://127.0.0.1:1/callback")
            .unwrap();
        let scope = format!("{origin}/user_impersonation offline_access")
            .replace(':', "%3A")
            .replace('/', "%2F")
            .replace(' ', "%20");
        assert!(
            request.url.contains(&format!("scope={scope}")),
            "{pasted}: {}",
            request.url
        );
    }
    // Loopback forms reach the emulator; the connection test shows the root and scope used.
    for pasted in [
        base.clone(),
        format!("{base}/"),
        format!("{base}/api/data/v9.2"),
        format!("127.0.0.1:{port}"),
    ] {
        let connection = field(client_credentials(&emulator), "webApiUrl", &pasted);
        let output = json(&host().test_connection(&connection).unwrap());
        assert_eq!(
            output["webApiRoot"],
            format!("{base}/api/data/v9.2"),
            "{pasted}"
        );
        assert_eq!(output["scope"], format!("{base}/.default"), "{pasted}");
    }

    let bad = [
        ("", "is required"),
        (
            "https://contoso.crm.dynamics.com/?appid=123",
            "query string",
        ),
        (
            "https://contoso.crm.dynamics.com/#main",
            "query string or fragment",
        ),
        ("https://example.com", "not a Dynamics 365 host"),
        (
            "https://dynamics.com.attacker.net/",
            "not a Dynamics 365 host",
        ),
        ("http://contoso.crm.dynamics.com", "must use https"),
        ("https://admin@contoso.crm.dynamics.com", "no valid host"),
        ("https://contoso.crm.dynamics.com/api/data/latest", "v9.2"),
    ];
    emulator.clear_requests();
    for (pasted, says) in bad {
        let connection = field(client_credentials(&emulator), "webApiUrl", pasted);
        let failure = host().acquire_token(&connection).answered().unwrap_err();
        assert_eq!(failure.code, ErrorCode::InvalidInput, "{pasted}");
        assert_eq!(failure.field.as_deref(), Some("webApiUrl"), "{pasted}");
        assert!(
            failure.message.contains("Web API URL"),
            "{}",
            failure.message
        );
        assert!(
            failure.message.contains(says),
            "{pasted}: {}",
            failure.message
        );
        let invoked = host()
            .invoke(
                "get-current-user",
                &field(connected(&emulator), "webApiUrl", pasted),
                "{}",
            )
            .answered()
            .unwrap_err();
        assert_eq!(invoked.field.as_deref(), Some("webApiUrl"), "{pasted}");
    }
    assert!(emulator.requests().is_empty(), "bad input made no request");
}

#[test]
fn the_api_version_input_changes_the_web_api_root() {
    let emulator = emulator();
    let connection = field(connected(&emulator), "apiVersion", "v8.2");

    host()
        .invoke("get-current-user", &connection, "{}")
        .unwrap();
    assert!(
        emulator
            .requests()
            .iter()
            .all(|request| request.path.starts_with("/api/data/v8.2/"))
    );

    let bad = field(connected(&emulator), "apiVersion", "9.2");
    let failure = host()
        .invoke("get-current-user", &bad, "{}")
        .answered()
        .unwrap_err();
    assert_eq!(failure.code, ErrorCode::InvalidInput);
    assert_eq!(failure.field.as_deref(), Some("apiVersion"));
}

#[test]
fn finance_and_operations_uses_the_data_root_with_the_environment_scope() {
    let emulator = emulator();
    let connection = field(connected(&emulator), "service", "finance-operations");

    // The emulator serves Dataverse only, so the /data root is not found there; what matters
    // is where the request went and what the failure tells the user.
    let failure = host().test_connection(&connection).answered().unwrap_err();

    assert_eq!(failure.http_status, Some(404));
    let hint = failure.hint.unwrap();
    assert!(
        hint.contains(&format!("{}/data was not found", emulator.base_url())),
        "{hint}"
    );
    assert!(hint.contains("Service"), "{hint}");
    assert_eq!(emulator.requests()[0].path, "/data/");
    let endpoints = host().endpoints(&connection).unwrap();
    assert_eq!(endpoints, vec![emulator.base_url()]);
    let failure = host()
        .invoke(
            "get-current-user",
            &field(connected(&emulator), "service", "sap"),
            "{}",
        )
        .answered()
        .unwrap_err();
    assert_eq!(failure.field.as_deref(), Some("service"));
}

#[test]
fn national_clouds_get_their_own_authority_for_default_and_tenant_derived_urls() {
    let connection = Connection {
        definition: "oauth2-auth-code".to_string(),
        fields: vec![
            (
                "webApiUrl".to_string(),
                "contoso.crm.microsoftdynamics.us".to_string(),
            ),
            (
                "clientId".to_string(),
                "11111111-2222-3333-4444-555555555555".to_string(),
            ),
        ],
        token: None,
    };
    let request = host()
        .begin_authorization(&connection, "http://127.0.0.1:1/callback")
        .unwrap();
    assert!(
        request
            .url
            .starts_with("https://login.microsoftonline.us/common/oauth2/v2.0/authorize?")
    );
    assert_eq!(
        host().endpoints(&connection).unwrap(),
        vec![
            "https://contoso.crm.microsoftdynamics.us".to_string(),
            "https://login.microsoftonline.us".to_string(),
        ]
    );

    for (environment, authority) in [
        ("contoso.crm.dynamics.cn", "https://login.chinacloudapi.cn"),
        (
            "contoso.crm.appsplatform.us",
            "https://login.microsoftonline.us",
        ),
        (
            "contoso.crm.dynamics.com",
            "https://login.microsoftonline.com",
        ),
    ] {
        let app_only = Connection {
            definition: "oauth2-client-credentials".to_string(),
            fields: vec![
                ("webApiUrl".to_string(), environment.to_string()),
                (
                    "tenantId".to_string(),
                    "contoso.onmicrosoft.com".to_string(),
                ),
                (
                    "clientId".to_string(),
                    "11111111-2222-3333-4444-555555555555".to_string(),
                ),
                ("clientSecret".to_string(), "not-used".to_string()),
            ],
            token: None,
        };
        let endpoints = host().endpoints(&app_only).unwrap();
        assert_eq!(endpoints[1], authority, "{environment}");
    }
}

// ---------------------------------------------------------------------------------------------
// the connection test

#[test]
fn the_connection_test_shows_user_business_unit_root_and_scope() {
    let emulator = emulator();
    let credentials = emulator.credentials();

    let output = json(
        &host()
            .test_connection(&password_connection(&emulator))
            .unwrap(),
    );

    assert_eq!(output["userId"], credentials.user_id.as_str());
    assert_eq!(
        output["businessUnitId"],
        credentials.business_unit_id.as_str()
    );
    assert!(
        output["userName"]
            .as_str()
            .is_some_and(|name| !name.is_empty())
    );
    assert_eq!(output["domainName"], credentials.username.as_str());
    assert!(
        output["businessUnitName"]
            .as_str()
            .is_some_and(|name| !name.is_empty())
    );
    assert_eq!(
        output["webApiRoot"],
        format!("{}/api/data/v9.2", emulator.base_url())
    );
    assert_eq!(
        output["scope"],
        format!("{}/user_impersonation", emulator.base_url())
    );
    assert_eq!(output["cloud"], "local emulator");
    let text = output.to_string();
    assert!(!text.contains(&credentials.password));
}

#[test]
fn the_connection_test_says_to_create_the_application_user_when_the_token_is_refused() {
    let mut config = Config {
        rows_per_table: 5,
        ..Config::default()
    };
    config.apps.push(AppConfig {
        client_id: "7a7a7a7a-1111-2222-3333-444455556666".to_string(),
        client_secret: Some("registered-but-no-app-user".to_string()),
        display_name: "Not an application user".to_string(),
        consented: true,
        redirect_uris: Vec::new(),
    });
    let emulator = Emulator::start(config, 0).unwrap();
    let connection = field(
        field(
            client_credentials(&emulator),
            "clientId",
            "7a7a7a7a-1111-2222-3333-444455556666",
        ),
        "clientSecret",
        "registered-but-no-app-user",
    );

    let failure = host().test_connection(&connection).answered().unwrap_err();

    assert_eq!(failure.code, ErrorCode::Unauthenticated);
    assert_eq!(failure.http_status, Some(401));
    let hint = failure.hint.unwrap();
    assert!(hint.contains("application user"), "{hint}");
    assert!(
        hint.contains("7a7a7a7a-1111-2222-3333-444455556666"),
        "{hint}"
    );
}

#[test]
fn the_connection_test_passes_consent_and_tenant_hints_through() {
    let emulator = emulator();
    let wrong_tenant = field(
        client_credentials(&emulator),
        "tokenUrl",
        &format!(
            "{}/other.onmicrosoft.com/oauth2/v2.0/token",
            emulator.base_url()
        ),
    );
    let failure = host()
        .test_connection(&wrong_tenant)
        .answered()
        .unwrap_err();
    assert_eq!(failure.service_code.as_deref(), Some("AADSTS90002"));
    assert!(failure.hint.unwrap().contains("tenant"));

    let unconsented = field(
        password_connection(&emulator),
        "clientId",
        &emulator.credentials().unconsented_client_id,
    );
    let failure = host().test_connection(&unconsented).answered().unwrap_err();
    assert_eq!(failure.code, ErrorCode::Forbidden);
    assert!(failure.hint.unwrap().contains("admin consent"));
}

// ---------------------------------------------------------------------------------------------
// where secrets may go

#[test]
fn the_bearer_token_goes_only_to_the_environment_and_the_secret_only_to_the_token_host() {
    let emulator = emulator();
    let (host, log) = host_with_memory_log();
    let secret = emulator.credentials().client_secret;
    let elsewhere = Recorder::start(
        200,
        r#"{"token_type":"Bearer","expires_in":3599,"access_token":"token-from-the-other-host"}"#,
    );
    let mut connection = connected(&emulator);
    let token = connection.token.clone().unwrap().access_token;

    // Raw Request aimed at another host, absolute and scheme-relative: refused, nothing sent.
    let port = elsewhere.url.rsplit(':').next().unwrap().to_string();
    for url in [
        format!("{}/steal", elsewhere.url),
        format!("//127.0.0.1:{port}/steal"),
    ] {
        let input = serde_json::json!({"url": url, "method": "GET"}).to_string();
        let failure = host
            .invoke("raw-request", &connection, &input)
            .answered()
            .unwrap_err();
        assert_eq!(failure.field.as_deref(), Some("url"), "{url}");
    }
    assert!(
        elsewhere.requests().is_empty(),
        "nothing reached the other host"
    );

    // The token URL points elsewhere: the rejected token is renewed there, with the secret
    // and without any bearer token; the environment never sees the secret.
    connection = field(
        connection,
        "tokenUrl",
        &format!("{}/tenant/oauth2/v2.0/token", elsewhere.url),
    );
    emulator.expire_tokens();
    let failure = host
        .run_action("get-current-user", &mut connection, "{}")
        .answered()
        .unwrap_err();
    assert_eq!(failure.code, ErrorCode::Unauthenticated);

    let received = elsewhere.requests();
    assert_eq!(received.len(), 1);
    let token_request = &received[0];
    assert!(token_request.starts_with("POST /tenant/oauth2/v2.0/token "));
    assert!(token_request.contains(&format!("client_secret={secret}")));
    assert!(
        !token_request
            .to_ascii_lowercase()
            .contains("authorization:")
    );
    assert!(!token_request.contains(&token));
    for request in emulator.requests() {
        let everything = format!(
            "{} {:?} {}",
            request.path,
            request.headers,
            String::from_utf8_lossy(&request.body)
        );
        assert!(
            !everything.contains(&secret),
            "secret sent to the environment"
        );
        assert!(request.header("authorization").is_some());
    }
    let other_token = "token-from-the-other-host";
    assert!(
        emulator
            .requests()
            .iter()
            .any(|r| r.header("authorization") == Some(&*format!("Bearer {other_token}"))),
        "the renewed token went to the environment"
    );

    let lines = log.lines();
    assert!(!lines.is_empty());
    for line in &lines {
        for value in [&secret, &token, &other_token.to_string()] {
            assert!(!line.message.contains(value.as_str()), "{line:?}");
        }
    }
    let error_text = describe_error(&failure);
    for value in [&secret, &token, &other_token.to_string()] {
        assert!(!error_text.contains(value.as_str()), "{error_text}");
    }
}

#[test]
fn sign_in_secrets_never_reach_logs_or_errors() {
    let emulator = emulator();
    let (host, log) = host_with_memory_log();
    let temp = TempStore::new();
    let manager = TokenManager::new(&host, &temp.store);
    let credentials = emulator.credentials();

    browser_sign_in(&manager, "ac", &auth_code_connection(&emulator), |l| l)
        .1
        .unwrap();
    let stored = temp.store.get("ac").unwrap().unwrap();
    emulator.expire_tokens();
    manager
        .run_action(
            "ac",
            &mut auth_code_connection(&emulator),
            "get-current-user",
            "{}",
        )
        .unwrap();
    let wrong = field(
        password_connection(&emulator),
        "password",
        "Wr0ng-Passw0rd!",
    );
    let failure = host.acquire_token(&wrong).answered().unwrap_err();
    let renewed = temp.store.get("ac").unwrap().unwrap();

    let secrets = [
        credentials.password.clone(),
        "Wr0ng-Passw0rd!".to_string(),
        stored.access_token.clone(),
        stored.refresh_token.clone().unwrap(),
        renewed.access_token.clone(),
        renewed.refresh_token.clone().unwrap(),
    ];
    for line in log.lines() {
        for secret in &secrets {
            assert!(!line.message.contains(secret.as_str()), "{line:?}");
        }
    }
    let text = describe_error(&failure);
    assert!(secrets.iter().all(|secret| !text.contains(secret.as_str())));
    assert!(!format!("{stored:?}").contains(&stored.access_token));
}
