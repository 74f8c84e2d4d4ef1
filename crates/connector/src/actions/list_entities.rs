//! List Entities: Get a list of all available entities in your Dynamics 365 CRM instance with detailed metadata

use crate::actions::ActionDef;
use crate::definition::{InputDef, Kind};
use crate::inputs::*;

const INCLUDE_CUSTOM: InputDef = InputDef::new(
    "includeCustomEntities",
    "Include Custom Entities",
    Kind::Boolean,
)
.default("true")
.comments("Include custom entities in the list.");

const TOP_LEVEL_ONLY: InputDef = InputDef::new("topLevelOnly", "Top Level Only", Kind::Boolean)
    .default("false")
    .comments("Include only top-level entities (exclude child entities).");

const INCLUDE_DETAILS: InputDef = InputDef::new(
    "includeEntityDetails",
    "Include Entity Details",
    Kind::Boolean,
)
.default("false")
.comments("Include additional entity metadata like description, ownership type, etc.");

pub const ACTION: ActionDef = ActionDef {
    key: "list-entities",
    label: "List Entities",
    description: "Get a list of all available entities in your Dynamics 365 CRM instance with detailed metadata",
    group: Some("CRM"),
    inputs: &[CONNECTION, INCLUDE_CUSTOM, TOP_LEVEL_ONLY, INCLUDE_DETAILS],
    example_output: None,
    run: None,
};
