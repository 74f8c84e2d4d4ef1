//! List Attributes: Get a list of all attributes for a specific entity in your Dynamics 365 CRM instance

use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::definition::{InputDef, Kind};
use crate::entity_metadata::{entity_path, get, label, rows};
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;

const ATTRIBUTE_TYPE_FILTER: InputDef =
    InputDef::new("attributeTypeFilter", "Attribute Type Filter", Kind::Text).comments(
        "Filter by attribute type (e.g., 'String', 'Integer', 'Boolean', 'DateTime', 'Decimal')",
    );

const INCLUDE_DETAILS: InputDef = InputDef::new(
    "includeAttributeDetails",
    "Include Attribute Details",
    Kind::Boolean,
)
.default("false")
.comments("Include additional attribute metadata like schema name, security settings, etc.");

pub const ACTION: ActionDef = ActionDef {
    key: "list-attributes",
    label: "List Attributes",
    description: "Get a list of all attributes for a specific entity in your Dynamics 365 CRM instance",
    group: Some("CRM"),
    inputs: &[
        CONNECTION,
        METADATA_ENTITY_ID,
        ATTRIBUTE_TYPE_FILTER,
        INCLUDE_DETAILS,
    ],
    example_output: Some(
        r#"{"attributes":[{"logicalName":"name","attributeType":"String","displayName":"Account Name"}],"count":1}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity = entity_path(
        &METADATA_ENTITY_ID,
        input.text(METADATA_ENTITY_ID.key).unwrap_or_default(),
    )?;
    let mut path = format!("{entity}/Attributes");
    if let Some(kind) = input.text(ATTRIBUTE_TYPE_FILTER.key) {
        if !dataverse::odata::is_identifier(kind) {
            return Err(invalid_input(
                &ATTRIBUTE_TYPE_FILTER,
                format!("{kind:?} is not an attribute type such as String or Integer"),
            ));
        }
        path.push_str(&format!(
            "?$filter=AttributeType%20eq%20Microsoft.Dynamics.CRM.AttributeTypeCode'{kind}'"
        ));
    }
    let details = input.flag(INCLUDE_DETAILS.key);
    let attributes: Vec<Value> = rows(&get(context, &path)?)?
        .into_iter()
        .map(|row| {
            let mut summary = json!({
                "logicalName": row["LogicalName"],
                "attributeType": row["AttributeType"],
                "displayName": row.get("DisplayName").and_then(label),
            });
            if details {
                for (key, name) in [
                    ("schemaName", "SchemaName"),
                    ("attributeTypeName", "AttributeTypeName"),
                    ("requiredLevel", "RequiredLevel"),
                    ("isCustomAttribute", "IsCustomAttribute"),
                    ("isPrimaryId", "IsPrimaryId"),
                    ("isPrimaryName", "IsPrimaryName"),
                    ("isSecured", "IsSecured"),
                    ("isValidForCreate", "IsValidForCreate"),
                    ("isValidForUpdate", "IsValidForUpdate"),
                    ("metadataId", "MetadataId"),
                ] {
                    summary[key] = row.get(name).cloned().unwrap_or(Value::Null);
                }
                summary["description"] = json!(row.get("Description").and_then(label));
            }
            summary
        })
        .collect();
    Ok(json!({"count": attributes.len(), "attributes": attributes}))
}
