//! The row-changed trigger ("When a row is added, modified or deleted",
//! learn.microsoft.com/power-automate/dataverse/create-update-delete-trigger) against the
//! emulator's webhook calls: change types, select columns, filter rows, scope, run as, the
//! only-when-changed mode, and a registration that re-enabling finds and reuses.

use std::time::Duration;

use dataverse_emulator::Emulator;
use dynamics_host::{Connection, ErrorCode};
use e2e_tests::{Answered, connected, emulator, host};
use serde_json::{Value, json};

use super::trigger_flow::{self, Flow, events, invoke};

const KEY: &str = "row-changed-key";

fn enable(connection: &Connection, settings: Value) -> Flow {
    trigger_flow::enable("row-changed", KEY, connection, settings)
}

fn create(connection: &Connection, table: &str, fields: Value) -> String {
    invoke(
        connection,
        "create-entity",
        json!({"entityType": table, "fieldValues": fields}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn update(connection: &Connection, table: &str, id: &str, fields: Value) {
    invoke(
        connection,
        "update-entity",
        json!({"entityType": table, "entityId": id, "fieldValues": fields}),
    );
}

/// The steps registered for a flow's endpoint, as (message name, row).
fn steps(emulator: &Emulator, state: &str) -> Vec<(String, Value)> {
    let state: Value = serde_json::from_str(state).unwrap();
    let messages = emulator.table("sdkmessages");
    emulator
        .table("sdkmessageprocessingsteps")
        .into_iter()
        .filter(|step| step["_eventhandler_value"] == state["serviceEndpointId"])
        .map(|step| {
            let message = messages
                .iter()
                .find(|m| m["sdkmessageid"] == step["_sdkmessageid_value"])
                .and_then(|m| m["name"].as_str())
                .unwrap_or_default()
                .to_string();
            (message, step)
        })
        .collect()
}

fn messages_of(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["message"].as_str().unwrap())
        .collect()
}

#[test]
fn each_change_type_registers_its_messages_and_starts_the_flow_only_for_them() {
    let emulator = emulator();
    let connection = connected(&emulator);
    for (change_type, expected) in [
        ("added", vec!["Create"]),
        ("modified", vec!["Update"]),
        ("deleted", vec!["Delete"]),
        ("added-or-modified", vec!["Create", "Update"]),
        ("added-or-deleted", vec!["Create", "Delete"]),
        ("modified-or-deleted", vec!["Delete", "Update"]),
        (
            "added-modified-or-deleted",
            vec!["Create", "Delete", "Update"],
        ),
    ] {
        let flow = enable(
            &connection,
            json!({"entityType": "contacts", "changeType": change_type, "flowId": format!("flow-{change_type}")}),
        );
        let mut registered: Vec<String> = steps(&emulator, &flow.state)
            .into_iter()
            .map(|(message, _)| message)
            .collect();
        registered.sort();
        assert_eq!(registered, expected, "{change_type}");
        host()
            .disable_trigger("row-changed", &connection, &flow.config, &flow.state)
            .unwrap();
    }
    assert!(emulator.table("serviceendpoints").is_empty());
    assert!(emulator.table("sdkmessageprocessingsteps").is_empty());

    let flow = enable(
        &connection,
        json!({"entityType": "contacts", "changeType": "added-or-deleted"}),
    );
    let id = create(&connection, "contacts", json!({"lastname": "Added"}));
    update(
        &connection,
        "contacts",
        &id,
        json!({"lastname": "Modified"}),
    );
    invoke(
        &connection,
        "delete-entity",
        json!({"entityType": "contacts", "entityId": id}),
    );
    let seen = events(&emulator, &flow, 2);
    assert_eq!(messages_of(&seen), vec!["Create", "Delete"]);
    assert!(seen.iter().all(|event| event["recordId"] == id.as_str()));
    assert_eq!(
        emulator.webhook_deliveries().len(),
        2,
        "no call for the modification"
    );
}

#[test]
fn select_columns_become_filtering_attributes_so_only_updates_writing_them_start_the_flow() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let flow = enable(
        &connection,
        json!({"entityType": "contacts", "changeType": "modified", "selectColumns": ["telephone1", "EMailAddress1"]}),
    );
    let registered = steps(&emulator, &flow.state);
    assert_eq!(
        registered[0].1["filteringattributes"],
        "telephone1,emailaddress1"
    );
    let id = emulator.table("contacts")[0]["contactid"]
        .as_str()
        .unwrap()
        .to_string();
    update(
        &connection,
        "contacts",
        &id,
        json!({"lastname": "Not Selected"}),
    );
    update(
        &connection,
        "contacts",
        &id,
        json!({"telephone1": "555-0100"}),
    );
    let seen = events(&emulator, &flow, 1);
    assert_eq!(messages_of(&seen), vec!["Update"]);
    assert_eq!(seen[0]["attributes"]["telephone1"], "555-0100");
    assert_eq!(
        emulator.webhook_deliveries().len(),
        1,
        "Dataverse makes no call for an update of other columns"
    );
}

#[test]
fn filter_rows_is_evaluated_on_the_row_after_the_change() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let flow = enable(
        &connection,
        json!({"entityType": "accounts", "changeType": "added-or-modified", "filterRows": "revenue gt 1000 and statecode eq 0"}),
    );
    let images = emulator.table("sdkmessageprocessingstepimages");
    assert_eq!(images.len(), 2, "a post image on Create and on Update");
    assert!(
        images
            .iter()
            .all(|image| image["attributes"] == "revenue,statecode" && image["imagetype"] == 1)
    );

    let small = create(
        &connection,
        "accounts",
        json!({"name": "Small", "revenue": 500}),
    );
    let large = create(
        &connection,
        "accounts",
        json!({"name": "Large", "revenue": 5000}),
    );
    update(&connection, "accounts", &small, json!({"revenue": 2000}));
    let seen = events(&emulator, &flow, 3);
    assert_eq!(messages_of(&seen), vec!["Create", "Update"]);
    assert_eq!(seen[0]["recordId"], large.as_str());
    assert_eq!(seen[0]["row"]["revenue"], 5000.0);
    assert_eq!(seen[1]["recordId"], small.as_str());
    assert_eq!(seen[1]["row"]["revenue"], 2000.0);

    host()
        .disable_trigger("row-changed", &connection, &flow.config, &flow.state)
        .unwrap();
    assert!(emulator.table("sdkmessageprocessingstepimages").is_empty());
    assert!(emulator.table("sdkmessageprocessingsteps").is_empty());
    assert!(emulator.table("serviceendpoints").is_empty());
}

#[test]
fn a_malformed_filter_is_refused_naming_the_input_before_anything_is_registered() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let config = json!({"entityType": "accounts", "changeType": "added", "filterRows": "revenue gt", "webhookKey": KEY}).to_string();
    let failure = host()
        .enable_trigger(
            "row-changed",
            &connection,
            &config,
            "http://127.0.0.1:9/hook",
        )
        .answered()
        .unwrap_err();
    assert_eq!(failure.code, ErrorCode::InvalidInput);
    assert_eq!(failure.field.as_deref(), Some("filterRows"));
    assert!(emulator.requests().is_empty(), "no HTTP call was made");
    assert!(emulator.table("serviceendpoints").is_empty());
}

#[test]
fn scope_keeps_the_rows_owned_within_the_registering_users_reach() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let users = emulator.seeded_users();
    let me = &users.application_user;
    let other = &users.sales_user;
    assert_ne!(
        me.business_unit_id, other.business_unit_id,
        "the seed puts the salesperson in a business unit of their own"
    );
    let units = emulator.table("businessunits");
    let other_unit = units
        .iter()
        .find(|unit| unit["businessunitid"] == other.business_unit_id.as_str())
        .unwrap();
    assert_eq!(
        other_unit["_parentbusinessunitid_value"],
        me.business_unit_id.as_str(),
        "the salesperson's unit is a child of the registering user's"
    );

    let settings = |scope: &str| json!({"entityType": "contacts", "changeType": "added", "scope": scope, "flowId": scope});
    let user = enable(&connection, settings("user"));
    let unit = enable(&connection, settings("business-unit"));
    let tree = enable(&connection, settings("parent-child-business-units"));
    let organization = enable(&connection, settings("organization"));

    let mine = create(&connection, "contacts", json!({"lastname": "Mine"}));
    let theirs = create(
        &connection,
        "contacts",
        json!({"lastname": "Theirs", "ownerid@odata.bind": format!("/systemusers({})", other.system_user_id)}),
    );
    let stored = emulator
        .table("contacts")
        .into_iter()
        .find(|row| row["contactid"] == theirs.as_str())
        .unwrap();
    assert_eq!(stored["_ownerid_value"], other.system_user_id.as_str());

    let ids = |flow: &Flow| -> Vec<String> {
        let mut out = Vec::new();
        while let Some(event) = flow.server.next_event(Duration::from_millis(300)) {
            let event: Value = serde_json::from_str(&event).unwrap();
            out.push(event["recordId"].as_str().unwrap().to_string());
        }
        out.sort();
        out
    };
    emulator.wait_for_deliveries(8, Duration::from_secs(10));
    let mut both = vec![mine.clone(), theirs.clone()];
    both.sort();
    assert_eq!(ids(&user), vec![mine.clone()]);
    assert_eq!(
        ids(&unit),
        vec![mine.clone()],
        "a row owned in another business unit is not the unit's"
    );
    assert_eq!(
        ids(&tree),
        both,
        "a child unit's rows are the parent-child scope's"
    );
    assert_eq!(ids(&organization), both);
}

#[test]
fn run_as_names_the_flow_owner_the_modifying_user_or_the_row_owner() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let users = emulator.seeded_users();
    let owner_of_flow = users.application_user.system_user_id.clone();
    let modifier = users.sales_user.system_user_id.clone();
    let owner_of_row = users.admin.system_user_id.clone();

    let settings = |run_as: &str| json!({"entityType": "contacts", "changeType": "added", "runAs": run_as, "flowId": run_as});
    let flows = [
        ("flow-owner", enable(&connection, settings("flow-owner"))),
        (
            "modifying-user",
            enable(&connection, settings("modifying-user")),
        ),
        ("row-owner", enable(&connection, settings("row-owner"))),
    ];
    let flow_owner_step = &steps(&emulator, &flows[0].1.state)[0].1;
    assert_eq!(
        flow_owner_step["_impersonatinguserid_value"],
        owner_of_flow.as_str()
    );

    // The salesperson creates a row owned by the administrator.
    invoke(
        &connection,
        "create-entity",
        json!({"entityType": "contacts", "impersonateUserId": modifier,
               "fieldValues": {"lastname": "Run As", "ownerid@odata.bind": format!("/systemusers({owner_of_row})")}}),
    );
    emulator.wait_for_deliveries(3, Duration::from_secs(10));
    for (run_as, flow) in &flows {
        let event: Value =
            serde_json::from_str(&flow.server.next_event(Duration::from_secs(5)).unwrap()).unwrap();
        let expected = match *run_as {
            "flow-owner" => &owner_of_flow,
            "modifying-user" => &modifier,
            _ => &owner_of_row,
        };
        assert_eq!(event["runAsUserId"], expected.as_str(), "{run_as}");
        assert_eq!(event["initiatingUserId"], modifier.as_str(), "{run_as}");
    }

    // The event's user acts for the flow: a row created as runAsUserId is that user's.
    let follow_up = invoke(
        &connection,
        "create-entity",
        json!({"entityType": "accounts", "impersonateUserId": owner_of_row, "fieldValues": {"name": "Follow up"}}),
    );
    let task = emulator
        .table("accounts")
        .into_iter()
        .find(|row| row["accountid"] == follow_up["id"])
        .unwrap();
    assert_eq!(task["_createdby_value"], owner_of_row.as_str());
}

#[test]
fn only_when_changed_skips_an_update_writing_the_same_value_that_power_automate_mode_reports() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let compatible = enable(
        &connection,
        json!({"entityType": "contacts", "changeType": "modified", "selectColumns": ["lastname"], "flowId": "compatible"}),
    );
    let precise = enable(
        &connection,
        json!({"entityType": "contacts", "changeType": "modified", "selectColumns": ["lastname"], "onlyWhenChanged": true, "flowId": "precise"}),
    );
    let id = emulator.table("contacts")[0]["contactid"]
        .as_str()
        .unwrap()
        .to_string();
    let lastname = emulator.table("contacts")[0]["lastname"]
        .as_str()
        .unwrap()
        .to_string();
    update(&connection, "contacts", &id, json!({"lastname": lastname}));
    let same_compatible = events(&emulator, &compatible, 2);
    let same_precise = events(&emulator, &precise, 2);
    assert_eq!(
        messages_of(&same_compatible),
        vec!["Update"],
        "Power Automate fires for a value written again"
    );
    assert!(same_precise.is_empty(), "the precise mode does not");

    update(&connection, "contacts", &id, json!({"lastname": "Changed"}));
    let changed = events(&emulator, &precise, 4);
    assert_eq!(messages_of(&changed), vec!["Update"]);
    assert_eq!(
        changed[0]["preImages"]["PreImage"]["lastname"],
        lastname.as_str()
    );
    assert_eq!(changed[0]["postImages"]["PostImage"]["lastname"], "Changed");
}

#[test]
fn enabling_again_after_a_crash_finds_and_repairs_its_own_registration() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let settings = json!({"entityType": "accounts", "changeType": "added-modified-or-deleted", "filterRows": "statecode eq 0", "flowId": "flow-42"});
    let first = enable(&connection, settings.clone());
    let first_state: Value = serde_json::from_str(&first.state).unwrap();
    let counts = |emulator: &Emulator| {
        (
            emulator.table("serviceendpoints").len(),
            emulator.table("sdkmessageprocessingsteps").len(),
            emulator.table("sdkmessageprocessingstepimages").len(),
        )
    };
    assert_eq!(counts(&emulator), (1, 3, 3));
    let name = emulator.table("serviceendpoints")[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(name.starts_with("dynamics-connector row-changed account "));
    assert!(
        !name.contains(&emulator.seeded_users().application_user.business_unit_id),
        "the name holds no environment ID"
    );

    // The host crashed and lost the state; one step was half-removed in the meantime.
    let step = steps(&emulator, &first.state)[0].1["sdkmessageprocessingstepid"]
        .as_str()
        .unwrap()
        .to_string();
    for image in emulator.table("sdkmessageprocessingstepimages") {
        if image["_sdkmessageprocessingstepid_value"] == step.as_str() {
            invoke(
                &connection,
                "delete-entity",
                json!({"entityType": "sdkmessageprocessingstepimages", "entityId": image["sdkmessageprocessingstepimageid"]}),
            );
        }
    }
    assert_eq!(counts(&emulator), (1, 3, 2));
    invoke(
        &connection,
        "delete-entity",
        json!({"entityType": "sdkmessageprocessingsteps", "entityId": step}),
    );
    let again = enable(&connection, settings.clone());
    let again_state: Value = serde_json::from_str(&again.state).unwrap();
    assert_eq!(
        again_state["serviceEndpointId"], first_state["serviceEndpointId"],
        "the endpoint is reused"
    );
    assert_eq!(counts(&emulator), (1, 3, 3), "nothing registered twice");
    assert!(
        emulator.table("serviceendpoints")[0]["url"]
            .as_str()
            .unwrap()
            .starts_with(again.server.url()),
        "the endpoint now calls the new server"
    );
    let third = enable(&connection, settings);
    assert_eq!(counts(&emulator), (1, 3, 3));

    // The repaired registration delivers to the server enabled last.
    create(&connection, "accounts", json!({"name": "After Repair"}));
    let seen = events(&emulator, &third, 1);
    assert_eq!(messages_of(&seen), vec!["Create"]);

    // Another flow with the same settings keeps a registration of its own.
    let _other = enable(
        &connection,
        json!({"entityType": "accounts", "changeType": "added-modified-or-deleted", "filterRows": "statecode eq 0", "flowId": "flow-43"}),
    );
    assert_eq!(counts(&emulator), (2, 6, 6));
}
