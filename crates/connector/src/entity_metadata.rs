//! What the metadata actions share: addressing tables and columns by name or MetadataId, labels,
//! and a compact summary of a table.

use serde_json::{Value, json};

use crate::context::Context;
use crate::definition::InputDef;
use crate::error::{Result, invalid_input, malformed};
use crate::records::explain;

/// The columns of a table summary; the details add more.
pub const ENTITY_COLUMNS: &str = "LogicalName,EntitySetName,SchemaName,DisplayName,IsCustomEntity,ObjectTypeCode,IsChildEntity,IsIntersect";
pub const ENTITY_DETAIL_COLUMNS: &str = ",Description,OwnershipType,PrimaryIdAttribute,PrimaryNameAttribute,IsActivity,ChangeTrackingEnabled";

/// `EntityDefinitions(LogicalName='x')` or `EntityDefinitions(<MetadataId>)`.
pub fn entity_path(input: &InputDef, given: &str) -> Result<String> {
    key_path(
        "EntityDefinitions",
        input,
        given,
        "a table's logical name (account) or MetadataId",
    )
}

/// `Attributes(LogicalName='x')` or `Attributes(<MetadataId>)`.
pub fn attribute_path(input: &InputDef, given: &str) -> Result<String> {
    key_path(
        "Attributes",
        input,
        given,
        "a column's logical name (name) or MetadataId",
    )
}

fn key_path(set: &str, input: &InputDef, given: &str, expected: &str) -> Result<String> {
    let given = given.trim();
    if let Some(id) = dataverse::guid::parse(given) {
        return Ok(format!("{set}({id})"));
    }
    if dataverse::odata::is_identifier(given) {
        return Ok(format!(
            "{set}(LogicalName='{}')",
            given.to_ascii_lowercase()
        ));
    }
    Err(invalid_input(input, format!("{given:?} is not {expected}")))
}

/// GET under the Web API root, with Dataverse's errors explained.
pub fn get(context: &Context, path: &str) -> Result<Value> {
    let mut value = context
        .client
        .get_json(path)
        .map_err(|failure| explain(context, "EntityDefinitions", failure))?;
    if let Some(object) = value.as_object_mut() {
        object.remove("@odata.context");
    }
    Ok(value)
}

/// The rows of a collection answer.
pub fn rows(answer: &Value) -> Result<Vec<Value>> {
    answer
        .get("value")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| malformed("the metadata answer has no value list"))
}

/// The user's label of a Label property, or its first localized label.
pub fn label(property: &Value) -> Option<String> {
    property
        .get("UserLocalizedLabel")
        .and_then(|label| label.get("Label"))
        .or_else(|| {
            property
                .get("LocalizedLabels")
                .and_then(|labels| labels.get(0))
                .and_then(|label| label.get("Label"))
        })
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A table in the compact shape the metadata actions answer with.
pub fn entity_summary(row: &Value, details: bool) -> Value {
    let text = |name: &str| row.get(name).cloned().unwrap_or(Value::Null);
    let mut summary = json!({
        "logicalName": text("LogicalName"),
        "entitySetName": text("EntitySetName"),
        "schemaName": text("SchemaName"),
        "displayName": row.get("DisplayName").and_then(label),
        "isCustomEntity": row.get("IsCustomEntity").and_then(Value::as_bool).unwrap_or(false),
        "objectTypeCode": text("ObjectTypeCode"),
    });
    if details {
        summary["description"] = json!(row.get("Description").and_then(label));
        for (key, name) in [
            ("ownershipType", "OwnershipType"),
            ("primaryIdAttribute", "PrimaryIdAttribute"),
            ("primaryNameAttribute", "PrimaryNameAttribute"),
            ("isActivity", "IsActivity"),
            ("changeTrackingEnabled", "ChangeTrackingEnabled"),
            ("metadataId", "MetadataId"),
        ] {
            summary[key] = text(name);
        }
    }
    summary
}

/// Not a child table or an intersect (many-to-many) table.
pub fn is_top_level(row: &Value) -> bool {
    let flag = |name: &str| row.get(name).and_then(Value::as_bool).unwrap_or(false);
    !flag("IsChildEntity") && !flag("IsIntersect")
}
