//! Get New and Updated Records: oldest first, page by page, resumable by watermark, and a missing
//! table is a warning, not a failure.

use std::collections::BTreeSet;

use dynamics_host::{ConnectorError, ErrorCode};
use e2e_tests::{Answered, connected, emulator, host, json};
use serde_json::{Value, json};

fn read(emulator: &dataverse_emulator::Emulator, input: Value) -> Value {
    json(
        &host()
            .invoke(
                "get-new-and-updated-records",
                &connected(emulator),
                &input.to_string(),
            )
            .unwrap(),
    )
}

/// The component's refusal of `input`.
#[track_caller]
fn refused(emulator: &dataverse_emulator::Emulator, input: &Value) -> ConnectorError {
    host()
        .invoke(
            "get-new-and-updated-records",
            &connected(emulator),
            &input.to_string(),
        )
        .answered()
        .expect_err("refused")
}

/// Asserts that `output` holds every account the emulator has, each exactly once.
#[track_caller]
fn assert_each_account_once(emulator: &dataverse_emulator::Emulator, output: &Value) {
    let mut expected: Vec<String> = emulator
        .table("accounts")
        .iter()
        .map(|row| row["accountid"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    let mut ids = column(output, "accountid");
    ids.sort();
    assert_eq!(ids, expected, "each account once");
}

/// One column of an output's records, as text.
fn column<'a>(output: &'a Value, name: &str) -> Vec<&'a str> {
    output["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record[name].as_str().unwrap())
        .collect()
}

/// Deletes an account through the component.
fn delete_account(emulator: &dataverse_emulator::Emulator, id: &str) {
    let input = json!({"entityType": "accounts", "entityId": id});
    host()
        .invoke("delete-entity", &connected(emulator), &input.to_string())
        .unwrap();
}

/// Renames an account through the component.
fn rename_account(emulator: &dataverse_emulator::Emulator, id: &str, name: &str) {
    let input = json!({"entityType": "accounts", "entityId": id, "fieldValues": {"name": name}});
    host()
        .invoke("update-entity", &connected(emulator), &input.to_string())
        .unwrap();
}

#[test]
fn every_row_arrives_exactly_once_across_calls_resumed_by_watermark() {
    let emulator = emulator();
    let all: BTreeSet<String> = emulator
        .table("accounts")
        .iter()
        .map(|row| row["accountid"].as_str().unwrap().to_string())
        .collect();
    let mut seen: Vec<String> = Vec::new();
    let mut input = json!({"entityType": "accounts", "anchorDate": "2000-01-01", "recordsPerPage": 3, "maxRecords": 4, "fieldNames": ["name"]});
    let mut calls = 0;
    loop {
        calls += 1;
        let output = read(&emulator, input.clone());
        let records = output["records"].as_array().unwrap();
        let stamps: Vec<&str> = records
            .iter()
            .map(|r| r["modifiedon"].as_str().unwrap())
            .collect();
        assert!(
            stamps.windows(2).all(|pair| pair[0] <= pair[1]),
            "oldest first: {stamps:?}"
        );
        seen.extend(
            records
                .iter()
                .map(|r| r["accountid"].as_str().unwrap().to_string()),
        );
        input["watermark"] = output["nextWatermark"].clone();
        if output["complete"] == true {
            break;
        }
        assert!(calls < 20, "the extraction ends");
    }
    assert!(calls > 1, "the cap split the read into several calls");
    assert_eq!(seen.len(), all.len(), "no row twice");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), all);

    // Nothing new since the last watermark: nothing comes back.
    let again = read(&emulator, input.clone());
    assert_eq!(again["records"].as_array().unwrap().len(), 0);
    // A change after the watermark comes back.
    let id = all.iter().next().unwrap();
    let update =
        json!({"entityType": "accounts", "entityId": id, "fieldValues": {"name": "Touched"}})
            .to_string();
    host()
        .invoke("update-entity", &connected(&emulator), &update)
        .unwrap();
    let changed = read(&emulator, input);
    let names = column(&changed, "name");
    assert_eq!(names, ["Touched"]);
}

#[test]
fn a_table_that_is_not_installed_gives_no_rows_and_a_warning() {
    let emulator = emulator();
    let output = read(&emulator, json!({"entityType": "msdyn_workorders"}));
    assert_eq!(output["records"], json!([]));
    assert_eq!(output["complete"], true);
    assert!(
        output["warning"]
            .as_str()
            .unwrap()
            .contains("\"msdyn_workorders\" does not exist")
    );
}

#[test]
fn bad_dates_and_watermarks_are_refused() {
    let emulator = emulator();
    for (input, field) in [
        (
            json!({"entityType": "accounts", "anchorDate": "last tuesday"}),
            "anchorDate",
        ),
        (
            json!({"entityType": "accounts", "anchorDate": "2024-01-01'; drop"}),
            "anchorDate",
        ),
        (
            json!({"entityType": "accounts", "watermark": "{\"modifiedon\": \"x\", \"ids\": []}"}),
            "watermark",
        ),
    ] {
        let failure = refused(&emulator, &input);
        assert_eq!(failure.code, ErrorCode::InvalidInput);
        assert_eq!(failure.field.as_deref(), Some(field));
    }
    assert!(emulator.requests().is_empty());
}

#[test]
fn change_tracking_reports_changes_and_deletions_and_starts_over_when_the_link_expires() {
    let emulator = emulator();
    let total = emulator.table("accounts").len();
    let first = read(
        &emulator,
        json!({"entityType": "accounts", "useChangeTracking": true, "recordsPerPage": 7, "fieldNames": ["name"]}),
    );
    assert_eq!(
        first["records"].as_array().unwrap().len(),
        total,
        "the first read is full"
    );
    let delta = first["deltaLink"].as_str().unwrap().to_string();

    let victim = emulator.table("accounts")[0]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    let changed = emulator.table("accounts")[1]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    delete_account(&emulator, &victim);
    rename_account(&emulator, &changed, "Changed Since");

    let next = read(
        &emulator,
        json!({"entityType": "accounts", "useChangeTracking": true, "deltaLink": delta}),
    );
    let names = column(&next, "name");
    assert_eq!(names, ["Changed Since"]);
    assert_eq!(next["deleted"], json!([victim]));
    assert_eq!(next["resynced"], false);

    emulator.expire_delta_tokens();
    let again = read(
        &emulator,
        json!({"entityType": "accounts", "useChangeTracking": true, "deltaLink": next["deltaLink"]}),
    );
    assert_eq!(again["resynced"], true);
    assert_eq!(again["records"].as_array().unwrap().len(), total - 1);
}

#[test]
fn a_change_tracking_read_cut_by_rows_per_call_goes_on_from_its_next_link_to_every_row_once() {
    let emulator = emulator();
    let total = emulator.table("accounts").len();
    assert!(total > 12, "the seed has enough rows to cut: {total}");
    let mut ids = std::collections::BTreeSet::new();
    let mut rows = 0;
    let mut calls = 0;
    let mut input = json!({"entityType": "accounts", "useChangeTracking": true, "recordsPerPage": 5, "rowsPerCall": 7, "fieldNames": ["name"]});
    let delta = loop {
        calls += 1;
        assert!(calls <= total, "the read ends");
        let output = read(&emulator, input.clone());
        for record in output["records"].as_array().unwrap() {
            rows += 1;
            ids.insert(record["accountid"].as_str().unwrap().to_string());
        }
        if output["complete"] == true {
            assert_eq!(output["nextLink"], Value::Null);
            break output["deltaLink"].as_str().unwrap().to_string();
        }
        // Cut after the page that reached 7 rows: two pages of 5.
        assert_eq!(output["records"].as_array().unwrap().len(), 10);
        assert_eq!(output["deltaLink"], Value::Null);
        input["deltaLink"] = output["nextLink"].clone();
    };
    assert_eq!((rows, ids.len()), (total, total), "every row once");
    assert_eq!(calls, total.div_ceil(10));

    // The delta link the cut read ends with tracks what changed after it.
    let changed = emulator.table("accounts")[2]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    let update = json!({"entityType": "accounts", "entityId": changed, "fieldValues": {"name": "After The Cut"}});
    host()
        .invoke("update-entity", &connected(&emulator), &update.to_string())
        .unwrap();
    let next = read(
        &emulator,
        json!({"entityType": "accounts", "useChangeTracking": true, "rowsPerCall": 7, "deltaLink": delta}),
    );
    assert_eq!(next["records"][0]["name"], "After The Cut");
    assert_eq!(next["complete"], true);
}

#[test]
fn rows_per_call_and_a_link_of_another_table_are_refused_naming_the_field_before_any_request() {
    let emulator = emulator();
    let other = format!(
        "{}/contacts?$skiptoken=%3Ccookie%20pagenumber%3D%222%22%20istracking%3D%22True%22%20/%3E",
        emulator.web_api_url()
    );
    for (input, field) in [
        (
            json!({"entityType": "accounts", "useChangeTracking": true, "rowsPerCall": 0}),
            "rowsPerCall",
        ),
        (
            json!({"entityType": "accounts", "useChangeTracking": true, "rowsPerCall": 2.5}),
            "rowsPerCall",
        ),
        (
            json!({"entityType": "accounts", "useChangeTracking": true, "deltaLink": other}),
            "deltaLink",
        ),
    ] {
        emulator.clear_requests();
        let failure = refused(&emulator, &input);
        assert_eq!(failure.code, ErrorCode::InvalidInput, "{input}");
        assert_eq!(failure.field.as_deref(), Some(field), "{input}");
        assert!(emulator.requests().is_empty(), "{input}");
    }
}

#[test]
fn a_broken_or_cut_page_is_sent_for_again_and_its_rows_arrive_once() {
    use dataverse_emulator::Fault;
    for fault in [Fault::MalformedJson, Fault::CutMidBody] {
        let emulator = emulator();
        // Pages of 3: the second answer is broken.
        emulator.faults().inject_after(1, fault, 1, "/accounts");
        let output = read(
            &emulator,
            json!({"entityType": "accounts", "anchorDate": "2000-01-01", "recordsPerPage": 3, "maxRecords": 1000, "fieldNames": ["name"]}),
        );
        assert_eq!(emulator.faults().pending(), 0, "the fault was met");
        assert_eq!(output["complete"], true);
        assert_each_account_once(&emulator, &output);
    }
}

#[test]
fn a_cut_change_page_is_sent_for_again_and_its_rows_and_deletions_arrive_once() {
    use dataverse_emulator::Fault;
    for fault in [Fault::MalformedJson, Fault::CutMidBody] {
        let emulator = emulator();
        emulator
            .faults()
            .inject_after(1, fault.clone(), 1, "/accounts");
        let first = read(
            &emulator,
            json!({"entityType": "accounts", "useChangeTracking": true, "recordsPerPage": 3, "fieldNames": ["name"]}),
        );
        assert_eq!(emulator.faults().pending(), 0, "the fault was met");
        assert_each_account_once(&emulator, &first);

        let rows = emulator.table("accounts");
        let victims: Vec<String> = rows[..2]
            .iter()
            .map(|row| row["accountid"].as_str().unwrap().to_string())
            .collect();
        for victim in &victims {
            delete_account(&emulator, victim);
        }
        rename_account(&emulator, rows[2]["accountid"].as_str().unwrap(), "Changed");
        // The changes come a row a page; the second page is broken.
        emulator.faults().inject_after(1, fault, 1, "/accounts");
        let next = read(
            &emulator,
            json!({"entityType": "accounts", "useChangeTracking": true, "recordsPerPage": 1, "deltaLink": first["deltaLink"]}),
        );
        assert_eq!(emulator.faults().pending(), 0, "the fault was met");
        let names = column(&next, "name");
        assert_eq!(names, ["Changed"]);
        let mut deleted: Vec<String> = next["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_string())
            .collect();
        deleted.sort();
        let mut expected = victims.clone();
        expected.sort();
        assert_eq!(deleted, expected, "each deletion once");
    }
}

/// Both kinds of read ask for each next page while reading the one before it, and for each
/// page once.
#[test]
fn watermark_and_change_reads_ask_for_each_next_page_while_reading_the_one_before() {
    let emulator = emulator();
    let (host, log) = e2e_tests::host_with_memory_log();
    for input in [
        json!({"entityType": "accounts", "anchorDate": "2000-01-01", "recordsPerPage": 3, "maxRecords": 1000, "fieldNames": ["name"]}),
        json!({"entityType": "accounts", "useChangeTracking": true, "recordsPerPage": 3, "fieldNames": ["name"]}),
    ] {
        emulator.clear_requests();
        let before = log.lines().len();
        let output = json(
            &host
                .invoke(
                    "get-new-and-updated-records",
                    &connected(&emulator),
                    &input.to_string(),
                )
                .unwrap(),
        );
        assert_each_account_once(&emulator, &output);
        let reads: Vec<String> = emulator
            .requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.contains("/accounts"))
            .map(|r| r.path)
            .collect();
        let pages = emulator.table("accounts").len().div_ceil(3);
        assert!(pages > 2, "{pages}");
        assert_eq!(reads.len(), pages, "{input}: {reads:#?}");
        assert_eq!(
            reads.iter().collect::<BTreeSet<_>>().len(),
            reads.len(),
            "no page twice"
        );
        let ahead = log.lines()[before..]
            .iter()
            .filter(|line| {
                line.message.contains("/accounts") && line.message.contains("started ahead")
            })
            .count();
        assert_eq!(ahead, reads.len() - 1, "{input}");
    }
}
