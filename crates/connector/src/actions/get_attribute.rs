//! Get Attribute: Retrieve a single CRM Attribute

use dataverse::query::QueryOptions;
use serde_json::Value;

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::definition::{InputDef, Kind};
use crate::entity_metadata::{attribute_path, entity_path, get};
use crate::error::Result;
use crate::input::Input;
use crate::inputs::*;

const ATTRIBUTE_KEY: InputDef = InputDef::new("attributeKey", "Attribute Key", Kind::Text)
    .required()
    .comments("The Attribute Metadata id")
    .example("name");

pub const ACTION: ActionDef = ActionDef {
    key: "get-attribute",
    label: "Get Attribute",
    description: "Retrieve a single CRM Attribute",
    group: Some("CRM"),
    inputs: &[
        CONNECTION,
        METADATA_ENTITY_ID,
        ATTRIBUTE_KEY,
        FIELD_NAMES,
        EXPAND,
    ],
    example_output: Some(
        r##"{"@odata.type":"#Microsoft.Dynamics.CRM.StringAttributeMetadata","LogicalName":"name","AttributeType":"String","MaxLength":160}"##,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity = entity_path(
        &METADATA_ENTITY_ID,
        input.text(METADATA_ENTITY_ID.key).unwrap_or_default(),
    )?;
    let attribute = attribute_path(
        &ATTRIBUTE_KEY,
        input.text(ATTRIBUTE_KEY.key).unwrap_or_default(),
    )?;
    let options = QueryOptions {
        select: input.list(FIELD_NAMES.key).to_vec(),
        expand: input.list(EXPAND.key).to_vec(),
        ..QueryOptions::default()
    };
    get(
        context,
        &format!("{entity}/{attribute}{}", options.to_query_string()),
    )
}
