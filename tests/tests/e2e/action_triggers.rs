//! The action-performed trigger ("When an action is performed",
//! learn.microsoft.com/power-automate/dataverse/action-performed-trigger) against the
//! emulator's steps on custom APIs: the event of an unbound and of a bound custom API, a
//! registration that re-enabling reuses, nothing for a failed run, and a custom API that
//! allows no steps refused before anything is registered.

use dataverse_emulator::Emulator;
use dynamics_host::{Connection, ErrorCode};
use e2e_tests::{Answered, connected, emulator, host};
use serde_json::{Value, json};

use super::trigger_flow::{self, Flow, events, invoke};

const KEY: &str = "action-performed-key";

fn enable(connection: &Connection, settings: Value) -> Flow {
    trigger_flow::enable("action-performed", KEY, connection, settings)
}

fn counts(emulator: &Emulator) -> (usize, usize) {
    (
        emulator.table("serviceendpoints").len(),
        emulator.table("sdkmessageprocessingsteps").len(),
    )
}

#[test]
fn an_unbound_custom_api_starts_the_flow_with_its_parameters_and_outputs() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let flow = enable(
        &connection,
        json!({"actionName": "new_CalculateDiscount", "flowId": "flow-discount"}),
    );
    let steps = emulator.table("sdkmessageprocessingsteps");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["mode"], 1, "asynchronous");
    assert_eq!(steps[0]["stage"], 40, "post-operation");
    let output = invoke(
        &connection,
        "perform-unbound-action",
        json!({"actionName": "new_CalculateDiscount", "Amount": 200, "Percentage": 10}),
    );
    assert_eq!(output["FinalAmount"], 180.0, "{output}");
    let events = events(&emulator, &flow, 1);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["message"], "new_CalculateDiscount");
    assert_eq!(event["inputParameters"]["Amount"], 200);
    assert_eq!(event["inputParameters"]["Percentage"], 10);
    assert_eq!(event["outputParameters"]["DiscountAmount"], 20.0);
    assert_eq!(event["outputParameters"]["FinalAmount"], 180.0);
    assert_eq!(event["boundRow"], Value::Null);
    assert!(event["userId"].is_string(), "{event}");
    assert_eq!(event["userId"], event["initiatingUserId"]);
}

#[test]
fn a_bound_custom_api_starts_the_flow_with_its_row() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let account = invoke(
        &connection,
        "create-entity",
        json!({"entityType": "accounts", "fieldValues": {"name": "Fabrikam"}}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let flow = enable(
        &connection,
        json!({"actionName": "new_ScoreAccount", "entityType": "accounts", "flowId": "flow-score"}),
    );
    let output = invoke(
        &connection,
        "perform-bound-action",
        json!({"entityType": "accounts", "entityId": account, "actionName": "new_ScoreAccount", "Weight": 2}),
    );
    assert_eq!(output["Score"], 16, "{output}");
    let events = events(&emulator, &flow, 1);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["message"], "new_ScoreAccount");
    assert_eq!(
        events[0]["boundRow"],
        json!({"table": "account", "id": account})
    );
    assert_eq!(events[0]["inputParameters"], json!({"Weight": 2}));
    assert_eq!(events[0]["outputParameters"], json!({"Score": 16}));
}

#[test]
fn enabling_again_after_a_crash_reuses_the_registration() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let settings = json!({"actionName": "new_CalculateDiscount", "flowId": "flow-7"});
    let first = enable(&connection, settings.clone());
    let first_state: Value = serde_json::from_str(&first.state).unwrap();
    assert_eq!(counts(&emulator), (1, 1));
    // The host crashed and lost the state: enabling again finds the same registration.
    let again = enable(&connection, settings.clone());
    let again_state: Value = serde_json::from_str(&again.state).unwrap();
    assert_eq!(counts(&emulator), (1, 1), "nothing registered twice");
    assert_eq!(
        again_state["serviceEndpointId"],
        first_state["serviceEndpointId"]
    );
    assert_eq!(again_state["stepIds"], first_state["stepIds"]);
    assert!(
        emulator.table("serviceendpoints")[0]["url"]
            .as_str()
            .unwrap()
            .starts_with(again.server.url()),
        "the endpoint now calls the new server"
    );
    // A step removed in the meantime is registered again, once.
    invoke(
        &connection,
        "delete-entity",
        json!({"entityType": "sdkmessageprocessingsteps", "entityId": first_state["stepIds"][0]}),
    );
    assert_eq!(counts(&emulator), (1, 0));
    let third = enable(&connection, settings);
    assert_eq!(counts(&emulator), (1, 1));
    // Another flow on the same action has its own registration.
    let other = enable(
        &connection,
        json!({"actionName": "new_CalculateDiscount", "flowId": "flow-8"}),
    );
    assert_eq!(counts(&emulator), (2, 2));
    host()
        .disable_trigger("action-performed", &connection, &other.config, &other.state)
        .unwrap();
    host()
        .disable_trigger("action-performed", &connection, &third.config, &third.state)
        .unwrap();
    assert_eq!(counts(&emulator), (0, 0), "disabling leaves nothing behind");
}

#[test]
fn a_failed_run_starts_nothing() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let flow = enable(
        &connection,
        json!({"actionName": "new_CalculateDiscount", "flowId": "flow-fail"}),
    );
    let failure = host()
        .invoke(
            "perform-unbound-action",
            &connection,
            &json!({"actionName": "new_CalculateDiscount", "Amount": 100, "Percentage": 150})
                .to_string(),
        )
        .answered();
    assert!(failure.is_err(), "{failure:?}");
    invoke(
        &connection,
        "perform-unbound-action",
        json!({"actionName": "new_CalculateDiscount", "Amount": 100, "Percentage": 5}),
    );
    let events = events(&emulator, &flow, 1);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["inputParameters"]["Percentage"], 5);
    assert_eq!(emulator.webhook_deliveries().len(), 1, "only the good run");
}

#[test]
fn a_custom_api_that_allows_no_steps_or_a_wrong_table_is_refused_before_registering() {
    let emulator = emulator();
    let connection = connected(&emulator);
    for (settings, field) in [
        (json!({"actionName": "new_GetGreeting"}), "actionName"),
        (json!({"actionName": "new_NoSuchApi"}), "actionName"),
        (
            json!({"actionName": "new_CalculateDiscount", "entityType": "accounts"}),
            "entityType",
        ),
        (
            json!({"actionName": "new_ScoreAccount", "entityType": "contacts"}),
            "entityType",
        ),
    ] {
        let mut config = settings.clone();
        config["webhookKey"] = json!(KEY);
        let failure = host()
            .enable_trigger(
                "action-performed",
                &connection,
                &config.to_string(),
                "http://127.0.0.1:9/hook",
            )
            .answered()
            .unwrap_err();
        assert_eq!(failure.code, ErrorCode::InvalidInput, "{settings}");
        assert_eq!(failure.field.as_deref(), Some(field), "{settings}");
    }
    assert_eq!(counts(&emulator), (0, 0));
    // A name that is no message name is refused without asking the environment.
    let before = emulator.requests().len();
    let failure = host()
        .enable_trigger(
            "action-performed",
            &connection,
            &json!({"actionName": "new_X?$top=1", "webhookKey": KEY}).to_string(),
            "http://127.0.0.1:9/hook",
        )
        .answered()
        .unwrap_err();
    assert_eq!(failure.field.as_deref(), Some("actionName"));
    assert_eq!(emulator.requests().len(), before, "no HTTP call was made");
}

#[test]
fn the_data_source_lists_the_custom_apis_that_allow_steps() {
    let emulator = emulator();
    let values: Vec<String> = host()
        .choices("actions-with-steps", &connected(&emulator), "{}")
        .answered()
        .expect("choices")
        .into_iter()
        .map(|choice| choice.value)
        .collect();
    assert!(
        values.contains(&"new_CalculateDiscount".to_string()),
        "{values:?}"
    );
    assert!(values.contains(&"new_ScoreAccount".to_string()));
    assert!(
        !values.contains(&"new_GetGreeting".to_string()),
        "its AllowedCustomProcessingStepType is None"
    );
}
