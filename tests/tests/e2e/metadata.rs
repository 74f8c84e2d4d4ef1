//! The metadata actions and the designer data sources, through the component against the
//! emulator's EntityDefinitions.

use std::collections::BTreeSet;

use dynamics_host::ErrorCode;
use e2e_tests::{Answered, connected, emulator, host, json};
use serde_json::{Value, json};

fn run(emulator: &dataverse_emulator::Emulator, action: &str, input: Value) -> Value {
    json(
        &host()
            .invoke(action, &connected(emulator), &input.to_string())
            .unwrap(),
    )
}

#[test]
fn list_entity_types_pages_through_every_table_once() {
    let emulator = emulator();
    let mut input = json!({"maxPageSize": 4});
    let mut seen = Vec::new();
    loop {
        let page = run(&emulator, "list-entity-types", input.clone());
        let names: Vec<String> = page["entityTypes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["logicalName"].as_str().unwrap().to_string())
            .collect();
        assert!(names.len() <= 4);
        seen.extend(names);
        match page["nextLink"].as_str() {
            Some(next) => input["nextLink"] = json!(next),
            None => break,
        }
    }
    let total = run(&emulator, "list-entity-types", json!({}))["total"]
        .as_u64()
        .unwrap();
    assert_eq!(seen.len() as u64, total);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), seen.len());
    assert!(
        seen.iter().any(|name| name == "account") && seen.iter().any(|name| name == "new_project")
    );
}

#[test]
fn list_entities_filters_custom_tables_and_adds_details_on_request() {
    let emulator = emulator();
    let without_custom = run(
        &emulator,
        "list-entities",
        json!({"includeCustomEntities": false}),
    );
    let names = |output: &Value| -> Vec<String> {
        output["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["logicalName"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(!names(&without_custom).contains(&"new_project".to_string()));
    assert!(names(&without_custom).contains(&"account".to_string()));
    let detailed = run(
        &emulator,
        "list-entities",
        json!({"includeEntityDetails": true}),
    );
    let account = detailed["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["logicalName"] == "account")
        .unwrap();
    assert_eq!(account["primaryIdAttribute"], "accountid");
    assert_eq!(account["entitySetName"], "accounts");
    assert!(names(&detailed).contains(&"new_project".to_string()));
}

#[test]
fn get_entities_metadata_matches_names_or_labels_and_marks_defaults_selected() {
    let emulator = emulator();
    let output = run(
        &emulator,
        "get-entities-metadata",
        json!({"entityTypeFilter": ["ACCOUNT", "contacts"], "defaultSelectedEntityTypes": ["contact"], "includeAllCustomEntityTypes": false}),
    );
    let types = output["entityTypes"].as_array().unwrap();
    let names: Vec<&str> = types
        .iter()
        .map(|t| t["logicalName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["account", "contact"]);
    assert_eq!(types[0]["selected"], false);
    assert_eq!(types[1]["selected"], true);
    let with_custom = run(
        &emulator,
        "get-entities-metadata",
        json!({"entityTypeFilter": ["account"]}),
    );
    assert!(
        with_custom["entityTypes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["logicalName"] == "new_project")
    );
}

#[test]
fn get_entity_metadata_by_logical_or_entity_set_name() {
    let emulator = emulator();
    let by_logical = run(
        &emulator,
        "get-entity-metadata",
        json!({"entityType": "account"}),
    );
    assert_eq!(by_logical["LogicalName"], "account");
    assert!(
        by_logical["Attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["LogicalName"] == "accountnumber")
    );
    let by_set = run(
        &emulator,
        "get-entity-metadata",
        json!({"entityType": "accounts", "useLogicalNameForLookup": false}),
    );
    assert_eq!(by_set["LogicalName"], "account");
}

#[test]
fn attribute_actions_list_get_and_query_with_casts() {
    let emulator = emulator();
    let strings = run(
        &emulator,
        "list-attributes",
        json!({"entityId": "account", "attributeTypeFilter": "String"}),
    );
    let attributes = strings["attributes"].as_array().unwrap();
    assert!(!attributes.is_empty());
    assert!(attributes.iter().all(|a| a["attributeType"] == "String"));
    assert!(attributes.iter().any(|a| a["logicalName"] == "name"));
    let detailed = run(
        &emulator,
        "list-attributes",
        json!({"entityId": "account", "includeAttributeDetails": true}),
    );
    assert!(
        detailed["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["isPrimaryId"] == true)
    );

    let name = run(
        &emulator,
        "get-attribute",
        json!({"entityId": "account", "attributeKey": "name"}),
    );
    assert_eq!(name["LogicalName"], "name");
    assert_eq!(name["AttributeType"], "String");

    let queried = run(
        &emulator,
        "query-attributes",
        json!({"entityId": "account", "attributeType": "StringAttributeMetadata", "fieldNames": ["LogicalName", "MaxLength"]}),
    );
    let rows = queried["attributes"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|a| a["LogicalName"] == "name" && a["MaxLength"].is_number())
    );
}

#[test]
fn data_sources_list_tables_and_columns_as_choices() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let tables = host().choices("entity-types", &connection, "{}").unwrap();
    assert!(
        tables
            .iter()
            .any(|choice| choice.value == "accounts" && choice.label.contains("Account"))
    );
    let columns = host()
        .choices("columns", &connection, r#"{"entityType": "accounts"}"#)
        .unwrap();
    assert!(columns.iter().any(|choice| choice.value == "accountnumber"));
    let unknown = host()
        .choices("colours", &connection, "{}")
        .answered()
        .unwrap_err();
    assert_eq!(unknown.code, ErrorCode::InvalidInput);
    let definition = host().definition();
    let declared: Vec<&str> = definition
        .data_sources
        .iter()
        .map(|source| source.key.as_str())
        .collect();
    assert_eq!(
        declared,
        [
            "entity-types",
            "tables",
            "columns",
            "file-columns",
            "relationships",
            "unbound-actions",
            "bound-actions",
            "actions-with-steps",
            "functions"
        ]
    );
    // Every data source an input names is declared, and every declared one is named by an
    // input: a designer never asks for a source that is not there, nor lists a dead one.
    let named: std::collections::BTreeSet<&str> = definition
        .actions
        .iter()
        .flat_map(|action| &action.inputs)
        .chain(
            definition
                .triggers
                .iter()
                .flat_map(|trigger| &trigger.inputs),
        )
        .filter_map(|input| input.data_source.as_deref())
        .collect();
    let declared_set: std::collections::BTreeSet<&str> = declared.iter().copied().collect();
    assert_eq!(named, declared_set);
    let query = definition
        .actions
        .iter()
        .find(|action| action.key == "query-entities")
        .unwrap();
    let entity_type = query
        .inputs
        .iter()
        .find(|input| input.key == "entityType")
        .unwrap();
    assert_eq!(entity_type.data_source.as_deref(), Some("entity-types"));
}

#[test]
fn bad_metadata_inputs_are_refused_before_any_request() {
    let emulator = emulator();
    let connection = connected(&emulator);
    for (action, input, field) in [
        (
            "list-attributes",
            json!({"entityId": "not a name"}),
            "entityId",
        ),
        (
            "query-attributes",
            json!({"entityId": "account", "attributeType": "Colour"}),
            "attributeType",
        ),
        (
            "get-attribute",
            json!({"entityId": "account", "attributeKey": "a b"}),
            "attributeKey",
        ),
        (
            "list-entity-types",
            json!({"nextLink": "https://evil.example/next"}),
            "nextLink",
        ),
    ] {
        let failure = host()
            .invoke(action, &connection, &input.to_string())
            .answered()
            .unwrap_err();
        assert_eq!(failure.code, ErrorCode::InvalidInput, "{action}");
        assert_eq!(failure.field.as_deref(), Some(field), "{action}");
    }
    assert!(emulator.requests().is_empty());
}

#[test]
fn a_column_created_from_the_brief_example_can_be_written_read_and_relabelled() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let definition = host().definition();
    let create = definition
        .actions
        .iter()
        .find(|action| action.key == "create-attribute")
        .unwrap();
    let example = create
        .inputs
        .iter()
        .find(|input| input.key == "attributeBody")
        .unwrap()
        .default
        .clone()
        .unwrap();
    let output = run(
        &emulator,
        "create-attribute",
        json!({"entityId": "account", "attributeBody": example}),
    );
    assert_eq!(output["logicalName"], "new_balance");
    assert!(output["id"].is_string());

    let id = emulator.table("accounts")[0]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    let write =
        json!({"entityType": "accounts", "entityId": id, "fieldValues": {"new_balance": 12.5}})
            .to_string();
    host().invoke("update-entity", &connection, &write).unwrap();
    let read = run(
        &emulator,
        "get-entity",
        json!({"entityType": "accounts", "entityId": id, "fieldNames": ["new_balance"]}),
    );
    assert_eq!(read["new_balance"].as_f64(), Some(12.5));

    let mut body: Value = serde_json::from_str(&example).unwrap();
    body["DisplayName"]["LocalizedLabels"][0]["Label"] = json!("Balance Due");
    run(
        &emulator,
        "update-attribute",
        json!({"entityId": "account", "attributeBody": body}),
    );
    let attribute = run(
        &emulator,
        "get-attribute",
        json!({"entityId": "account", "attributeKey": "new_balance"}),
    );
    assert_eq!(
        attribute["DisplayName"]["UserLocalizedLabel"]["Label"],
        "Balance Due"
    );
    let put = emulator
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.header("mscrm.mergelabels"), Some("true"));
}
