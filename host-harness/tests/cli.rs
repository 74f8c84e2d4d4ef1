//! The `dynamics` command as a person uses it.

use std::process::{Command, Output};

use dataverse_emulator::{Config, Emulator};

fn dynamics(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dynamics"))
        .args(args)
        .output()
        .expect("the CLI runs")
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
    assert_eq!(stdout.lines().count(), 20);
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
    let emulator = Emulator::start(
        Config {
            rows_per_table: 5,
            ..Config::default()
        },
        0,
    )
    .unwrap();
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
    let emulator = Emulator::start(
        Config {
            rows_per_table: 5,
            ..Config::default()
        },
        0,
    )
    .unwrap();
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
