//! Batch Entity Actions and Run Fetch XML Query against the emulator's `$batch` and FetchXML.

use std::collections::BTreeSet;

use dynamics_host::{ConnectorError, ErrorCode};
use e2e_tests::{Answered, connected, emulator, host, json};
use serde_json::{Value, json};

fn run(
    emulator: &dataverse_emulator::Emulator,
    action: &str,
    input: Value,
) -> Result<Value, ConnectorError> {
    host()
        .invoke(action, &connected(emulator), &input.to_string())
        .answered()
        .map(|output| json(&output))
}

fn accounts_named(emulator: &dataverse_emulator::Emulator, prefix: &str) -> usize {
    emulator
        .table("accounts")
        .iter()
        .filter(|row| {
            row["name"]
                .as_str()
                .is_some_and(|name| name.starts_with(prefix))
        })
        .count()
}

#[test]
fn a_change_set_with_a_failing_item_leaves_no_trace() {
    let emulator = emulator();
    let before = emulator.table("accounts").len();
    let failure = run(
        &emulator,
        "batch-entity-actions",
        json!({
            "allOrNothing": true,
            "batchActions": [
                {"collection": "accounts", "action": "create", "data": {"name": "Atomic 1"}},
                {"collection": "accounts", "action": "create", "data": {"name": "Atomic 2"}},
                {"collection": "accounts", "action": "update", "key": "00000000-0000-0000-0000-0000000000ff", "data": {"name": "Nobody"}},
            ],
        }),
    )
    .unwrap();
    assert_eq!(failure["failed"], 1);
    assert_eq!(failure["rolledBack"], 2);
    assert_eq!(failure["results"][2]["outcome"], "failed");
    assert_eq!(failure["results"][2]["status"], 404);
    assert_eq!(failure["results"][0]["outcome"], "rolled-back");
    assert_eq!(emulator.table("accounts").len(), before);
    assert_eq!(accounts_named(&emulator, "Atomic"), 0);
}

#[test]
fn independent_items_with_continue_on_error_land_and_the_bad_one_reports_its_error_in_order() {
    let emulator = emulator();
    let output = run(
        &emulator,
        "batch-entity-actions",
        json!({
            "batchActions": [
                {"collection": "accounts", "action": "create", "data": {"name": "Loose 1"}, "returnRepresentation": true},
                {"collection": "accounts", "action": "create", "data": {"name": "Loose 2", "nosuchcolumn": 1}},
                {"collection": "accounts", "action": "create", "data": {"name": "Loose 3"}},
            ],
        }),
    )
    .unwrap();
    let outcomes: Vec<&str> = output["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["succeeded", "failed", "succeeded"]);
    let indexes: Vec<u64> = output["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1, 2]);
    assert_eq!(output["results"][1]["error"]["code"], "0x80060888");
    assert_eq!(output["results"][0]["record"]["name"], "Loose 1");
    assert!(output["results"][2]["id"].is_string());
    assert_eq!(accounts_named(&emulator, "Loose"), 2);
}

#[test]
fn items_refer_to_earlier_items_inside_a_change_set() {
    let emulator = emulator();
    let output = run(
        &emulator,
        "batch-entity-actions",
        json!({
            "allOrNothing": true,
            "batchActions": [
                {"collection": "accounts", "action": "create", "ref": "parent", "data": {"name": "Referenced Parent"}},
                {"collection": "contacts", "action": "create", "data": {"lastname": "Referencing Child", "parentcustomerid": {"ref": "parent"}}},
            ],
        }),
    )
    .unwrap();
    assert_eq!(output["succeeded"], 2);
    let parent_id = output["results"][0]["id"].as_str().unwrap();
    let child = emulator
        .table("contacts")
        .into_iter()
        .find(|row| row["lastname"] == "Referencing Child")
        .unwrap();
    assert_eq!(child["_parentcustomerid_value"], parent_id);
}

#[test]
fn bad_batches_are_refused_naming_the_item_before_any_request() {
    let emulator = emulator();
    let cases = [
        (
            json!({"batchActions": [{"collection": "accounts", "action": "update", "data": {"name": "x"}}]}),
            "item 0: a update needs a key",
        ),
        (
            json!({"batchActions": [{"collection": "accounts", "action": "merge", "data": {}}]}),
            "item 0: action must be create, update or delete",
        ),
        (
            json!({"batchActions": [{"collection": "accounts", "action": "create", "data": {"name": "a"}, "ref": "a"}]}),
            "needs All or Nothing",
        ),
        (json!({"batchActions": []}), "is empty"),
        (
            json!({"allOrNothing": true, "batchActions": (0..1001).map(|i| json!({"collection": "accounts", "action": "create", "data": {"name": format!("n{i}")}})).collect::<Vec<_>>()}),
            "has 1001 actions",
        ),
    ];
    for (input, expected) in cases {
        let failure = run(&emulator, "batch-entity-actions", input).unwrap_err();
        assert_eq!(failure.code, ErrorCode::InvalidInput);
        assert_eq!(failure.field.as_deref(), Some("batchActions"));
        assert!(
            failure.message.contains(expected),
            "{} should contain {expected:?}",
            failure.message
        );
    }
    assert!(emulator.requests().is_empty());
}

#[test]
fn fetch_xml_fetch_all_over_twelve_thousand_rows_returns_every_row_once() {
    let emulator = dataverse_emulator::Emulator::start(
        dataverse_emulator::Config {
            rows_per_table: 10,
            table_rows: vec![("contact".to_string(), 12_500)],
            ..Default::default()
        },
        0,
    )
    .unwrap();
    let xml = "<fetch count='5000'><entity name='contact'><attribute name='contactid'/><attribute name='fullname'/><order attribute='fullname'/></entity></fetch>";
    let output = run(
        &emulator,
        "run-fetch-xml-query",
        json!({"entityType": "contacts", "xmlQuery": xml, "fetchAll": true}),
    )
    .unwrap();
    let ids: Vec<&str> = output["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["contactid"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 12_500);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 12_500);
    assert_eq!(output["pages"], 3);
    assert_eq!(output["moreRecords"], false);
    let second = &emulator.requests()[1];
    assert!(
        second.path.contains("paging-cookie"),
        "the second page carries the cookie: {}",
        second.path
    );
}

#[test]
fn fetch_xml_pages_by_next_page_id() {
    let emulator = emulator();
    let xml = "<fetch count='7'><entity name='account'><attribute name='accountid'/><order attribute='name'/></entity></fetch>";
    let first = run(
        &emulator,
        "run-fetch-xml-query",
        json!({"entityType": "accounts", "xmlQuery": xml}),
    )
    .unwrap();
    assert_eq!(first["records"].as_array().unwrap().len(), 7);
    assert_eq!(first["moreRecords"], true);
    let cookie = first["nextPageId"].as_str().unwrap().to_string();
    let second = run(
        &emulator,
        "run-fetch-xml-query",
        json!({"entityType": "accounts", "xmlQuery": xml, "nextPageId": cookie}),
    )
    .unwrap();
    let all: BTreeSet<&str> = first["records"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["records"].as_array().unwrap())
        .map(|r| r["accountid"].as_str().unwrap())
        .collect();
    assert_eq!(all.len(), 14);
}

#[test]
fn a_broken_or_cut_fetch_xml_page_is_sent_for_again_and_its_rows_arrive_once() {
    use dataverse_emulator::Fault;
    for fault in [Fault::MalformedJson, Fault::CutMidBody] {
        let emulator = emulator();
        let total = emulator.table("accounts").len();
        // Pages of 3 read to the end: the second answer is broken.
        emulator.faults().inject_after(1, fault, 1, "/accounts");
        let xml = "<fetch count='3'><entity name='account'><attribute name='accountid'/><order attribute='name'/></entity></fetch>";
        let output = run(
            &emulator,
            "run-fetch-xml-query",
            json!({"entityType": "accounts", "xmlQuery": xml, "fetchAll": true}),
        )
        .unwrap();
        assert_eq!(emulator.faults().pending(), 0, "the fault was met");
        assert_every_row_once(&output, total);
    }
}

#[test]
fn bad_fetch_xml_is_refused_naming_the_element() {
    let emulator = emulator();
    for (xml, expected) in [
        ("<fetch><entity name='account'>", "not well-formed"),
        (
            "<fetch><entity name='account'/><entity name='contact'/></fetch>",
            "exactly one <entity>, found 2",
        ),
        ("<query/>", "must be <fetch>"),
    ] {
        let failure = run(
            &emulator,
            "run-fetch-xml-query",
            json!({"entityType": "accounts", "xmlQuery": xml}),
        )
        .unwrap_err();
        assert_eq!(failure.code, ErrorCode::InvalidInput);
        assert_eq!(failure.field.as_deref(), Some("xmlQuery"));
        assert!(failure.message.contains(expected), "{}", failure.message);
    }
    assert!(emulator.requests().is_empty());
}

#[test]
fn a_throttled_batch_is_retried_whole_and_applies_each_item_once() {
    let emulator = emulator();
    emulator.faults().throttle(1, 0);
    let output = run(
        &emulator,
        "batch-entity-actions",
        json!({"batchActions": [
            {"collection": "accounts", "action": "create", "data": {"name": "Throttled Batch 1"}},
            {"collection": "accounts", "action": "create", "data": {"name": "Throttled Batch 2"}},
        ], "writePath": "batch"}),
    )
    .unwrap();
    assert_eq!(output["succeeded"], 2);
    assert_eq!(accounts_named(&emulator, "Throttled Batch"), 2);
    assert_eq!(
        emulator
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("$batch"))
            .count(),
        2
    );
}

#[test]
fn fetch_xml_too_long_for_a_url_goes_through_batch() {
    let emulator = emulator();
    let conditions: String = (0..400)
        .map(|i| format!("<condition attribute='name' operator='ne' value='not-a-name-{i:04}'/>"))
        .collect();
    let xml = format!(
        "<fetch><entity name='account'><attribute name='accountid'/><filter>{conditions}</filter></entity></fetch>"
    );
    assert!(xml.len() > 16 * 1024);
    let output = run(
        &emulator,
        "run-fetch-xml-query",
        json!({"entityType": "accounts", "xmlQuery": xml}),
    )
    .unwrap();
    assert_eq!(
        output["records"].as_array().unwrap().len(),
        emulator.table("accounts").len()
    );
    let requests = emulator.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert!(requests[0].path.ends_with("$batch"));
}

#[test]
fn a_broken_or_cut_fetch_xml_batch_answer_is_sent_for_again_and_its_rows_arrive_once() {
    use dataverse_emulator::Fault;
    let conditions: String = (0..400)
        .map(|i| format!("<condition attribute='name' operator='ne' value='not-a-name-{i:04}'/>"))
        .collect();
    let xml = format!(
        "<fetch count='3'><entity name='account'><attribute name='accountid'/><order attribute='name'/><filter>{conditions}</filter></entity></fetch>"
    );
    for fault in [Fault::MalformedJson, Fault::CutMidBody] {
        let emulator = emulator();
        let total = emulator.table("accounts").len();
        // Pages of 3 through $batch, read to the end: the second answer is broken.
        emulator
            .faults()
            .inject_after(1, fault.clone(), 1, "$batch");
        let output = run(
            &emulator,
            "run-fetch-xml-query",
            json!({"entityType": "accounts", "xmlQuery": xml, "fetchAll": true}),
        )
        .unwrap();
        assert_eq!(emulator.faults().pending(), 0, "{fault:?} was met");
        assert_every_row_once(&output, total);
        let batches = emulator
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("$batch"))
            .count();
        assert_eq!(
            batches,
            total.div_ceil(3) + 1,
            "{fault:?}: one page asked twice"
        );
    }
}

/// The output's records are `total` accounts, none twice.
#[track_caller]
fn assert_every_row_once(output: &Value, total: usize) {
    let ids: Vec<&str> = output["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["accountid"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), total, "every row");
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        total,
        "none twice"
    );
}
