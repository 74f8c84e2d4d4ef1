//! List Entity Types: Retrieve a list of entity types available in your Microsoft Dynamics 365 environment with pagination support

use crate::actions::ActionDef;
use crate::definition::{Format, InputDef, Kind};
use crate::inputs::*;

const MAX_PAGE_SIZE: InputDef = InputDef::new("maxPageSize", "Max Page Size", Kind::Number)
    .default("5000")
    .comments("Maximum number of entities to return per page (1-5000). Defaults to 5000 if not specified.")
    .format(Format::Range(1, 5000));

const NEXT_LINK: InputDef = InputDef::new("nextLink", "Next Link", Kind::Text)
    .comments("The @odata.nextLink URL from a previous response to get the next page of results");

pub const ACTION: ActionDef = ActionDef {
    key: "list-entity-types",
    label: "List Entity Types",
    description: "Retrieve a list of entity types available in your Microsoft Dynamics 365 environment with pagination support",
    group: None,
    inputs: &[CONNECTION, MAX_PAGE_SIZE, NEXT_LINK],
    example_output: None,
    run: None,
};
