//! Update Attribute: Update an existing CRM Attribute on an Entity

use crate::actions::ActionDef;
use crate::inputs::*;

pub const ACTION: ActionDef = ActionDef {
    key: "update-attribute",
    label: "Update Attribute",
    description: "Update an existing CRM Attribute on an Entity",
    group: Some("CRM"),
    inputs: &[CONNECTION, METADATA_ENTITY_ID, ATTRIBUTE_BODY],
    example_output: None,
    run: None,
};
