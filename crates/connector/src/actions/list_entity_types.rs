//! List Entity Types: Retrieve a list of entity types available in your Microsoft Dynamics 365 environment with pagination support

use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::definition::{Format, InputDef, Kind};
use crate::entity_metadata::{ENTITY_COLUMNS, entity_summary, get, rows};
use crate::error::{Result, invalid_input};
use crate::input::Input;
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
    example_output: Some(
        r#"{"entityTypes":[{"logicalName":"account","entitySetName":"accounts","schemaName":"Account","displayName":"Account","isCustomEntity":false,"objectTypeCode":1}],"nextLink":null}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

/// Dataverse does not page metadata, so pages are cut here; the next link is `offset=N`.
fn run(context: &Context, input: &Input) -> Result<Value> {
    let size = input.number(MAX_PAGE_SIZE.key).unwrap_or(5000.0) as usize;
    let offset = match input.text(NEXT_LINK.key) {
        None => 0,
        Some(link) => link
            .trim()
            .strip_prefix("offset=")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| invalid_input(&NEXT_LINK, "is not a next link of this action; pass the nextLink of a previous output as it is"))?,
    };
    let answer = get(
        context,
        &format!("EntityDefinitions?$select={ENTITY_COLUMNS}"),
    )?;
    let mut tables = rows(&answer)?;
    tables.sort_by(|a, b| a["LogicalName"].as_str().cmp(&b["LogicalName"].as_str()));
    let page: Vec<Value> = tables
        .iter()
        .skip(offset)
        .take(size)
        .map(|row| entity_summary(row, false))
        .collect();
    let next = (offset + size < tables.len()).then(|| format!("offset={}", offset + size));
    Ok(json!({"entityTypes": page, "nextLink": next, "total": tables.len()}))
}
