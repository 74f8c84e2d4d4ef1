//! The flow designer's JSON API, driven over HTTP the way its page drives it, with the built
//! component running against the emulator. (The page itself is tested in Chromium by
//! `tests/designer`.)

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dataverse_emulator::Emulator;
use dynamics_host::{Host, TokenStore};
use e2e_tests::{emulator, loopback_config};
use host_harness::designer::{Designer, DesignerOptions};
use serde_json::{Value, json};

fn shared_host() -> Arc<Host> {
    static HOST: OnceLock<Arc<Host>> = OnceLock::new();
    HOST.get_or_init(|| {
        Arc::new(Host::builtin(loopback_config()).expect("the built-in component loads"))
    })
    .clone()
}

struct Fixture {
    emulator: Emulator,
    designer: Designer,
    dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn designer() -> Fixture {
    let emulator = emulator();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "designer-api-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let designer = Designer::start(
        shared_host(),
        DesignerOptions {
            port: 0,
            token_store: TokenStore::open(dir.join("tokens.json")),
            connections_file: dir.join("connections.json"),
            presets: Vec::new(),
            public_webhook_url: None,
        },
    )
    .expect("the designer starts");
    Fixture {
        emulator,
        designer,
        dir,
    }
}

/// One raw HTTP/1.1 exchange, so the tests choose every header (Host, Origin, Content-Type).
fn exchange(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let (status, _, body) = exchange_raw(url, method, path, headers, body);
    (status, body)
}

/// [`exchange`] with the answer's head (status line and headers) too.
fn exchange_raw(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let authority = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = TcpStream::connect(&authority).expect("the designer listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("host: {authority}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn post(fixture: &Fixture, path: &str, body: Value) -> (u16, Value) {
    let (status, text) = exchange(
        &fixture.designer.url(),
        "POST",
        path,
        &[
            ("content-type", "application/json"),
            ("x-designer-key", fixture.designer.key()),
        ],
        &body.to_string(),
    );
    (
        status,
        serde_json::from_str(&text).expect("the API answers JSON"),
    )
}

fn get(fixture: &Fixture, path: &str) -> (u16, Value) {
    let (status, text) = exchange(
        &fixture.designer.url(),
        "GET",
        path,
        &[("x-designer-key", fixture.designer.key())],
        "",
    );
    (
        status,
        serde_json::from_str(&text).expect("the API answers JSON"),
    )
}

/// The events whose flow has finished, long-polling the event list until there is one (or the
/// designer's waits run out).
fn finished_events(fixture: &Fixture) -> Vec<Value> {
    let mut revision = 0;
    for _ in 0..20 {
        let (_, events) = get(fixture, &format!("/api/events?after={revision}"));
        revision = events["revision"].as_u64().unwrap();
        let finished: Vec<Value> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["status"] != "running")
            .cloned()
            .collect();
        if !finished.is_empty() {
            return finished;
        }
    }
    Vec::new()
}

fn add_emulator_connection(fixture: &Fixture) {
    let credentials = fixture.emulator.credentials();
    let fields: BTreeMap<String, String> = [
        ("webApiUrl", fixture.emulator.base_url()),
        ("tokenUrl", fixture.emulator.token_url()),
        ("clientId", credentials.client_id),
        ("clientSecret", credentials.client_secret),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let (status, body) = post(
        fixture,
        "/api/connections",
        json!({"name": "emu", "type": "oauth2-client-credentials", "fields": fields}),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_flow_creates_an_account_then_a_contact_bound_to_it() {
    let fixture = designer();
    add_emulator_connection(&fixture);
    let (status, body) = post(
        &fixture,
        "/api/flows/run",
        json!({
            "connection": "emu",
            "flow": {
                "name": "account with contact",
                "steps": [
                    {"name": "account", "action": "create-entity",
                     "input": {"entityType": "accounts", "fieldValues": {"name": "Designer API Co"}}},
                    {"name": "contact", "action": "create-entity",
                     "input": {"entityType": "contacts", "dynamicValues": {
                        "lastname": "Okafor",
                        "jobtitle": "buyer at {{account.id}}",
                        "parentcustomerid_account": {"table": "accounts", "id": "{{account.id}}"}}}},
                    {"name": "check", "action": "get-entity",
                     "input": {"entityType": "contacts", "entityId": "{{contact.id}}",
                               "fieldNames": ["lastname", "_parentcustomerid_value"]}}
                ]
            }
        }),
    );
    assert_eq!(status, 200, "{body}");
    let steps = body["steps"].as_array().unwrap();
    let statuses: Vec<&str> = steps
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "succeeded", "succeeded"], "{body}");
    let account_id = steps[0]["output"]["id"].as_str().unwrap();
    assert_eq!(
        steps[1]["input"]["dynamicValues"]["parentcustomerid_account"]["id"], account_id,
        "the reference was resolved before the step ran"
    );
    assert_eq!(steps[2]["output"]["_parentcustomerid_value"], account_id);
    let contact = fixture
        .emulator
        .table("contacts")
        .into_iter()
        .find(|row| row["lastname"] == "Okafor")
        .expect("the contact is in the emulator");
    assert_eq!(contact["_parentcustomerid_value"], account_id);
    assert_eq!(contact["jobtitle"], format!("buyer at {account_id}"));
}

#[test]
fn a_bad_reference_fails_its_step_before_any_request_and_skips_the_rest() {
    let fixture = designer();
    add_emulator_connection(&fixture);
    // Warm up the token so the count below is only the flow's requests.
    let (status, _) = post(&fixture, "/api/connections/emu/test", json!({}));
    assert_eq!(status, 200);
    fixture.emulator.clear_requests();
    let (status, body) = post(
        &fixture,
        "/api/flows/run",
        json!({
            "connection": "emu",
            "flow": {"steps": [
                {"name": "contact", "action": "create-entity",
                 "input": {"entityType": "contacts", "fieldValues": {"lastname": "{{acount.name}}"}}},
                {"name": "later", "action": "get-current-user", "input": {}}
            ]}
        }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["steps"][0]["status"], "failed");
    assert_eq!(body["steps"][1]["status"], "skipped");
    let message = body["steps"][0]["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "step \"contact\": fieldValues: lastname: {{acount.name}} refers to \"acount\""
        ),
        "{message}"
    );
    assert!(fixture.emulator.requests().is_empty(), "nothing was sent");
}

#[test]
fn a_flow_that_cannot_run_is_refused_naming_the_field() {
    let fixture = designer();
    add_emulator_connection(&fixture);
    let cases = [
        (
            json!({"steps": [{"name": "a", "action": "create-entiti"}]}),
            "steps[0].action",
        ),
        (
            json!({"steps": [{"name": "a", "action": "get-current-user"}, {"name": "a", "action": "get-current-user"}]}),
            "steps[1].name",
        ),
        (json!({"steps": []}), "steps"),
        (json!({"stepz": []}), "flow"),
    ];
    for (flow, field) in cases {
        let (status, body) = post(
            &fixture,
            "/api/flows/run",
            json!({"connection": "emu", "flow": flow}),
        );
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "invalid-input");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (status, body) = post(
        &fixture,
        "/api/flows/run",
        json!({"connection": "nope", "flow": {"steps": [{"name": "a", "action": "get-current-user"}]}}),
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "connection");
}

#[test]
fn connections_keep_their_secrets_and_bad_fields_are_named() {
    let fixture = designer();
    add_emulator_connection(&fixture);
    let secret = fixture.emulator.credentials().client_secret;
    let (status, body) = get(&fixture, "/api/connections");
    assert_eq!(status, 200);
    assert!(!body.to_string().contains(&secret), "{body}");
    assert_eq!(body[0]["fields"]["clientSecret"], json!({"set": true}));
    assert_eq!(
        body[0]["fields"]["clientId"],
        fixture.emulator.credentials().client_id
    );

    // Editing without retyping the secret keeps it: the connection still works.
    let (status, _) = post(
        &fixture,
        "/api/connections",
        json!({"name": "emu", "type": "oauth2-client-credentials", "fields": {
            "webApiUrl": fixture.emulator.base_url(),
            "tokenUrl": fixture.emulator.token_url(),
            "clientId": fixture.emulator.credentials().client_id,
            "clientSecret": ""
        }}),
    );
    assert_eq!(status, 200);
    let (status, body) = post(&fixture, "/api/connections/emu/test", json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"]["businessUnitName"], "emulator");
    let saved = std::fs::read_to_string(fixture.dir.join("connections.json")).unwrap();
    assert!(saved.contains(&secret), "the harness keeps the secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(fixture.dir.join("connections.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let cases = [
        (
            json!({"name": "x", "type": "oauth2-client-credentials", "fields": {"webApiUrl": "https://contoso.crm.dynamics.com"}}),
            "clientId",
        ),
        (
            json!({"name": "x", "type": "oauth2-client-credentials", "fields": {"webApiUrl": "https://contoso.crm.dynamics.com", "clientId": "a", "clientSecret": "b", "colour": "red"}}),
            "colour",
        ),
        (
            json!({"name": "x", "type": "oauth2-client-credentials", "fields": {"webApiUrl": "not a url", "clientId": "a", "clientSecret": "b"}}),
            "webApiUrl",
        ),
        (
            json!({"name": "x", "type": "oauth2-device-code", "fields": {}}),
            "type",
        ),
        (
            json!({"name": "", "type": "oauth2-client-credentials", "fields": {}}),
            "name",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = post(&fixture, "/api/connections", body);
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let (_, body) = get(&fixture, "/api/connections");
    assert_eq!(body.as_array().unwrap().len(), 1, "nothing bad was saved");
}

#[test]
fn only_the_designers_own_pages_can_use_the_api() {
    let fixture = designer();
    add_emulator_connection(&fixture);
    fixture.emulator.clear_requests();
    let url = fixture.designer.url();
    let run = json!({"connection": "emu", "action": "create-entity",
                     "input": {"entityType": "accounts", "fieldValues": {"name": "Forged"}}})
    .to_string();
    let key = fixture.designer.key();
    let wrong_key = "0".repeat(key.len());
    let json_body = ("content-type", "application/json");
    // (what the request is, its headers, the status it gets)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);
    let refused: [Case; 5] = [
        // Without the designer's key (another local user, a request through a tunnel).
        ("no key", vec![json_body], 401),
        (
            "a wrong key",
            vec![json_body, ("x-designer-key", &wrong_key)],
            401,
        ),
        // A cross-site form post (no JSON content type).
        (
            "a form post",
            vec![("content-type", "text/plain"), ("x-designer-key", key)],
            415,
        ),
        // A script on another origin.
        (
            "another origin",
            vec![
                json_body,
                ("origin", "https://evil.example"),
                ("x-designer-key", key),
            ],
            403,
        ),
        // A page that rebound its DNS name to 127.0.0.1.
        (
            "a rebound host name",
            vec![json_body, ("host", "evil.example"), ("x-designer-key", key)],
            421,
        ),
    ];
    for (case, headers, expected) in refused {
        let (status, body) = exchange(&url, "POST", "/api/run", &headers, &run);
        assert_eq!(status, expected, "{case}: {body}");
    }
    assert!(fixture.emulator.requests().is_empty(), "nothing was sent");
    assert!(
        !fixture
            .emulator
            .table("accounts")
            .iter()
            .any(|row| row["name"] == "Forged")
    );
    // The page itself works.
    let origin = url.trim_end_matches('/').to_string();
    let (status, body) = exchange(
        &url,
        "POST",
        "/api/run",
        &[
            ("content-type", "application/json"),
            ("origin", &origin),
            ("x-designer-key", key),
        ],
        &run,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_definition_and_choices_come_from_the_component() {
    let fixture = designer();
    add_emulator_connection(&fixture);
    let (status, definition) = get(&fixture, "/api/definition");
    assert_eq!(status, 200);
    let query = definition["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "query-entities")
        .unwrap();
    let fields = query["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "fieldNames")
        .unwrap();
    assert_eq!(fields["type"], "string-list");
    assert_eq!(fields["dataSource"], "columns");
    assert_eq!(
        definition["connections"][0]["kind"],
        "oauth2-authorization-code"
    );
    let (status, body) = post(
        &fixture,
        "/api/choices",
        json!({"connection": "emu", "dataSource": "columns", "input": {"entityType": "accounts"}}),
    );
    assert_eq!(status, 200, "{body}");
    let values: Vec<&str> = body["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert!(
        values.contains(&"name") && values.contains(&"accountnumber"),
        "{values:?}"
    );
    let (status, body) = post(
        &fixture,
        "/api/choices",
        json!({"connection": "emu", "dataSource": "columns", "input": {}}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "entityType");
}

#[test]
fn a_webhook_event_runs_the_armed_flow_and_stopping_unregisters() {
    let fixture = designer();
    add_emulator_connection(&fixture);
    let (status, body) = post(
        &fixture,
        "/api/trigger/start",
        json!({
            "connection": "emu",
            "trigger": "webhook",
            "config": {"entityType": "account", "messages": ["Create"]},
            "flow": {"name": "greet", "steps": [
                {"name": "greeting", "action": "create-entity",
                 "input": {"entityType": "contacts", "fieldValues": {"lastname": "Hi {{trigger.attributes.name}}"}}}
            ]}
        }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["armed"], true);
    // Without the registration's key a request is refused.
    let (status, _) = exchange(
        &fixture.designer.url(),
        "POST",
        host_harness::designer::WEBHOOK_PATH,
        &[("content-type", "application/json")],
        "{}",
    );
    assert_eq!(status, 401);

    let connection = e2e_tests::connected(&fixture.emulator);
    e2e_tests::host()
        .invoke(
            "create-entity",
            &connection,
            &json!({"entityType": "accounts", "fieldValues": {"name": "Webhook Co"}}).to_string(),
        )
        .unwrap();
    let finished = finished_events(&fixture);
    let event = finished
        .first()
        .expect("the event arrived and its flow ran");
    assert_eq!(event["status"], "succeeded", "{event}");
    assert_eq!(event["event"]["message"], "Create");
    assert_eq!(
        event["steps"][0]["input"]["fieldValues"]["lastname"],
        "Hi Webhook Co"
    );
    assert!(
        fixture
            .emulator
            .table("contacts")
            .iter()
            .any(|row| row["lastname"] == "Hi Webhook Co")
    );

    assert_eq!(fixture.emulator.table("serviceendpoints").len(), 1);
    let (status, body) = post(&fixture, "/api/trigger/stop", json!({}));
    assert_eq!(status, 200);
    assert_eq!(body["stopped"], true);
    assert!(fixture.emulator.table("serviceendpoints").is_empty());
    assert!(
        !fixture
            .emulator
            .table("sdkmessageprocessingsteps")
            .iter()
            .any(|step| step["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("dynamics-connector")))
    );
}

#[test]
fn a_polled_new_row_runs_the_armed_flow_and_stopping_ends_the_polls() {
    let fixture = designer();
    add_emulator_connection(&fixture);
    let (status, body) = post(
        &fixture,
        "/api/trigger/start",
        json!({"connection": "emu", "trigger": "new-and-updated-records", "intervalSeconds": 0,
               "config": {"entityType": "accounts"}, "flow": {"steps": [{"name": "a", "action": "get-current-user"}]}}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "intervalSeconds");

    // Only rows modified from now on: the seeded ones are older.
    let since = dataverse::encoding::iso_datetime(dynamics_host::tokens::unix_now() as i64 - 1);
    let (status, body) = post(
        &fixture,
        "/api/trigger/start",
        json!({
            "connection": "emu",
            "trigger": "new-and-updated-records",
            "intervalSeconds": 1,
            "config": {"entityType": "accounts", "fieldNames": ["name"], "anchorDate": since},
            "flow": {"name": "follow up", "steps": [
                {"name": "task", "action": "create-entity",
                 "input": {"entityType": "contacts", "fieldValues": {"lastname": "Polled {{trigger.record.name}}"}}}
            ]}
        }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["intervalSeconds"], 1);

    let connection = e2e_tests::connected(&fixture.emulator);
    e2e_tests::host()
        .invoke(
            "create-entity",
            &connection,
            &json!({"entityType": "accounts", "fieldValues": {"name": "Polled Co"}}).to_string(),
        )
        .unwrap();
    let finished = finished_events(&fixture);
    assert_eq!(
        finished.len(),
        1,
        "one event for the one new row: {finished:?}"
    );
    assert_eq!(finished[0]["status"], "succeeded", "{}", finished[0]);
    assert_eq!(finished[0]["event"]["record"]["name"], "Polled Co");
    assert!(
        fixture
            .emulator
            .table("contacts")
            .iter()
            .any(|row| row["lastname"] == "Polled Polled Co")
    );

    let (_, body) = post(&fixture, "/api/trigger/stop", json!({}));
    assert_eq!(body["stopped"], true);
    std::thread::sleep(Duration::from_millis(200));
    fixture.emulator.clear_requests();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        fixture.emulator.requests().is_empty(),
        "no polls after stopping"
    );
}

#[test]
fn the_opening_link_keeps_the_key_as_a_cookie_for_the_page() {
    let fixture = designer();
    let url = fixture.designer.url();
    let open = fixture.designer.open_url();
    let target = open.trim_start_matches(url.trim_end_matches('/'));
    let (status, head, _) = exchange_raw(&url, "GET", target, &[], "");
    assert_eq!(status, 303);
    assert!(head.contains("\r\nlocation: /\r\n"), "{head}");
    let cookie = head
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .expect("a cookie")
        .to_string();
    assert!(
        cookie.contains("httponly") && cookie.contains("samesite=lax"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let (status, body) = exchange(&url, "GET", "/api/connections", &[("cookie", &pair)], "");
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = exchange_raw(&url, "GET", "/?key=not-the-key", &[], "");
    assert_eq!(status, 403);
    // The page itself loads without the key (it holds nothing secret) and says what to do.
    let (status, body) = exchange(&url, "GET", "/", &[], "");
    assert_eq!(status, 200);
    assert!(body.contains("<script src=\"/app.js\""));
}

#[test]
fn a_sign_in_answer_that_was_not_started_here_is_refused() {
    let fixture = designer();
    let url = fixture.designer.url();
    for query in [
        "/callback?code=abc&state=forged",
        "/callback?error=access_denied&state=forged",
        "/callback?code=abc",
    ] {
        let (status, head, _) = exchange_raw(&url, "GET", query, &[], "");
        assert_eq!(status, 303);
        assert!(
            head.contains(
                "location: /#connections/sign-in-failed/the%20sign-in%20answer%20did%20not%20match%20a%20sign-in%20started%20here"
            ),
            "{head}"
        );
    }
}

#[test]
fn a_saved_secret_does_not_follow_the_connection_to_other_urls() {
    let fixture = designer();
    add_emulator_connection(&fixture);
    let credentials = fixture.emulator.credentials();
    let (status, body) = post(
        &fixture,
        "/api/connections",
        json!({"name": "emu", "type": "oauth2-client-credentials", "fields": {
            "webApiUrl": fixture.emulator.base_url(),
            "tokenUrl": "https://login.example.net/steal/oauth2/v2.0/token",
            "clientId": credentials.client_id,
            "clientSecret": ""
        }}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "clientSecret");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("type Client secret value again"),
        "{body}"
    );
    // Typing it again is fine.
    let (status, _) = post(
        &fixture,
        "/api/connections",
        json!({"name": "emu", "type": "oauth2-client-credentials", "fields": {
            "webApiUrl": fixture.emulator.base_url(),
            "tokenUrl": fixture.emulator.token_url(),
            "tenantId": "contoso.onmicrosoft.com",
            "clientId": credentials.client_id,
            "clientSecret": credentials.client_secret
        }}),
    );
    assert_eq!(status, 200);
}

#[test]
fn malformed_requests_are_refused_before_anything_runs() {
    let fixture = designer();
    let url = fixture.designer.url();
    let key = fixture.designer.key();
    let long = "x".repeat(9 << 10);
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("x-long", &long)], "longer than 8 KiB"),
        (
            &[("transfer-encoding", "chunked")],
            "chunked bodies are not supported",
        ),
        (&[("content-length", "ten")], "is not a number"),
    ];
    for (headers, expected) in cases {
        let mut all = vec![
            ("content-type", "application/json"),
            ("x-designer-key", key),
        ];
        all.extend_from_slice(headers);
        let authority = url.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = TcpStream::connect(authority).unwrap();
        let mut request = format!("POST /api/flows/run HTTP/1.1\r\nhost: {authority}\r\n");
        for (name, value) in &all {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains(expected), "{answer}");
    }
}
