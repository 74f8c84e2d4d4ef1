//! Finance and Operations: the record actions, Batch Entity Actions, the metadata listing, the
//! connection test and extraction through the component against the emulator's F&O service
//! (`<fno url>/data`), checked in the emulator's F&O data; and the clear refusals where F&O has
//! no counterpart of a Dataverse feature.

use dynamics_host::{ConnectorError, ErrorCode};
use e2e_tests::{Answered, emulator, fno_client_credentials, fno_connected, host, json};
use serde_json::{Value, json};

fn run(
    emulator: &dataverse_emulator::Emulator,
    action: &str,
    input: Value,
) -> Result<Value, ConnectorError> {
    host()
        .invoke(action, &fno_connected(emulator), &input.to_string())
        .answered()
        .map(|output| json(&output))
}

fn customer(
    emulator: &dataverse_emulator::Emulator,
    company: &str,
    account: &str,
) -> Option<Value> {
    emulator
        .fno_table("CustomersV3")
        .into_iter()
        .find(|r| r["dataAreaId"] == company && r["CustomerAccount"] == account)
}

#[test]
fn the_connection_test_gets_an_fno_token_and_reads_the_service_document() {
    let emulator = emulator();
    let output = json(
        &host()
            .test_connection(&fno_client_credentials(&emulator))
            .answered()
            .unwrap(),
    );
    let fno = emulator.fno_url().unwrap();
    assert_eq!(output["service"], "finance-operations");
    assert_eq!(output["webApiRoot"], format!("{fno}/data"));
    // The token was asked for the F&O environment, not Dataverse.
    assert_eq!(output["scope"], format!("{fno}/.default"));
    let asked = emulator
        .requests()
        .into_iter()
        .any(|r| r.method == "GET" && r.path == "/data/");
    assert!(asked, "the test reads the service document");
    assert!(output["testedBy"].as_str().unwrap().contains("no WhoAmI"));

    // A token for Dataverse is refused by F&O (401); the test gets one for F&O and passes.
    let mut stale = fno_client_credentials(&emulator);
    stale.token = Some(dynamics_host::Token {
        access_token: emulator.issue_token_for_tests(),
        token_type: "Bearer".to_string(),
        refresh_token: None,
        expires_in_secs: Some(3599),
        scope: None,
    });
    emulator.clear_requests();
    host().test_connection(&stale).answered().unwrap();
    let statuses: Vec<Option<u16>> = emulator
        .requests()
        .iter()
        .filter(|r| r.path == "/data/")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(401), Some(200)]);
}

#[test]
fn records_are_read_created_updated_and_deleted_by_their_company_key() {
    let emulator = emulator();
    // Query sees the default company; Get reaches another company by its key.
    let page = run(
        &emulator,
        "query-entities",
        json!({"entityType": "CustomersV3", "fieldNames": "CustomerAccount,dataAreaId", "filterExpression": "CustomerGroupId eq '10'"}),
    )
    .unwrap();
    let records = page["records"].as_array().unwrap();
    assert!(!records.is_empty());
    assert!(records.iter().all(|r| r["dataAreaId"] == "usmf"), "{page}");
    let other = run(
        &emulator,
        "get-entity",
        json!({"entityType": "CustomersV3", "entityId": "dataAreaId='usrt',CustomerAccount='US-002'", "fieldNames": "OrganizationName"}),
    )
    .unwrap();
    assert_eq!(other["OrganizationName"], "Customer 2 of usrt");

    let made = run(
        &emulator,
        "create-entity",
        json!({"entityType": "CustomersV3", "fieldValues": {"dataAreaId": "usrt", "CustomerAccount": "US-900", "OrganizationName": "Fabrikam", "CustomerGroupId": "30"}}),
    )
    .unwrap();
    assert_eq!(made["id"], "dataAreaId='usrt',CustomerAccount='US-900'");
    assert_eq!(
        customer(&emulator, "usrt", "US-900").unwrap()["OrganizationName"],
        "Fabrikam"
    );
    // A second create of the same key is F&O's refusal, with its reason.
    let again = run(
        &emulator,
        "create-entity",
        json!({"entityType": "CustomersV3", "fieldValues": {"dataAreaId": "usrt", "CustomerAccount": "US-900"}}),
    )
    .unwrap_err();
    assert!(
        again.message.contains("already exists"),
        "{}",
        again.message
    );
    assert_eq!(
        emulator
            .fno_table("CustomersV3")
            .iter()
            .filter(|r| r["CustomerAccount"] == "US-900")
            .count(),
        1
    );

    let key = "dataAreaId='usrt',CustomerAccount='US-900'";
    run(
        &emulator,
        "update-entity",
        json!({"entityType": "CustomersV3", "entityId": key, "fieldValues": {"CreditLimit": 7500}}),
    )
    .unwrap();
    let row = customer(&emulator, "usrt", "US-900").unwrap();
    assert_eq!(row["CreditLimit"], 7500.0);
    // Dynamic Values join Field Value; the stored record comes back when asked for.
    let updated = run(
        &emulator,
        "update-entity",
        json!({"entityType": "CustomersV3", "entityId": key, "fieldValues": {"CustomerGroupId": "10"}, "dynamicValues": {"SalesCurrencyCode": "CAD"}, "returnRepresentation": true}),
    )
    .unwrap();
    assert_eq!(updated["record"]["SalesCurrencyCode"], "CAD");
    let row = customer(&emulator, "usrt", "US-900").unwrap();
    assert_eq!(
        (
            row["CustomerGroupId"].as_str(),
            row["SalesCurrencyCode"].as_str()
        ),
        (Some("10"), Some("CAD"))
    );
    // The same account number in the default company is untouched.
    assert_eq!(
        customer(&emulator, "usmf", "US-002").unwrap()["CreditLimit"],
        2000.0
    );
    let deleted = run(
        &emulator,
        "delete-entity",
        json!({"entityType": "CustomersV3", "entityId": key}),
    )
    .unwrap();
    assert_eq!(deleted["deleted"], true);
    assert!(customer(&emulator, "usrt", "US-900").is_none());
    // A GUID is not an F&O key: refused before any request.
    let before = emulator.requests().len();
    let guid = run(
        &emulator,
        "get-entity",
        json!({"entityType": "CustomersV3", "entityId": "00000000-0000-0000-0000-000000000001"}),
    )
    .unwrap_err();
    assert_eq!(guid.code, ErrorCode::InvalidInput);
    assert!(guid.message.contains("dataAreaId"), "{}", guid.message);
    assert_eq!(emulator.requests().len(), before);
}

#[test]
fn batch_entity_actions_apply_change_sets_all_or_nothing() {
    let emulator = emulator();
    let actions = json!([
        {"collection": "SalesOrderHeadersV2", "action": "create", "data": {"SalesOrderNumber": "SO-NEW", "OrderingCustomerAccountNumber": "US-001"}},
        {"collection": "SalesOrderLinesV2", "action": "create", "data": {"SalesOrderNumber": "SO-NEW", "LineNumber": 1, "ItemNumber": "D0001", "OrderedSalesQuantity": 3}},
        {"collection": "CustomersV3", "action": "update", "key": "dataAreaId='usmf',CustomerAccount='US-001'", "data": {"OrganizationName": "Renamed"}},
    ]);
    let out = run(
        &emulator,
        "batch-entity-actions",
        json!({"batchActions": actions.to_string(), "allOrNothing": true}),
    )
    .unwrap();
    assert_eq!(out["succeeded"], 3, "{out}");
    let lines = emulator.fno_table("SalesOrderLinesV2");
    let line = lines
        .iter()
        .find(|l| l["SalesOrderNumber"] == "SO-NEW")
        .unwrap();
    assert_eq!(line["OrderedSalesQuantity"], 3.0);
    assert_eq!(
        customer(&emulator, "usmf", "US-001").unwrap()["OrganizationName"],
        "Renamed"
    );
    // A line of a missing order fails the change set: the header before it is undone.
    let failing = json!([
        {"collection": "SalesOrderHeadersV2", "action": "create", "data": {"SalesOrderNumber": "SO-TWO"}},
        {"collection": "SalesOrderLinesV2", "action": "create", "data": {"SalesOrderNumber": "SO-NONE", "LineNumber": 1}},
    ]);
    let out = run(
        &emulator,
        "batch-entity-actions",
        json!({"batchActions": failing.to_string(), "allOrNothing": true}),
    )
    .unwrap();
    assert_eq!(
        (out["failed"].as_u64(), out["rolledBack"].as_u64()),
        (Some(1), Some(1)),
        "{out}"
    );
    assert!(
        out["results"][1]["error"]
            .as_str()
            .unwrap()
            .contains("SO-NONE"),
        "{out}"
    );
    assert!(
        emulator
            .fno_table("SalesOrderHeadersV2")
            .iter()
            .all(|h| h["SalesOrderNumber"] != "SO-TWO")
    );
    // Without all-or-nothing, each write stands alone.
    let out = run(
        &emulator,
        "batch-entity-actions",
        json!({"batchActions": failing.to_string()}),
    )
    .unwrap();
    assert_eq!(
        (out["succeeded"].as_u64(), out["failed"].as_u64()),
        (Some(1), Some(1)),
        "{out}"
    );
    assert!(
        emulator
            .fno_table("SalesOrderHeadersV2")
            .iter()
            .any(|h| h["SalesOrderNumber"] == "SO-TWO")
    );
}

#[test]
fn entities_are_listed_from_metadata() {
    let emulator = emulator();
    let listed = run(&emulator, "list-entities", json!({})).unwrap();
    let sets: Vec<&str> = listed["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entitySetName"].as_str().unwrap())
        .collect();
    assert_eq!(
        sets,
        [
            "CustomersV3",
            "ReleasedProductsV2",
            "SalesOrderHeadersV2",
            "SalesOrderLinesV2",
            "VendorsV2"
        ]
    );
    let types = run(&emulator, "list-entity-types", json!({})).unwrap();
    let lines = types["entityTypes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["entitySetName"] == "SalesOrderLinesV2")
        .unwrap()
        .clone();
    assert_eq!(
        lines["keys"],
        json!(["dataAreaId", "SalesOrderNumber", "LineNumber"])
    );
    assert!(
        lines["fields"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "OrderedSalesQuantity", "type": "Edm.Decimal"}))
    );
}

#[test]
fn new_and_updated_records_are_read_by_the_modified_watermark_across_companies() {
    let emulator = emulator();
    emulator.set_fno_page_size(7);
    let first = run(
        &emulator,
        "get-new-and-updated-records",
        json!({"entityType": "CustomersV3"}),
    )
    .unwrap();
    let all = emulator.fno_table("CustomersV3").len();
    assert_eq!(
        first["records"].as_array().unwrap().len(),
        all,
        "pages followed"
    );
    assert_eq!(first["complete"], true);
    let companies: std::collections::BTreeSet<&str> = first["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dataAreaId"].as_str().unwrap())
        .collect();
    assert_eq!(companies.len(), 3, "every company");
    let watermark = first["nextWatermark"].as_str().unwrap().to_string();
    // Nothing changed: nothing new.
    let again = run(
        &emulator,
        "get-new-and-updated-records",
        json!({"entityType": "CustomersV3", "watermark": watermark}),
    )
    .unwrap();
    assert_eq!(again["records"], json!([]), "{again}");
    // One update in another company is the next read's one record.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    run(
        &emulator,
        "update-entity",
        json!({"entityType": "CustomersV3", "entityId": "dataAreaId='demf',CustomerAccount='DE-003'", "fieldValues": {"OrganizationName": "Changed"}}),
    )
    .unwrap();
    let changed = run(
        &emulator,
        "get-new-and-updated-records",
        json!({"entityType": "CustomersV3", "watermark": again["nextWatermark"]}),
    )
    .unwrap();
    let records = changed["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{changed}");
    assert_eq!(records[0]["OrganizationName"], "Changed");
    // An entity without ModifiedDateTime is refused, naming it.
    let refused = run(
        &emulator,
        "get-new-and-updated-records",
        json!({"entityType": "VendorsV2"}),
    )
    .unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidInput);
    assert!(
        refused.message.contains("VendorsV2") && refused.message.contains("ModifiedDateTime"),
        "{}",
        refused.message
    );
    let tracked = run(
        &emulator,
        "get-new-and-updated-records",
        json!({"entityType": "CustomersV3", "useChangeTracking": true}),
    )
    .unwrap_err();
    assert!(
        tracked.message.contains("no change tracking"),
        "{}",
        tracked.message
    );
}

#[test]
fn what_fno_does_not_have_is_refused_by_name_before_any_request() {
    let emulator = emulator();
    let before = emulator.requests().len();
    for (action, input, reason) in [
        ("get-current-user", json!({}), "WhoAmI"),
        (
            "run-fetch-xml-query",
            json!({"entityType": "CustomersV3", "xmlQuery": "<fetch><entity name='x'/></fetch>"}),
            "FetchXML",
        ),
        (
            "upsert-entity",
            json!({"entityType": "CustomersV3", "entityId": "dataAreaId='usmf',CustomerAccount='US-001'", "fieldValues": {"OrganizationName": "X"}}),
            "no upsert",
        ),
        (
            "create-alternate-key",
            json!({"entityType": "custtable", "schemaName": "k", "displayName": "K", "keyColumns": "a"}),
            "alternate keys",
        ),
    ] {
        let refused = run(&emulator, action, input).unwrap_err();
        assert_eq!(refused.code, ErrorCode::InvalidInput, "{action}");
        assert!(
            refused.message.contains("Finance & Operations") && refused.message.contains(reason),
            "{action}: {}",
            refused.message
        );
    }
    // Dataverse-only inputs are refused by name rather than ignored.
    for (action, input, field) in [
        (
            "create-entity",
            json!({"entityType": "CustomersV3", "fieldValues": {"OrganizationName": "X"}, "idempotencyKey": "run-1"}),
            "idempotencyKey",
        ),
        (
            "update-entity",
            json!({"entityType": "CustomersV3", "entityId": "dataAreaId='usmf',CustomerAccount='US-001'", "fieldValues": {"OrganizationName": "X"}, "bypassCustomLogic": "all"}),
            "bypassCustomLogic",
        ),
        (
            "query-entities",
            json!({"entityType": "CustomersV3", "includeFormattedValues": true}),
            "includeFormattedValues",
        ),
    ] {
        let refused = run(&emulator, action, input).unwrap_err();
        assert_eq!(
            refused.field.as_deref(),
            Some(field),
            "{action}: {refused:?}"
        );
        assert!(
            refused.message.contains("Finance & Operations"),
            "{}",
            refused.message
        );
    }
    assert_eq!(emulator.requests().len(), before, "no request was sent");
}

#[test]
fn query_entities_pages_by_top_and_skip_and_reads_another_company_by_its_filter() {
    let emulator = emulator();
    let accounts = |page: &Value| -> Vec<String> {
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["dataAreaId"].as_str().unwrap(),
                    r["CustomerAccount"].as_str().unwrap()
                )
            })
            .collect()
    };
    // A filter on dataAreaId reads that company (cross-company, as F&O documents it).
    let input = json!({
        "entityType": "CustomersV3",
        "fieldNames": "dataAreaId,CustomerAccount",
        "filterExpression": "dataAreaId eq 'demf'",
        "orderBy": ["CustomerAccount desc"],
        "recordsPerPage": 8,
        "includeCount": true,
    });
    let first = run(&emulator, "query-entities", input.clone()).unwrap();
    let mut expected: Vec<String> = emulator
        .fno_table("CustomersV3")
        .iter()
        .filter(|r| r["dataAreaId"] == "demf")
        .map(|r| format!("demf/{}", r["CustomerAccount"].as_str().unwrap()))
        .collect();
    expected.sort();
    expected.reverse();
    assert_eq!(first["count"], expected.len());
    assert_eq!(accounts(&first), expected[..8].to_vec());
    let cursor = first["nextPageId"].as_str().unwrap();
    assert!(cursor.contains("$skip=8"), "{cursor}");
    let mut next = input.clone();
    next["nextPageId"] = cursor.into();
    let second = run(&emulator, "query-entities", next).unwrap();
    assert_eq!(accounts(&second), expected[8..16].to_vec());
    // Fetch All follows F&O's own next links when the service pages the answer itself.
    emulator.set_fno_page_size(6);
    let all = run(
        &emulator,
        "query-entities",
        json!({"entityType": "CustomersV3", "recordsPerPage": 5000, "fetchAll": true, "filterExpression": "dataAreaId ne 'x'"}),
    )
    .unwrap();
    assert_eq!(
        all["records"].as_array().unwrap().len(),
        emulator.fno_table("CustomersV3").len()
    );
    assert!(all["pages"].as_u64().unwrap() > 1, "{}", all["pages"]);
    // A cursor of another entity is refused before any request.
    let mut foreign = input;
    foreign["nextPageId"] =
        format!("{}/data/VendorsV2?$skip=2", emulator.fno_url().unwrap()).into();
    let refused = run(&emulator, "query-entities", foreign).unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidInput);
    // F&O has no impersonation: refused naming the input.
    let impersonated = run(
        &emulator,
        "get-entity",
        json!({"entityType": "CustomersV3", "entityId": "dataAreaId='usmf',CustomerAccount='US-001'", "impersonateUserId": "00000000-0000-0000-0000-000000000009"}),
    )
    .unwrap_err();
    assert!(
        impersonated.message.contains("impersonateUserId"),
        "{}",
        impersonated.message
    );
}

#[test]
fn a_throttled_fno_request_is_retried_after_retry_after() {
    let emulator = emulator();
    emulator.set_rate_limit(Some(dataverse_emulator::RateLimit {
        requests: 2,
        window: std::time::Duration::from_secs(2),
    }));
    for _ in 0..3 {
        let record = run(
            &emulator,
            "get-entity",
            json!({"entityType": "CustomersV3", "entityId": "dataAreaId='usmf',CustomerAccount='US-001'"}),
        )
        .unwrap();
        assert_eq!(record["CustomerAccount"], "US-001");
    }
    let throttled = emulator
        .requests()
        .iter()
        .filter(|r| r.status == Some(429))
        .count();
    assert!(throttled >= 1, "the limit was met and waited out");
}

#[test]
fn a_create_whose_answer_is_lost_is_not_sent_again() {
    use dataverse_emulator::Fault;
    let emulator = emulator();
    let named = |name: &str| {
        emulator
            .fno_table("CustomersV3")
            .iter()
            .filter(|r| r["OrganizationName"] == name)
            .count()
    };
    for (fault, name, key) in [
        (Fault::CutMidBody, "Cut keyed", Some("US-777")),
        (Fault::MalformedJson, "Corrupt keyed", Some("US-778")),
        (Fault::CutMidBody, "Cut numbered", None),
    ] {
        emulator
            .faults()
            .inject_on(fault.clone(), 1, "/data/CustomersV3");
        let mut fields = json!({"OrganizationName": name});
        if let Some(key) = key {
            fields["CustomerAccount"] = key.into();
        }
        let lost = run(
            &emulator,
            "create-entity",
            json!({"entityType": "CustomersV3", "fieldValues": fields}),
        )
        .unwrap_err();
        assert!(
            lost.hint
                .as_deref()
                .unwrap_or_default()
                .contains("not sent again"),
            "{name}: {lost:?}"
        );
        assert_eq!(named(name), 1, "{name}: made once");
        // Rerunning a keyed create meets F&O's refusal, never a second record.
        if key.is_some() {
            let again = run(
                &emulator,
                "create-entity",
                json!({"entityType": "CustomersV3", "fieldValues": fields}),
            )
            .unwrap_err();
            assert!(
                again.message.contains("already exists"),
                "{}",
                again.message
            );
            assert_eq!(named(name), 1);
        }
    }
}
