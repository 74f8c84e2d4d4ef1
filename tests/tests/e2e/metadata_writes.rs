//! Create Table, Create Alternate Key, Create One-to-Many Relationship, Create Global Choice and
//! Delete Column through the component, checked against the definitions the emulator then serves
//! (read here over plain HTTP, not through the component) and the rows it then takes.

use std::io::{Read, Write};
use std::time::Duration;

use dataverse_emulator::{Emulator, Fault};
use dynamics_host::{ConnectorError, ErrorCode};
use e2e_tests::{Answered, connected, emulator, host, json};
use serde_json::{Value, json};

fn run(emulator: &Emulator, action: &str, input: Value) -> Result<Value, ConnectorError> {
    host()
        .invoke(action, &connected(emulator), &input.to_string())
        .answered()
        .map(|output| json(&output))
}

/// GET under the emulator's Web API root with a token, written by hand (the tests have no HTTP
/// client): the status and the JSON body.
fn read(emulator: &Emulator, relative: &str) -> (u16, Value) {
    let root = emulator.web_api_url();
    let path = &root[root.find("/api/").expect("a Web API path")..];
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", emulator.port())).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "GET {path}/{relative} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        emulator.port(),
        emulator.issue_token_for_tests()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer[9..12].parse().expect("an HTTP status");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn table_input(schema: &str) -> Value {
    json!({
        "schemaName": schema,
        "displayName": "Bank Account",
        "pluralDisplayName": "Bank Accounts",
        "description": "Customer bank accounts",
        "primaryNameSchemaName": "new_AccountName",
        "hasNotes": true,
        "publisherPrefix": "new",
        "solutionUniqueName": "examplesolution",
    })
}

#[test]
fn a_created_table_is_served_with_its_primary_name_and_takes_rows() {
    let emulator = emulator();
    let created = run(&emulator, "create-table", table_input("new_BankAccount")).unwrap();
    assert_eq!(created["logicalName"], "new_bankaccount");
    assert_eq!(created["alreadyCreated"], false);
    let (status, table) = read(
        &emulator,
        "EntityDefinitions(LogicalName='new_bankaccount')",
    );
    assert_eq!(status, 200, "{table}");
    assert_eq!(table["MetadataId"], created["metadataId"]);
    assert_eq!(table["SchemaName"], "new_BankAccount");
    assert_eq!(table["PrimaryNameAttribute"], "new_accountname");
    assert_eq!(table["OwnershipType"], "UserOwned");
    assert_eq!(
        table["DisplayName"]["LocalizedLabels"][0]["Label"],
        "Bank Account"
    );
    let set = table["EntitySetName"].as_str().unwrap().to_string();
    let solution_sent = emulator.requests().iter().any(|request| {
        request.method == "POST"
            && request.headers.iter().any(|(name, value)| {
                name == "mscrm.solutionuniquename" && value == "examplesolution"
            })
    });
    assert!(solution_sent);

    run(
        &emulator,
        "create-entity",
        json!({"entityType": set, "fieldValues": {"new_accountname": "Savings"}}),
    )
    .unwrap();
    let rows = emulator.table(&set);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["new_accountname"], "Savings");
}

#[test]
fn a_table_create_whose_answer_is_lost_is_answered_as_created_once() {
    let emulator = emulator();
    emulator
        .faults()
        // The table is made, then its answer (a 204) is lost as a broken JSON body.
        .inject_on(Fault::MalformedJson, 1, "/EntityDefinitions");
    let first = run(&emulator, "create-table", table_input("new_Ledger")).unwrap();
    assert_eq!(first["alreadyCreated"], true, "{first}");
    let (_, table) = read(&emulator, "EntityDefinitions(LogicalName='new_ledger')");
    assert_eq!(first["metadataId"], table["MetadataId"]);
    let again = run(&emulator, "create-table", table_input("new_Ledger")).unwrap();
    assert_eq!(again["alreadyCreated"], true);
    assert_eq!(again["metadataId"], table["MetadataId"]);
    let (_, tables) = read(
        &emulator,
        "EntityDefinitions?$select=LogicalName&$filter=LogicalName%20eq%20'new_ledger'",
    );
    assert_eq!(tables["value"].as_array().unwrap().len(), 1);

    // The same name asked with another primary name column is not the table asked for.
    let mut other = table_input("new_Ledger");
    other["primaryNameSchemaName"] = json!("new_Title");
    let failure = run(&emulator, "create-table", other).unwrap_err();
    assert!(
        failure.hint.unwrap_or_default().contains("other settings"),
        "{}",
        failure.message
    );
}

#[test]
fn an_alternate_key_is_served_and_refuses_a_second_row_with_the_same_values() {
    let emulator = emulator();
    run(&emulator, "create-table", table_input("new_BankAccount")).unwrap();
    let key = run(
        &emulator,
        "create-alternate-key",
        json!({
            "entityType": "new_bankaccount", "schemaName": "new_AccountNameKey",
            "displayName": "Account name", "keyColumns": "new_accountname",
        }),
    )
    .unwrap();
    assert_eq!(key["alreadyCreated"], false);
    let (status, keys) = read(
        &emulator,
        "EntityDefinitions(LogicalName='new_bankaccount')/Keys",
    );
    assert_eq!(status, 200, "{keys}");
    let served = keys["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["LogicalName"] == "new_accountnamekey")
        .expect("the key is served")
        .clone();
    assert_eq!(served["MetadataId"], key["metadataId"]);
    assert_eq!(served["KeyAttributes"], json!(["new_accountname"]));

    let (_, table) = read(
        &emulator,
        "EntityDefinitions(LogicalName='new_bankaccount')",
    );
    let set = table["EntitySetName"].as_str().unwrap().to_string();
    let row = json!({"entityType": set, "fieldValues": {"new_accountname": "Savings"}});
    run(&emulator, "create-entity", row.clone()).unwrap();
    let failure = run(&emulator, "create-entity", row).unwrap_err();
    assert_eq!(failure.http_status, Some(412), "{}", failure.message);
    assert_eq!(emulator.table(&set).len(), 1);

    // A rerun of the key answers the same key.
    let again = run(
        &emulator,
        "create-alternate-key",
        json!({
            "entityType": "new_bankaccount", "schemaName": "new_AccountNameKey",
            "displayName": "Account name", "keyColumns": ["new_accountname"],
        }),
    )
    .unwrap();
    assert_eq!(again["alreadyCreated"], true);
    assert_eq!(again["metadataId"], key["metadataId"]);
}

#[test]
fn a_one_to_many_relationship_adds_its_lookup_column_to_the_related_table() {
    let emulator = emulator();
    run(&emulator, "create-table", table_input("new_BankAccount")).unwrap();
    let created = run(
        &emulator,
        "create-one-to-many-relationship",
        json!({
            "schemaName": "new_contact_new_bankaccount",
            "referencedTable": "contact", "referencingTable": "new_bankaccount",
            "lookupSchemaName": "new_AccountOwner", "lookupDisplayName": "Account Owner",
            "cascadeDelete": "Cascade",
        }),
    )
    .unwrap();
    assert_eq!(created["lookupColumn"], "new_accountowner");
    let (status, relationship) = read(
        &emulator,
        "RelationshipDefinitions(SchemaName='new_contact_new_bankaccount')",
    );
    assert_eq!(status, 200, "{relationship}");
    assert_eq!(relationship["MetadataId"], created["metadataId"]);
    assert_eq!(relationship["ReferencedEntity"], "contact");
    assert_eq!(relationship["ReferencingEntity"], "new_bankaccount");
    assert_eq!(relationship["ReferencedAttribute"], "contactid");
    let sent = emulator
        .requests()
        .into_iter()
        .find(|request| {
            request.method == "POST" && request.path.ends_with("/RelationshipDefinitions")
        })
        .unwrap();
    let sent: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(sent["CascadeConfiguration"]["Delete"], "Cascade");
    assert_eq!(
        sent["Lookup"]["@odata.type"],
        "Microsoft.Dynamics.CRM.LookupAttributeMetadata"
    );
    let (status, column) = read(
        &emulator,
        "EntityDefinitions(LogicalName='new_bankaccount')/Attributes(LogicalName='new_accountowner')",
    );
    assert_eq!(status, 200, "{column}");
    assert_eq!(column["AttributeType"], "Lookup");
}

#[test]
fn a_global_choice_is_served_with_its_options_and_values_the_service_assigned() {
    let emulator = emulator();
    let created = run(
        &emulator,
        "create-global-choice",
        json!({
            "schemaName": "new_Colors", "displayName": "Colors",
            "options": {"Red": "100000005", "Green": ""},
        }),
    )
    .unwrap();
    assert_eq!(created["name"], "new_colors");
    let (status, choice) = read(&emulator, "GlobalOptionSetDefinitions(Name='new_colors')");
    assert_eq!(status, 200, "{choice}");
    assert_eq!(choice["MetadataId"], created["metadataId"]);
    let options = choice["Options"].as_array().unwrap();
    let value_of = |label: &str| {
        options
            .iter()
            .find(|option| option["Label"]["LocalizedLabels"][0]["Label"] == label)
            .map(|option| option["Value"].clone())
            .unwrap_or_else(|| panic!("{label} is an option: {choice}"))
    };
    assert_eq!(options.len(), 2);
    assert_eq!(value_of("Red"), 100000005);
    assert!(value_of("Green").is_i64(), "the service numbered Green");
}

#[test]
fn a_deleted_column_is_gone_and_deleting_it_again_is_already_done() {
    let emulator = emulator();
    let body = json!({
        "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
        "AttributeType": "String", "AttributeTypeName": {"Value": "StringType"},
        "SchemaName": "new_Nickname", "MaxLength": 50,
        "DisplayName": {"LocalizedLabels": [{"Label": "Nickname", "LanguageCode": 1033}]},
        "RequiredLevel": {"Value": "None"},
    });
    run(
        &emulator,
        "create-attribute",
        json!({"entityId": "account", "attributeBody": body}),
    )
    .unwrap();
    let path = "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_nickname')";
    assert_eq!(read(&emulator, path).0, 200);
    let input = json!({"entityType": "account", "column": "new_nickname"});
    let deleted = run(&emulator, "delete-column", input.clone()).unwrap();
    assert_eq!(deleted["alreadyDeleted"], false);
    assert_eq!(read(&emulator, path).0, 404);
    let again = run(&emulator, "delete-column", input).unwrap();
    assert_eq!(again["alreadyDeleted"], true);
    // A table that does not exist is not "already deleted".
    let failure = run(
        &emulator,
        "delete-column",
        json!({"entityType": "new_nosuchtable", "column": "new_nickname"}),
    )
    .unwrap_err();
    assert_eq!(failure.field.as_deref(), Some("entityType"));
}

#[test]
fn bad_definition_input_is_refused_by_field_before_any_request() {
    let emulator = emulator();
    let cases = [
        (
            "create-table",
            json!({"schemaName": "BankAccount", "displayName": "B", "pluralDisplayName": "Bs"}),
            "schemaName",
        ),
        (
            "create-table",
            json!({"schemaName": "mscrm_Bank", "displayName": "B", "pluralDisplayName": "Bs"}),
            "schemaName",
        ),
        (
            "create-table",
            json!({"schemaName": "cr1_Bank", "displayName": "B", "pluralDisplayName": "Bs", "publisherPrefix": "new"}),
            "schemaName",
        ),
        (
            "create-table",
            json!({"schemaName": "new_Bank", "displayName": "B"}),
            "pluralDisplayName",
        ),
        (
            "create-table",
            json!({"schemaName": "new_Bank", "displayName": "B", "pluralDisplayName": "Bs", "ownership": "Team"}),
            "ownership",
        ),
        (
            "create-table",
            json!({"schemaName": "new_Bank", "displayName": "B", "pluralDisplayName": "Bs", "primaryNameMaxLength": 5000}),
            "primaryNameMaxLength",
        ),
        (
            "create-alternate-key",
            json!({"entityType": "account", "schemaName": "new_K", "displayName": "K", "keyColumns": "name, Name"}),
            "keyColumns",
        ),
        (
            "create-alternate-key",
            json!({"entityType": "account", "schemaName": "new_K", "displayName": "K", "keyColumns": ""}),
            "keyColumns",
        ),
        (
            "create-global-choice",
            json!({"schemaName": "new_C", "displayName": "C", "options": {"Red": "x"}}),
            "options",
        ),
        (
            "create-global-choice",
            json!({"schemaName": "new_C", "displayName": "C", "options": {"Red": "1", "Blue": "1"}}),
            "options",
        ),
        (
            "delete-column",
            json!({"entityType": "account", "column": "new nickname"}),
            "column",
        ),
    ];
    for (action, input, field) in cases {
        emulator.clear_requests();
        let failure = run(&emulator, action, input.clone()).unwrap_err();
        assert_eq!(failure.code, ErrorCode::InvalidInput, "{action} {input}");
        assert_eq!(
            failure.field.as_deref(),
            Some(field),
            "{action} {input}: {}",
            failure.message
        );
        assert!(
            emulator.requests().is_empty(),
            "{action} {input}: nothing is sent"
        );
    }
}

#[test]
fn a_many_to_many_relationship_is_served_with_its_intersect_table_and_a_rerun_finds_it() {
    let emulator = emulator();
    let input = json!({
        "schemaName": "new_accounts_contacts", "table1": "account", "table2": "contact",
        "publisherPrefix": "new",
    });
    let created = run(&emulator, "create-many-to-many-relationship", input.clone()).unwrap();
    assert_eq!(created["alreadyCreated"], false);
    assert_eq!(created["intersectEntityName"], "new_accounts_contacts");
    let (status, relationship) = read(
        &emulator,
        "RelationshipDefinitions(SchemaName='new_accounts_contacts')",
    );
    assert_eq!(status, 200, "{relationship}");
    assert_eq!(relationship["MetadataId"], created["metadataId"]);
    assert_eq!(relationship["Entity1LogicalName"], "account");
    assert_eq!(relationship["Entity2LogicalName"], "contact");
    assert_eq!(relationship["IntersectEntityName"], "new_accounts_contacts");

    let again = run(&emulator, "create-many-to-many-relationship", input).unwrap();
    assert_eq!(again["alreadyCreated"], true);
    assert_eq!(again["metadataId"], created["metadataId"]);
    // The same name between other tables is not the relationship asked for.
    let failure = run(
        &emulator,
        "create-many-to-many-relationship",
        json!({"schemaName": "new_accounts_contacts", "table1": "account", "table2": "lead"}),
    )
    .unwrap_err();
    assert!(failure.hint.unwrap_or_default().contains("other settings"));
}
