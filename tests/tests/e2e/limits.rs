//! The host's limits hold against a component that misbehaves on purpose.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::{connected, emulator, host};
use host_harness::{
    Connection, ErrorCode, Host, HostConfig, HostError, Level, Limits, NetworkPolicy, StderrLog,
};

fn runaway(limits: Limits, allow_private: bool) -> Host {
    Host::from_file(
        Path::new(host_harness::RUNAWAY_COMPONENT_PATH),
        HostConfig {
            limits,
            network: NetworkPolicy {
                allow_private,
                extra_hosts: Vec::new(),
            },
            log: Arc::new(StderrLog {
                min_level: Level::Error,
            }),
        },
    )
    .expect("the runaway component loads")
}

fn nobody() -> Connection {
    Connection {
        definition: "none".to_string(),
        fields: Vec::new(),
        token: None,
    }
}

#[test]
fn a_component_that_loops_forever_is_stopped_by_the_time_limit() {
    let host = runaway(
        Limits {
            time: Duration::from_millis(300),
            ..Limits::default()
        },
        false,
    );
    let started = Instant::now();
    let outcome = host.invoke("spin", &nobody(), "{}");
    assert!(
        matches!(outcome, Err(HostError::TimeLimit(limit)) if limit == Duration::from_millis(300)),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let message = outcome.unwrap_err().to_string();
    assert!(message.contains("time limit"), "{message}");
}

#[test]
fn a_component_that_hoards_memory_is_stopped_by_the_memory_limit() {
    let host = runaway(
        Limits {
            memory_bytes: 16 << 20,
            ..Limits::default()
        },
        false,
    );
    let outcome = host.invoke("hoard", &nobody(), "{}");
    assert!(
        matches!(outcome, Err(HostError::MemoryLimit(16))),
        "{outcome:?}"
    );
}

#[test]
fn a_request_outside_the_allow_list_is_an_http_error_the_component_sees() {
    let host = runaway(Limits::default(), true);
    let output = host
        .invoke("escape", &nobody(), "https://example.com/")
        .unwrap()
        .unwrap();
    assert!(output.contains("\"denied\""), "{output}");
    assert!(
        output.contains("not an origin of this connection"),
        "{output}"
    );

    // The runaway component declares http://127.0.0.1:9, but loopback needs permission.
    let closed = runaway(Limits::default(), false);
    let output = closed
        .invoke("escape", &nobody(), "http://127.0.0.1:9/")
        .unwrap()
        .unwrap();
    assert!(output.contains("loopback or private address"), "{output}");
}

#[test]
fn the_same_host_serves_the_next_call_after_a_trap() {
    let host = runaway(
        Limits {
            time: Duration::from_millis(200),
            ..Limits::default()
        },
        true,
    );
    assert!(host.invoke("spin", &nobody(), "{}").is_err());
    let output = host
        .invoke("escape", &nobody(), "https://example.com/")
        .unwrap()
        .unwrap();
    assert!(output.contains("denied"));
}

/// A server that answers every request with a redirect to another host.
fn redirecting_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: https://evil.example/steal\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    format!("http://{address}")
}

#[test]
fn a_redirect_to_another_host_is_refused_and_not_followed() {
    let server = redirecting_server();
    let emulator = emulator();
    let mut connection = connected(&emulator);
    connection.fields[0].1 = server;
    let failure = host()
        .invoke(
            "raw-request",
            &connection,
            r#"{"url": "WhoAmI", "method": "GET"}"#,
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.code, ErrorCode::Forbidden);
    assert!(
        failure
            .message
            .contains("redirected to a host that is not allowed"),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains("evil.example"),
        "{}",
        failure.message
    );
}

#[test]
fn the_emulator_is_unreachable_when_the_host_does_not_allow_loopback() {
    let emulator = emulator();
    let closed = Host::builtin(HostConfig {
        log: Arc::new(StderrLog {
            min_level: Level::Error,
        }),
        ..HostConfig::default()
    })
    .unwrap();
    let failure = closed
        .invoke("get-current-user", &connected(&emulator), "{}")
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.code, ErrorCode::Forbidden);
    assert!(
        failure.message.contains("loopback or private address"),
        "{}",
        failure.message
    );
    assert!(emulator.requests().is_empty());
}
