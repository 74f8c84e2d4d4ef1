//! One retry policy for every request the component makes: each kind of request, met by one 429
//! and then by one 503, still succeeds, and the fault was really met (it is used up).

use dataverse_emulator::{Emulator, Fault};
use e2e_tests::{Answered, client_credentials, connected, emulator, impatient_host};
use serde_json::{Value, json};

/// (what is sent, action, input, a path fragment only that request kind has)
fn kinds() -> Vec<(&'static str, &'static str, Value, &'static str)> {
    vec![
        ("WhoAmI", "get-current-user", json!({}), "/WhoAmI"),
        (
            "the user's row",
            "get-current-user",
            json!({}),
            "/systemusers(",
        ),
        (
            "a record by key",
            "get-entity",
            json!({"entityType": "accounts", "entityId": "accountnumber='A-1'"}),
            "/accounts(",
        ),
        (
            "a query page",
            "query-entities",
            json!({"entityType": "accounts", "recordsPerPage": 5}),
            "/accounts",
        ),
        (
            "a named create",
            "create-entity",
            json!({"entityType": "accounts", "fieldValues": {"name": "retry"}}),
            "/accounts(",
        ),
        (
            "an update",
            "update-entity",
            json!({"entityType": "accounts", "entityId": "accountnumber='A-2'", "fieldValues": {"name": "retried"}}),
            "/accounts(",
        ),
        (
            "an upsert",
            "upsert-entity",
            json!({"entityType": "accounts", "entityId": "accountnumber='NEW-9'", "fieldValues": {"name": "retried"}}),
            "/accounts(",
        ),
        (
            "a delete",
            "delete-entity",
            json!({"entityType": "accounts", "entityId": "accountnumber='A-3'"}),
            "/accounts(",
        ),
        (
            "table metadata for a lookup",
            "create-entity",
            json!({"entityType": "contacts", "fieldValues": {"lastname": "R"}, "dynamicValues": {"parentcustomerid": {"table": "accounts", "key": {"accountnumber": "A-4"}}}}),
            "/EntityDefinitions",
        ),
        (
            "relationship metadata for a lookup",
            "create-entity",
            json!({"entityType": "contacts", "fieldValues": {"lastname": "R"}, "dynamicValues": {"parentcustomerid": {"table": "accounts", "key": {"accountnumber": "A-4"}}}}),
            "/ManyToOneRelationships",
        ),
        (
            "a $batch",
            "batch-entity-actions",
            json!({"batchActions": [{"collection": "accounts", "action": "create", "data": {"name": "b"}}], "writePath": "batch"}),
            "/$batch",
        ),
        (
            "a CreateMultiple",
            "batch-entity-actions",
            json!({"batchActions": [{"collection": "accounts", "action": "create", "data": {"name": "m"}}]}),
            "CreateMultiple",
        ),
        (
            "Sync Records' read of existing rows",
            "sync-records",
            json!({"entityType": "accounts", "records": [{"accountnumber": "A-5", "name": "s"}], "matchOn": "accountnumber"}),
            "/accounts",
        ),
        (
            "Sync Records' table metadata",
            "sync-records",
            json!({"entityType": "accounts", "records": [{"accountnumber": "A-5", "name": "s2"}], "matchOn": "accountnumber"}),
            "/EntityDefinitions",
        ),
        (
            "a FetchXML page",
            "run-fetch-xml-query",
            json!({"entityType": "accounts", "xmlQuery": "<fetch top='3'><entity name='account'><attribute name='name'/></entity></fetch>"}),
            "/accounts",
        ),
        (
            "new and updated rows",
            "get-new-and-updated-records",
            json!({"entityType": "accounts", "anchorDate": "2000-01-01", "recordsPerPage": 3, "maxRecords": 3}),
            "/accounts",
        ),
        (
            "new and updated rows' metadata",
            "get-new-and-updated-records",
            json!({"entityType": "accounts", "anchorDate": "2000-01-01", "recordsPerPage": 3, "maxRecords": 3}),
            "/EntityDefinitions",
        ),
        (
            "the table list",
            "list-entities",
            json!({"includeCustomEntities": false}),
            "/EntityDefinitions",
        ),
        (
            "a table's metadata",
            "get-entity-metadata",
            json!({"entityType": "account"}),
            "/EntityDefinitions",
        ),
        (
            "a column's metadata",
            "get-attribute",
            json!({"entityId": "account", "attributeKey": "name"}),
            "/Attributes",
        ),
        (
            "columns of a type",
            "query-attributes",
            json!({"entityId": "account", "attributeType": "StringAttributeMetadata", "fieldNames": ["LogicalName"]}),
            "/Attributes",
        ),
        (
            "the entity set list",
            "list-entity-types",
            json!({}),
            "/EntityDefinitions",
        ),
    ]
}

fn faults() -> [(&'static str, Fault); 2] {
    [
        (
            "429",
            Fault::Throttle {
                retry_after_secs: 0,
            },
        ),
        ("503", Fault::Unavailable),
    ]
}

fn check(
    emulator: &Emulator,
    what: &str,
    action: &str,
    input: &Value,
    path: &str,
    fault: (&str, Fault),
) {
    emulator.faults().clear();
    emulator.faults().inject_on(fault.1, 1, path);
    let result = impatient_host()
        .invoke(action, &connected(emulator), &input.to_string())
        .answered();
    assert!(
        result.is_ok(),
        "{what} ({action}) after one {}: {:?}",
        fault.0,
        result.err()
    );
    assert_eq!(
        emulator.faults().pending(),
        0,
        "{what} ({action}): the {} was met by a request of this kind",
        fault.0
    );
}

#[test]
fn every_kind_of_request_survives_one_429_and_one_503() {
    let mut survived = 0;
    for (what, action, input, path) in kinds() {
        for fault in faults() {
            let emulator = emulator();
            check(&emulator, what, action, &input, path, fault);
            survived += 1;
        }
    }
    // The token request, through the way a host signs in.
    for fault in faults() {
        let emulator = emulator();
        emulator
            .faults()
            .inject_on(fault.1, 1, "/oauth2/v2.0/token");
        let mut connection = client_credentials(&emulator);
        let result = impatient_host()
            .run_action("get-current-user", &mut connection, "{}")
            .answered();
        assert!(
            result.is_ok(),
            "the token request after one {}: {result:?}",
            fault.0
        );
        assert_eq!(emulator.faults().pending(), 0);
        survived += 1;
    }
    // The connection test's reads: WhoAmI, the user, the business unit.
    for path in ["/WhoAmI", "/systemusers(", "/businessunits("] {
        for fault in faults() {
            let emulator = emulator();
            emulator.faults().inject_on(fault.1, 1, path);
            let result = impatient_host()
                .test_connection(&connected(&emulator))
                .answered();
            assert!(
                result.is_ok(),
                "test-connection, {path} after one {}: {result:?}",
                fault.0
            );
            assert_eq!(emulator.faults().pending(), 0, "{path}");
            survived += 1;
        }
    }
    eprintln!("request kinds: {survived} faults met and survived");
}

#[test]
fn a_fetch_all_whose_later_page_stays_broken_says_where_to_pick_the_read_up_again() {
    let emulator = emulator();
    // The first page arrives; every answer after it is cut JSON.
    emulator
        .faults()
        .inject_after(1, Fault::MalformedJson, 100, "/accounts");
    let input = json!({"entityType": "accounts", "fetchAll": true, "recordsPerPage": 7, "fieldNames": ["accountid"]});
    let failure = impatient_host()
        .invoke("query-entities", &connected(&emulator), &input.to_string())
        .answered()
        .expect_err("the second page never arrives whole");
    assert_eq!(
        failure.code,
        dynamics_host::ErrorCode::MalformedResponse,
        "{failure:?}"
    );
    let hint = failure.hint.unwrap_or_default();
    assert!(hint.starts_with("7 records in 1 pages were read"), "{hint}");
    let cursor = hint.rsplit("pass nextPageId ").next().unwrap().to_string();
    emulator.faults().clear();
    let rest = impatient_host()
        .invoke(
            "query-entities",
            &connected(&emulator),
            &json!({"entityType": "accounts", "fetchAll": true, "nextPageId": cursor}).to_string(),
        )
        .unwrap();
    let rest = e2e_tests::json(&rest);
    assert_eq!(
        rest["records"].as_array().unwrap().len() + 7,
        emulator.table("accounts").len(),
        "the cursor picks the read up where it stopped"
    );
}
