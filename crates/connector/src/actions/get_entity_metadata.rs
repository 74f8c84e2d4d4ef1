//! Get Entity Metadata: Get definition of Microsoft Dynamics 365 CRM entity.

use crate::actions::ActionDef;
use crate::definition::{InputDef, Kind};
use crate::inputs::*;

const USE_LOGICAL_NAME: InputDef = InputDef::new(
    "useLogicalNameForLookup",
    "Use Logical Name for Lookup",
    Kind::Boolean,
)
.default("true");

pub const ACTION: ActionDef = ActionDef {
    key: "get-entity-metadata",
    label: "Get Entity Metadata",
    description: "Get definition of Microsoft Dynamics 365 CRM entity.",
    group: Some("CRM"),
    inputs: &[CONNECTION, ENTITY_TYPE, USE_LOGICAL_NAME],
    example_output: None,
    run: None,
};
