//! The component over HTTPS: the emulator served with TLS, the host trusting exactly its CA.

use std::sync::Arc;

use dataverse_emulator::{Config, Emulator};
use dynamics_host::{Host, HostConfig, Level, NetworkPolicy, StderrLog};
use e2e_tests::{Answered, client_credentials, json};

fn host(root_certificates: Vec<Vec<u8>>) -> Host {
    Host::builtin(HostConfig {
        network: NetworkPolicy {
            allow_private: true,
            root_certificates,
            ..NetworkPolicy::default()
        },
        log: Arc::new(StderrLog {
            min_level: Level::Error,
        }),
        ..HostConfig::default()
    })
    .expect("the built-in component loads")
}

#[test]
fn the_component_signs_in_and_reads_over_https_when_the_host_trusts_the_emulators_ca() {
    let emulator = Emulator::start(
        Config {
            rows_per_table: 5,
            tls: true,
            ..Config::default()
        },
        0,
    )
    .unwrap();
    assert!(
        emulator.base_url().starts_with("https://127.0.0.1:"),
        "{}",
        emulator.base_url()
    );
    let ca = emulator
        .ca_certificate_pem()
        .expect("a generated CA")
        .as_bytes()
        .to_vec();
    let trusting = host(vec![ca]);
    let mut connection = client_credentials(&emulator);
    let user = trusting
        .run_action("get-current-user", &mut connection, "{}")
        .unwrap();
    let user = json(&user);
    assert!(
        user["userId"].as_str().is_some_and(|id| id.len() == 36),
        "{user}"
    );
    let page = trusting
        .run_action(
            "query-entities",
            &mut connection,
            r#"{"entityType": "accounts", "recordsPerPage": 2}"#,
        )
        .unwrap();
    let page = json(&page);
    assert_eq!(page["records"].as_array().unwrap().len(), 2);
    // The next link the service wrote says https, so following it stays on TLS.
    assert!(
        page["nextPageId"].as_str().unwrap().starts_with("https://"),
        "{page}"
    );

    // The same call from a host that trusts only the public roots fails the handshake.
    let untrusting = host(Vec::new());
    let mut connection = client_credentials(&emulator);
    let failure = untrusting
        .run_action("get-current-user", &mut connection, "{}")
        .answered()
        .unwrap_err();
    assert_eq!(
        failure.code,
        dynamics_host::ErrorCode::Unavailable,
        "{failure:?}"
    );
}
