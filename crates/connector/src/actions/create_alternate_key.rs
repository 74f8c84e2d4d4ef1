//! Create Alternate Key: a key on one or more columns of a table ("Work with alternate keys",
//! learn.microsoft.com/power-apps/developer/data-platform/define-alternate-keys-entity): an
//! `EntityKeyMetadata` (`SchemaName`, `DisplayName`, `KeyAttributes`) posted to the table's `Keys`
//! collection, `POST EntityDefinitions(LogicalName='t')/Keys`, the Web API form of
//! `CreateEntityKey`. The service then builds the key's index in the background
//! (`EntityKeyIndexStatus`: Pending, In Progress, Active, Failed).

use serde_json::{Map, Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::entity_metadata::entity_path;
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;
use crate::metadata_writes::{self, Create, label, language, same_text, schema_name};

pub const ACTION: ActionDef = ActionDef {
    key: "create-alternate-key",
    label: "Create Alternate Key",
    description: "Create an alternate key on columns of a Microsoft Dynamics 365 CRM table, so rows can be found and upserted by those values.",
    group: Some("CRM"),
    inputs: &[
        DEFINITION_TABLE,
        SCHEMA_NAME,
        DISPLAY_NAME,
        KEY_COLUMNS,
        LANGUAGE_CODE,
        PUBLISHER_PREFIX,
        SOLUTION_UNIQUE_NAME,
        CONNECTION,
    ],
    example_output: Some(
        r#"{"metadataId":"00000000-0000-0000-0000-000000000003","logicalName":"new_accountnumberkey","keyColumns":["accountnumber"],"alreadyCreated":false}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

/// "16 columns per key" ("Work with alternate keys",
/// learn.microsoft.com/power-apps/developer/data-platform/define-alternate-keys-entity, "Valid key
/// size"; the same page lists the column types a key may use and the limit of ten keys a table).
const MAX_KEY_COLUMNS: usize = 16;

fn run(context: &Context, input: &Input) -> Result<Value> {
    let table = input
        .text(DEFINITION_TABLE.key)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let schema = schema_name(
        input,
        &SCHEMA_NAME,
        input.text(SCHEMA_NAME.key).unwrap_or_default(),
    )?;
    let columns: Vec<String> = input
        .list(KEY_COLUMNS.key)
        .iter()
        .map(|column| column.to_ascii_lowercase())
        .collect();
    if columns.is_empty() || columns.len() > MAX_KEY_COLUMNS {
        return Err(invalid_input(
            &KEY_COLUMNS,
            format!(
                "needs 1 to {MAX_KEY_COLUMNS} columns, got {}",
                columns.len()
            ),
        ));
    }
    if let Some(twice) = columns
        .iter()
        .enumerate()
        .find_map(|(index, column)| columns[..index].contains(column).then_some(column))
    {
        return Err(invalid_input(
            &KEY_COLUMNS,
            format!("names {twice:?} twice"),
        ));
    }
    let table_path = entity_path(&DEFINITION_TABLE, &table)?;
    let logical = schema.to_ascii_lowercase();
    let mut body = Map::new();
    body.insert("SchemaName".into(), json!(schema));
    body.insert(
        "DisplayName".into(),
        label(
            input.text(DISPLAY_NAME.key).unwrap_or_default(),
            language(input),
        ),
    );
    body.insert("KeyAttributes".into(), json!(columns));
    let same = |found: &Value| {
        let mut found: Vec<String> = found
            .get("KeyAttributes")
            .and_then(Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    .collect()
            })
            .unwrap_or_default();
        let mut wanted = columns.clone();
        found.sort();
        wanted.sort();
        found == wanted
    };
    // The table's keys, and among them the one of this name.
    let pick = |keys: Value| {
        keys.get("value")?
            .as_array()?
            .iter()
            .find(|key| same_text(key, "LogicalName", &logical))
            .cloned()
    };
    let mut answer = metadata_writes::create(
        context,
        input,
        Create {
            collection: format!("{table_path}/Keys"),
            body,
            read_back: format!("{table_path}/Keys"),
            pick: Some(&pick),
            same: &same,
            what: format!("key {logical:?} of {table:?}"),
        },
    )?;
    answer["logicalName"] = json!(logical);
    answer["keyColumns"] = json!(columns);
    Ok(answer)
}
