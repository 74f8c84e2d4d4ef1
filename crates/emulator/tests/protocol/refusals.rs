//! Honest refusals: what the emulator does not emulate answers 501 naming it, what Dataverse
//! itself refuses answers Dataverse's error, and nothing comes back as a plausible wrong answer.
//! (messages.rs and metadata_types.rs cite the pages.)

use crate::support;

use std::time::Duration;

use dataverse_emulator::{Config, Emulator};
use support::{Answer, Client};

fn start() -> (Emulator, Client) {
    let emu = Emulator::start(
        Config {
            rows_per_table: 5,
            ..Config::default()
        },
        0,
    )
    .expect("emulator starts");
    let c = Client::new(&emu, Duration::from_secs(30));
    (emu, c)
}

/// 501 with the Dataverse error body naming `what`, and nothing written.
fn assert_not_implemented(a: &Answer, what: &str) {
    assert_eq!(a.status, 501, "{what}: {}", a.body);
    let body = a.json();
    assert_eq!(body["error"]["code"], "0x80040216", "{}", a.body);
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("The emulator does not implement") && message.contains(what),
        "{message}"
    );
}

fn first_id(c: &Client, set: &str, key: &str) -> String {
    let a = c.get(&format!("{set}?$select={key}&$top=1"), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["value"][0][key].as_str().unwrap().to_string()
}

#[test]
fn actions_bound_to_a_table_answer_501_and_write_nothing() {
    let (emu, c) = start();
    let before = emu.table("accounts").len();
    // The bulk messages are emulated (bulk_messages.rs); these are not.
    for action in ["InstantiateFilters", "ReassignObjectsOwner"] {
        let a = c.request(
            "POST",
            &format!("accounts/Microsoft.Dynamics.CRM.{action}"),
            "application/json",
            r#"{"Targets":[{"@odata.type":"Microsoft.Dynamics.CRM.account","name":"bulk"}]}"#,
            &[],
        );
        assert_not_implemented(&a, &format!("the {action} action"));
        assert!(
            a.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("webapi/reference/{}", action.to_ascii_lowercase())),
            "{}",
            a.body
        );
    }
    assert_eq!(emu.table("accounts").len(), before);
}

#[test]
fn bound_actions_on_a_row_answer_501() {
    let (_emu, c) = start();
    let lead = first_id(&c, "leads", "leadid");
    let a = c.request(
        "POST",
        &format!("leads({lead})/Microsoft.Dynamics.CRM.Merge"),
        "application/json",
        r#"{"Target":{},"Subordinate":{},"PerformParentingChecks":false}"#,
        &[],
    );
    assert_not_implemented(&a, "the Merge action");
    // The lead is unchanged: nothing was merged.
    let after = c.get(&format!("leads({lead})?$select=statecode"), &[]);
    assert_eq!(after.json()["statecode"], 0, "{}", after.body);
}

#[test]
fn unbound_actions_and_functions_answer_501_with_or_without_the_namespace() {
    let (_emu, c) = start();
    for (path, what) in [
        ("RetrieveTimestamp()", "the RetrieveTimestamp function"),
        (
            "RetrieveDuplicates(BusinessEntity=@b,MatchingEntityName='account',PagingInfo=@p)?@b=%7B%7D&@p=%7B%7D",
            "the RetrieveDuplicates function",
        ),
        (
            "Microsoft.Dynamics.CRM.RetrieveTimestamp()",
            "the RetrieveTimestamp function",
        ),
    ] {
        let a = c.get(path, &[]);
        assert_not_implemented(&a, what);
    }
    for (action, body) in [
        ("CloseIncident", r#"{"Status":5,"IncidentResolution":{}}"#),
        ("RevokeAccess", r#"{"Target":{},"Revokee":{}}"#),
        ("BulkDetectDuplicates", r#"{"Query":{},"JobName":"x"}"#),
        ("CreateEntities", r#"{"Entities":[]}"#),
        ("Microsoft.Dynamics.CRM.CloseQuote", r#"{"Status":5}"#),
    ] {
        let a = c.request("POST", action, "application/json", body, &[]);
        let name = action.trim_start_matches("Microsoft.Dynamics.CRM.");
        assert_not_implemented(&a, &format!("the {name} action"));
    }
}

#[test]
fn unknown_names_keep_the_documented_404() {
    let (_emu, c) = start();
    for path in [
        "RetrieveVersionn()",
        "acounts",
        "accounts/Microsoft.Dynamics.CRM.Nope",
    ] {
        let a = c.get(path, &[]);
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert_eq!(a.error_code(), "0x80060888", "{}", a.body);
        assert!(
            a.json()["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Resource not found for the segment '"),
            "{}",
            a.body
        );
    }
    // A custom API this environment does not have, bound to a table: 404, not 405.
    let a = c.request(
        "POST",
        "accounts/Microsoft.Dynamics.CRM.new_DoSomething",
        "application/json",
        "{}",
        &[],
    );
    assert_eq!(a.status, 404, "{}", a.body);
    // An unbound name that is no message: still 404.
    let a = c.request("POST", "new_DoSomething", "application/json", "{}", &[]);
    assert_eq!(a.status, 404, "{}", a.body);
    // WhoAmI is implemented.
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
}

#[test]
fn a_type_cast_segment_answers_501() {
    let (_emu, c) = start();
    let account = first_id(&c, "accounts", "accountid");
    let a = c.get(
        &format!("accounts({account})/Microsoft.Dynamics.CRM.account"),
        &[],
    );
    assert_not_implemented(&a, "type-cast segments");
}

#[test]
fn the_sql_query_option_answers_501_instead_of_the_whole_table() {
    let (_emu, c) = start();
    let a = c.get("accounts?sql=SELECT%20TOP%201%20name%20FROM%20account", &[]);
    assert_not_implemented(&a, "the sql query option");
    assert!(a.json().get("value").is_none(), "{}", a.body);
}

#[test]
fn query_functions_the_emulator_does_not_evaluate_answer_501_naming_them() {
    // LastXDays is in the Web API Query Function Reference; the emulator evaluates In, Between,
    // Null and the user and business unit functions only. Unknown OData functions keep
    // Dataverse's 400.
    let (_emu, c) = start();
    let a = c.get(
        "accounts?$filter=Microsoft.Dynamics.CRM.LastXDays(PropertyName='createdon',PropertyValue=7)",
        &[],
    );
    assert_not_implemented(&a, "the query function Microsoft.Dynamics.CRM.LastXDays");
    assert!(a.json().get("value").is_none(), "{}", a.body);
    let a = c.get("accounts?$filter=tolower(name) eq 'x'", &[]);
    assert_eq!(a.status, 400, "{}", a.body);
}

#[test]
fn options_dataverse_does_not_support_get_its_400() {
    // learn.microsoft.com/power-apps/developer/data-platform/webapi/query/overview: $skip,
    // $search and $format are not supported (protocol notes 2.1); names are case-sensitive.
    let (_emu, c) = start();
    for (query, option) in [
        ("$skip=2", "$skip"),
        ("$search=contoso", "$search"),
        ("$format=json", "$format"),
    ] {
        let a = c.get(&format!("accounts?{query}"), &[]);
        assert_eq!(a.status, 400, "{query}: {}", a.body);
        assert_eq!(a.error_code(), "0x80060888", "{}", a.body);
        assert_eq!(
            a.json()["error"]["message"],
            format!("The query parameter {option} is not supported"),
        );
    }
    let a = c.get("accounts?$SELECT=name", &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    let a = c.get("accounts?$expand=contact_customer_accounts($skip=1)", &[]);
    assert_eq!(a.status, 400, "{}", a.body);
}

#[test]
fn unknown_select_properties_on_metadata_are_the_documented_400() {
    let (_emu, c) = start();
    for (path, ty, prop) in [
        (
            "EntityDefinitions?$select=LogicalName,Nope",
            "EntityMetadata",
            "Nope",
        ),
        (
            "EntityDefinitions(LogicalName='account')?$select=Nope",
            "EntityMetadata",
            "Nope",
        ),
        (
            "EntityDefinitions(LogicalName='account')/Attributes?$select=LogicalName,Nope",
            "AttributeMetadata",
            "Nope",
        ),
        // A derived type's property needs the cast.
        (
            "EntityDefinitions(LogicalName='account')/Attributes?$select=MaxLength",
            "AttributeMetadata",
            "MaxLength",
        ),
        (
            "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')?$select=Nope",
            "AttributeMetadata",
            "Nope",
        ),
        (
            "EntityDefinitions(LogicalName='account')?$select=LogicalName&$expand=Attributes($select=Nope)",
            "AttributeMetadata",
            "Nope",
        ),
        (
            "EntityDefinitions(LogicalName='account')/ManyToOneRelationships?$select=Nope",
            "OneToManyRelationshipMetadata",
            "Nope",
        ),
        (
            "RelationshipDefinitions?$select=ReferencedEntity",
            "RelationshipMetadataBase",
            "ReferencedEntity",
        ),
    ] {
        let a = c.get(path, &[]);
        assert_eq!(a.status, 400, "{path}: {}", a.body);
        assert_eq!(a.error_code(), "0x80060888", "{}", a.body);
        assert_eq!(
            a.json()["error"]["message"],
            format!(
                "Could not find a property named '{prop}' on type 'Microsoft.Dynamics.CRM.{ty}'."
            ),
            "{path}"
        );
    }
    // Through the cast the same property is there.
    let a = c.get(
        "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength",
        &[],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let name = a.json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["LogicalName"] == "name")
        .cloned()
        .unwrap();
    assert!(name["MaxLength"].as_i64().unwrap() > 0, "{name}");
    // A cast to no AttributeMetadata type: the documented 404 (it used to list nothing).
    let a = c.get(
        "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.NopeAttributeMetadata",
        &[],
    );
    assert_eq!(a.status, 404, "{}", a.body);
}

#[test]
fn documented_metadata_properties_the_emulator_does_not_render_answer_501() {
    let (_emu, c) = start();
    let a = c.get("EntityDefinitions?$select=LogicalName,IconVectorName", &[]);
    assert_not_implemented(&a, "the EntityMetadata property 'IconVectorName'");
    let a = c.get(
        "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=DatabaseLength",
        &[],
    );
    assert_not_implemented(&a, "the StringAttributeMetadata property 'DatabaseLength'");
    // What connectors select is rendered.
    let a = c.get(
        "EntityDefinitions?$select=LogicalName,EntitySetName,SchemaName,DisplayName,IsCustomEntity,ObjectTypeCode,IsChildEntity,IsIntersect",
        &[],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["value"][0]["IsChildEntity"], false, "{}", a.body);
}

#[test]
fn relationship_casts_pick_the_kind() {
    // query-metadata-web-api: RelationshipDefinitions cast to OneToManyRelationshipMetadata or
    // ManyToManyRelationshipMetadata. The emulator's relationships are all one-to-many.
    let (_emu, c) = start();
    let all = c
        .get("RelationshipDefinitions?$select=SchemaName", &[])
        .json();
    let one_to_many = c.get(
        "RelationshipDefinitions/Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata?$select=SchemaName,ReferencedEntity,ReferencingEntity",
        &[],
    );
    assert_eq!(one_to_many.status, 200, "{}", one_to_many.body);
    let body = one_to_many.json();
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#RelationshipDefinitions/Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata(SchemaName,ReferencedEntity,ReferencingEntity)"),
        "{}",
        one_to_many.body
    );
    let rows = body["value"].as_array().unwrap();
    assert_eq!(rows.len(), all["value"].as_array().unwrap().len());
    assert!(
        rows.iter()
            .any(|r| r["ReferencedEntity"] == "account" && r["ReferencingEntity"] == "contact"),
        "{}",
        one_to_many.body
    );
    let many = c.get(
        "RelationshipDefinitions/Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata?$select=SchemaName,Entity1LogicalName",
        &[],
    );
    assert_eq!(many.status, 200, "{}", many.body);
    assert_eq!(many.json()["value"], serde_json::json!([]));
    let schema = rows[0]["SchemaName"].as_str().unwrap();
    let one = c.get(
        &format!("RelationshipDefinitions(SchemaName='{schema}')/Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata"),
        &[],
    );
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.json()["SchemaName"], schema);
    let nope = c.get(
        "RelationshipDefinitions/Microsoft.Dynamics.CRM.NopeRelationshipMetadata",
        &[],
    );
    assert_eq!(nope.status, 404, "{}", nope.body);
    let m2m = c.get(
        "EntityDefinitions(LogicalName='account')/ManyToManyRelationships?$select=SchemaName",
        &[],
    );
    assert_eq!(m2m.status, 200, "{}", m2m.body);
    assert_eq!(m2m.json()["value"], serde_json::json!([]));
}

#[test]
fn a_refused_message_inside_a_batch_is_refused_there_too() {
    let (emu, c) = start();
    let before = emu.table("accounts").len();
    let body = "--batch_r\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nPOST accounts/Microsoft.Dynamics.CRM.InstantiateFilters HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n{\"Targets\":[]}\r\n--batch_r--\r\n";
    let a = c.request(
        "POST",
        "$batch",
        "multipart/mixed;boundary=batch_r",
        body,
        &[],
    );
    assert!(
        a.body.contains("HTTP/1.1 501 Not Implemented"),
        "{}",
        a.body
    );
    assert!(a.body.contains("InstantiateFilters action"), "{}", a.body);
    assert_eq!(emu.table("accounts").len(), before);
}
