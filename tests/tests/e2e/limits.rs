//! The host's limits hold against a component that misbehaves on purpose.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamics_host::{
    CallError, Connection, ErrorCode, Host, HostConfig, HostError, Level, Limits, NetworkPolicy,
    StderrLog,
};
use e2e_tests::{Answered, connected, emulator, host};

fn runaway(limits: Limits, allow_private: bool) -> Host {
    runaway_with(
        limits,
        NetworkPolicy {
            allow_private,
            ..NetworkPolicy::default()
        },
    )
}

fn runaway_with(limits: Limits, network: NetworkPolicy) -> Host {
    Host::from_file(
        Path::new(test_artifacts::RUNAWAY_CONNECTOR_PATH),
        HostConfig {
            limits,
            network,
            log: Arc::new(StderrLog {
                min_level: Level::Error,
            }),
            ..HostConfig::default()
        },
    )
    .expect("the runaway component loads")
}

fn nobody() -> Connection {
    asking_for(&[])
}

/// A connection whose fields the misbehaving component declares as its endpoints.
fn asking_for(origins: &[&str]) -> Connection {
    Connection {
        definition: "none".to_string(),
        fields: origins
            .iter()
            .enumerate()
            .map(|(i, origin)| (format!("url{i}"), origin.to_string()))
            .collect(),
        token: None,
    }
}

/// A loopback listener that counts the connections it accepts.
fn counting_listener() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Ok(mut stream) = stream {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
            }
        }
    });
    (port, accepted)
}

#[test]
fn a_component_asking_for_a_host_outside_the_policy_gets_nothing() {
    let host = runaway(Limits::default(), false);
    let output = host
        .invoke(
            "escape",
            &asking_for(&["https://exfiltrate.example"]),
            "https://exfiltrate.example/steal",
        )
        .unwrap();
    assert!(output.contains("\"denied\""), "{output}");
    assert!(output.contains("egress policy"), "{output}");
}

#[test]
fn a_name_that_resolves_to_loopback_is_refused_before_connecting() {
    let (port, accepted) = counting_listener();
    // The operator allowed the name, but it resolves to 127.0.0.1 (pinned here, as an
    // /etc/hosts entry or a rebinding DNS server would make it).
    let host = runaway_with(
        Limits::default(),
        NetworkPolicy {
            allow_private: false,
            extra_hosts: vec!["rebind.example".to_string()],
            pinned: vec![("rebind.example".to_string(), "127.0.0.1".parse().unwrap())],
            root_certificates: Vec::new(),
        },
    );
    let origin = format!("http://rebind.example:{port}");
    let output = host
        .invoke("escape", &asking_for(&[&origin]), &format!("{origin}/x"))
        .unwrap();
    assert!(output.contains("\"denied\""), "{output}");
    assert!(output.contains("resolves to 127.0.0.1"), "{output}");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no connection was made"
    );

    // The same name with private addresses allowed does connect: the refusal was the rule.
    let lab = runaway_with(
        Limits::default(),
        NetworkPolicy {
            allow_private: true,
            extra_hosts: vec!["rebind.example".to_string()],
            pinned: vec![("rebind.example".to_string(), "127.0.0.1".parse().unwrap())],
            root_certificates: Vec::new(),
        },
    );
    let output = lab
        .invoke("escape", &asking_for(&[&origin]), &format!("{origin}/x"))
        .unwrap();
    assert!(output.contains("\"status\":200"), "{output}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn mapped_ipv6_and_shared_addresses_are_private() {
    let (port, accepted) = counting_listener();
    let host = runaway(Limits::default(), false);
    for origin in [
        format!("http://[::ffff:127.0.0.1]:{port}"),
        format!("http://[::ffff:7f00:1]:{port}"),
        "http://100.64.0.1".to_string(),
        "http://169.254.169.254".to_string(),
    ] {
        let output = host
            .invoke("escape", &asking_for(&[&origin]), &format!("{origin}/"))
            .unwrap();
        assert!(output.contains("\"denied\""), "{origin}: {output}");
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
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
        matches!(outcome, Err(CallError::Host(HostError::TimeLimit(limit))) if limit == Duration::from_millis(300)),
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
        matches!(outcome, Err(CallError::Host(HostError::MemoryLimit(16)))),
        "{outcome:?}"
    );
}

#[test]
fn a_request_outside_the_allow_list_is_an_http_error_the_component_sees() {
    let host = runaway(Limits::default(), true);
    let output = host
        .invoke("escape", &nobody(), "https://example.com/")
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
    assert!(matches!(
        host.invoke("spin", &nobody(), "{}"),
        Err(CallError::Host(_))
    ));
    let output = host
        .invoke("escape", &nobody(), "https://example.com/")
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
        .answered()
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
        .answered()
        .unwrap_err();
    assert_eq!(failure.code, ErrorCode::Forbidden);
    assert!(
        failure.message.contains("loopback or private address"),
        "{}",
        failure.message
    );
    assert!(emulator.requests().is_empty());
}

#[test]
fn a_started_request_meets_the_same_egress_policy_as_a_sent_one() {
    let host = runaway(Limits::default(), false);
    for (connection, url, reason) in [
        (
            asking_for(&["https://exfiltrate.example"]),
            "https://exfiltrate.example/steal",
            "egress policy",
        ),
        (
            nobody(),
            "https://example.com/",
            "not an origin of this connection",
        ),
        (
            nobody(),
            "http://127.0.0.1:9/",
            "loopback or private address",
        ),
    ] {
        let output = host.invoke("escape-ahead", &connection, url).unwrap();
        assert!(output.contains("\"denied\""), "{url}: {output}");
        assert!(output.contains(reason), "{url}: {output}");
    }

    // A name the operator allowed that resolves to loopback: refused before connecting.
    let (port, accepted) = counting_listener();
    let pinned = |allow_private| NetworkPolicy {
        allow_private,
        extra_hosts: vec!["rebind.example".to_string()],
        pinned: vec![("rebind.example".to_string(), "127.0.0.1".parse().unwrap())],
        root_certificates: Vec::new(),
    };
    let origin = format!("http://rebind.example:{port}");
    let output = runaway_with(Limits::default(), pinned(false))
        .invoke(
            "escape-ahead",
            &asking_for(&[&origin]),
            &format!("{origin}/x"),
        )
        .unwrap();
    assert!(output.contains("resolves to 127.0.0.1"), "{output}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Allowed, it connects and finish gives the answer: the refusal above was the rule.
    let output = runaway_with(Limits::default(), pinned(true))
        .invoke(
            "escape-ahead",
            &asking_for(&[&origin]),
            &format!("{origin}/x"),
        )
        .unwrap();
    assert!(output.contains("\"status\":200"), "{output}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A loopback server that holds each answer for 50 ms; it counts the answers it sent and the
/// most it held at once.
struct SlowServer {
    origin: String,
    most: Arc<std::sync::atomic::AtomicUsize>,
    served: Arc<std::sync::atomic::AtomicUsize>,
}

impl SlowServer {
    fn start() -> SlowServer {
        use std::sync::atomic::AtomicUsize;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let open = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let (counted_most, counted_served) = (most.clone(), served.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (open, most, served) =
                    (open.clone(), counted_most.clone(), counted_served.clone());
                std::thread::spawn(move || {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = open.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    let mut request = [0u8; 1024];
                    let _ = stream.read(&mut request);
                    std::thread::sleep(Duration::from_millis(50));
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    );
                    open.fetch_sub(1, SeqCst);
                    served.fetch_add(1, SeqCst);
                });
            }
        });
        SlowServer {
            origin,
            most,
            served,
        }
    }

    fn most(&self) -> usize {
        self.most.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn served(&self) -> usize {
        self.served.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn a_component_that_starts_requests_and_never_takes_them_cannot_make_the_host_hold_more() {
    let server = SlowServer::start();
    let origin = &server.origin;
    let output = runaway(Limits::default(), true)
        .invoke("hold", &asking_for(&[origin]), &format!("{origin}/x"))
        .unwrap();
    let output: serde_json::Value = serde_json::from_str(&output).unwrap();
    // 16 held answers at most: the rest are refused unsent.
    assert_eq!(output["answered"], 16, "{output}");
    assert_eq!(output["refused"], 4, "{output}");
    assert!(
        output["reason"]
            .as_str()
            .unwrap()
            .contains("not finished yet"),
        "{output}"
    );
    // The server counts an answer just after writing it, so the last may trail the call.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.served() < 16 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.served(), 16, "the 4 refused were never sent");
    // 8 on threads of the host, the rest sent by `start` in the call's own thread: at most 9
    // held by the server at once, and more than one, since started requests run side by side.
    assert!(server.most() <= 9, "{} at once", server.most());
    assert!(server.most() >= 2, "{} at once", server.most());
}

#[test]
fn a_component_that_starts_requests_and_drops_them_piles_nothing_up() {
    let server = SlowServer::start();
    let origin = &server.origin;
    let output = runaway(Limits::default(), true)
        .invoke("flood", &asking_for(&[origin]), &format!("{origin}/slow"))
        .unwrap();
    assert_eq!(output, "{}");
    // A dropped request whose thread has not sent it yet is never sent, so how many arrive
    // depends on timing; never more than were started, nor more at once than the caps allow.
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.served() <= 40);
    assert!(server.most() <= 9, "{} at once", server.most());
}
