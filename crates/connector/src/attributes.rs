//! What Create Attribute and Update Attribute share: the body check and the request.

use dataverse::retry::RetryPolicy;
use serde_json::{Map, Value, json};

use crate::client::Request;
use crate::context::Context;
use crate::entity_metadata::{attribute_path, entity_path};
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::{ATTRIBUTE_BODY, METADATA_ENTITY_ID};

/// Creates (POST) or replaces (PUT, labels merged) a column from the Attribute Body input.
pub fn write_attribute(context: &Context, input: &Input, replace: bool) -> Result<Value> {
    let entity = entity_path(
        &METADATA_ENTITY_ID,
        input.text(METADATA_ENTITY_ID.key).unwrap_or_default(),
    )?;
    let body = match input.json(ATTRIBUTE_BODY.key) {
        Some(Value::Object(body)) => body.clone(),
        Some(Value::String(_)) => return Err(invalid_input(&ATTRIBUTE_BODY, "is not valid JSON")),
        _ => {
            return Err(invalid_input(
                &ATTRIBUTE_BODY,
                "must be a JSON object: an attribute definition",
            ));
        }
    };
    let kind = body
        .get("@odata.type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !kind.ends_with("AttributeMetadata") {
        return Err(invalid_input(
            &ATTRIBUTE_BODY,
            "needs an @odata.type such as Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
        ));
    }
    let schema = body
        .get("SchemaName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !dataverse::odata::is_identifier(schema) {
        return Err(invalid_input(
            &ATTRIBUTE_BODY,
            "needs a SchemaName with the publisher prefix, such as new_Balance",
        ));
    }
    let logical = body
        .get("LogicalName")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| schema.to_ascii_lowercase());
    let (method, path) = if replace {
        let key = body
            .get("MetadataId")
            .and_then(Value::as_str)
            .unwrap_or(&logical)
            .to_string();
        (
            "PUT",
            format!("{entity}/{}", attribute_path(&ATTRIBUTE_BODY, &key)?),
        )
    } else {
        ("POST", format!("{entity}/Attributes"))
    };
    let mut request = Request::new(method, context.client.api_url(&path))
        .header("Content-Type", "application/json");
    if replace {
        request = request.header("MSCRM.MergeLabels", "true");
    }
    let mut body: Map<String, Value> = body;
    if replace {
        body.entry("LogicalName")
            .or_insert_with(|| Value::String(logical.clone()));
    }
    request.body = Value::Object(body).to_string().into_bytes();
    // A second create of the same column is refused by the service, so a retry is safe.
    let response = context
        .client
        .send(request, RetryPolicy::RECORDS)?
        .into_success()?;
    let id = response
        .header("odata-entityid")
        .and_then(dataverse::keys::id_from_entity_url);
    Ok(json!({"id": id, "logicalName": logical}))
}
