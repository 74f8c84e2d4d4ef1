//! Get Entities Metadata: A subset of Dynamics CRM Entity Types.

use crate::actions::ActionDef;
use crate::definition::{InputDef, Kind};
use crate::inputs::*;

const DEFAULT_SELECTED: InputDef = InputDef::new(
    "defaultSelectedEntityTypes",
    "Default Selected Entity Types",
    Kind::StringList,
)
.comments("The names of the Entity Types to default in a selected state.");

const TYPE_FILTER: InputDef = InputDef::new("entityTypeFilter", "Entity Type Filter", Kind::StringList).comments(
    "The names or labels of the Entity Types to include; if blank then all types are included. Uses case-insensitive matching.",
);

const INCLUDE_ALL_CUSTOM: InputDef = InputDef::new("includeAllCustomEntityTypes", "Include All Custom Entity Types", Kind::Boolean)
    .default("true")
    .comments("When true, will include all Custom Entity Types, even those not included in Record Type Name Filter.");

const TOP_LEVEL_ONLY: InputDef = InputDef::new("includeOnlyTopLevelRecordTypes", "Include Only Top Level Record Types", Kind::Boolean)
    .default("false")
    .comments("When true, will include only Entity Types that are top-level, meaning not subtypes of other Types, regardless of other filters.");

pub const ACTION: ActionDef = ActionDef {
    key: "get-entities-metadata",
    label: "Get Entities Metadata",
    description: "A subset of Dynamics CRM Entity Types.",
    group: Some("CRM"),
    inputs: &[
        CONNECTION,
        DEFAULT_SELECTED,
        TYPE_FILTER,
        INCLUDE_ALL_CUSTOM,
        TOP_LEVEL_ONLY,
    ],
    example_output: None,
    run: None,
};
