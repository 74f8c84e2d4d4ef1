//! Secrets never reach log lines or errors.

use dynamics_host::Level;
use e2e_tests::{Answered, client_credentials, emulator, host_with_memory_log};

#[test]
fn client_secret_and_tokens_never_appear_in_logs_or_errors() {
    let emulator = emulator();
    let (host, log) = host_with_memory_log();
    let mut connection = client_credentials(&emulator);
    host.run_action("get-current-user", &mut connection, "{}")
        .unwrap();
    let token = connection.token.clone().unwrap().access_token;
    let debug = r#"{"url": "WhoAmI", "method": "GET", "debugRequest": true}"#;
    host.invoke("raw-request", &connection, debug).unwrap();
    let failing = r#"{"url": "accounts(00000000-0000-0000-0000-0000000000ff)", "method": "GET"}"#;
    let failure = host
        .invoke("raw-request", &connection, failing)
        .answered()
        .unwrap_err();

    let secret = emulator.credentials().client_secret;
    let lines = log.lines();
    assert!(
        lines
            .iter()
            .any(|line| line.message.contains("raw request: GET")),
        "debug request was logged"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.level == Level::Debug && line.source == "host")
    );
    for line in &lines {
        assert!(!line.message.contains(&secret), "secret in {line:?}");
        assert!(!line.message.contains(&token), "token in {line:?}");
    }
    let error_text = dynamics_host::describe_error(&failure);
    assert!(!error_text.contains(&secret) && !error_text.contains(&token));
}
