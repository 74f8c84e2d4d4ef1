//! List Attributes: Get a list of all attributes for a specific entity in your Dynamics 365 CRM instance

use crate::actions::ActionDef;
use crate::definition::{InputDef, Kind};
use crate::inputs::*;

const ATTRIBUTE_TYPE_FILTER: InputDef =
    InputDef::new("attributeTypeFilter", "Attribute Type Filter", Kind::Text).comments(
        "Filter by attribute type (e.g., 'String', 'Integer', 'Boolean', 'DateTime', 'Decimal')",
    );

const INCLUDE_DETAILS: InputDef = InputDef::new(
    "includeAttributeDetails",
    "Include Attribute Details",
    Kind::Boolean,
)
.default("false")
.comments("Include additional attribute metadata like schema name, security settings, etc.");

pub const ACTION: ActionDef = ActionDef {
    key: "list-attributes",
    label: "List Attributes",
    description: "Get a list of all attributes for a specific entity in your Dynamics 365 CRM instance",
    group: Some("CRM"),
    inputs: &[
        CONNECTION,
        METADATA_ENTITY_ID,
        ATTRIBUTE_TYPE_FILTER,
        INCLUDE_DETAILS,
    ],
    example_output: None,
    run: None,
};
