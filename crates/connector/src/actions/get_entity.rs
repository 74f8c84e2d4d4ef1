//! Get Entity: Retrieve a single Microsoft Dynamics 365 CRM entity record.

use crate::actions::ActionDef;
#[allow(unused_imports)]
use crate::definition::{Format, InputDef, Kind};
#[allow(unused_imports)]
use crate::inputs::*;

pub const ACTION: ActionDef = ActionDef {
    key: "get-entity",
    label: "Get Entity",
    description: "Retrieve a single Microsoft Dynamics 365 CRM entity record.",
    group: Some("CRM"),
    inputs: &[ENTITY_TYPE, ENTITY_ID, FIELD_NAMES, EXPAND, CONNECTION],
    example_output: None,
    run: None,
};
