//! Create Attribute: Create a CRM Attribute on an Entity

use crate::actions::ActionDef;
use crate::inputs::*;

pub const ACTION: ActionDef = ActionDef {
    key: "create-attribute",
    label: "Create Attribute",
    description: "Create a CRM Attribute on an Entity",
    group: Some("CRM"),
    inputs: &[CONNECTION, METADATA_ENTITY_ID, ATTRIBUTE_BODY],
    example_output: None,
    run: None,
};
