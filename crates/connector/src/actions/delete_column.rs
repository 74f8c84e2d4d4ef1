//! Delete Column: removes a column and its data from a table
//! (`DELETE EntityDefinitions(LogicalName='t')/Attributes(LogicalName='c')`, the Web API form of
//! `DeleteAttribute`: "Use the Web API with table definitions",
//! learn.microsoft.com/power-apps/developer/data-platform/webapi/use-web-api-metadata, where
//! definitions are deleted with DELETE on their URL as "Create and update table relationships
//! using the Web API" shows for relationships).
//!
//! Exactly-once: a retry after a lost answer, or a rerun, finds the column gone (404) and answers
//! `alreadyDeleted`, once the table itself is known to exist.

use dataverse::retry::RetryPolicy;
use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::client::Request;
use crate::context::Context;
use crate::entity_metadata::{attribute_path, entity_path};
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;

pub const ACTION: ActionDef = ActionDef {
    key: "delete-column",
    label: "Delete Column",
    description: "Delete a column, and the data it holds, from a Microsoft Dynamics 365 CRM table.",
    group: Some("CRM"),
    inputs: &[
        DEFINITION_TABLE,
        COLUMN_NAME,
        SOLUTION_UNIQUE_NAME,
        CONNECTION,
    ],
    example_output: Some(r#"{"table":"account","column":"new_balance","alreadyDeleted":false}"#),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let table = input
        .text(DEFINITION_TABLE.key)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let column = input
        .text(COLUMN_NAME.key)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let path = format!(
        "{}/{}",
        entity_path(&DEFINITION_TABLE, &table)?,
        attribute_path(&COLUMN_NAME, &column)?
    );
    let mut request = Request::new("DELETE", context.client.api_url(&path));
    if let Some(solution) = input.text(SOLUTION_UNIQUE_NAME.key) {
        request = request.header("MSCRM.SolutionUniqueName", solution);
    }
    // A delete repeated after a lost answer meets nothing (404), handled below.
    let response = context.client.send(request, RetryPolicy::RECORDS)?;
    if response.status == 404 {
        if context.metadata.table(&context.client, &table)?.is_none() {
            return Err(invalid_input(
                &DEFINITION_TABLE,
                format!("table {table:?} not found"),
            ));
        }
        return Ok(json!({"table": table, "column": column, "alreadyDeleted": true}));
    }
    response.into_success()?;
    Ok(json!({"table": table, "column": column, "alreadyDeleted": false}))
}
