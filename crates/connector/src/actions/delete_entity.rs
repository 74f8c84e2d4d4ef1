//! Delete Entity: Delete the specified Microsoft Dynamics 365 CRM entity record.

use crate::actions::ActionDef;
#[allow(unused_imports)]
use crate::definition::{Format, InputDef, Kind};
#[allow(unused_imports)]
use crate::inputs::*;

pub const ACTION: ActionDef = ActionDef {
    key: "delete-entity",
    label: "Delete Entity",
    description: "Delete the specified Microsoft Dynamics 365 CRM entity record.",
    group: Some("CRM"),
    inputs: &[ENTITY_TYPE, ENTITY_ID, CONNECTION],
    example_output: None,
    run: None,
};
