//! Create Table: a custom table with its primary name column, as "Create and update table
//! definitions using the Web API" documents it
//! (learn.microsoft.com/power-apps/developer/data-platform/webapi/create-update-entity-definitions-using-web-api):
//! `POST EntityDefinitions` with an `EntityMetadata` whose `Attributes` hold one
//! `StringAttributeMetadata` with `IsPrimaryName` true, answered 204 with `OData-EntityId`.

use serde_json::{Map, Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::error::Result;
use crate::input::Input;
use crate::inputs::*;
use crate::metadata_writes::{self, Create, label, language, same_text, schema_name};

pub const ACTION: ActionDef = ActionDef {
    key: "create-table",
    label: "Create Table",
    description: "Create a custom Microsoft Dynamics 365 CRM table (entity) with its primary name column.",
    group: Some("CRM"),
    inputs: &[
        SCHEMA_NAME,
        DISPLAY_NAME,
        PLURAL_DISPLAY_NAME,
        DESCRIPTION,
        OWNERSHIP,
        PRIMARY_NAME_SCHEMA_NAME,
        PRIMARY_NAME_DISPLAY_NAME,
        PRIMARY_NAME_MAX_LENGTH,
        HAS_NOTES,
        HAS_ACTIVITIES,
        LANGUAGE_CODE,
        PUBLISHER_PREFIX,
        SOLUTION_UNIQUE_NAME,
        CONNECTION,
    ],
    example_output: Some(
        r#"{"metadataId":"417129e1-207c-e511-80d2-00155d2a68d2","logicalName":"new_bankaccount","schemaName":"new_BankAccount","primaryNameAttribute":"new_accountname","alreadyCreated":false}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let schema = schema_name(
        input,
        &SCHEMA_NAME,
        input.text(SCHEMA_NAME.key).unwrap_or_default(),
    )?;
    let prefix = schema
        .split_once('_')
        .map(|(prefix, _)| prefix)
        .unwrap_or_default();
    let derived_name = format!("{prefix}_Name");
    let primary = match input.text(PRIMARY_NAME_SCHEMA_NAME.key) {
        Some(given) => schema_name(input, &PRIMARY_NAME_SCHEMA_NAME, given)?.to_string(),
        None => derived_name,
    };
    let lcid = language(input);
    let logical = schema.to_ascii_lowercase();
    let mut name_column = Map::new();
    name_column.insert(
        "@odata.type".into(),
        json!("Microsoft.Dynamics.CRM.StringAttributeMetadata"),
    );
    name_column.insert("AttributeType".into(), json!("String"));
    name_column.insert("AttributeTypeName".into(), json!({"Value": "StringType"}));
    name_column.insert("SchemaName".into(), json!(primary));
    name_column.insert("IsPrimaryName".into(), json!(true));
    name_column.insert(
        "DisplayName".into(),
        label(
            input.text(PRIMARY_NAME_DISPLAY_NAME.key).unwrap_or("Name"),
            lcid,
        ),
    );
    name_column.insert(
        "RequiredLevel".into(),
        json!({"Value": "None", "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"}),
    );
    // "The primary name attribute must use Text format."
    name_column.insert("FormatName".into(), json!({"Value": "Text"}));
    name_column.insert(
        "MaxLength".into(),
        json!(input.number(PRIMARY_NAME_MAX_LENGTH.key).unwrap_or(100.0) as u32),
    );
    let mut body = Map::new();
    body.insert(
        "@odata.type".into(),
        json!("Microsoft.Dynamics.CRM.EntityMetadata"),
    );
    body.insert("SchemaName".into(), json!(schema));
    body.insert(
        "DisplayName".into(),
        label(input.text(DISPLAY_NAME.key).unwrap_or_default(), lcid),
    );
    body.insert(
        "DisplayCollectionName".into(),
        label(
            input.text(PLURAL_DISPLAY_NAME.key).unwrap_or_default(),
            lcid,
        ),
    );
    if let Some(description) = input.text(DESCRIPTION.key) {
        body.insert("Description".into(), label(description, lcid));
    }
    body.insert(
        "OwnershipType".into(),
        json!(input.text(OWNERSHIP.key).unwrap_or("UserOwned")),
    );
    body.insert("IsActivity".into(), json!(false));
    body.insert("HasNotes".into(), json!(input.flag(HAS_NOTES.key)));
    body.insert(
        "HasActivities".into(),
        json!(input.flag(HAS_ACTIVITIES.key)),
    );
    body.insert("Attributes".into(), json!([Value::Object(name_column)]));
    let primary_logical = primary.to_ascii_lowercase();
    let same = |found: &Value| {
        same_text(found, "SchemaName", schema)
            && same_text(found, "PrimaryNameAttribute", &primary_logical)
    };
    let mut answer = metadata_writes::create(
        context,
        input,
        Create {
            collection: "EntityDefinitions".into(),
            body,
            read_back: format!(
                "EntityDefinitions(LogicalName='{logical}')?$select=MetadataId,SchemaName,PrimaryNameAttribute"
            ),
            pick: None,
            same: &same,
            what: format!("table {logical:?}"),
        },
    )?;
    answer["logicalName"] = json!(logical);
    answer["schemaName"] = json!(schema);
    answer["primaryNameAttribute"] = json!(primary_logical);
    Ok(answer)
}
