//! Query Attributes: Query for CRM Attributes that satisfy the filter expression

use dataverse::query::QueryOptions;
use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::definition::{InputDef, Kind};
use crate::entity_metadata::{entity_path, get, rows};
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;

const ATTRIBUTE_TYPE: InputDef = InputDef::new("attributeType", "Attribute Type", Kind::Text)
    .comments("The type of Attribute to query")
    .example("StringAttributeMetadata");

pub const ACTION: ActionDef = ActionDef {
    key: "query-attributes",
    label: "Query Attributes",
    description: "Query for CRM Attributes that satisfy the filter expression",
    group: Some("CRM"),
    inputs: &[
        CONNECTION,
        METADATA_ENTITY_ID,
        ATTRIBUTE_TYPE,
        FIELD_NAMES,
        FILTER,
        EXPAND,
    ],
    example_output: Some(r#"{"attributes":[{"LogicalName":"name","MaxLength":160}],"count":1}"#),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity = entity_path(
        &METADATA_ENTITY_ID,
        input.text(METADATA_ENTITY_ID.key).unwrap_or_default(),
    )?;
    let mut path = format!("{entity}/Attributes");
    if let Some(cast) = input.text(ATTRIBUTE_TYPE.key) {
        let cast = cast.trim().trim_start_matches("Microsoft.Dynamics.CRM.");
        if !dataverse::odata::is_identifier(cast) || !cast.ends_with("AttributeMetadata") {
            return Err(invalid_input(
                &ATTRIBUTE_TYPE,
                format!(
                    "{cast:?} is not an attribute metadata type such as StringAttributeMetadata"
                ),
            ));
        }
        path.push_str(&format!("/Microsoft.Dynamics.CRM.{cast}"));
    }
    let options = QueryOptions {
        select: input.list(FIELD_NAMES.key).to_vec(),
        filter: input.text(FILTER.key).map(str::to_string),
        expand: input.list(EXPAND.key).to_vec(),
        ..QueryOptions::default()
    };
    let attributes = rows(&get(
        context,
        &format!("{path}{}", options.to_query_string()),
    )?)?;
    Ok(json!({"count": attributes.len(), "attributes": attributes}))
}
