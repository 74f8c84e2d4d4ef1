//! Bad input is refused before any request leaves the component, with the field named.

use dynamics_host::{ConnectorError, ErrorCode};
use e2e_tests::{Answered, connected, emulator, host};

fn refused(action: &str, input: &str) -> ConnectorError {
    let emulator = emulator();
    let failure = host()
        .invoke(action, &connected(&emulator), input)
        .answered()
        .unwrap_err();
    assert!(
        emulator.requests().is_empty(),
        "{action} {input}: no request may be sent, got {:?}",
        emulator.requests()
    );
    failure
}

#[test]
fn an_unknown_action_key_is_invalid_input_with_a_suggestion() {
    let failure = refused("get-curent-user", "{}");
    assert_eq!(failure.code, ErrorCode::InvalidInput);
    assert!(
        failure
            .message
            .contains("unknown action \"get-curent-user\""),
        "{}",
        failure.message
    );
    assert!(
        failure
            .message
            .contains("did you mean \"get-current-user\""),
        "{}",
        failure.message
    );
}

#[test]
fn input_that_is_not_json_or_not_an_object_is_invalid_input() {
    let failure = refused("raw-request", "{url: /x");
    assert_eq!(failure.code, ErrorCode::InvalidInput);
    assert_eq!(failure.field.as_deref(), Some("input"));
    assert!(
        failure.message.contains("not valid JSON"),
        "{}",
        failure.message
    );

    let failure = refused("raw-request", "[1, 2]");
    assert!(
        failure.message.contains("must be a JSON object"),
        "{}",
        failure.message
    );
}

#[test]
fn a_missing_required_input_is_named_by_key_and_label() {
    let failure = refused("raw-request", r#"{"method": "GET"}"#);
    assert_eq!(failure.code, ErrorCode::InvalidInput);
    assert_eq!(failure.field.as_deref(), Some("url"));
    assert_eq!(failure.message, "input \"url\" (URL): is required");
}

#[test]
fn an_unknown_input_key_is_refused_instead_of_ignored() {
    let failure = refused(
        "raw-request",
        r#"{"url": "WhoAmI", "method": "GET", "maxRetry": 3}"#,
    );
    assert_eq!(failure.field.as_deref(), Some("maxRetry"));
    assert!(
        failure.message.contains("did you mean \"maxRetries\""),
        "{}",
        failure.message
    );
}

#[test]
fn a_malformed_guid_is_invalid_input_naming_the_field() {
    let failure = refused(
        "run-fetch-xml-query",
        r#"{"entityType": "accounts", "xmlQuery": "<fetch/>", "impersonateUserId": "not-a-guid"}"#,
    );
    assert_eq!(failure.code, ErrorCode::InvalidInput);
    assert_eq!(failure.field.as_deref(), Some("impersonateUserId"));
    assert!(
        failure.message.contains("\"not-a-guid\" is not a GUID"),
        "{}",
        failure.message
    );
}

#[test]
fn values_of_the_wrong_kind_are_refused() {
    let failure = refused("raw-request", r#"{"url": "WhoAmI", "method": "FETCH"}"#);
    assert_eq!(failure.field.as_deref(), Some("method"));
    assert!(
        failure.message.contains("is not one of GET, POST"),
        "{}",
        failure.message
    );

    let failure = refused(
        "raw-request",
        r#"{"url": "WhoAmI", "method": "GET", "maxRetries": "many"}"#,
    );
    assert_eq!(failure.field.as_deref(), Some("maxRetries"));

    let failure = refused(
        "raw-request",
        r#"{"url": "WhoAmI", "method": "GET", "maxRetries": 11}"#,
    );
    assert!(
        failure.message.contains("from 0 to 10"),
        "{}",
        failure.message
    );

    let failure = refused(
        "raw-request",
        r#"{"url": "WhoAmI", "method": "GET", "headers": {"Authorization": "Bearer x"}}"#,
    );
    assert_eq!(failure.field.as_deref(), Some("headers"));
}

#[test]
fn a_raw_request_url_naming_another_host_is_forbidden() {
    for url in [
        "https://evil.example/api/data/v9.2/accounts",
        "//evil.example/api",
        "http://127.0.0.1:1/api/data/v9.2/WhoAmI",
    ] {
        let input = serde_json::json!({"url": url, "method": "GET"}).to_string();
        let failure = refused("raw-request", &input);
        assert_eq!(failure.code, ErrorCode::Forbidden, "{url}");
        assert_eq!(failure.field.as_deref(), Some("url"), "{url}");
        assert!(
            failure
                .message
                .contains("is not this connection's environment"),
            "{}",
            failure.message
        );
    }
}

#[test]
fn attribute_bodies_are_checked_before_any_request() {
    let failure = refused(
        "create-attribute",
        r#"{"entityId": "account", "attributeBody": {"SchemaName": "new_X"}}"#,
    );
    assert_eq!(failure.code, ErrorCode::InvalidInput);
    assert_eq!(failure.field.as_deref(), Some("attributeBody"));
    assert!(
        failure.message.contains("@odata.type"),
        "{}",
        failure.message
    );
    let failure = refused(
        "create-attribute",
        r#"{"entityId": "account", "attributeBody": {"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata"}}"#,
    );
    assert!(
        failure.message.contains("SchemaName"),
        "{}",
        failure.message
    );
    let failure = refused("list-entity-types", r#"{"maxPageSize": 0}"#);
    assert_eq!(failure.field.as_deref(), Some("maxPageSize"));
}

#[test]
fn a_bad_environment_url_in_the_connection_is_invalid_input() {
    let emulator = emulator();
    let mut connection = connected(&emulator);
    connection.fields[0].1 = "https://contoso.crm.dynamics.com/?appid=1".to_string();
    let failure = host()
        .invoke("get-current-user", &connection, "{}")
        .answered()
        .unwrap_err();
    assert_eq!(failure.code, ErrorCode::InvalidInput);
    assert_eq!(failure.field.as_deref(), Some("webApiUrl"));
    assert!(
        failure.message.contains("query string"),
        "{}",
        failure.message
    );
    assert!(emulator.requests().is_empty());
}

#[test]
fn a_lookup_table_name_that_is_not_an_identifier_never_reaches_a_filter() {
    let emulator = emulator();
    let input = serde_json::json!({
        "entityType": "contacts",
        "dynamicValues": {
            "lastname": "Quoted",
            "parentcustomerid_account": {
                "table": "accounts' or LogicalName eq 'contact",
                "id": "00000000-0000-0000-0000-000000000001"
            }
        }
    });
    let failure = host()
        .invoke("create-entity", &connected(&emulator), &input.to_string())
        .answered()
        .unwrap_err();
    assert_eq!(failure.code, ErrorCode::InvalidInput);
    assert!(
        failure.message.contains("which is not a table name"),
        "{}",
        failure.message
    );
    assert_eq!(
        failure.field.as_deref(),
        Some("dynamicValues"),
        "the lookup came from Dynamic Values"
    );
    assert!(
        emulator.requests().is_empty(),
        "the shape is refused before any metadata is read"
    );
    for request in emulator.requests() {
        assert!(
            !request.path.contains("LogicalName%20eq%20'contact")
                && !request.path.contains("accounts'"),
            "the name went into a query: {}",
            request.path
        );
    }
    assert!(
        !emulator
            .table("contacts")
            .iter()
            .any(|row| row["lastname"] == "Quoted")
    );
}

#[test]
fn inputs_that_would_go_wrong_at_the_service_are_refused_naming_the_field_with_no_request() {
    let emulator = emulator();
    let long_filter = format!("name eq '{}'", "x".repeat(40_000));
    let cases: Vec<(&str, serde_json::Value, &str, &str)> = vec![
        (
            "query-entities",
            serde_json::json!({"entityType": "accounts", "nextPageId": format!("{}/api/data/v9.2/contacts?$skiptoken=1", emulator.base_url())}),
            "nextPageId",
            "another table",
        ),
        (
            "run-fetch-xml-query",
            serde_json::json!({"entityType": "accounts", "xmlQuery": "<!DOCTYPE fetch [<!ENTITY x \"y\">]><fetch><entity name='account'/></fetch>"}),
            "xmlQuery",
            "document type declaration",
        ),
        (
            "raw-request-crm",
            serde_json::json!({"url": "/api/data/v9.2/accounts", "method": "GET", "headers": {"Transfer-Encoding": "chunked"}}),
            "headers",
            "set by the host",
        ),
    ];
    for (action, input, field, words) in cases {
        emulator.clear_requests();
        let failure = host()
            .invoke(action, &connected(&emulator), &input.to_string())
            .answered()
            .expect_err(action);
        assert_eq!(
            failure.code,
            ErrorCode::InvalidInput,
            "{action}: {failure:?}"
        );
        assert_eq!(
            failure.field.as_deref(),
            Some(field),
            "{action}: {failure:?}"
        );
        assert!(
            failure.message.contains(words),
            "{action}: {}",
            failure.message
        );
        assert!(emulator.requests().is_empty(), "{action}: nothing sent");
    }

    // A URL past Dataverse's 32,768 characters is refused before it is sent, quoting only a
    // short prefix of it.
    emulator.clear_requests();
    let failure = host()
        .invoke(
            "query-entities",
            &connected(&emulator),
            &serde_json::json!({"entityType": "accounts", "filterExpression": long_filter})
                .to_string(),
        )
        .answered()
        .unwrap_err();
    assert_eq!(failure.code, ErrorCode::InvalidInput, "{failure:?}");
    assert!(
        failure.message.contains("at most 32768"),
        "{}",
        failure.message
    );
    assert!(failure.message.len() < 400, "{}", failure.message);
    assert!(emulator.requests().is_empty());
}

#[test]
fn a_raw_request_path_whose_query_holds_a_url_stays_on_the_environment() {
    let emulator = emulator();
    let input = serde_json::json!({"url": "/api/data/v9.2/accounts?$select=name&$filter=websiteurl%20ne%20'https://x.example'", "method": "GET"});
    let output = host()
        .invoke("raw-request-crm", &connected(&emulator), &input.to_string())
        .unwrap();
    assert!(output.contains("\"status\":200"), "{output}");
    let request = emulator.requests().pop().unwrap();
    assert!(
        request.path.starts_with("/api/data/v9.2/accounts?"),
        "{}",
        request.path
    );
}
