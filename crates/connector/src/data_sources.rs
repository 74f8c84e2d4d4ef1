//! Data sources: choices a designer fills picklists with, computed from the environment.

use serde_json::Value;

use crate::bindings::dynamics::connector::types::{self as wit, Choice};
use crate::context::Context;
use crate::definition::{InputDef, Kind, inputs_to_wit};
use crate::entity_metadata::{entity_path, get, label, rows};
use crate::error::{Result, invalid_field};
use crate::input::Input;
use crate::inputs::CONNECTION;

const TABLE: InputDef = InputDef::new("entityType", "Entity Type", Kind::Text)
    .required()
    .comments(
        "The table whose columns to list: entity set name (accounts) or logical name (account)",
    );

/// One data source: key, label, description, inputs.
struct Source {
    key: &'static str,
    label: &'static str,
    description: &'static str,
    inputs: &'static [InputDef],
}

const SOURCES: &[Source] = &[
    Source {
        key: "entity-types",
        label: "Entity Types",
        description: "Tables by display name; the value is the entity set name (accounts).",
        inputs: &[CONNECTION],
    },
    Source {
        key: "tables",
        label: "Tables",
        description: "Tables by display name; the value is the logical name (account).",
        inputs: &[CONNECTION],
    },
    Source {
        key: "columns",
        label: "Columns",
        description: "A table's columns by display name; the value is the logical name.",
        inputs: &[CONNECTION, TABLE],
    },
    Source {
        key: "file-columns",
        label: "File and Image Columns",
        description: "A table's file and image columns by display name; the value is the logical name.",
        inputs: &[CONNECTION, TABLE],
    },
    Source {
        key: "relationships",
        label: "Relationships",
        description: "A table's relationships (one-to-many, many-to-one, many-to-many) by schema name and related table; the value is the navigation property on the table's side.",
        inputs: &[CONNECTION, TABLE],
    },
    Source {
        key: "unbound-actions",
        label: "Unbound Actions",
        description: "The environment's actions and custom APIs not bound to a row, from its $metadata; the value is the action name.",
        inputs: &[CONNECTION],
    },
    Source {
        key: "bound-actions",
        label: "Bound Actions",
        description: "The environment's actions and custom APIs bound to a row, from its $metadata, those of one table when Entity Type is given; the value is the action name.",
        inputs: &[CONNECTION, crate::operations::BOUND_ENTITY_TYPE],
    },
    Source {
        key: crate::triggers::ACTIONS_WITH_STEPS,
        label: "Actions With Steps",
        description: "The environment's active custom APIs that allow processing steps (AllowedCustomProcessingStepType not None), for When an Action Is Performed; the value is the unique name.",
        inputs: &[CONNECTION],
    },
    Source {
        key: "functions",
        label: "Functions",
        description: "The environment's functions, from its $metadata, bound ones labelled with their table; the value is the function name.",
        inputs: &[CONNECTION],
    },
];

pub fn definitions() -> Vec<wit::DataSourceDefinition> {
    SOURCES
        .iter()
        .map(|source| wit::DataSourceDefinition {
            key: source.key.to_string(),
            label: source.label.to_string(),
            description: source.description.to_string(),
            inputs: inputs_to_wit(source.inputs),
        })
        .collect()
}

pub fn choices(context: &Context, key: &str, input_json: &str) -> Result<Vec<Choice>> {
    let source = SOURCES
        .iter()
        .find(|source| source.key == key)
        .ok_or_else(|| {
            let keys: Vec<&str> = SOURCES.iter().map(|source| source.key).collect();
            invalid_field(
                "dataSource",
                Some("Data Source"),
                format!(
                    "unknown data source {key:?}; the data sources are {}",
                    keys.join(", ")
                ),
            )
        })?;
    let input = Input::parse(source.inputs, input_json)?;
    let mut choices = match source.key {
        "file-columns" => file_columns(context, &input)?,
        "relationships" => {
            crate::relationships::source(context, input.text(TABLE.key).unwrap_or_default())?
        }
        "unbound-actions" => {
            crate::operations::source(context, crate::operations::Family::UnboundAction, None)?
        }
        "bound-actions" => crate::operations::source(
            context,
            crate::operations::Family::BoundAction,
            input.text(crate::operations::BOUND_ENTITY_TYPE.key),
        )?,
        "functions" => {
            crate::operations::source(context, crate::operations::Family::Function, None)?
        }
        crate::triggers::ACTIONS_WITH_STEPS => crate::triggers::actions_with_steps(context)?,
        "columns" => {
            let name = input.text(TABLE.key).unwrap_or_default();
            let logical = match context.metadata.table(&context.client, name)? {
                Some(table) => table.logical_name.clone(),
                None => name.to_string(),
            };
            let path = entity_path(&TABLE, &logical)?;
            rows(&get(
                context,
                &format!("{path}/Attributes?$select=LogicalName,DisplayName"),
            )?)?
            .iter()
            .map(|row| choice(row, "LogicalName"))
            .collect::<Vec<Choice>>()
        }
        _ => {
            let value_column = if source.key == "entity-types" {
                "EntitySetName"
            } else {
                "LogicalName"
            };
            rows(&get(
                context,
                "EntityDefinitions?$select=LogicalName,EntitySetName,DisplayName",
            )?)?
            .iter()
            .filter(|row| {
                row.get(value_column)
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty())
            })
            .map(|row| choice(row, value_column))
            .collect()
        }
    };
    choices.sort_by_key(|choice| choice.label.to_lowercase());
    Ok(choices)
}

/// The columns whose type is File or Image ("Use file column data", "Use image column data":
/// `FileAttributeMetadata`, `ImageAttributeMetadata`), read from all columns because a filter
/// on a derived type's property would need one request per type.
fn file_columns(context: &Context, input: &Input) -> Result<Vec<Choice>> {
    let name = input.text(TABLE.key).unwrap_or_default();
    let logical = match context.metadata.table(&context.client, name)? {
        Some(table) => table.logical_name.clone(),
        None => name.to_string(),
    };
    let path = entity_path(&TABLE, &logical)?;
    Ok(rows(&get(
        context,
        &format!("{path}/Attributes?$select=LogicalName,DisplayName,AttributeTypeName"),
    )?)?
    .iter()
    .filter(|row| crate::files::read_column(row).is_some())
    .map(|row| choice(row, "LogicalName"))
    .collect())
}

fn choice(row: &Value, value_column: &str) -> Choice {
    let value = row
        .get(value_column)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let label = row
        .get("DisplayName")
        .and_then(label)
        .map(|label| format!("{label} ({value})"))
        .unwrap_or_else(|| value.clone());
    Choice { label, value }
}
