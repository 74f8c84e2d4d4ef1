//! Retries against the emulator's injected faults: throttling, outages and cut connections are
//! survived; the attempt bound holds; a retry never duplicates a create.

use dynamics_host::ErrorCode;
use e2e_tests::{Answered, connected, emulator, host, impatient_host, json};
use serde_json::json;

fn get_a1(
    emulator: &dataverse_emulator::Emulator,
) -> Result<serde_json::Value, dynamics_host::ConnectorError> {
    let input = json!({"entityType": "accounts", "entityId": "accountnumber='A-1'"}).to_string();
    host()
        .invoke("get-entity", &connected(emulator), &input)
        .answered()
        .map(|output| json(&output))
}

#[test]
fn a_run_of_429s_with_retry_after_is_waited_out() {
    let emulator = emulator();
    emulator.faults().throttle(2, 1);
    let started = std::time::Instant::now();
    let record = get_a1(&emulator).unwrap();
    assert_eq!(record["accountnumber"], "A-1");
    assert_eq!(emulator.requests().len(), 3);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "Retry-After of 1 s was honoured twice"
    );
}

#[test]
fn a_503_then_success_succeeds() {
    let emulator = emulator();
    emulator.faults().unavailable(1);
    assert_eq!(get_a1(&emulator).unwrap()["accountnumber"], "A-1");
    assert_eq!(emulator.requests().len(), 2);
}

#[test]
fn a_get_whose_connection_is_cut_mid_body_is_retried() {
    let emulator = emulator();
    emulator.faults().cut_mid_body(1);
    assert_eq!(get_a1(&emulator).unwrap()["accountnumber"], "A-1");
    assert_eq!(emulator.requests().len(), 2);
}

#[test]
fn the_attempt_bound_holds_and_the_error_says_how_many_attempts_were_made() {
    let emulator = emulator();
    emulator.faults().bad_gateway(20);
    let input = json!({"entityType": "accounts", "entityId": "accountnumber='A-1'"}).to_string();
    let failure = impatient_host()
        .invoke("get-entity", &connected(&emulator), &input)
        .answered()
        .unwrap_err();
    assert_eq!(failure.code, ErrorCode::Unavailable);
    assert_eq!(failure.http_status, Some(502));
    assert!(
        failure.message.ends_with("(after 6 attempts)"),
        "{}",
        failure.message
    );
    assert_eq!(emulator.requests().len(), 6);
}

#[test]
fn a_create_whose_answer_is_lost_is_sent_again_and_meets_its_own_row() {
    let emulator = emulator();
    let before = emulator.table("accounts").len();
    emulator.faults().cut_mid_body(1);
    // With the representation asked for, the answer has a body that the cut truncates.
    let input = json!({"entityType": "accounts", "fieldValues": {"name": "Exactly Once", "accountnumber": "ONCE-1"}, "returnRepresentation": true}).to_string();
    let output = json(
        &host()
            .invoke("create-entity", &connected(&emulator), &input)
            .unwrap(),
    );
    assert_eq!(output["alreadyCreated"], true, "{output}");
    assert_eq!(output["record"]["accountnumber"], "ONCE-1");
    let rows = emulator.table("accounts");
    assert_eq!(rows.len(), before + 1);
    let made: Vec<_> = rows
        .iter()
        .filter(|row| row["accountnumber"] == "ONCE-1")
        .collect();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["accountid"], output["id"]);
    // The create, its resend (412: the row exists) and the read-back of the row.
    let requests = emulator.requests();
    let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["PATCH", "PATCH", "GET"]);
    assert_eq!(requests[0].header("if-none-match"), Some("*"));
}

#[test]
fn a_throttled_create_is_retried_and_makes_one_record() {
    let emulator = emulator();
    emulator.faults().throttle(1, 0);
    let input = json!({"entityType": "accounts", "fieldValues": {"name": "Throttled Once", "accountnumber": "ONCE-2"}}).to_string();
    host()
        .invoke("create-entity", &connected(&emulator), &input)
        .unwrap();
    assert_eq!(
        emulator
            .table("accounts")
            .iter()
            .filter(|row| row["accountnumber"] == "ONCE-2")
            .count(),
        1
    );
    assert_eq!(emulator.requests().len(), 2);
}
