//! Query Attributes: Query for CRM Attributes that satisfy the filter expression

use crate::actions::ActionDef;
use crate::definition::{InputDef, Kind};
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
    example_output: None,
    run: None,
};
