//! The webhook trigger validates requests and turns Dataverse's RemoteExecutionContext into
//! events; the polling trigger reports new and updated rows once each.

use dynamics_host::{ErrorCode, IncomingRequest};
use e2e_tests::{Answered, connected, emulator, host};
use serde_json::{Value, json};

const CONTEXT: &str =
    include_str!("../../../crates/dataverse/src/remote_execution_context.example.json");

fn request(query: &[(&str, &str)], headers: &[(&str, &str)], body: &[u8]) -> IncomingRequest {
    IncomingRequest {
        method: "POST".to_string(),
        path: "/hooks/dynamics".to_string(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.to_vec(),
    }
}

const KEY_CONFIG: &str = r#"{"authType": "WebhookKey", "webhookKey": "k3y-0f-the-hook"}"#;
const JSON: (&str, &str) = ("content-type", "application/json");

#[test]
fn the_reference_context_with_the_right_key_becomes_one_event() {
    let outcome = host()
        .handle_webhook(
            "webhook",
            KEY_CONFIG,
            request(&[("code", "k3y-0f-the-hook")], &[JSON], CONTEXT.as_bytes()),
        )
        .unwrap();
    assert_eq!(outcome.status, 200);
    assert_eq!(outcome.events.len(), 1);
    let event: Value = serde_json::from_str(&outcome.events[0]).unwrap();
    assert_eq!(event["message"], "Update");
    assert_eq!(event["table"], "contact");
    assert_eq!(event["recordId"], "6d81597f-0f9f-e711-8122-000d3aa2331c");
    assert_eq!(event["attributes"]["fullname"], "James Glynn (sample)");
    assert_eq!(
        event["attributes"]["modifiedby"]["logicalName"],
        "systemuser"
    );
    assert_eq!(event["userId"], "75c2dd85-e89e-e711-8122-000d3aa2331c");
    assert_eq!(event["stage"], 40);
    assert!(
        event["id"]
            .as_str()
            .unwrap()
            .contains("4af10637-4ea2-e711-8122-000d3aa2331c")
    );
}

#[test]
fn forged_oversized_and_malformed_requests_produce_no_event() {
    let big = vec![b' '; 256 * 1024 + 1];
    let cases: Vec<(IncomingRequest, u16)> = vec![
        (request(&[], &[JSON], CONTEXT.as_bytes()), 401),
        (
            request(
                &[("code", "k3y-0f-the-hook-not")],
                &[JSON],
                CONTEXT.as_bytes(),
            ),
            401,
        ),
        (
            request(&[("code", "k3y-0f-the-hoo")], &[JSON], CONTEXT.as_bytes()),
            401,
        ),
        (
            request(
                &[("code", "k3y-0f-the-hook")],
                &[("content-type", "text/plain")],
                CONTEXT.as_bytes(),
            ),
            415,
        ),
        (request(&[("code", "k3y-0f-the-hook")], &[JSON], &big), 413),
        (
            request(&[("code", "k3y-0f-the-hook")], &[JSON], b"{not json"),
            400,
        ),
        (request(&[("code", "k3y-0f-the-hook")], &[JSON], b"{}"), 400),
        (
            IncomingRequest {
                method: "GET".to_string(),
                ..request(&[("code", "k3y-0f-the-hook")], &[JSON], b"")
            },
            405,
        ),
    ];
    for (incoming, status) in cases {
        let outcome = host()
            .handle_webhook("webhook", KEY_CONFIG, incoming)
            .unwrap();
        assert_eq!(outcome.status, status);
        assert!(outcome.events.is_empty());
        let body: Value = serde_json::from_slice(&outcome.body).unwrap();
        assert_eq!(body["accepted"], false);
        assert!(
            body["reason"]
                .as_str()
                .is_some_and(|reason| !reason.contains("k3y")),
            "the reason never echoes the key"
        );
    }
}

#[test]
fn header_and_query_string_authentication_check_every_value() {
    let config = r#"{"authType": "HttpHeader", "authValues": {"x-hook-secret": "abc123", "x-hook-tenant": "t1"}}"#;
    let good = request(
        &[],
        &[JSON, ("X-Hook-Secret", "abc123"), ("x-hook-tenant", "t1")],
        CONTEXT.as_bytes(),
    );
    assert_eq!(
        host()
            .handle_webhook("webhook", config, good)
            .unwrap()
            .events
            .len(),
        1
    );
    let partial = request(
        &[],
        &[JSON, ("x-hook-secret", "abc123")],
        CONTEXT.as_bytes(),
    );
    assert_eq!(
        host()
            .handle_webhook("webhook", config, partial)
            .unwrap()
            .status,
        401
    );

    let config =
        r#"{"authType": "HttpQueryString", "authValues": [{"key": "token", "value": "q-secret"}]}"#;
    let good = request(&[("token", "q-secret")], &[JSON], CONTEXT.as_bytes());
    assert_eq!(
        host()
            .handle_webhook("webhook", config, good)
            .unwrap()
            .status,
        200
    );
    let bad = request(&[("token", "q-secreT")], &[JSON], CONTEXT.as_bytes());
    assert_eq!(
        host()
            .handle_webhook("webhook", config, bad)
            .unwrap()
            .status,
        401
    );
}

#[test]
fn a_webhook_without_its_secret_configured_is_invalid_input() {
    let failure = host()
        .handle_webhook(
            "webhook",
            r#"{"authType": "WebhookKey"}"#,
            request(&[], &[JSON], b"{}"),
        )
        .answered()
        .unwrap_err();
    assert_eq!(failure.code, ErrorCode::InvalidInput);
    assert_eq!(failure.field.as_deref(), Some("webhookKey"));
}

#[test]
fn polling_reports_each_new_or_updated_row_once_with_stable_ids() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let config =
        json!({"entityType": "accounts", "anchorDate": "2000-01-01", "fieldNames": ["name"]})
            .to_string();
    let first = host()
        .poll("new-and-updated-records", &connection, &config, None)
        .unwrap();
    assert_eq!(first.events.len(), emulator.table("accounts").len());
    let second = host()
        .poll(
            "new-and-updated-records",
            &connection,
            &config,
            Some(&first.state),
        )
        .unwrap();
    assert!(
        second.events.is_empty(),
        "nothing changed since the last poll"
    );

    let id = emulator.table("accounts")[0]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    let update =
        json!({"entityType": "accounts", "entityId": id, "fieldValues": {"name": "Polled Change"}})
            .to_string();
    host()
        .invoke("update-entity", &connection, &update)
        .unwrap();
    let third = host()
        .poll(
            "new-and-updated-records",
            &connection,
            &config,
            Some(&second.state),
        )
        .unwrap();
    assert_eq!(third.events.len(), 1);
    let event: Value = serde_json::from_str(&third.events[0]).unwrap();
    assert_eq!(event["recordId"], id.as_str());
    assert_eq!(event["record"]["name"], "Polled Change");
    assert!(
        event["id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("accounts:{id}:"))
    );
}

#[test]
fn an_enabled_webhook_turns_emulator_writes_into_events_and_disabling_stops_them() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::time::Duration;

    use host_harness::webhook_server::WebhookServer;

    let emulator = emulator();
    let connection = connected(&emulator);
    let config = json!({"authType": "WebhookKey", "webhookKey": "hook-key-for-test", "entityType": "contacts", "messages": ["Create", "Update"], "images": "both"}).to_string();
    let handler_config = config.clone();
    let server = WebhookServer::start(
        0,
        "/hooks/dynamics",
        Arc::new(move |request| {
            host()
                .handle_webhook("webhook", &handler_config, request)
                .unwrap()
        }),
    )
    .unwrap();

    let state = host()
        .enable_trigger("webhook", &connection, &config, server.url())
        .unwrap();
    let state = host()
        .enable_trigger("webhook", &connection, &config, server.url())
        .answered()
        .unwrap_or(state);
    assert_eq!(
        emulator.table("serviceendpoints").len(),
        1,
        "enabling twice registers once"
    );
    assert_eq!(
        emulator
            .table("sdkmessageprocessingsteps")
            .iter()
            .filter(|step| step["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("dynamics-connector")))
            .count(),
        2
    );

    let create = json!({"entityType": "contacts", "fieldValues": {"firstname": "Hook", "lastname": "Created"}}).to_string();
    let created: Value = serde_json::from_str(
        &host()
            .invoke("create-entity", &connection, &create)
            .unwrap(),
    )
    .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let event: Value = serde_json::from_str(
        &server
            .next_event(Duration::from_secs(10))
            .expect("a Create event"),
    )
    .unwrap();
    assert_eq!(event["message"], "Create");
    assert_eq!(event["table"], "contact");
    assert_eq!(event["recordId"], id.as_str());
    assert_eq!(event["attributes"]["lastname"], "Created");

    let update =
        json!({"entityType": "contacts", "entityId": id, "fieldValues": {"lastname": "Updated"}})
            .to_string();
    host()
        .invoke("update-entity", &connection, &update)
        .unwrap();
    let event: Value = serde_json::from_str(
        &server
            .next_event(Duration::from_secs(10))
            .expect("an Update event"),
    )
    .unwrap();
    assert_eq!(event["message"], "Update");
    assert_eq!(event["attributes"]["lastname"], "Updated");
    assert_eq!(
        event["preImages"]["PreImage"]["lastname"], "Created",
        "the pre image shows the row before the change"
    );
    assert_eq!(event["postImages"]["PostImage"]["lastname"], "Updated");

    // A forged request without the key is refused and makes no event.
    let address = server
        .url()
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let body = CONTEXT.as_bytes();
    write!(stream, "POST /hooks/dynamics HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(server.next_event(Duration::from_millis(300)).is_none());

    host()
        .disable_trigger("webhook", &connection, &config, &state)
        .unwrap();
    assert!(emulator.table("serviceendpoints").is_empty());
    host()
        .invoke("create-entity", &connection, &create)
        .unwrap();
    assert!(
        server.next_event(Duration::from_secs(1)).is_none(),
        "no calls after disabling"
    );
}
