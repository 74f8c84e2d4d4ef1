//! Rehearsing faults through the emulator's admin API, as a flow builder running
//! `dynamics emulator` would: a throttle rule added over HTTP is met by an action run through the
//! component, which waits out the Retry-After and lands its write once; the request log served
//! by the admin API shows the 429 and the retry. Without the printed key the admin API refuses.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use dataverse_emulator::Emulator;
use e2e_tests::{connected, emulator, host, json};
use serde_json::{Value, json};

/// One HTTP/1.1 exchange with the admin API, written by hand (the tests have no HTTP client):
/// the status and the JSON body.
fn admin(
    emulator: &Emulator,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", emulator.port())).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} /_admin{path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
        emulator.port(),
        body.len()
    );
    if let Some(key) = key {
        request.push_str(&format!("X-Emulator-Admin-Key: {key}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
    let (_, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn a_throttle_rule_added_through_the_admin_api_is_survived_and_logged() {
    let emulator = emulator();
    let key = emulator.admin_key().to_string();
    // The next answer to a path under /accounts is 429 with Retry-After: 1.
    let (status, added) = admin(
        &emulator,
        "POST",
        "/faults",
        Some(&key),
        Some(&json!({"rule": "throttle=1:1@/accounts"})),
    );
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["faults"][0]["rule"], "throttle=1:1@/accounts");
    let (status, cleared) = admin(&emulator, "DELETE", "/requests", Some(&key), None);
    assert_eq!(status, 200, "{cleared}");

    let started = Instant::now();
    let output = host()
        .invoke(
            "create-entity",
            &connected(&emulator),
            &json!({"entityType": "accounts", "fieldValues": {"name": "Rehearsed under throttling"}})
                .to_string(),
        )
        .expect("the action survives one 429");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the Retry-After of 1 s was waited out"
    );
    let id = json(&output)["id"]
        .as_str()
        .expect("the new row's id")
        .to_string();

    // The rule is used up, and the write landed once.
    let (_, faults) = admin(&emulator, "GET", "/faults", Some(&key), None);
    assert_eq!(faults["faults"], json!([]));
    let (status, table) = admin(&emulator, "GET", "/tables/accounts", Some(&key), None);
    assert_eq!(status, 200);
    let rows: Vec<&Value> = table["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "Rehearsed under throttling")
        .collect();
    assert_eq!(rows.len(), 1, "one row, not two");
    assert_eq!(rows[0]["accountid"], id.as_str());

    // The log shows the 429 and the retry of the same request, which succeeded.
    let (status, log) = admin(&emulator, "GET", "/requests", Some(&key), None);
    assert_eq!(status, 200, "{log}");
    let writes: Vec<&Value> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/api/data/v9.2/accounts"))
        })
        .collect();
    assert_eq!(
        writes.len(),
        2,
        "the throttled request and its retry: {log}"
    );
    assert_eq!(writes[0]["status"], 429);
    assert_eq!(writes[0]["fault"], "throttle");
    assert_eq!(writes[1]["method"], writes[0]["method"]);
    assert_eq!(writes[1]["path"], writes[0]["path"]);
    assert!(
        writes[1]["status"]
            .as_u64()
            .is_some_and(|s| (200..300).contains(&s)),
        "{}",
        writes[1]
    );
    assert_eq!(writes[1]["fault"], Value::Null);
    assert!(writes[1]["seq"].as_u64() > writes[0]["seq"].as_u64());
    // The bearer token the component sent is not in the log.
    assert_eq!(writes[0]["headers"]["authorization"], "Bearer (withheld)");
}

#[test]
fn the_admin_api_refuses_requests_without_the_key() {
    let emulator = emulator();
    let rule = json!({"rule": "unavailable:5"});
    let (status, body) = admin(&emulator, "POST", "/faults", None, Some(&rule));
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");
    let (status, _) = admin(
        &emulator,
        "POST",
        "/faults",
        Some("not-the-key"),
        Some(&rule),
    );
    assert_eq!(status, 401);
    let (status, _) = admin(&emulator, "GET", "/requests", None, None);
    assert_eq!(status, 401);
    let (status, _) = admin(
        &emulator,
        "PUT",
        "/limits",
        None,
        Some(&json!({"rateLimit": "1/60s"})),
    );
    assert_eq!(status, 401);
    // Nothing changed: no fault, no limit, and an action runs as usual.
    assert!(emulator.faults().rules().is_empty());
    let (_, limits) = admin(
        &emulator,
        "GET",
        "/limits",
        Some(emulator.admin_key()),
        None,
    );
    assert_eq!(limits, json!({"rateLimit": null}));
    let output = host()
        .invoke("get-current-user", &connected(&emulator), "{}")
        .expect("the action runs");
    assert!(
        !json(&output)["userId"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{output}"
    );
}
