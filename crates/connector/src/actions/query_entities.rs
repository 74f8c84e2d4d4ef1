//! Query Entities: Query for Microsoft Dynamics 365 CRM entity records that satisfy the filter expression.

use crate::actions::ActionDef;
#[allow(unused_imports)]
use crate::definition::{Format, InputDef, Kind};
#[allow(unused_imports)]
use crate::inputs::*;

const ORDER_BY: InputDef = InputDef::new("orderBy", "Order By Field Name", Kind::StringList)
    .comments("The names of the fields to order by")
    .example("name desc");

const RECORDS_PER_PAGE: InputDef =
    InputDef::new("recordsPerPage", "Records Per Page", Kind::Number)
        .default("100")
        .comments("The number of record to retrieve per page")
        .format(Format::Range(1, 5000));

pub const ACTION: ActionDef = ActionDef {
    key: "query-entities",
    label: "Query Entities",
    description: "Query for Microsoft Dynamics 365 CRM entity records that satisfy the filter expression.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        FIELD_NAMES,
        FILTER,
        ORDER_BY,
        EXPAND,
        RECORDS_PER_PAGE,
        NEXT_PAGE_ID,
        CONNECTION,
    ],
    example_output: None,
    run: None,
};
