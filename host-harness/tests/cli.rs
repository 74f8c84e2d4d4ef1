//! The `dynamics` command as a person uses it.

use std::process::{Command, Output};

use dataverse_emulator::{Config, Emulator};

fn dynamics(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dynamics"))
        .args(args)
        .env("XDG_STATE_HOME", private_state_home())
        .output()
        .expect("the CLI runs")
}

/// Where tokens go when a test names no store: never the real user's state directory.
fn private_state_home() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("dynamics-cli-state-{}", std::process::id()))
}

/// An emulator with five rows per table.
fn small_emulator() -> Emulator {
    Emulator::start(
        Config {
            rows_per_table: 5,
            ..Config::default()
        },
        0,
    )
    .unwrap()
}

/// An empty directory of this test run under the system temp dir.
fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn connection_file(emulator: &Emulator) -> tempfile_path::TempFile {
    let credentials = emulator.credentials();
    let json = serde_json::json!({
        "type": "oauth2-client-credentials",
        "fields": {
            "webApiUrl": emulator.base_url(),
            "tokenUrl": emulator.token_url(),
            "clientId": credentials.client_id,
            "clientSecret": credentials.client_secret,
        }
    });
    tempfile_path::TempFile::with_contents(&json.to_string())
}

/// A file under the system temp dir, removed on drop.
mod tempfile_path {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    pub struct TempFile(pub PathBuf);

    impl TempFile {
        pub fn with_contents(contents: &str) -> TempFile {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "dynamics-cli-{}-{}.json",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let path = std::env::temp_dir().join(name);
            std::fs::write(&path, contents).expect("temp file written");
            TempFile(path)
        }

        pub fn arg(&self) -> &str {
            self.0.to_str().expect("utf-8 temp path")
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn actions_lists_every_action_with_its_group() {
    let output = dynamics(&["actions"]);
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    assert!(stdout.lines().count() >= 20);
    assert!(stdout.lines().any(|line| line.starts_with("sync-records")));
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("get-current-user") && line.contains("CRM"))
    );
}

#[test]
fn describe_shows_inputs_defaults_and_comments() {
    let output = dynamics(&["describe", "query-entities"]);
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    assert!(stdout.contains("recordsPerPage"));
    assert!(stdout.contains("default: 100"));
    assert!(stdout.contains("The number of record to retrieve per page"));

    let unknown = dynamics(&["describe", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("unknown action \"nope\""));
}

#[test]
fn invoke_prints_the_action_output_as_json() {
    let emulator = small_emulator();
    let connection = connection_file(&emulator);
    let output = dynamics(&[
        "invoke",
        "get-current-user",
        "--allow-private",
        "-c",
        connection.arg(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        value["userId"],
        emulator.credentials().application_user_id.as_str()
    );
}

#[test]
fn a_failed_action_prints_code_message_and_hint_and_exits_non_zero() {
    let emulator = small_emulator();
    let connection = connection_file(&emulator);
    let input = r#"{"url": "accounts(00000000-0000-0000-0000-0000000000ff)", "method": "GET"}"#;
    let output = dynamics(&[
        "invoke",
        "raw-request",
        "--allow-private",
        "-c",
        connection.arg(),
        "--input-json",
        input,
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with("not-found: "), "{stderr}");
    assert!(stderr.contains("(HTTP 404, 0x80040217)"), "{stderr}");
    assert!(stderr.contains("hint: no record has that ID"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn a_missing_connection_file_is_an_error_a_person_can_act_on() {
    let output = dynamics(&[
        "invoke",
        "get-current-user",
        "-c",
        "/nonexistent/connection.json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("reading connection file /nonexistent/connection.json"));
}

#[test]
fn manifest_check_accepts_the_checked_in_file() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../component.yaml");
    let output = dynamics(&["manifest", "--check", path]);
    assert!(output.status.success(), "{}", text(&output.stderr));
}

fn auth_code_connection_file(emulator: &Emulator) -> tempfile_path::TempFile {
    let json = serde_json::json!({
        "name": "emulator-user",
        "type": "oauth2-auth-code",
        "fields": {
            "webApiUrl": emulator.base_url(),
            "clientId": emulator.credentials().public_client_id,
            "authorizeUrl": emulator.authorize_url(),
            "tokenUrl": emulator.token_url(),
        }
    });
    tempfile_path::TempFile::with_contents(&json.to_string())
}

/// A plain GET without following redirects: the status line and the Location header.
fn get_without_redirect(url: &str) -> (String, Option<String>) {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or_default().to_string();
    let location = response.lines().find_map(|line| {
        line.to_ascii_lowercase()
            .starts_with("location:")
            .then(|| line["location:".len()..].trim().to_string())
    });
    (status, location)
}

#[test]
fn invoke_keeps_tokens_in_an_owner_only_store_and_status_shows_expiry_but_never_a_token() {
    let emulator = small_emulator();
    let connection = connection_file(&emulator);
    let store_dir = fresh_dir("dynamics-cli-store");
    let store = store_dir.join("tokens.json");
    let store_arg = store.to_str().unwrap();

    for _ in 0..2 {
        let output = dynamics(&[
            "invoke",
            "get-current-user",
            "--allow-private",
            "--token-store",
            store_arg,
            "-c",
            connection.arg(),
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let token_requests = emulator
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/token"))
        .count();
    assert_eq!(token_requests, 1, "the second run used the stored token");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mode = std::fs::metadata(&store_dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&store).unwrap()).unwrap();
    let entry = stored["connections"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    let access_token = entry["accessToken"].as_str().unwrap().to_string();

    let status = dynamics(&["status", "--token-store", store_arg]);
    assert!(status.status.success());
    let stdout = text(&status.stdout);
    let canonical = std::fs::canonicalize(&connection.0).unwrap();
    assert!(stdout.contains(canonical.to_str().unwrap()), "{stdout}");
    assert!(stdout.contains("oauth2-client-credentials"));
    assert!(stdout.contains(&emulator.base_url()));
    assert!(
        stdout.contains("valid") && stdout.contains("UTC"),
        "{stdout}"
    );
    assert!(!stdout.contains(&access_token), "status printed a token");
    assert!(!text(&status.stderr).contains(&access_token));

    let logout = dynamics(&["logout", "--token-store", store_arg, "-c", connection.arg()]);
    assert!(logout.status.success());
    let status = dynamics(&["status", "--token-store", store_arg]);
    assert!(text(&status.stdout).contains("no connection holds tokens"));
    let _ = std::fs::remove_dir_all(&store_dir);
}

#[test]
fn login_prints_the_url_takes_the_loopback_redirect_and_stores_the_tokens() {
    use std::io::BufRead as _;
    let emulator = small_emulator();
    let connection = auth_code_connection_file(&emulator);
    let store_dir = fresh_dir("dynamics-cli-login");
    let store = store_dir.join("tokens.json");
    let store_arg = store.to_str().unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_dynamics"))
        .args([
            "login",
            "--allow-private",
            "--token-store",
            store_arg,
            "--timeout-secs",
            "30",
            "-c",
            connection.arg(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let url = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "login ended early: {printed}"
        );
        printed.push_str(&line);
        if line.starts_with("http://") {
            break line.trim().to_string();
        }
    };
    assert!(url.starts_with(&emulator.authorize_url()), "{url}");
    assert!(url.contains("code_challenge_method=S256"));
    assert!(url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"));

    let (status, location) = get_without_redirect(&url);
    assert!(status.contains(" 302 "), "{status}");
    let location = location.unwrap();
    assert!(location.contains("/callback?code="), "{location}");
    let (status, _) = get_without_redirect(&location);
    assert!(status.contains(" 200 "), "{status}");

    let finished = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(finished.status.success(), "{}", text(&finished.stderr));
    assert!(
        rest.contains("Signed in. Tokens for emulator-user stored"),
        "{rest}"
    );

    let stored = std::fs::read_to_string(&store).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let entry = &stored["connections"]["emulator-user"];
    let secrets = [
        entry["accessToken"].as_str().unwrap(),
        entry["refreshToken"].as_str().unwrap(),
    ];
    let status = dynamics(&["status", "--token-store", store_arg]);
    let listing = text(&status.stdout);
    assert!(listing.contains("emulator-user"));
    assert!(listing.contains("valid, renews by itself"), "{listing}");
    for secret in secrets {
        assert!(!listing.contains(secret) && !printed.contains(secret) && !rest.contains(secret));
    }

    let output = dynamics(&[
        "invoke",
        "get-current-user",
        "--allow-private",
        "--token-store",
        store_arg,
        "-c",
        connection.arg(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["userId"], emulator.credentials().user_id.as_str());
    let _ = std::fs::remove_dir_all(&store_dir);
}

#[test]
fn test_connection_prints_the_user_business_unit_and_web_api_root() {
    let emulator = small_emulator();
    let connection = connection_file(&emulator);
    let store_dir = std::env::temp_dir().join(format!("dynamics-cli-test-{}", std::process::id()));
    let store = store_dir.join("tokens.json");

    let output = dynamics(&[
        "test-connection",
        "--allow-private",
        "--token-store",
        store.to_str().unwrap(),
        "-c",
        connection.arg(),
    ]);

    assert!(output.status.success(), "{}", text(&output.stderr));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        value["userId"],
        emulator.credentials().application_user_id.as_str()
    );
    assert!(value["businessUnitName"].is_string());
    assert_eq!(
        value["webApiRoot"],
        format!("{}/api/data/v9.2", emulator.base_url())
    );
    let _ = std::fs::remove_dir_all(&store_dir);
}

#[test]
fn poll_prints_one_event_per_new_row_and_keeps_its_state() {
    let emulator = small_emulator();
    let connection = connection_file(&emulator);
    let state =
        std::env::temp_dir().join(format!("dynamics-poll-state-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&state);
    let config =
        r#"{"entityType": "accounts", "anchorDate": "2000-01-01", "fieldNames": ["name"]}"#;
    let state_arg = state.to_str().unwrap();
    let args = [
        "poll",
        "--allow-private",
        "-c",
        connection.arg(),
        "--config",
        config,
        "--polls",
        "1",
        "--state",
        state_arg,
    ];
    let first = dynamics(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let events: Vec<serde_json::Value> = text(&first.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.len(), emulator.table("accounts").len());
    assert!(
        events
            .iter()
            .all(|event| event["table"] == "accounts" && event["id"].as_str().is_some())
    );
    let second = dynamics(&args);
    assert!(second.status.success());
    assert!(
        text(&second.stdout).trim().is_empty(),
        "the saved state means nothing is new"
    );
    let _ = std::fs::remove_file(&state);
}

/// A JSON request to the designer's API, as its page sends it.
fn designer_post(
    url: &str,
    key: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .header("x-designer-key", key)
        .send(body.to_string())
        .expect("the designer answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

#[test]
fn designer_unregisters_its_webhook_when_stopped_with_ctrl_c() {
    use std::io::BufRead as _;
    let emulator = small_emulator();
    let dir = fresh_dir("dynamics-designer-cli");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynamics"))
        .args(["--allow-private", "--token-store"])
        .arg(dir.join("tokens.json"))
        .args(["designer", "--no-emulator", "--port", "0", "--connections"])
        .arg(dir.join("connections.json"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Whatever happens below, the designer does not outlive the test.
    let stdout = child.stdout.take().unwrap();
    let mut child = Reaper(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let link = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("designer: ").map(str::to_string))
        .expect("the designer prints its URL");
    let (url, key) = link.split_once("?key=").expect("the link carries the key");
    let credentials = emulator.credentials();
    let (status, body) = designer_post(
        url,
        key,
        "api/connections",
        serde_json::json!({"name": "emu", "type": "oauth2-client-credentials", "fields": {
            "webApiUrl": emulator.base_url(), "tokenUrl": emulator.token_url(),
            "clientId": credentials.client_id, "clientSecret": credentials.client_secret}}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = designer_post(
        url,
        key,
        "api/trigger/start",
        serde_json::json!({"connection": "emu", "trigger": "webhook",
            "config": {"entityType": "account", "messages": ["Create"]},
            "flow": {"steps": [{"name": "me", "action": "get-current-user"}]}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(emulator.table("serviceendpoints").len(), 1);

    let interrupted = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let exit = child.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(
        emulator.table("serviceendpoints").is_empty(),
        "the registration is removed on the way out"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills and reaps a child the test started, whatever the test's outcome.
struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `raw` to `authority` and reads the whole answer.
fn send_raw(authority: &str, raw: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// A Dataverse delivery's body: the fields every RemoteExecutionContext has.
const CONTEXT: &str = r#"{"MessageName": "Create", "PrimaryEntityName": "account", "PrimaryEntityId": "6d81597f-0f9f-e711-8122-000d3aa2331c", "OperationId": "4af10637-4ea2-e711-8122-000d3aa2331c", "Depth": 1}"#;

fn webhook_post(target: &str, content_type: &str) -> String {
    format!(
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{CONTEXT}",
        CONTEXT.len()
    )
}

/// Starts `dynamics serve-webhooks` with `args` and waits for the URL it serves.
fn serve_webhooks(
    args: &[&str],
) -> (
    Reaper,
    String,
    std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
) {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynamics"))
        .arg("serve-webhooks")
        .args(args)
        .env("XDG_STATE_HOME", private_state_home())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Reaper(child);
    let mut lines = std::io::BufReader::new(stderr).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("serving webhooks at ")
                .map(str::to_string)
        })
        .expect("serve-webhooks prints its URL");
    (child, url, lines)
}

#[test]
fn serve_webhooks_refuses_a_config_the_trigger_would_refuse_and_serves_nothing() {
    let cases = [
        ("{nope", "input \"input\": is not valid JSON"),
        ("[]", "field: input"),
        ("{}", "field: webhookKey"),
        (r#"{"authType": "WebhookKey"}"#, "field: webhookKey"),
        (r#"{"authType": "None"}"#, "field: authType"),
        (r#"{"authType": "HttpHeader"}"#, "field: authValues"),
        (
            r#"{"authType": "HttpQueryString", "authValues": {}}"#,
            "field: authValues",
        ),
        (
            r#"{"webhookKey": "k", "entityTyp": "account"}"#,
            "field: entityTyp",
        ),
    ];
    for (config, field) in cases {
        let started = std::time::Instant::now();
        let output = dynamics(&["serve-webhooks", "--config", config, "--seconds", "20"]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{config}: {stderr}");
        assert!(
            stderr.starts_with("--config: invalid-input: "),
            "{config}: {stderr}"
        );
        assert!(stderr.contains(field), "{config}: {stderr}");
        assert!(!stderr.contains("serving webhooks"), "{config}: {stderr}");
        assert!(output.stdout.is_empty());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{config} was served"
        );
    }
}

#[test]
fn serve_webhooks_answers_deliveries_on_its_path_and_prints_their_events() {
    use std::io::BufRead as _;
    let config = r#"{"webhookKey": "cli-hook-key"}"#;
    let (mut child, url, _stderr) =
        serve_webhooks(&["--config", config, "--port", "0", "--seconds", "60"]);
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    assert_eq!(path, "/webhooks/dynamics");

    let answer = send_raw(
        authority,
        &webhook_post(
            &format!("{path}?code=cli-hook-key"),
            "application/json; charset=utf-8",
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let mut event = String::new();
    stdout.read_line(&mut event).unwrap();
    let event: serde_json::Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["message"], "Create");
    assert_eq!(event["recordId"], "6d81597f-0f9f-e711-8122-000d3aa2331c");

    let refusals = [
        (format!("{path}?code=wrong"), "application/json", " 401 "),
        (
            "/other?code=cli-hook-key".to_string(),
            "application/json",
            " 404 ",
        ),
        (
            format!("{path}?code=cli-hook-key"),
            "application/jsonx",
            " 415 ",
        ),
        (format!("{path}?code=cli-hook-key"), "text/json", " 415 "),
    ];
    for (target, content_type, status) in refusals {
        let answer = send_raw(authority, &webhook_post(&target, content_type));
        assert!(
            answer.starts_with(&format!("HTTP/1.1{status}")),
            "{target} {content_type}: {answer}"
        );
    }
    let answer = send_raw(
        authority,
        &format!(
            "POST {path}?code=cli-hook-key HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: {}\r\n\r\n{CONTEXT}",
            CONTEXT.len()
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let answer = send_raw(
        authority,
        &format!(
            "POST {path}?code=cli-hook-key HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{CONTEXT}"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    // None of the refused requests became an event.
    drop(child);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.is_empty(), "{rest}");
}

#[test]
fn serve_webhooks_registers_without_a_key_and_accepts_the_deliveries_it_generated_a_key_for() {
    use std::io::BufRead as _;
    let emulator = small_emulator();
    let connection = connection_file(&emulator);
    let config = r#"{"entityType": "accounts", "messages": ["Create"]}"#;
    let (mut child, _url, mut stderr) = serve_webhooks(&[
        "--allow-private",
        "--register",
        "-c",
        connection.arg(),
        "--config",
        config,
        "--seconds",
        "20",
    ]);
    let registered = stderr
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.starts_with("registered with the environment"));
    assert!(registered.is_some(), "the trigger registered itself");
    assert_eq!(emulator.table("serviceendpoints").len(), 1);

    let created = dynamics(&[
        "invoke",
        "create-entity",
        "--allow-private",
        "-c",
        connection.arg(),
        "--input-json",
        r#"{"entityType": "accounts", "fieldValues": {"name": "Hooked"}}"#,
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let deliveries = emulator.wait_for_deliveries(1, std::time::Duration::from_secs(10));
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, 200, "the generated key was accepted");
    let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let mut event = String::new();
    stdout.read_line(&mut event).unwrap();
    let event: serde_json::Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["attributes"]["name"], "Hooked");

    let exit = child.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(
        emulator.table("serviceendpoints").is_empty(),
        "the registration is removed at the end"
    );
}

#[test]
fn poll_checks_its_config_before_signing_in() {
    let emulator = small_emulator();
    let connection = connection_file(&emulator);
    for (config, field) in [
        (r#"{"fieldNames": ["name"]}"#, "field: entityType"),
        (
            r#"{"entityType": "accounts", "since": "2020-01-01"}"#,
            "field: since",
        ),
        (r#"{"entityType": "accounts?$top=1"}"#, "field: entityType"),
        ("{nope", "not valid JSON"),
    ] {
        let output = dynamics(&[
            "poll",
            "--allow-private",
            "-c",
            connection.arg(),
            "--config",
            config,
            "--polls",
            "1",
        ]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{config}: {stderr}");
        assert!(stderr.starts_with("invalid-input: "), "{config}: {stderr}");
        assert!(stderr.contains(field), "{config}: {stderr}");
    }
    assert!(
        emulator.requests().is_empty(),
        "no token request and no query was sent"
    );
}

#[test]
fn extract_and_poll_exit_with_2_on_action_errors_as_invoke_does() {
    let emulator = small_emulator();
    let connection = connection_file(&emulator);
    let out = fresh_dir("dynamics-cli-extract-error");
    let output = dynamics(&[
        "extract",
        "--allow-private",
        "-c",
        connection.arg(),
        "--table",
        "accounts",
        "--since",
        "yesterday",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("extracting accounts: invalid-input: "),
        "{stderr}"
    );
    assert!(stderr.contains("field: anchorDate"), "{stderr}");

    let output = dynamics(&[
        "poll",
        "--allow-private",
        "-c",
        connection.arg(),
        "--config",
        r#"{"entityType": "accounts", "fieldNames": ["nosuchcolumn"]}"#,
        "--polls",
        "1",
    ]);
    // The service's refusal, after sign-in: the config check could not know the column.
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("invalid-input: "), "{stderr}");
    assert!(stderr.contains("(HTTP 400"), "{stderr}");

    // A host failure is still 1: the state file cannot be read.
    let output = dynamics(&[
        "extract",
        "--allow-private",
        "-c",
        connection.arg(),
        "--table",
        "accounts",
        "--out",
        out.to_str().unwrap(),
        "--state",
        "/",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(text(&output.stderr).starts_with("error: "));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn input_and_connection_files_may_start_with_a_byte_order_mark() {
    use std::io::Write as _;
    let emulator = small_emulator();
    let credentials = emulator.credentials();
    let connection = tempfile_path::TempFile::with_contents(&format!(
        "\u{feff}{}",
        serde_json::json!({
            "type": "oauth2-client-credentials",
            "fields": {
                "webApiUrl": emulator.base_url(),
                "tokenUrl": emulator.token_url(),
                "clientId": credentials.client_id,
                "clientSecret": credentials.client_secret,
            }
        })
    ));
    let input = tempfile_path::TempFile::with_contents(
        "\u{feff}{\"entityType\": \"accounts\", \"recordsPerPage\": 2}",
    );
    let output = dynamics(&[
        "invoke",
        "query-entities",
        "--allow-private",
        "-c",
        connection.arg(),
        "-i",
        input.arg(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        value["records"].as_array().map(Vec::len),
        Some(2),
        "{value}"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_dynamics"))
        .args([
            "invoke",
            "query-entities",
            "--allow-private",
            "-c",
            connection.arg(),
            "-i",
            "-",
        ])
        .env("XDG_STATE_HOME", private_state_home())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all("\u{feff}{\"entityType\": \"contacts\", \"recordsPerPage\": 3}".as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        value["records"].as_array().map(Vec::len),
        Some(3),
        "{value}"
    );
}

#[cfg(unix)]
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Starts the designer with this state home and stops it once it serves.
#[cfg(unix)]
fn run_designer_until_it_serves(state_home: &std::path::Path, extra: &[&str]) {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynamics"))
        .args(["designer", "--no-emulator", "--port", "0"])
        .args(extra)
        .env("XDG_STATE_HOME", state_home)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _child = Reaper(child);
    let serving = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("designer: "));
    assert!(serving, "the designer started");
}

#[cfg(unix)]
#[test]
fn the_designer_keeps_its_folder_owner_only_even_when_it_already_exists() {
    use std::os::unix::fs::PermissionsExt as _;
    let state_home = fresh_dir("dynamics-cli-designer-home");
    let folder = state_home.join("dynamics-connector");

    run_designer_until_it_serves(&state_home, &[]);
    assert_eq!(mode_of(&folder), 0o700, "created owner-only");

    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    run_designer_until_it_serves(&state_home, &[]);
    assert_eq!(mode_of(&folder), 0o700, "an existing folder is tightened");

    // A folder the user names is created owner-only, but one that exists is theirs.
    let chosen = state_home.join("chosen");
    let file = chosen.join("connections.json");
    run_designer_until_it_serves(&state_home, &["--connections", file.to_str().unwrap()]);
    assert_eq!(mode_of(&chosen), 0o700);
    std::fs::set_permissions(&chosen, std::fs::Permissions::from_mode(0o755)).unwrap();
    run_designer_until_it_serves(&state_home, &["--connections", file.to_str().unwrap()]);
    assert_eq!(mode_of(&chosen), 0o755);
    let _ = std::fs::remove_dir_all(&state_home);
}

#[test]
fn a_call_that_runs_out_of_time_is_a_host_failure_and_exits_with_1() {
    // Accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let connection = tempfile_path::TempFile::with_contents(
        &serde_json::json!({
            "type": "oauth2-client-credentials",
            "fields": {
                "webApiUrl": format!("http://{address}"),
                "tokenUrl": format!("http://{address}/tenant/oauth2/v2.0/token"),
                "clientId": "client",
                "clientSecret": "secret",
            },
            "token": {"accessToken": "token-for-a-silent-server"}
        })
        .to_string(),
    );
    let started = std::time::Instant::now();
    let output = dynamics(&[
        "invoke",
        "get-current-user",
        "--allow-private",
        "--time-limit-secs",
        "1",
        "-c",
        connection.arg(),
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: the component ran longer than the time limit of 1s"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(!stderr.contains("token-for-a-silent-server"));
}

#[test]
fn limits_of_zero_or_past_what_a_call_can_use_are_refused() {
    for (option, value, message) in [
        ("--time-limit-secs", "0", "from 1 to 86400"),
        (
            "--time-limit-secs",
            "18446744073709551615",
            "from 1 to 86400",
        ),
        ("--memory-limit-mib", "0", "from 1 to 4096"),
        ("--memory-limit-mib", "4097", "from 1 to 4096"),
        ("--memory-limit-mib", "-1", "from 1 to 4096"),
    ] {
        let output = dynamics(&[&format!("{option}={value}"), "actions"]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{option} {value}: {stderr}");
        assert!(
            stderr.contains(option) && stderr.contains(message),
            "{stderr}"
        );
        assert!(output.stdout.is_empty());
    }
    let output = dynamics(&[
        "--time-limit-secs",
        "1",
        "--memory-limit-mib",
        "32",
        "actions",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn help_describes_each_command_with_its_own_text() {
    let output = dynamics(&["--help"]);
    assert!(output.status.success());
    let help = text(&output.stdout);
    let line = |command: &str| {
        help.lines()
            .find(|line| line.trim_start().starts_with(&format!("{command} ")))
            .unwrap_or_else(|| panic!("no {command} in {help}"))
            .to_string()
    };
    let demo = line("demo");
    assert!(demo.contains("tour of the connector"), "{demo}");
    let serve = line("serve-webhooks");
    assert!(serve.contains("Serve the webhook trigger"), "{serve}");
    assert!(
        !serve.contains("emulator") && !serve.contains("tour"),
        "{serve}"
    );
}

#[test]
fn without_a_terminal_extract_writes_a_plain_line_per_call_and_a_long_invoke_nothing_but_its_output()
 {
    let emulator = small_emulator();
    let connection = connection_file(&emulator);
    let out = fresh_dir("dynamics-cli-extract-lines");
    let output = dynamics(&[
        "extract",
        "--allow-private",
        "-c",
        connection.arg(),
        "--table",
        "accounts",
        "--page-size",
        "2",
        "--since",
        "2000-01-01",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Lines scripts can read: no bar, no escape sequence, no carriage return.
    assert!(
        !stderr.contains('\x1b') && !stderr.contains('\r'),
        "{stderr:?}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 2, "one line per call: {stderr}");
    for line in &lines {
        let rest = line.strip_prefix("accounts: ").expect(line);
        let (all, rest) = rest.split_once(" rows in all, ").expect(line);
        let (run, end) = rest.split_once(" this run").expect(line);
        assert!(
            all.parse::<u64>().is_ok() && run.parse::<u64>().is_ok(),
            "{line}"
        );
        assert!(end.is_empty() || end == ", complete", "{line}");
    }
    assert_eq!(
        lines.last(),
        Some(&"accounts: 5 rows in all, 5 this run, complete")
    );
    assert_eq!(
        text(&output.stdout).trim_end(),
        format!(
            "accounts: 5 rows written to {}",
            out.join("accounts.ndjson").display()
        )
    );
    let _ = std::fs::remove_dir_all(&out);

    let output = dynamics(&[
        "invoke",
        "query-entities",
        "--allow-private",
        "-c",
        connection.arg(),
        "--input-json",
        r#"{"entityType": "accounts", "fetchAll": true, "recordsPerPage": 2}"#,
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stderr),
        "",
        "a short call says nothing on stderr"
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["records"].as_array().map(Vec::len), Some(5));
}

#[test]
fn a_table_named_twice_on_the_command_line_is_extracted_once() {
    let emulator = small_emulator();
    let connection = connection_file(&emulator);
    let mut account_reads = Vec::new();
    for (name, tables) in [("once", "accounts"), ("twice", "accounts,accounts")] {
        let out = fresh_dir(&format!("dynamics-cli-extract-named-{name}"));
        emulator.clear_requests();
        let output = dynamics(&[
            "extract",
            "--allow-private",
            "-c",
            connection.arg(),
            "--tables",
            tables,
            "--page-size",
            "2",
            "--since",
            "2000-01-01",
            "--out",
            out.to_str().unwrap(),
        ]);
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "{tables}: {stderr}");
        assert_eq!(
            stderr.lines().last(),
            Some("accounts: 5 rows in all, 5 this run, complete"),
            "{tables}"
        );
        let written = std::fs::read_to_string(out.join("accounts.ndjson")).unwrap();
        assert_eq!(
            written.lines().count(),
            5,
            "{tables}: each row written once"
        );
        account_reads.push(
            emulator
                .requests()
                .iter()
                .filter(|request| request.path.contains("/accounts"))
                .count(),
        );
        let _ = std::fs::remove_dir_all(&out);
    }
    assert!(account_reads[0] > 0);
    assert_eq!(account_reads[0], account_reads[1], "one read of accounts");
}

/// Output without the terminal's escape sequences (colours, cursor moves).
fn without_escapes(raw: &str) -> String {
    let mut plain = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn on_a_terminal_extract_draws_a_bar_per_table_and_a_long_invoke_a_spinner_with_requests() {
    // util-linux `script` gives the command a pseudo-terminal and copies what it draws; a wide
    // one, so no line is cut to fit.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    }
    let emulator = small_emulator();
    let connection = connection_file(&emulator);
    let input = tempfile_path::TempFile::with_contents(
        r#"{"entityType": "accounts", "fetchAll": true, "recordsPerPage": 2}"#,
    );
    let out = fresh_dir("dynamics-cli-extract-bars");
    let bin = env!("CARGO_BIN_EXE_dynamics");
    let command = format!(
        "stty cols 200 rows 50 && \
         {bin} --allow-private extract -c {connection} --table accounts --table contacts \
         --page-size 2 --since 2000-01-01 --out {out} && \
         {bin} --allow-private invoke query-entities -c {connection} -i {input}",
        connection = connection.arg(),
        out = out.display(),
        input = input.arg(),
    );
    let output = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env("XDG_STATE_HOME", private_state_home())
        .output()
        .expect("script runs");
    let drawn = without_escapes(&text(&output.stdout));
    assert!(output.status.success(), "{drawn}");
    // A finished table keeps its line: check mark, place in the run, rows, rate, pages,
    // requests. No percentage: nothing says how many rows a table has.
    for table in ["[1/2] accounts", "[2/2] contacts"] {
        assert!(
            drawn.contains(&format!("✓ {table} 5 rows, ")),
            "{table}: {drawn}"
        );
    }
    assert!(drawn.contains(" rows/s · "), "{drawn}");
    assert!(drawn.contains("5 rows in the file, complete"), "{drawn}");
    assert!(!drawn.contains("rows in all"), "no plain lines: {drawn}");
    assert!(!drawn.contains('%'), "no percentage: {drawn}");
    // The call's spinner ends as a line with the requests the host sent, then the output.
    let spinner = drawn
        .split(['\r', '\n'])
        .rfind(|line| line.starts_with("✓ query-entities "))
        .unwrap_or_else(|| panic!("no finished spinner: {drawn}"));
    let requests: u64 = spinner
        .split(" · ")
        .nth(1)
        .and_then(|part| part.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no request count: {spinner}"));
    assert!(requests >= 3, "three pages of two rows at least: {spinner}");
    assert!(drawn.contains("\"truncated\": false"), "{drawn}");
    let rows = std::fs::read_to_string(out.join("accounts.ndjson")).unwrap();
    assert_eq!(rows.lines().count(), 5);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn output_piped_into_a_reader_that_stops_early_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynamics"))
        .args(["describe", "batch-entity-actions"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dynamics runs");
    // The reader is gone before the command writes (it takes milliseconds to start), as when
    // `head -1` has what it wanted: the write meets a closed pipe.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.is_empty(),
        "nothing to say on a closed pipe: {stderr}"
    );
}
