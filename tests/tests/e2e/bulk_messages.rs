//! Bulk operation messages through the component: Batch Entity Actions and Sync Records write
//! with CreateMultiple, UpdateMultiple and UpsertMultiple where the emulator's table has them
//! (asked once per table), fall back to `$batch` where it does not or where a standard table's
//! request is refused, keep input order, and land every record exactly once through cut,
//! corrupted, lost and throttled answers, reruns and reused keys.

use std::collections::BTreeSet;

use dataverse_emulator::{Emulator, Fault};
use dynamics_host::{ConnectorError, Host};
use e2e_tests::{
    Answered, account_creates, accounts_numbered, connected, emulator, host, impatient_host, json,
};
use serde_json::{Value, json};

fn invoke_on(
    host: &Host,
    emulator: &Emulator,
    action: &str,
    input: &Value,
) -> Result<Value, ConnectorError> {
    host.invoke(action, &connected(emulator), &input.to_string())
        .answered()
        .map(|output| json(&output))
}

fn invoke(emulator: &Emulator, action: &str, input: &Value) -> Value {
    invoke_on(host(), emulator, action, input)
        .unwrap_or_else(|failure| panic!("{action}: {failure:?}"))
}

/// Requests whose path contains `part`, as the emulator received them.
fn requests_to(emulator: &Emulator, part: &str) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|request| request.path.contains(part))
        .count()
}

fn ids(output: &Value) -> Vec<String> {
    output["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Each result's ID is the stored row of its own item (found by its account number), in input
/// order.
fn assert_ids_in_input_order(emulator: &Emulator, prefix: &str, output: &Value) {
    let rows = emulator.table("accounts");
    for (index, id) in ids(output).iter().enumerate() {
        let number = format!("{prefix}-{index}");
        let row = rows
            .iter()
            .find(|row| row["accountnumber"] == number.as_str())
            .unwrap_or_else(|| panic!("{number} stored"));
        assert_eq!(row["accountid"], id.as_str(), "item {index}");
        assert_eq!(output["results"][index]["index"], index);
    }
}

#[test]
fn twelve_hundred_creates_go_in_two_create_multiple_requests_and_land_once_in_input_order() {
    let emulator = emulator();
    let input = json!({"batchActions": account_creates("BULK", 1200), "idempotencyKey": "bulk-1", "bulkBatchSize": 1000});
    let output = invoke(&emulator, "batch-entity-actions", &input);
    assert_eq!(output["succeeded"], 1200, "{}", output["failed"]);
    assert_eq!(output["path"], "bulk");
    assert_eq!(
        (output["bulkRequests"].as_u64(), output["batches"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(accounts_numbered(&emulator, "BULK"), (1200, 1200));
    assert_ids_in_input_order(&emulator, "BULK", &output);
    // What the emulator saw: one availability question, two bulk requests, no $batch.
    assert_eq!(requests_to(&emulator, "sdkmessagefilters"), 1);
    assert_eq!(
        requests_to(&emulator, "accounts/Microsoft.Dynamics.CRM.CreateMultiple"),
        2
    );
    assert_eq!(requests_to(&emulator, "$batch"), 0);

    // The rerun with the same key: the bulk request meets its own rows, falls back, and every
    // item is reported as already created with the same ID.
    let rerun = invoke(&emulator, "batch-entity-actions", &input);
    assert_eq!(rerun["succeeded"], 1200);
    assert_eq!(ids(&rerun), ids(&output));
    assert!(
        rerun["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|result| result["alreadyCreated"] == true)
    );
    assert_eq!(accounts_numbered(&emulator, "BULK"), (1200, 1200));
}

/// An emulator that answers at once and sends `x-ms-dop-hint: hint`.
fn hinting(hint: usize) -> dataverse_emulator::Emulator {
    let emulator = emulator();
    emulator.set_cost_model(Some(dataverse_emulator::CostModel {
        latency: std::time::Duration::ZERO,
        per_record: std::time::Duration::ZERO,
        dop_hint: hint,
        ..dataverse_emulator::CostModel::default()
    }));
    emulator
}

#[test]
fn without_a_size_the_creates_are_spread_over_the_services_parallelism() {
    // The hint arrives with the bulk messages question, before the chunks are cut: 2,000
    // creates under a hint of 8 go as 8 requests of 250 (sent together), not 2 of 1,000.
    let emulator = hinting(8);
    let input =
        json!({"batchActions": account_creates("SPREAD", 2000), "idempotencyKey": "spread-1"});
    let output = invoke(&emulator, "batch-entity-actions", &input);
    assert_eq!(output["succeeded"], 2000, "{}", output["failed"]);
    assert_eq!(output["bulkRequests"], 8);
    let sizes: Vec<usize> = emulator
        .requests()
        .iter()
        .filter(|request| {
            request
                .path
                .ends_with("/Microsoft.Dynamics.CRM.CreateMultiple")
        })
        .map(|request| {
            json(&String::from_utf8_lossy(&request.body))["Targets"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .collect();
    assert_eq!(sizes, [250; 8]);
    assert_eq!(accounts_numbered(&emulator, "SPREAD"), (2000, 2000));
    assert_ids_in_input_order(&emulator, "SPREAD", &output);
    assert_eq!(emulator.throttled().total(), 0);

    // A rerun with the same key cuts the same records differently or not: each one is met.
    let rerun = invoke(&emulator, "batch-entity-actions", &input);
    assert_eq!(rerun["succeeded"], 2000);
    assert_eq!(ids(&rerun), ids(&output));
    assert_eq!(accounts_numbered(&emulator, "SPREAD"), (2000, 2000));
}

#[test]
fn batch_requests_are_spread_too_the_hint_asked_for_with_who_am_i_when_no_answer_brought_it() {
    // On the $batch path nothing is asked before the chunks are cut, so the action asks
    // WhoAmI for the hint: 2,000 creates under a hint of 8 go as 8 $batch requests of 250.
    let emulator = hinting(8);
    let input = json!({"batchActions": account_creates("SPREADB", 2000), "idempotencyKey": "spread-b", "writePath": "batch"});
    let output = invoke(&emulator, "batch-entity-actions", &input);
    assert_eq!(output["succeeded"], 2000, "{}", output["failed"]);
    assert_eq!(
        (output["batches"].as_u64(), output["bulkRequests"].as_u64()),
        (Some(8), Some(0))
    );
    assert_eq!(requests_to(&emulator, "/WhoAmI"), 1);
    assert_eq!(requests_to(&emulator, "$batch"), 8);
    assert_eq!(accounts_numbered(&emulator, "SPREADB"), (2000, 2000));
    assert_ids_in_input_order(&emulator, "SPREADB", &output);
    assert_eq!(emulator.throttled().total(), 0);
}

#[test]
fn a_table_without_bulk_messages_is_written_through_batch_beside_one_with_them() {
    let emulator = emulator();
    let output = invoke(
        &emulator,
        "batch-entity-actions",
        &json!({"batchActions": [
            {"collection": "annotations", "action": "create", "data": {"subject": "NOTE-1", "notetext": "one"}},
            {"collection": "accounts", "action": "create", "data": {"name": "MIX 0", "accountnumber": "MIX-0"}},
            {"collection": "annotations", "action": "create", "data": {"subject": "NOTE-2", "notetext": "two"}},
        ]}),
    );
    assert_eq!(output["succeeded"], 3, "{output}");
    assert_eq!(output["path"], "bulk+batch");
    assert_eq!(output["results"][1]["via"], "bulk");
    assert!(output["results"][0].get("via").is_none(), "{output}");
    assert_eq!(
        requests_to(&emulator, "annotations/Microsoft.Dynamics.CRM"),
        0
    );
    assert_eq!(requests_to(&emulator, "$batch"), 1);
    let notes = emulator.table("annotations");
    for (index, subject) in [(0, "NOTE-1"), (2, "NOTE-2")] {
        let note = notes
            .iter()
            .find(|row| row["subject"] == subject)
            .unwrap_or_else(|| panic!("{subject} stored"));
        assert_eq!(note["annotationid"], output["results"][index]["id"]);
    }
    assert_eq!(accounts_numbered(&emulator, "MIX"), (1, 1));

    // Write Path batch: no question, no bulk request.
    emulator.clear_requests();
    let output = invoke(
        &emulator,
        "batch-entity-actions",
        &json!({"writePath": "batch", "batchActions": account_creates("ONLYBATCH", 3)}),
    );
    assert_eq!(output["path"], "batch");
    assert_eq!(requests_to(&emulator, "sdkmessagefilters"), 0);
    assert_eq!(
        requests_to(&emulator, "Microsoft.Dynamics.CRM.CreateMultiple"),
        0
    );
    assert_eq!(accounts_numbered(&emulator, "ONLYBATCH"), (3, 3));
}

#[test]
fn a_refused_standard_request_rolls_back_and_each_item_gets_its_own_result_through_batch() {
    let emulator = emulator();
    let taken = emulator.table("accounts")[0]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut items = account_creates("ROLL", 3);
    // Someone else's row ID: the whole CreateMultiple is refused and rolled back.
    items[1]["data"]["accountid"] = json!(taken);
    let output = invoke(
        &emulator,
        "batch-entity-actions",
        &json!({"batchActions": items}),
    );
    assert_eq!(
        output["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["outcome"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["succeeded", "failed", "succeeded"],
        "{output}"
    );
    assert_eq!(output["results"][1]["status"], 412);
    assert_eq!(output["path"], "bulk+batch");
    assert_eq!(accounts_numbered(&emulator, "ROLL"), (2, 2));
    let rows = emulator.table("accounts");
    let kept = rows.iter().find(|row| row["accountid"] == taken.as_str());
    assert_ne!(
        kept.unwrap()["accountnumber"],
        "ROLL-1",
        "the other row is untouched"
    );
}

fn reading(device: &str, name: &str) -> Value {
    json!({"collection": "new_sensorreadings", "action": "create",
           "data": {"new_name": name, "new_deviceid": device, "new_value": 40, "partitionid": device}})
}

#[test]
fn an_elastic_table_succeeds_partially_and_each_item_reports_its_own_outcome_in_order() {
    let emulator = emulator();
    let existing = emulator.table("new_sensorreadings")[0]["new_sensorreadingid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut clash = reading("device-2", "E-CLASH");
    clash["data"]["new_sensorreadingid"] = json!(existing);
    let input = json!({"idempotencyKey": "elastic-1", "batchActions": [
        reading("device-1", "E-1"), clash, reading("device-1", "E-3"),
    ]});
    let output = invoke(&emulator, "batch-entity-actions", &input);
    let outcomes: Vec<&str> = output["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["succeeded", "failed", "succeeded"], "{output}");
    assert_eq!(output["results"][1]["status"], 412);
    assert_eq!(output["path"], "bulk", "no fallback on an elastic table");
    let rows = emulator.table("new_sensorreadings");
    for index in [0, 2] {
        let id = output["results"][index]["id"].as_str().unwrap();
        let row = rows
            .iter()
            .find(|row| row["new_sensorreadingid"] == id)
            .unwrap_or_else(|| panic!("item {index} stored"));
        assert_eq!(row["new_name"], format!("E-{}", index + 1));
        assert_eq!(row["partitionid"], "device-1");
    }

    // The rerun: every named reading meets its own row (read back in its partition).
    let rerun = invoke(&emulator, "batch-entity-actions", &input);
    assert_eq!(rerun["results"][0]["alreadyCreated"], true, "{rerun}");
    assert_eq!(rerun["results"][2]["alreadyCreated"], true, "{rerun}");
    assert_eq!(rerun["results"][1]["outcome"], "failed");
    let named = |name: &str| {
        emulator
            .table("new_sensorreadings")
            .iter()
            .filter(|row| row["new_name"] == name)
            .count()
    };
    assert_eq!((named("E-1"), named("E-3"), named("E-CLASH")), (1, 1, 0));
}

#[test]
fn cut_corrupted_and_throttled_bulk_answers_make_each_row_once_through_call_and_rerun() {
    for fault in [
        Fault::CutMidBody,
        Fault::MalformedJson,
        Fault::Throttle {
            retry_after_secs: 0,
        },
        Fault::Unavailable,
    ] {
        let emulator = emulator();
        let prefix = format!("F{}", fault.kind());
        let input = json!({"batchActions": account_creates(&prefix, 300), "idempotencyKey": format!("fault-{prefix}")});
        emulator
            .faults()
            .inject_on(fault.clone(), 2, "Microsoft.Dynamics.CRM.CreateMultiple");
        let first = invoke_on(impatient_host(), &emulator, "batch-entity-actions", &input)
            .unwrap_or_else(|failure| panic!("{prefix}: {failure:?}"));
        assert_eq!(first["succeeded"], 300, "{prefix}: {}", first["failed"]);
        assert_eq!(
            accounts_numbered(&emulator, &prefix),
            (300, 300),
            "{prefix}: after the call"
        );
        assert_ids_in_input_order(&emulator, &prefix, &first);
        let rerun = invoke(&emulator, "batch-entity-actions", &input);
        assert_eq!(rerun["succeeded"], 300, "{prefix}");
        assert_eq!(ids(&rerun), ids(&first), "{prefix}");
        assert_eq!(
            accounts_numbered(&emulator, &prefix),
            (300, 300),
            "{prefix}: after the rerun"
        );
    }
}

#[test]
fn when_every_bulk_answer_is_lost_the_error_gives_the_key_whose_rerun_finishes_without_a_second_row()
 {
    let emulator = emulator();
    emulator.faults().inject_on(
        Fault::CutMidBody,
        100,
        "Microsoft.Dynamics.CRM.CreateMultiple",
    );
    let input = json!({"batchActions": account_creates("LOSTBULK", 200), "bulkBatchSize": 200});
    let failure = invoke_on(impatient_host(), &emulator, "batch-entity-actions", &input)
        .expect_err("no answer ever arrives");
    assert!(
        failure
            .message
            .contains("items 0–199 may or may not have been applied"),
        "{}",
        failure.message
    );
    let hint = failure.hint.clone().unwrap_or_default();
    let key = hint
        .split("idempotencyKey \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the hint names the key: {hint}"))
        .to_string();
    emulator.faults().clear();
    assert_eq!(
        accounts_numbered(&emulator, "LOSTBULK"),
        (200, 200),
        "applied once"
    );
    let mut rerun = input.clone();
    rerun["idempotencyKey"] = json!(key);
    let output = invoke(&emulator, "batch-entity-actions", &rerun);
    assert_eq!(output["succeeded"], 200);
    assert!(
        output["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|result| result["alreadyCreated"] == true)
    );
    assert_eq!(accounts_numbered(&emulator, "LOSTBULK"), (200, 200));
}

#[test]
fn a_key_reused_for_other_data_makes_other_rows_through_the_bulk_path() {
    let emulator = emulator();
    let first = invoke(
        &emulator,
        "batch-entity-actions",
        &json!({"batchActions": account_creates("REUSEA", 5), "idempotencyKey": "shared"}),
    );
    let second = invoke(
        &emulator,
        "batch-entity-actions",
        &json!({"batchActions": account_creates("REUSEB", 5), "idempotencyKey": "shared"}),
    );
    assert_eq!(second["path"], "bulk", "{second}");
    assert!(!second.to_string().contains("alreadyCreated"), "{second}");
    let a: BTreeSet<String> = ids(&first).into_iter().collect();
    let b: BTreeSet<String> = ids(&second).into_iter().collect();
    assert!(a.is_disjoint(&b));
    assert_eq!(accounts_numbered(&emulator, "REUSEA"), (5, 5));
    assert_eq!(accounts_numbered(&emulator, "REUSEB"), (5, 5));
}

#[test]
fn updates_by_id_go_in_update_multiple_and_a_missing_record_fails_alone() {
    let emulator = emulator();
    let rows = emulator.table("accounts");
    let (a, b) = (
        rows[0]["accountid"].as_str().unwrap().to_string(),
        rows[1]["accountid"].as_str().unwrap().to_string(),
    );
    let output = invoke(
        &emulator,
        "batch-entity-actions",
        &json!({"batchActions": [
            {"collection": "accounts", "action": "update", "key": a, "data": {"name": "UPDATED A"}},
            {"collection": "accounts", "action": "create", "data": {"name": "UPD 0", "accountnumber": "UPD-0"}},
            {"collection": "accounts", "action": "update", "key": b, "data": {"name": "UPDATED B"}},
        ]}),
    );
    assert_eq!(output["succeeded"], 3, "{output}");
    assert_eq!(output["results"][0]["via"], "bulk");
    assert_eq!(output["results"][0]["id"], a.as_str());
    assert_eq!(
        requests_to(&emulator, "accounts/Microsoft.Dynamics.CRM.UpdateMultiple"),
        1
    );
    let stored = emulator.table("accounts");
    let name = |id: &str| {
        stored
            .iter()
            .find(|row| row["accountid"] == id)
            .map(|row| row["name"].clone())
    };
    assert_eq!(name(&a), Some(json!("UPDATED A")));
    assert_eq!(name(&b), Some(json!("UPDATED B")));

    // An update of a record that does not exist: the bulk request is refused whole, the
    // fallback writes the other and reports the missing one as not found, never creating it.
    let missing = "99999999-0000-4000-8000-000000000001";
    let output = invoke(
        &emulator,
        "batch-entity-actions",
        &json!({"batchActions": [
            {"collection": "accounts", "action": "update", "key": missing, "data": {"name": "GHOST"}},
            {"collection": "accounts", "action": "update", "key": a, "data": {"name": "UPDATED AGAIN"}},
        ]}),
    );
    assert_eq!(output["results"][0]["outcome"], "failed", "{output}");
    assert_eq!(output["results"][0]["status"], 404);
    assert_eq!(output["results"][1]["outcome"], "succeeded");
    let stored = emulator.table("accounts");
    assert!(!stored.iter().any(|row| row["accountid"] == missing));
    assert!(stored.iter().any(|row| row["name"] == "UPDATED AGAIN"));
}

#[test]
fn sync_records_upserts_by_alternate_key_with_upsert_multiple_and_a_rerun_changes_nothing() {
    let emulator = emulator();
    let existing = emulator.table("accounts")[0].clone();
    let number = existing["accountnumber"].as_str().unwrap().to_string();
    let mut records = vec![json!({"accountnumber": number, "name": "SYNCED EXISTING"})];
    records.extend(
        (0..150).map(|i| json!({"accountnumber": format!("UPS-{i}"), "name": format!("ups {i}")})),
    );
    let input = json!({"entityType": "accounts", "records": records, "matchOn": "accountnumber",
                       "batchSize": 100, "suppressFlowTriggers": true});
    emulator.faults().inject_on(
        Fault::CutMidBody,
        1,
        "Microsoft.Dynamics.CRM.UpsertMultiple",
    );
    let output = invoke(&emulator, "sync-records", &input);
    assert_eq!(
        (output["created"].as_u64(), output["updated"].as_u64()),
        (Some(150), Some(1)),
        "{}",
        output["failed"]
    );
    assert_eq!(output["path"], "bulk");
    assert_eq!(output["results"][0]["id"], existing["accountid"]);
    let upserts: Vec<_> = emulator
        .requests()
        .into_iter()
        .filter(|request| {
            request
                .path
                .contains("Microsoft.Dynamics.CRM.UpsertMultiple")
        })
        .collect();
    assert!(upserts.len() >= 2, "two chunks of at most 100");
    assert!(upserts.iter().all(|request| {
        request.header("MSCRM.SuppressCallbackRegistrationExpanderJob") == Some("true")
    }));
    assert_eq!(accounts_numbered(&emulator, "UPS"), (150, 150));
    let rows = emulator.table("accounts");
    for (index, result) in output["results"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .skip(1)
    {
        let row = rows
            .iter()
            .find(|row| row["accountnumber"] == format!("UPS-{}", index - 1))
            .unwrap();
        assert_eq!(result["id"], row["accountid"], "record {index}");
    }
    let rerun = invoke(&emulator, "sync-records", &input);
    assert_eq!(rerun["unchanged"], 151);
    assert_eq!(accounts_numbered(&emulator, "UPS"), (150, 150));
}

#[test]
fn the_switches_reach_the_emulator_on_bulk_requests_and_in_every_batch_part() {
    let emulator = emulator();
    invoke(
        &emulator,
        "batch-entity-actions",
        &json!({"suppressFlowTriggers": true, "batchActions": [
            {"collection": "accounts", "action": "create", "data": {"name": "SW 0", "accountnumber": "SW-0"}},
            {"collection": "annotations", "action": "create", "data": {"subject": "SW note"}},
        ]}),
    );
    let requests = emulator.requests();
    let bulk = requests
        .iter()
        .find(|request| {
            request
                .path
                .contains("accounts/Microsoft.Dynamics.CRM.CreateMultiple")
        })
        .expect("a bulk request");
    assert_eq!(
        bulk.header("MSCRM.SuppressCallbackRegistrationExpanderJob"),
        Some("true")
    );
    let batch = requests
        .iter()
        .find(|request| request.path.contains("$batch"))
        .expect("a $batch for the note");
    let body = String::from_utf8_lossy(&batch.body);
    assert!(
        body.contains("MSCRM.SuppressCallbackRegistrationExpanderJob: true"),
        "{body}"
    );
}

#[test]
fn a_create_with_its_own_primary_id_whose_bulk_answer_is_cut_meets_its_row_and_a_taken_id_is_refused()
 {
    let emulator = emulator();
    let id = "11111111-2222-3333-4444-55555555aaa1";
    emulator.faults().inject_on(
        Fault::CutMidBody,
        1,
        "accounts/Microsoft.Dynamics.CRM.CreateMultiple",
    );
    let input = json!({"batchActions": [
        {"collection": "accounts", "action": "create", "data": {"name": "own id", "accountnumber": "OWN-0", "accountid": id}},
        {"collection": "accounts", "action": "create", "data": {"name": "other", "accountnumber": "OWN-1"}},
    ]});
    let output = invoke(&emulator, "batch-entity-actions", &input);
    assert_eq!(output["succeeded"], 2, "{output}");
    assert_eq!(output["results"][0]["id"], id);
    assert_eq!(output["results"][0]["alreadyCreated"], true, "{output}");
    assert_eq!(accounts_numbered(&emulator, "OWN"), (2, 2));

    // The same ID with other data is someone else's row: refused, the row untouched.
    let taken = invoke(
        &emulator,
        "batch-entity-actions",
        &json!({"batchActions": [
            {"collection": "accounts", "action": "create", "data": {"name": "someone else", "accountid": id}},
        ]}),
    );
    assert_eq!(taken["results"][0]["outcome"], "failed", "{taken}");
    assert_eq!(taken["results"][0]["status"], 412);
    let stored = emulator.table("accounts");
    let row = stored.iter().find(|row| row["accountid"] == id).unwrap();
    assert_eq!(row["name"], "own id");
}
