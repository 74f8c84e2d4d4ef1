//! Get Attribute: Retrieve a single CRM Attribute

use crate::actions::ActionDef;
use crate::definition::{InputDef, Kind};
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
    example_output: None,
    run: None,
};
