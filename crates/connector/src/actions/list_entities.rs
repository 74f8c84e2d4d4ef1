//! List Entities: Get a list of all available entities in your Dynamics 365 CRM instance with detailed metadata

use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::definition::{InputDef, Kind};
use crate::entity_metadata::{
    ENTITY_COLUMNS, ENTITY_DETAIL_COLUMNS, entity_summary, get, is_top_level, rows,
};
use crate::error::Result;
use crate::input::Input;
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
    example_output: Some(
        r#"{"entities":[{"logicalName":"account","entitySetName":"accounts","displayName":"Account","isCustomEntity":false}],"count":1}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let details = input.flag(INCLUDE_DETAILS.key);
    let columns = if details {
        format!("{ENTITY_COLUMNS}{ENTITY_DETAIL_COLUMNS}")
    } else {
        ENTITY_COLUMNS.to_string()
    };
    let answer = get(context, &format!("EntityDefinitions?$select={columns}"))?;
    let mut tables: Vec<Value> = rows(&answer)?
        .into_iter()
        .filter(|row| {
            input.flag(INCLUDE_CUSTOM.key) || !row["IsCustomEntity"].as_bool().unwrap_or(false)
        })
        .filter(|row| !input.flag(TOP_LEVEL_ONLY.key) || is_top_level(row))
        .collect();
    tables.sort_by(|a, b| a["LogicalName"].as_str().cmp(&b["LogicalName"].as_str()));
    let entities: Vec<Value> = tables
        .iter()
        .map(|row| entity_summary(row, details))
        .collect();
    Ok(json!({"count": entities.len(), "entities": entities}))
}
