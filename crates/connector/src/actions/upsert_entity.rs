//! Upsert Entity: Upsert a Microsoft Dynamics 365 CRM entity record.

use crate::actions::ActionDef;
#[allow(unused_imports)]
use crate::definition::{Format, InputDef, Kind};
#[allow(unused_imports)]
use crate::inputs::*;

pub const ACTION: ActionDef = ActionDef {
    key: "upsert-entity",
    label: "Upsert Entity",
    description: "Upsert a Microsoft Dynamics 365 CRM entity record.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        ENTITY_ID,
        FIELD_VALUES,
        DYNAMIC_VALUES,
        CONNECTION,
    ],
    example_output: None,
    run: None,
};
