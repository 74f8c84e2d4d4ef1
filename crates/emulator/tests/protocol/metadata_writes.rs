//! Metadata writes over HTTP: creating a table, an alternate key, a one-to-many relationship
//! with its lookup, a global choice, and deleting a column — each then used through the data
//! API, as a client would.

use std::time::Duration;

use dataverse_emulator::{Config, Emulator};
use serde_json::{Value, json};

use crate::support;
use support::{Answer, Client};

fn start() -> (Emulator, Client) {
    let emu = Emulator::start(
        Config {
            rows_per_table: 3,
            ..Config::default()
        },
        0,
    )
    .expect("emulator starts");
    let c = Client::new(&emu, Duration::from_secs(60));
    (emu, c)
}

fn label(text: &str) -> Value {
    json!({"LocalizedLabels": [{"Label": text, "LanguageCode": 1033}]})
}

fn post(c: &Client, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
    c.request("POST", path, "application/json", &body.to_string(), headers)
}

/// The body of "Create a table" (create-update-entity-definitions-using-web-api).
fn bank_account() -> Value {
    json!({
        "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata",
        "Attributes": [{
            "AttributeType": "String",
            "AttributeTypeName": {"Value": "StringType"},
            "Description": label("Type the name of the bank account"),
            "DisplayName": label("Account Name"),
            "IsPrimaryName": true,
            "RequiredLevel": {"Value": "None", "CanBeChanged": true},
            "SchemaName": "new_AccountName",
            "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
            "FormatName": {"Value": "Text"},
            "MaxLength": 100
        }],
        "Description": label("An entity to store information about customer bank accounts"),
        "DisplayCollectionName": label("Bank Accounts"),
        "DisplayName": label("Bank Account"),
        "HasActivities": false,
        "HasNotes": false,
        "IsActivity": false,
        "OwnershipType": "UserOwned",
        "SchemaName": "new_BankAccount"
    })
}

fn create_bank_account(c: &Client) {
    let a = post(
        c,
        "EntityDefinitions",
        &bank_account(),
        &[("MSCRM.SolutionUniqueName", "examplesolution")],
    );
    assert_eq!(a.status, 204, "{}", a.body);
}

#[test]
fn a_created_table_is_defined_served_and_writable() {
    let (emu, c) = start();
    let a = post(&c, "EntityDefinitions", &bank_account(), &[]);
    assert_eq!(a.status, 204, "{}", a.body);
    let location = a.header("OData-EntityId").unwrap().to_string();
    assert!(location.contains("/EntityDefinitions("), "{location}");

    let def = c.get(
        "EntityDefinitions(LogicalName='new_bankaccount')?$select=LogicalName,SchemaName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,OwnershipType,IsCustomEntity",
        &[],
    );
    assert_eq!(def.status, 200, "{}", def.body);
    let def = def.json();
    assert_eq!(def["SchemaName"], "new_BankAccount");
    assert_eq!(def["EntitySetName"], "new_bankaccounts");
    assert_eq!(def["PrimaryIdAttribute"], "new_bankaccountid");
    assert_eq!(def["PrimaryNameAttribute"], "new_accountname");
    assert_eq!(def["OwnershipType"], "UserOwned");
    assert_eq!(def["IsCustomEntity"], true);
    let by_location = c.get(&location, &[]);
    assert_eq!(by_location.json()["LogicalName"], "new_bankaccount");
    let csdl = c.get("$metadata", &[]);
    assert!(
        csdl.body.contains("<EntityType Name=\"new_bankaccount\""),
        "the table is in $metadata"
    );

    let created = post(
        &c,
        "new_bankaccounts",
        &json!({"new_accountname": "Checking"}),
        &[],
    );
    assert_eq!(created.status, 204, "{}", created.body);
    let rows = emu.table("new_bankaccounts");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["new_accountname"], "Checking");
    assert_eq!(rows[0]["statecode"], 0);

    // Custom tables have the bulk messages, registered where clients look for them.
    let filters = c.get(
        "sdkmessagefilters?$select=sdkmessagefilterid&$filter=sdkmessageid/name eq 'CreateMultiple' and primaryobjecttypecode eq 'new_bankaccount'",
        &[],
    );
    assert_eq!(filters.json()["value"].as_array().unwrap().len(), 1);
    let bulk = post(
        &c,
        "new_bankaccounts/Microsoft.Dynamics.CRM.CreateMultiple",
        &json!({"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.new_bankaccount", "new_accountname": "Savings"}]}),
        &[],
    );
    assert_eq!(bulk.status, 200, "{}", bulk.body);
    assert_eq!(emu.table("new_bankaccounts").len(), 2);
}

#[test]
fn table_definitions_that_break_the_rules_are_refused() {
    let (emu, c) = start();
    let tables = || {
        c.get("EntityDefinitions?$select=LogicalName", &[]).json()["value"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = tables();
    create_bank_account(&c);
    let again = post(&c, "EntityDefinitions", &bank_account(), &[]);
    assert_eq!(again.status, 412, "{}", again.body);
    assert_eq!(again.error_code(), "0x80040237");

    let mut no_prefix = bank_account();
    no_prefix["SchemaName"] = json!("BankAccount");
    let a = post(&c, "EntityDefinitions", &no_prefix, &[]);
    assert_eq!(a.status, 400);
    assert!(a.body.contains("'BankAccount'"), "{}", a.body);
    let mut mscrm = bank_account();
    mscrm["SchemaName"] = json!("mscrm_Thing");
    assert_eq!(post(&c, "EntityDefinitions", &mscrm, &[]).status, 400);

    let mut no_primary = bank_account();
    no_primary["SchemaName"] = json!("new_Other");
    no_primary["Attributes"][0]["IsPrimaryName"] = json!(false);
    let a = post(&c, "EntityDefinitions", &no_primary, &[]);
    assert_eq!(a.status, 400);
    assert!(a.body.contains("IsPrimaryName"), "{}", a.body);
    assert_eq!(tables(), before + 1, "only the first table was created");
    assert!(emu.table("new_others").is_empty());
}

#[test]
fn an_alternate_key_is_active_at_once_and_enforced_on_writes() {
    let (emu, c) = start();
    create_bank_account(&c);
    let column = json!({
        "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
        "SchemaName": "new_Iban",
        "DisplayName": label("IBAN"),
        "MaxLength": 34
    });
    let a = post(
        &c,
        "EntityDefinitions(LogicalName='new_bankaccount')/Attributes",
        &column,
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let key = json!({
        "SchemaName": "new_IbanKey",
        "DisplayName": label("IBAN key"),
        "KeyAttributes": ["new_iban"]
    });
    let a = post(
        &c,
        "EntityDefinitions(LogicalName='new_bankaccount')/Keys",
        &key,
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    assert!(a.header("OData-EntityId").unwrap().contains("/Keys("));
    let keys = c.get(
        "EntityDefinitions(LogicalName='new_bankaccount')/Keys?$select=SchemaName,KeyAttributes,EntityKeyIndexStatus",
        &[],
    );
    let keys = keys.json();
    assert_eq!(keys["value"][0]["EntityKeyIndexStatus"], "Active");
    assert_eq!(keys["value"][0]["KeyAttributes"], json!(["new_iban"]));

    let row = json!({"new_accountname": "A", "new_iban": "DE89370400440532013000"});
    assert_eq!(post(&c, "new_bankaccounts", &row, &[]).status, 204);
    let twice = post(&c, "new_bankaccounts", &row, &[]);
    assert_eq!(twice.status, 412, "{}", twice.body);
    assert_eq!(emu.table("new_bankaccounts").len(), 1);
    // The key addresses rows.
    let by_key = c.get(
        "new_bankaccounts(new_iban='DE89370400440532013000')?$select=new_accountname",
        &[],
    );
    assert_eq!(by_key.json()["new_accountname"], "A");

    let same = post(
        &c,
        "EntityDefinitions(LogicalName='new_bankaccount')/Keys",
        &json!({"SchemaName": "new_Other", "KeyAttributes": ["new_iban"]}),
        &[],
    );
    assert_eq!(same.status, 412, "{}", same.body);
    let memo = post(
        &c,
        "EntityDefinitions(LogicalName='account')/Keys",
        &json!({"SchemaName": "new_DescriptionKey", "KeyAttributes": ["nosuchcolumn"]}),
        &[],
    );
    assert_eq!(memo.status, 400);
    assert!(memo.body.contains("'nosuchcolumn'"), "{}", memo.body);
}

#[test]
fn a_key_over_rows_that_already_share_a_value_is_not_emulated() {
    let (emu, c) = start();
    create_bank_account(&c);
    let column = json!({
        "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
        "SchemaName": "new_Branch",
        "MaxLength": 20
    });
    post(
        &c,
        "EntityDefinitions(LogicalName='new_bankaccount')/Attributes",
        &column,
        &[],
    );
    for name in ["A", "B"] {
        let row = json!({"new_accountname": name, "new_branch": "Main"});
        assert_eq!(post(&c, "new_bankaccounts", &row, &[]).status, 204);
    }
    let a = post(
        &c,
        "EntityDefinitions(LogicalName='new_bankaccount')/Keys",
        &json!({"SchemaName": "new_BranchKey", "KeyAttributes": ["new_branch"]}),
        &[],
    );
    assert_eq!(a.status, 501, "{}", a.body);
    assert!(a.body.contains("new_BranchKey"), "{}", a.body);
    let keys = c.get("EntityDefinitions(LogicalName='new_bankaccount')/Keys", &[]);
    assert_eq!(keys.json()["value"].as_array().unwrap().len(), 0);
    assert_eq!(emu.table("new_bankaccounts").len(), 2);
}

fn parent_account_relationship() -> Value {
    json!({
        "SchemaName": "new_account_new_bankaccount",
        "@odata.type": "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
        "AssociatedMenuConfiguration": {"Behavior": "UseCollectionName", "Group": "Details", "Label": label("Bank Accounts"), "Order": 10000},
        "CascadeConfiguration": {"Assign": "Cascade", "Delete": "Cascade", "Merge": "Cascade", "Reparent": "Cascade", "Share": "Cascade", "Unshare": "Cascade"},
        "ReferencedAttribute": "accountid",
        "ReferencedEntity": "account",
        "ReferencingEntity": "new_bankaccount",
        "Lookup": {
            "AttributeType": "Lookup",
            "AttributeTypeName": {"Value": "LookupType"},
            "Description": label("The owner of the account"),
            "DisplayName": label("Account Owner"),
            "RequiredLevel": {"Value": "ApplicationRequired", "CanBeChanged": true},
            "SchemaName": "new_ParentAccountId",
            "@odata.type": "Microsoft.Dynamics.CRM.LookupAttributeMetadata"
        }
    })
}

#[test]
fn a_one_to_many_relationship_brings_its_lookup_and_navigation_properties() {
    let (emu, c) = start();
    create_bank_account(&c);
    let a = post(
        &c,
        "RelationshipDefinitions",
        &parent_account_relationship(),
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    assert!(
        a.header("OData-EntityId")
            .unwrap()
            .contains("/RelationshipDefinitions(")
    );
    let def = c.get(
        "RelationshipDefinitions(SchemaName='new_account_new_bankaccount')",
        &[],
    );
    assert_eq!(def.status, 200, "{}", def.body);
    assert_eq!(def.json()["ReferencingAttribute"], "new_parentaccountid");
    let lookup = c.get(
        "EntityDefinitions(LogicalName='new_bankaccount')/Attributes(LogicalName='new_parentaccountid')",
        &[],
    );
    assert_eq!(lookup.json()["AttributeType"], "Lookup", "{}", lookup.body);

    let account = emu.table("accounts")[0]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    let row = json!({
        "new_accountname": "Linked",
        "new_ParentAccountId@odata.bind": format!("/accounts({account})"),
    });
    assert_eq!(post(&c, "new_bankaccounts", &row, &[]).status, 204);
    let stored = &emu.table("new_bankaccounts")[0];
    assert_eq!(stored["_new_parentaccountid_value"], account.as_str());
    let expanded = c.get(
        &format!(
            "accounts({account})?$select=name&$expand=new_account_new_bankaccount($select=new_accountname)"
        ),
        &[],
    );
    assert_eq!(expanded.status, 200, "{}", expanded.body);
    assert_eq!(
        expanded.json()["new_account_new_bankaccount"][0]["new_accountname"],
        "Linked"
    );

    // Associate another row through the collection-valued navigation property.
    assert_eq!(
        post(
            &c,
            "new_bankaccounts",
            &json!({"new_accountname": "Later"}),
            &[]
        )
        .status,
        204
    );
    let later = emu
        .table("new_bankaccounts")
        .into_iter()
        .find(|r| r["new_accountname"] == "Later")
        .unwrap()["new_bankaccountid"]
        .as_str()
        .unwrap()
        .to_string();
    let a = post(
        &c,
        &format!("accounts({account})/new_account_new_bankaccount/$ref"),
        &json!({"@odata.id": format!("{}/new_bankaccounts({later})", c.api)}),
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let linked = emu
        .table("new_bankaccounts")
        .into_iter()
        .filter(|r| r["_new_parentaccountid_value"] == account.as_str())
        .count();
    assert_eq!(linked, 2);

    let again = post(
        &c,
        "RelationshipDefinitions",
        &parent_account_relationship(),
        &[],
    );
    assert_eq!(again.status, 412, "{}", again.body);
}

#[test]
fn relationship_definitions_the_emulator_cannot_take_are_refused() {
    let (_emu, c) = start();
    create_bank_account(&c);
    let mut no_lookup = parent_account_relationship();
    no_lookup.as_object_mut().unwrap().remove("Lookup");
    let a = post(&c, "RelationshipDefinitions", &no_lookup, &[]);
    assert_eq!(a.status, 400);
    assert!(a.body.contains("'Lookup'"), "{}", a.body);
    let mut unknown = parent_account_relationship();
    unknown["ReferencedEntity"] = json!("acount");
    let a = post(&c, "RelationshipDefinitions", &unknown, &[]);
    assert_eq!(a.status, 400);
    assert!(a.body.contains("'acount'"), "{}", a.body);
    let with_itself = json!({
        "@odata.type": "Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata",
        "SchemaName": "new_bankaccount_bankaccount",
        "Entity1LogicalName": "new_bankaccount",
        "Entity2LogicalName": "new_bankaccount",
        "IntersectEntityName": "new_bankaccount_bankaccount"
    });
    let a = post(&c, "RelationshipDefinitions", &with_itself, &[]);
    assert_eq!(a.status, 501, "{}", a.body);
    assert!(a.body.contains("with itself"), "{}", a.body);
}

#[test]
fn a_global_choice_is_created_and_used_by_a_choice_column() {
    let (emu, c) = start();
    let colors = json!({
        "@odata.type": "Microsoft.Dynamics.CRM.OptionSetMetadata",
        "Name": "new_colors",
        "DisplayName": label("Colors"),
        "Description": label("Color Choice"),
        "IsGlobal": true,
        "OptionSetType": "Picklist",
        "Options": [
            {"Value": 727000000, "Label": label("Red")},
            {"Value": 727000001, "Label": label("Green")},
            {"Label": label("Blue")}
        ]
    });
    let a = post(&c, "GlobalOptionSetDefinitions", &colors, &[]);
    assert_eq!(a.status, 204, "{}", a.body);
    let location = a.header("OData-EntityId").unwrap().to_string();
    let id = location
        .rsplit_once('(')
        .unwrap()
        .1
        .trim_end_matches(')')
        .to_string();
    let by_name = c.get("GlobalOptionSetDefinitions(Name='new_colors')", &[]);
    assert_eq!(by_name.status, 200, "{}", by_name.body);
    let options: Vec<i64> = by_name.json()["Options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Value"].as_i64().unwrap())
        .collect();
    assert_eq!(options, [727000000, 727000001, 100000000]);
    let all = c.get("GlobalOptionSetDefinitions", &[]);
    assert_eq!(all.json()["value"][0]["MetadataId"], id.as_str());
    assert_eq!(
        post(&c, "GlobalOptionSetDefinitions", &colors, &[]).status,
        412
    );

    let column = json!({
        "@odata.type": "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        "SchemaName": "new_Color",
        "DisplayName": label("Color"),
        "GlobalOptionSet@odata.bind": format!("/GlobalOptionSetDefinitions({id})")
    });
    let a = post(
        &c,
        "EntityDefinitions(LogicalName='account')/Attributes",
        &column,
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let good = post(
        &c,
        "accounts",
        &json!({"name": "Painted", "new_color": 727000001}),
        &[],
    );
    assert_eq!(good.status, 204, "{}", good.body);
    let bad = post(
        &c,
        "accounts",
        &json!({"name": "Unpainted", "new_color": 1}),
        &[],
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    let painted: Vec<Value> = emu
        .table("accounts")
        .into_iter()
        .filter(|r| r["name"] == "Painted" || r["name"] == "Unpainted")
        .map(|r| r["new_color"].clone())
        .collect();
    assert_eq!(painted, [json!(727000001)]);
}

#[test]
fn a_deleted_column_leaves_the_definition_and_the_rows() {
    let (emu, c) = start();
    let column = json!({
        "@odata.type": "Microsoft.Dynamics.CRM.IntegerAttributeMetadata",
        "SchemaName": "new_Score",
        "DisplayName": label("Score")
    });
    let path = "EntityDefinitions(LogicalName='account')/Attributes";
    assert_eq!(post(&c, path, &column, &[]).status, 204);
    let account = emu.table("accounts")[0]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    let a = c.request(
        "PATCH",
        &format!("accounts({account})"),
        "application/json",
        r#"{"new_score": 7}"#,
        &[("If-Match", "*")],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(emu.table("accounts")[0]["new_score"], 7);

    let a = c.delete_with(
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_score')",
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    assert!(
        emu.table("accounts")
            .iter()
            .all(|r| r.get("new_score").is_none())
    );
    let gone = c.get(
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_score')",
        &[],
    );
    assert_eq!(gone.status, 404);
    let read = c.get(&format!("accounts({account})?$select=new_score"), &[]);
    assert_eq!(read.status, 400, "{}", read.body);
    // Columns after it still read and write in place.
    let rename = c.request(
        "PATCH",
        &format!("accounts({account})"),
        "application/json",
        r#"{"name": "Still here"}"#,
        &[("If-Match", "*")],
    );
    assert_eq!(rename.status, 204);
    let row = c.get(
        &format!("accounts({account})?$select=name,accountnumber"),
        &[],
    );
    assert_eq!(row.json()["name"], "Still here");
}

#[test]
fn columns_others_depend_on_are_not_deleted() {
    let (emu, c) = start();
    let delete = |table: &str, column: &str| {
        c.delete_with(
            &format!("EntityDefinitions(LogicalName='{table}')/Attributes(LogicalName='{column}')"),
            &[],
        )
    };
    let system = delete("account", "telephone1");
    assert_eq!(system.status, 400);
    assert!(system.body.contains("system column"), "{}", system.body);
    let primary = delete("new_project", "new_name");
    assert_eq!(primary.status, 400);
    assert!(primary.body.contains("primary"), "{}", primary.body);
    let key = delete("new_project", "new_code");
    assert_eq!(key.status, 400);
    assert!(key.body.contains("new_CodeKey"), "{}", key.body);
    let lookup = delete("new_project", "new_accountid");
    assert_eq!(lookup.status, 400, "{}", lookup.body);
    assert!(lookup.body.contains("relationship"), "{}", lookup.body);
    assert!(
        emu.table("new_projects")
            .iter()
            .all(|r| r.get("new_code").is_some())
    );
}

#[test]
fn a_relationships_delete_behaviour_is_kept_and_applied() {
    let (emu, c) = start();
    create_bank_account(&c);
    let account_ids: Vec<String> = emu
        .table("accounts")
        .iter()
        .map(|r| r["accountid"].as_str().unwrap().to_string())
        .collect();
    let mut cascade = parent_account_relationship();
    cascade["CascadeConfiguration"]["Delete"] = json!("Cascade");
    assert_eq!(
        post(&c, "RelationshipDefinitions", &cascade, &[]).status,
        204
    );
    let def = c.get(
        "RelationshipDefinitions(SchemaName='new_account_new_bankaccount')",
        &[],
    );
    assert_eq!(def.json()["CascadeConfiguration"]["Delete"], "Cascade");
    let mut restrict = parent_account_relationship();
    restrict["SchemaName"] = json!("new_account_new_bankaccount_restrict");
    restrict["Lookup"]["SchemaName"] = json!("new_GuarantorId");
    restrict["CascadeConfiguration"]["Delete"] = json!("Restrict");
    assert_eq!(
        post(&c, "RelationshipDefinitions", &restrict, &[]).status,
        204
    );

    let row = |name: &str, parent: &str, field: &str| json!({"new_accountname": name, format!("{field}@odata.bind"): format!("/accounts({parent})")});
    for (name, parent, field) in [
        ("Child of 0", &account_ids[0], "new_ParentAccountId"),
        ("Guaranteed by 1", &account_ids[1], "new_GuarantorId"),
    ] {
        assert_eq!(
            post(&c, "new_bankaccounts", &row(name, parent, field), &[]).status,
            204
        );
    }
    let gone = c.delete_with(&format!("accounts({})", account_ids[0]), &[]);
    assert_eq!(gone.status, 204, "{}", gone.body);
    let names: Vec<String> = emu
        .table("new_bankaccounts")
        .iter()
        .map(|r| r["new_accountname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Guaranteed by 1"], "the cascade took the child");
    let kept = c.delete_with(&format!("accounts({})", account_ids[1]), &[]);
    assert_eq!(kept.status, 501, "{}", kept.body);
    assert!(kept.body.contains("Restrict"), "{}", kept.body);
    assert!(
        emu.table("accounts")
            .iter()
            .any(|r| r["accountid"] == account_ids[1].as_str())
    );
}

#[test]
fn one_key_is_read_by_its_logical_name() {
    let (_emu, c) = start();
    let key = c.get(
        "EntityDefinitions(LogicalName='new_project')/Keys(LogicalName='new_codekey')",
        &[],
    );
    assert_eq!(key.status, 200, "{}", key.body);
    assert_eq!(key.json()["KeyAttributes"], json!(["new_code"]));
    assert!(
        key.json()["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/$entity")
    );
    let none = c.get(
        "EntityDefinitions(LogicalName='new_project')/Keys(LogicalName='new_nokey')",
        &[],
    );
    assert_eq!(none.status, 404, "{}", none.body);
}

#[test]
fn options_without_values_take_values_the_list_does_not_use() {
    let (_emu, c) = start();
    let set = json!({
        "@odata.type": "Microsoft.Dynamics.CRM.OptionSetMetadata",
        "Name": "new_shades",
        "IsGlobal": true,
        "OptionSetType": "Picklist",
        "Options": [
            {"Value": null, "Label": label("Green")},
            {"Value": 100000000, "Label": label("Red")}
        ]
    });
    let a = post(&c, "GlobalOptionSetDefinitions", &set, &[]);
    assert_eq!(a.status, 204, "{}", a.body);
    let back = c
        .get("GlobalOptionSetDefinitions(Name='new_shades')", &[])
        .json();
    let values: Vec<i64> = back["Options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Value"].as_i64().unwrap())
        .collect();
    assert_eq!(values, [100000001, 100000000]);
}

#[test]
fn a_many_to_many_relationship_pairs_rows_through_its_intersect_table() {
    let (emu, c) = start();
    create_bank_account(&c);
    let many = json!({
        "@odata.type": "Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata",
        "SchemaName": "new_bankaccount_contact",
        "Entity1LogicalName": "new_bankaccount",
        "Entity2LogicalName": "contact",
        "IntersectEntityName": "new_bankaccount_contact",
        "Entity1AssociatedMenuConfiguration": {"Behavior": "UseLabel", "Group": "Details", "Label": label("Contacts"), "Order": 10000},
        "Entity2AssociatedMenuConfiguration": {"Behavior": "UseLabel", "Group": "Details", "Label": label("Bank Accounts"), "Order": 10000}
    });
    let a = post(&c, "RelationshipDefinitions", &many, &[]);
    assert_eq!(a.status, 204, "{}", a.body);
    assert!(
        a.header("OData-EntityId")
            .unwrap()
            .contains("/RelationshipDefinitions(")
    );
    let def = c.get(
        "RelationshipDefinitions(SchemaName='new_bankaccount_contact')",
        &[],
    );
    assert_eq!(def.status, 200, "{}", def.body);
    let def = def.json();
    assert_eq!(def["IntersectEntityName"], "new_bankaccount_contact");
    assert_eq!(def["Entity2IntersectAttribute"], "contactid");
    let listed = c.get(
        "EntityDefinitions(LogicalName='contact')/ManyToManyRelationships?$select=SchemaName",
        &[],
    );
    assert_eq!(
        listed.json()["value"][0]["SchemaName"],
        "new_bankaccount_contact"
    );
    assert_eq!(
        post(&c, "RelationshipDefinitions", &many, &[]).status,
        412,
        "the name is taken"
    );

    assert_eq!(
        post(
            &c,
            "new_bankaccounts",
            &json!({"new_accountname": "Joint"}),
            &[]
        )
        .status,
        204
    );
    let account = emu.table("new_bankaccounts")[0]["new_bankaccountid"]
        .as_str()
        .unwrap()
        .to_string();
    let contacts: Vec<String> = emu
        .table("contacts")
        .iter()
        .map(|r| r["contactid"].as_str().unwrap().to_string())
        .collect();
    let associate = |path: String, target: String| {
        post(
            &c,
            &path,
            &json!({"@odata.id": format!("{}/{target}", c.api)}),
            &[],
        )
    };
    let a = associate(
        format!("new_bankaccounts({account})/new_bankaccount_contact/$ref"),
        format!("contacts({})", contacts[0]),
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let again = associate(
        format!("new_bankaccounts({account})/new_bankaccount_contact/$ref"),
        format!("contacts({})", contacts[0]),
    );
    assert_eq!(again.status, 412, "{}", again.body);
    // From the other side.
    let a = associate(
        format!("contacts({})/new_bankaccount_contact/$ref", contacts[1]),
        format!("new_bankaccounts({account})"),
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let pairs = |emu: &Emulator| {
        let mut p: Vec<String> = emu
            .table("new_bankaccount_contactset")
            .iter()
            .inspect(|r| assert_eq!(r["new_bankaccountid"], account.as_str()))
            .map(|r| r["contactid"].as_str().unwrap().to_string())
            .collect();
        p.sort();
        p
    };
    let mut both = vec![contacts[0].clone(), contacts[1].clone()];
    both.sort();
    assert_eq!(pairs(&emu), both);

    let read = c.get(
        &format!("new_bankaccounts({account})/new_bankaccount_contact"),
        &[],
    );
    assert_eq!(read.status, 501, "{}", read.body);
    let direct = post(
        &c,
        "new_bankaccount_contactset",
        &json!({"new_bankaccountid": account, "contactid": contacts[2]}),
        &[],
    );
    assert_eq!(direct.status, 400, "{}", direct.body);
    assert_eq!(direct.error_code(), "0x80040800");
    let removed = c.delete_with(
        &format!(
            "new_bankaccounts({account})/new_bankaccount_contact({})/$ref",
            contacts[0]
        ),
        &[],
    );
    assert_eq!(removed.status, 204, "{}", removed.body);
    assert_eq!(pairs(&emu), [contacts[1].clone()]);
    let gone = c.delete_with(&format!("contacts({})", contacts[1]), &[]);
    assert_eq!(gone.status, 204, "{}", gone.body);
    assert!(pairs(&emu).is_empty(), "a deleted row's pairs go with it");
}
