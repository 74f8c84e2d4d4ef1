//! Get Entities Metadata: A subset of Dynamics CRM Entity Types.

use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::definition::{InputDef, Kind};
use crate::entity_metadata::{ENTITY_COLUMNS, entity_summary, get, is_top_level, rows};
use crate::error::Result;
use crate::input::Input;
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
    example_output: Some(
        r#"{"entityTypes":[{"logicalName":"account","entitySetName":"accounts","displayName":"Account","isCustomEntity":false,"selected":true}]}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let wanted: Vec<String> = input
        .list(TYPE_FILTER.key)
        .iter()
        .map(|name| name.to_lowercase())
        .collect();
    let selected: Vec<String> = input
        .list(DEFAULT_SELECTED.key)
        .iter()
        .map(|name| name.to_lowercase())
        .collect();
    let answer = get(
        context,
        &format!("EntityDefinitions?$select={ENTITY_COLUMNS}"),
    )?;
    let matches = |row: &Value, names: &[String]| {
        let summary = entity_summary(row, false);
        ["logicalName", "entitySetName", "displayName"]
            .iter()
            .filter_map(|key| summary[*key].as_str())
            .any(|value| names.contains(&value.to_lowercase()))
    };
    let mut tables: Vec<Value> = rows(&answer)?
        .into_iter()
        .filter(|row| {
            let custom = row["IsCustomEntity"].as_bool().unwrap_or(false);
            wanted.is_empty()
                || matches(row, &wanted)
                || (custom && input.flag(INCLUDE_ALL_CUSTOM.key))
        })
        .filter(|row| !input.flag(TOP_LEVEL_ONLY.key) || is_top_level(row))
        .collect();
    tables.sort_by(|a, b| a["LogicalName"].as_str().cmp(&b["LogicalName"].as_str()));
    let entity_types: Vec<Value> = tables
        .iter()
        .map(|row| {
            let mut summary = entity_summary(row, false);
            summary["selected"] = json!(matches(row, &selected));
            summary
        })
        .collect();
    Ok(json!({"entityTypes": entity_types}))
}
