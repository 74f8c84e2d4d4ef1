//! Create Entity: Create a new Microsoft Dynamics 365 CRM entity record.

use crate::actions::ActionDef;
#[allow(unused_imports)]
use crate::definition::{Format, InputDef, Kind};
#[allow(unused_imports)]
use crate::inputs::*;

pub const ACTION: ActionDef = ActionDef {
    key: "create-entity",
    label: "Create Entity",
    description: "Create a new Microsoft Dynamics 365 CRM entity record.",
    group: Some("CRM"),
    inputs: &[ENTITY_TYPE, DYNAMIC_VALUES, FIELD_VALUES, CONNECTION],
    example_output: None,
    run: None,
};
