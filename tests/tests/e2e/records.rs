//! Query, Get, Create, Update, Upsert and Delete Entity through the component, checked against
//! the emulator's stored rows.

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

fn account_by_number(emulator: &dataverse_emulator::Emulator, number: &str) -> Value {
    emulator
        .table("accounts")
        .into_iter()
        .find(|row| row["accountnumber"] == number)
        .expect("the account exists")
}

#[test]
fn query_entities_reads_a_filtered_ordered_page_and_the_next_one_by_cursor() {
    let emulator = emulator();
    let mut expected: Vec<String> = emulator
        .table("accounts")
        .into_iter()
        .filter_map(|row| row["name"].as_str().map(str::to_string))
        .filter(|name| name.to_lowercase().contains('a'))
        .collect();
    expected.sort();

    let input = json!({
        "entityType": "accounts",
        "fieldNames": "name, accountnumber",
        "filterExpression": "contains(name,'a')",
        "orderBy": ["name"],
        "recordsPerPage": 3,
    });
    let first = run(&emulator, "query-entities", input.clone()).unwrap();
    let names = |page: &Value| -> Vec<String> {
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&first), expected[..3].to_vec());
    assert_eq!(first["pages"], 1);
    let cursor = first["nextPageId"]
        .as_str()
        .expect("a cursor while more pages exist")
        .to_string();
    let record = &first["records"][0];
    assert!(
        record.get("accountnumber").is_some() && record.get("creditlimit").is_none(),
        "$select applied: {record}"
    );

    let mut next_input = input;
    next_input["nextPageId"] = Value::String(cursor);
    let second = run(&emulator, "query-entities", next_input).unwrap();
    assert_eq!(names(&second), expected[3..6].to_vec());

    let request = &emulator.requests()[0];
    assert_eq!(request.header("prefer"), Some("odata.maxpagesize=3"));
    assert!(request.path.starts_with("/api/data/v9.2/accounts?$select=name,accountnumber&$filter=contains(name,'a')&$orderby=name"), "{}", request.path);
}

#[test]
fn fetch_all_follows_every_page_and_returns_each_record_once() {
    let emulator = emulator();
    let all: BTreeSet<String> = emulator
        .table("accounts")
        .iter()
        .map(|row| row["accountid"].as_str().unwrap().to_string())
        .collect();
    let output = run(&emulator, "query-entities", json!({"entityType": "accounts", "recordsPerPage": 7, "fetchAll": true, "fieldNames": ["accountid"]})).unwrap();
    let ids: Vec<String> = output["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["accountid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), all.len());
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), all);
    assert_eq!(output["pages"], all.len().div_ceil(7));
    assert_eq!(output["truncated"], false);
    assert_eq!(output["nextPageId"], Value::Null);
}

#[test]
fn fetch_all_stops_at_the_page_that_reaches_the_cap_and_the_cursor_continues_without_gaps() {
    let emulator = emulator();
    let total = emulator.table("accounts").len();
    let input = json!({"entityType": "accounts", "recordsPerPage": 7, "fetchAll": true, "maxRecords": 10, "fieldNames": ["accountid"]});
    let first = run(&emulator, "query-entities", input.clone()).unwrap();
    assert_eq!(first["records"].as_array().unwrap().len(), 14);
    assert_eq!(first["truncated"], true);
    let mut rest_input = input;
    rest_input["nextPageId"] = first["nextPageId"].clone();
    rest_input["maxRecords"] = json!(1000);
    let rest = run(&emulator, "query-entities", rest_input).unwrap();
    let ids: BTreeSet<&str> = first["records"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["records"].as_array().unwrap())
        .map(|r| r["accountid"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), total);
}

#[test]
fn query_entities_counts_and_annotates_on_request() {
    let emulator = emulator();
    let output = run(
        &emulator,
        "query-entities",
        json!({"entityType": "accounts", "includeCount": true, "includeFormattedValues": true, "recordsPerPage": 2}),
    )
    .unwrap();
    assert_eq!(output["count"], emulator.table("accounts").len());
    assert_eq!(
        emulator.requests()[0].header("prefer"),
        Some("odata.maxpagesize=2,odata.include-annotations=\"*\"")
    );
}

#[test]
fn a_mistyped_entity_set_is_not_found_with_the_closest_name_suggested() {
    let emulator = emulator();
    let failure = run(
        &emulator,
        "query-entities",
        json!({"entityType": "acounts"}),
    )
    .unwrap_err();
    assert_eq!(failure.code, ErrorCode::NotFound);
    assert_eq!(failure.field.as_deref(), Some("entityType"));
    assert_eq!(
        failure.message,
        "entity set \"acounts\" not found; did you mean \"accounts\"?"
    );
}

#[test]
fn a_cursor_from_another_host_is_refused_before_any_request() {
    let emulator = emulator();
    let failure = run(&emulator, "query-entities", json!({"entityType": "accounts", "nextPageId": "https://evil.example/api/data/v9.2/accounts?$skiptoken=1"})).unwrap_err();
    assert_eq!(failure.field.as_deref(), Some("nextPageId"));
    assert!(emulator.requests().is_empty());
}

#[test]
fn get_entity_reads_by_guid_and_by_alternate_key_with_select() {
    let emulator = emulator();
    let account = account_by_number(&emulator, "A-3");
    let id = account["accountid"].as_str().unwrap();
    let by_id = run(
        &emulator,
        "get-entity",
        json!({"entityType": "accounts", "entityId": id, "fieldNames": ["name"]}),
    )
    .unwrap();
    assert_eq!(by_id["name"], account["name"]);
    assert!(by_id.get("accountnumber").is_none());
    assert!(by_id.get("@odata.context").is_none());

    let by_key = run(
        &emulator,
        "get-entity",
        json!({"entityType": "accounts", "entityId": "accountnumber='A-3'"}),
    )
    .unwrap();
    assert_eq!(by_key["accountid"], id);
    let by_object = run(
        &emulator,
        "get-entity",
        json!({"entityType": "accounts", "entityId": json!({"accountnumber": "A-3"}).to_string()}),
    )
    .unwrap();
    assert_eq!(by_object["accountid"], id);
    assert_eq!(
        emulator.requests()[1].path,
        "/api/data/v9.2/accounts(accountnumber='A-3')"
    );
}

#[test]
fn a_missing_record_is_not_found_with_a_hint() {
    let emulator = emulator();
    let failure = run(
        &emulator,
        "get-entity",
        json!({"entityType": "accounts", "entityId": "00000000-0000-0000-0000-0000000000ff"}),
    )
    .unwrap_err();
    assert_eq!(failure.code, ErrorCode::NotFound);
    assert_eq!(failure.service_code.as_deref(), Some("0x80040217"));
    let by_key = run(
        &emulator,
        "get-entity",
        json!({"entityType": "accounts", "entityId": "accountnumber='O''Brien'"}),
    )
    .unwrap_err();
    assert_eq!(by_key.code, ErrorCode::NotFound);
    assert!(
        emulator.requests()[1]
            .path
            .ends_with("accounts(accountnumber='O''Brien')")
    );
}

#[test]
fn create_merges_field_and_dynamic_values_and_binds_lookups_by_alternate_key() {
    let emulator = emulator();
    let parent = account_by_number(&emulator, "A-2");
    let output = run(
        &emulator,
        "create-entity",
        json!({
            "entityType": "contacts",
            "fieldValues": [{"key": "firstname", "value": "Siobhán"}, {"key": "lastname", "value": "O'Brien"}],
            "dynamicValues": {"parentcustomerid": {"table": "accounts", "key": {"accountnumber": "A-2"}}},
        }),
    )
    .unwrap();
    let id = output["id"].as_str().expect("the new record's id");
    let stored = emulator
        .table("contacts")
        .into_iter()
        .find(|row| row["contactid"] == id)
        .expect("the contact is stored");
    assert_eq!(stored["lastname"], "O'Brien");
    assert_eq!(stored["firstname"], "Siobhán");
    assert_eq!(stored["_parentcustomerid_value"], parent["accountid"]);
    let create = emulator
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    let body: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(
        body["parentcustomerid_account@odata.bind"],
        "/accounts(accountnumber='A-2')"
    );
}

#[test]
fn create_with_return_representation_gives_the_stored_record_and_its_id() {
    let emulator = emulator();
    let output = run(
        &emulator,
        "create-entity",
        json!({"entityType": "accounts", "fieldValues": {"name": "Represented", "creditlimit": 1200}, "returnRepresentation": true}),
    )
    .unwrap();
    assert_eq!(output["record"]["name"], "Represented");
    assert_eq!(output["record"]["creditlimit"], 1200.0);
    assert_eq!(output["id"], output["record"]["accountid"]);
}

#[test]
fn a_lookup_to_a_table_the_column_cannot_point_to_is_refused_before_writing() {
    let emulator = emulator();
    let before = emulator.table("contacts").len();
    let failure = run(
        &emulator,
        "create-entity",
        json!({"entityType": "contacts", "fieldValues": {"lastname": "X", "parentcustomerid": {"table": "products", "id": "00000000-0000-0000-0000-000000000001"}}}),
    )
    .unwrap_err();
    assert_eq!(failure.code, ErrorCode::InvalidInput);
    assert_eq!(failure.field.as_deref(), Some("fieldValues"));
    assert!(
        failure
            .message
            .contains("not a lookup column of contact that can point to product"),
        "{}",
        failure.message
    );
    assert_eq!(emulator.table("contacts").len(), before);
    assert!(emulator.requests().iter().all(|r| r.method == "GET"));
}

#[test]
fn update_changes_an_existing_record_and_never_creates_one() {
    let emulator = emulator();
    let account = account_by_number(&emulator, "A-4");
    let id = account["accountid"].as_str().unwrap();
    run(
        &emulator,
        "update-entity",
        json!({"entityType": "accounts", "entityId": id, "fieldValues": {"name": "Renamed"}}),
    )
    .unwrap();
    assert_eq!(account_by_number(&emulator, "A-4")["name"], "Renamed");
    assert_eq!(emulator.requests()[0].header("if-match"), Some("*"));

    let before = emulator.table("accounts").len();
    let missing = run(&emulator, "update-entity", json!({"entityType": "accounts", "entityId": "00000000-0000-0000-0000-0000000000fe", "fieldValues": {"name": "Ghost"}})).unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
    assert_eq!(emulator.table("accounts").len(), before);
}

#[test]
fn update_with_a_stale_etag_fails_and_leaves_the_record_alone() {
    let emulator = emulator();
    let account = account_by_number(&emulator, "A-5");
    let id = account["accountid"].as_str().unwrap();
    let read = run(
        &emulator,
        "get-entity",
        json!({"entityType": "accounts", "entityId": id}),
    )
    .unwrap();
    let etag = read["@odata.etag"].as_str().unwrap().to_string();
    run(&emulator, "update-entity", json!({"entityType": "accounts", "entityId": id, "fieldValues": {"name": "First"}, "etag": etag})).unwrap();
    let stale = run(&emulator, "update-entity", json!({"entityType": "accounts", "entityId": id, "fieldValues": {"name": "Second"}, "etag": etag})).unwrap_err();
    assert_eq!(stale.code, ErrorCode::PreconditionFailed);
    assert_eq!(account_by_number(&emulator, "A-5")["name"], "First");
}

#[test]
fn upsert_modes_create_update_and_refuse_as_asked() {
    let emulator = emulator();
    let before = emulator.table("accounts").len();
    let created = run(&emulator, "upsert-entity", json!({"entityType": "accounts", "entityId": "accountnumber='UP-1'", "fieldValues": {"name": "Up one"}})).unwrap();
    assert!(created["id"].is_string());
    run(&emulator, "upsert-entity", json!({"entityType": "accounts", "entityId": "accountnumber='UP-1'", "fieldValues": {"name": "Up one again"}})).unwrap();
    assert_eq!(emulator.table("accounts").len(), before + 1);
    assert_eq!(account_by_number(&emulator, "UP-1")["name"], "Up one again");

    let exists = run(&emulator, "upsert-entity", json!({"entityType": "accounts", "entityId": "accountnumber='UP-1'", "fieldValues": {"name": "X"}, "upsertMode": "createOnly"})).unwrap_err();
    // Dataverse answers 412 with the duplicate-key code: the record already exists.
    assert_eq!(exists.code, ErrorCode::Conflict);
    assert_eq!(exists.http_status, Some(412));
    assert_eq!(exists.service_code.as_deref(), Some("0x80040237"));
    assert_eq!(
        emulator
            .requests()
            .iter()
            .filter(|r| r.header("if-none-match") == Some("*"))
            .count(),
        1
    );
    let missing = run(&emulator, "upsert-entity", json!({"entityType": "accounts", "entityId": "accountnumber='UP-2'", "fieldValues": {"name": "X"}, "upsertMode": "updateOnly"})).unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
    assert_eq!(
        emulator
            .requests()
            .iter()
            .filter(|r| r.header("if-match") == Some("*"))
            .count(),
        1
    );
    assert_eq!(emulator.table("accounts").len(), before + 1);
    assert_eq!(account_by_number(&emulator, "UP-1")["name"], "Up one again");
}

#[test]
fn delete_removes_the_record_and_a_second_delete_is_not_found() {
    let emulator = emulator();
    let id = account_by_number(&emulator, "A-6")["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    let output = run(
        &emulator,
        "delete-entity",
        json!({"entityType": "accounts", "entityId": id}),
    )
    .unwrap();
    assert_eq!(output, json!({"id": id, "deleted": true}));
    assert!(
        emulator
            .table("accounts")
            .iter()
            .all(|row| row["accountid"] != id.as_str())
    );
    let again = run(
        &emulator,
        "delete-entity",
        json!({"entityType": "accounts", "entityId": id}),
    )
    .unwrap_err();
    assert_eq!(again.code, ErrorCode::NotFound);
}

#[test]
fn impersonation_sends_the_caller_header() {
    let emulator = emulator();
    let user = emulator.credentials().user_id;
    run(&emulator, "get-entity", json!({"entityType": "accounts", "entityId": "accountnumber='A-1'", "impersonateUserId": user})).unwrap();
    assert_eq!(
        emulator.requests()[0].header("mscrmcallerid"),
        Some(user.as_str())
    );
    let both = run(
        &emulator,
        "get-entity",
        json!({"entityType": "accounts", "entityId": "accountnumber='A-1'", "impersonateUserId": user, "impersonateObjectId": user}),
    )
    .unwrap_err();
    assert_eq!(both.code, ErrorCode::InvalidInput);
}

#[test]
fn bad_record_inputs_are_refused_before_any_request() {
    let emulator = emulator();
    let cases = [
        (
            "get-entity",
            json!({"entityType": "accounts", "entityId": "A-1"}),
            "entityId",
        ),
        (
            "get-entity",
            json!({"entityType": "accounts", "entityId": "name='open"}),
            "entityId",
        ),
        (
            "query-entities",
            json!({"entityType": "accounts", "recordsPerPage": 5001}),
            "recordsPerPage",
        ),
        (
            "query-entities",
            json!({"entityType": "accounts", "recordsPerPage": 0}),
            "recordsPerPage",
        ),
        (
            "query-entities",
            json!({"entityType": "accounts", "fieldNames": ["name", "bad name"]}),
            "fieldNames",
        ),
        (
            "create-entity",
            json!({"entityType": "accounts", "dynamicValues": "[1,2]"}),
            "dynamicValues",
        ),
        (
            "create-entity",
            json!({"entityType": "accounts", "fieldValues": {"name": "a"}, "dynamicValues": {"name": "b"}}),
            "dynamicValues",
        ),
        (
            "create-entity",
            json!({"entityType": "accounts", "fieldValues": {"na me": "a"}}),
            "fieldValues",
        ),
        (
            "update-entity",
            json!({"entityType": "accounts", "entityId": "00000000-0000-0000-0000-000000000001", "impersonateUserId": "x"}),
            "impersonateUserId",
        ),
        (
            "upsert-entity",
            json!({"entityType": "accounts", "entityId": "accountnumber='Z'", "upsertMode": "createOnly", "etag": "W/\"1\""}),
            "etag",
        ),
    ];
    for (action, input, field) in cases {
        let failure = run(&emulator, action, input.clone()).unwrap_err();
        assert_eq!(
            failure.code,
            ErrorCode::InvalidInput,
            "{action} {input}: {}",
            failure.message
        );
        assert_eq!(
            failure.field.as_deref(),
            Some(field),
            "{action} {input}: {}",
            failure.message
        );
    }
    assert!(
        emulator.requests().is_empty(),
        "{:?}",
        emulator
            .requests()
            .iter()
            .map(|r| &r.path)
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_fetch_all_read_needs_little_more_memory_than_its_output() {
    // The output grows by each page where it lies; a copy moved to a larger block on every
    // page held two outputs at once and needed about twice its size.
    let emulator = dataverse_emulator::Emulator::start(
        dataverse_emulator::Config {
            rows_per_table: 10,
            table_rows: vec![("account".to_string(), 40_000)],
            record_requests: false,
            ..dataverse_emulator::Config::default()
        },
        0,
    )
    .expect("the emulator starts");
    let limit_mib = 20;
    let host = dynamics_host::Host::builtin(dynamics_host::HostConfig {
        limits: dynamics_host::Limits {
            memory_bytes: limit_mib << 20,
            ..dynamics_host::Limits::default()
        },
        ..e2e_tests::loopback_config()
    })
    .expect("the built-in component loads");
    let input = json!({
        "entityType": "accounts",
        "fieldNames": ["name", "accountnumber", "revenue", "creditlimit", "address1_city", "modifiedon"],
        "recordsPerPage": 5000,
        "fetchAll": true,
    });
    let output = host
        .invoke("query-entities", &connected(&emulator), &input.to_string())
        .unwrap_or_else(|problem| panic!("the read does not fit in {limit_mib} MiB: {problem}"));
    let size = output.len();
    let output = json(&output);
    let records = output["records"].as_array().unwrap();
    assert_eq!(records.len(), 40_000);
    let numbers: BTreeSet<&str> = records
        .iter()
        .filter_map(|record| record["accountnumber"].as_str())
        .collect();
    assert_eq!(numbers.len(), 40_000, "each record once");
    // The output is more than half of the limit: two copies of it could not fit.
    assert!(
        size > (limit_mib << 20) / 2,
        "the output is only {size} bytes"
    );
}

/// The ids of a read's records, which must be each of the emulator's accounts once.
fn assert_each_account_once(emulator: &dataverse_emulator::Emulator, output: &Value) {
    let mut ids: Vec<&str> = output["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["accountid"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let table = emulator.table("accounts");
    let mut expected: Vec<&str> = table
        .iter()
        .map(|row| row["accountid"].as_str().unwrap())
        .collect();
    expected.sort_unstable();
    assert_eq!(ids, expected, "each account once");
}

/// The paths of the reads of accounts the emulator answered, in order.
fn account_reads(emulator: &dataverse_emulator::Emulator) -> Vec<String> {
    emulator
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("/accounts"))
        .map(|r| r.path)
        .collect()
}

#[test]
fn fetch_all_asks_for_each_next_page_while_reading_the_one_before_and_for_each_page_once() {
    let emulator = emulator();
    let (host, log) = e2e_tests::host_with_memory_log();
    emulator.clear_requests();
    let input = json!({"entityType": "accounts", "recordsPerPage": 7, "fetchAll": true, "fieldNames": ["accountid"]});
    let output = json(
        &host
            .invoke("query-entities", &connected(&emulator), &input.to_string())
            .unwrap(),
    );
    assert_each_account_once(&emulator, &output);
    let pages = output["pages"].as_u64().unwrap() as usize;
    assert!(pages > 2, "{pages}");
    let reads = account_reads(&emulator);
    assert_eq!(reads.len(), pages, "{reads:#?}");
    assert_eq!(
        reads.iter().collect::<BTreeSet<_>>().len(),
        pages,
        "no page twice"
    );
    // Every page after the first travelled while the component read the one before it.
    let ahead = log
        .lines()
        .into_iter()
        .filter(|line| line.message.contains("/accounts") && line.message.contains("started ahead"))
        .count();
    assert_eq!(ahead, pages - 1);
}

#[test]
fn a_page_that_met_a_fault_while_travelling_ahead_is_sent_for_again_and_its_records_arrive_once() {
    use dataverse_emulator::Fault;
    for fault in [
        Fault::Throttle {
            retry_after_secs: 1,
        },
        Fault::Unavailable,
        Fault::BadGateway,
        Fault::CutMidBody,
        Fault::MalformedJson,
    ] {
        let emulator = emulator();
        // The second page, the first one asked for ahead, meets the fault.
        emulator
            .faults()
            .inject_after(1, fault.clone(), 1, "/accounts");
        emulator.clear_requests();
        let input = json!({"entityType": "accounts", "recordsPerPage": 7, "fetchAll": true, "fieldNames": ["accountid"]});
        let output = run(&emulator, "query-entities", input).unwrap();
        assert_eq!(emulator.faults().pending(), 0, "{fault:?} was met");
        assert_each_account_once(&emulator, &output);
        let pages = output["pages"].as_u64().unwrap() as usize;
        let reads = account_reads(&emulator);
        assert_eq!(
            reads.len(),
            pages + 1,
            "{fault:?}: the faulty page once more"
        );
        assert_eq!(
            reads[1], reads[2],
            "{fault:?}: the second page was asked for again"
        );
    }
}
