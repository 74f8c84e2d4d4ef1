//! Create One-to-Many Relationship: a relationship and its lookup column on the related (many)
//! table, made together by deep insert ("Create and update table relationships using the Web
//! API", learn.microsoft.com/power-apps/developer/data-platform/webapi/create-update-entity-relationships-using-web-api,
//! "Create a one-to-many relationship"): `POST RelationshipDefinitions` with a
//! `OneToManyRelationshipMetadata` whose `Lookup` is a `LookupAttributeMetadata`, answered 204 with
//! `OData-EntityId`.

use serde_json::{Map, Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;
use crate::metadata_writes::{self, Create, label, language, same_text, schema_name};

pub const ACTION: ActionDef = ActionDef {
    key: "create-one-to-many-relationship",
    label: "Create One-to-Many Relationship",
    description: "Create a one-to-many relationship between two Microsoft Dynamics 365 CRM tables, with its lookup column on the related table.",
    group: Some("CRM"),
    inputs: &[
        SCHEMA_NAME,
        REFERENCED_TABLE,
        REFERENCING_TABLE,
        LOOKUP_SCHEMA_NAME,
        LOOKUP_DISPLAY_NAME,
        DESCRIPTION,
        LOOKUP_REQUIRED,
        CASCADE_DELETE,
        LANGUAGE_CODE,
        PUBLISHER_PREFIX,
        SOLUTION_UNIQUE_NAME,
        CONNECTION,
    ],
    example_output: Some(
        r#"{"metadataId":"d475020f-5d7c-e511-80d2-00155d2a68d2","schemaName":"new_contact_new_bankaccount","lookupColumn":"new_accountowner","alreadyCreated":false}"#,
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
    let lookup = schema_name(
        input,
        &LOOKUP_SCHEMA_NAME,
        input.text(LOOKUP_SCHEMA_NAME.key).unwrap_or_default(),
    )?;
    let referenced = input
        .text(REFERENCED_TABLE.key)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let referencing = input
        .text(REFERENCING_TABLE.key)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let lcid = language(input);
    // The lookup points at the primary key of the one side (`ReferencedAttribute`).
    let primary = context
        .metadata
        .table(&context.client, &referenced)?
        .ok_or_else(|| {
            invalid_input(&REFERENCED_TABLE, format!("table {referenced:?} not found"))
        })?;
    if context
        .metadata
        .table(&context.client, &referencing)?
        .is_none()
    {
        return Err(invalid_input(
            &REFERENCING_TABLE,
            format!("table {referencing:?} not found"),
        ));
    }
    let mut column = Map::new();
    column.insert(
        "@odata.type".into(),
        json!("Microsoft.Dynamics.CRM.LookupAttributeMetadata"),
    );
    column.insert("AttributeType".into(), json!("Lookup"));
    column.insert("AttributeTypeName".into(), json!({"Value": "LookupType"}));
    column.insert("SchemaName".into(), json!(lookup));
    column.insert(
        "DisplayName".into(),
        label(
            input.text(LOOKUP_DISPLAY_NAME.key).unwrap_or_default(),
            lcid,
        ),
    );
    if let Some(description) = input.text(DESCRIPTION.key) {
        column.insert("Description".into(), label(description, lcid));
    }
    column.insert(
        "RequiredLevel".into(),
        json!({
            "Value": input.text(LOOKUP_REQUIRED.key).unwrap_or("None"),
            "CanBeChanged": true,
            "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
        }),
    );
    let mut body = Map::new();
    body.insert(
        "@odata.type".into(),
        json!("Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata"),
    );
    body.insert("SchemaName".into(), json!(schema));
    body.insert("ReferencedEntity".into(), json!(referenced));
    body.insert("ReferencedAttribute".into(), json!(primary.primary_id));
    body.insert("ReferencingEntity".into(), json!(referencing));
    body.insert(
        "CascadeConfiguration".into(),
        json!({"Delete": input.text(CASCADE_DELETE.key).unwrap_or("RemoveLink")}),
    );
    body.insert("Lookup".into(), Value::Object(column));
    let same = |found: &Value| {
        same_text(found, "ReferencedEntity", &referenced)
            && same_text(found, "ReferencingEntity", &referencing)
    };
    let mut answer = metadata_writes::create(
        context,
        input,
        Create {
            collection: "RelationshipDefinitions".into(),
            body,
            read_back: format!("RelationshipDefinitions(SchemaName='{schema}')"),
            pick: None,
            same: &same,
            what: format!("relationship {schema:?}"),
        },
    )?;
    answer["schemaName"] = json!(schema);
    answer["lookupColumn"] = json!(lookup.to_ascii_lowercase());
    Ok(answer)
}
