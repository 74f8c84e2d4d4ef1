//! Call a Function: a Dataverse function or custom API function, unbound (RetrieveVersion,
//! RetrieveTotalRecordCount) or bound to a row (RetrievePrincipalAccess on a systemuser).
//!
//! Source: <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/use-web-api-functions>
//! (GET with the parameters as parameter aliases, `Name(P=@p1)?@p1=<literal>`; bound functions
//! under the row with the `Microsoft.Dynamics.CRM.` namespace). Functions change nothing, so a
//! lost answer is asked again.

use dataverse::retry::RetryPolicy;
use serde_json::Value;

use crate::actions::{ActionDef, Run};
use crate::bindings::dynamics::connector::types as wit;
use crate::client::Request;
use crate::context::Context;
use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;
use crate::operations::{self, BOUND_ENTITY_ID, BOUND_ENTITY_TYPE, Family, PARAMETERS};
use crate::records::{explain, impersonate, record_path};

const FUNCTION_NAME: InputDef = InputDef::new("functionName", "Function Name", Kind::Text)
    .required()
    .comments("The function to call, by its name in the environment's $metadata (RetrieveVersion, RetrieveTotalRecordCount); its parameters become inputs")
    .example("RetrieveVersion")
    .data_source("functions")
    .format(Format::Identifier);

pub const ACTION: ActionDef = ActionDef {
    key: "call-function",
    label: "Call a Function",
    description: "Call a Microsoft Dynamics 365 CRM function, unbound or bound to a row, with its parameters.",
    group: Some("CRM"),
    inputs: &[
        FUNCTION_NAME,
        BOUND_ENTITY_TYPE,
        BOUND_ENTITY_ID,
        PARAMETERS,
        CONNECTION,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
    ],
    example_output: Some(r#"{"Version":"9.2.24044.00000"}"#),
    run: Run::Value(run),
    dynamic_inputs: Some(dynamic_inputs),
};

/// The row the function is bound to: `Some(path)` with both inputs, `None` with neither.
fn bound_row(input: &Input) -> Result<Option<(String, &str)>> {
    match (
        input.text(BOUND_ENTITY_TYPE.key),
        input.text(BOUND_ENTITY_ID.key),
    ) {
        (Some(entity_set), Some(_)) => {
            let (path, _) = record_path(entity_set, input)?;
            Ok(Some((path, entity_set)))
        }
        (None, None) => Ok(None),
        (Some(_), None) => Err(invalid_input(
            &BOUND_ENTITY_ID,
            "is required with Entity Type: a bound function runs on one row (leave both empty for an unbound function)",
        )),
        (None, Some(_)) => Err(invalid_input(
            &BOUND_ENTITY_TYPE,
            "is required with Entity ID: name the row's entity set (leave both empty for an unbound function)",
        )),
    }
}

fn dynamic_inputs(context: &Context, input: &Input) -> Result<Vec<wit::InputDefinition>> {
    let Some(name) = input.text(FUNCTION_NAME.key) else {
        return Ok(Vec::new());
    };
    let document = operations::document(context)?;
    // While the form is filled in, the row may not be chosen yet: the function decides.
    let bound = document
        .find(name, dataverse::csdl::OperationKind::Function, true)
        .is_some();
    let operation = operations::find(&document, Family::Function, &FUNCTION_NAME, name, bound)?;
    Ok(operations::parameter_inputs(&document, operation))
}

fn run(context: &Context, input: &Input) -> Result<Value> {
    let row = bound_row(input)?;
    let name = input.text(FUNCTION_NAME.key).unwrap_or_default();
    impersonate(Request::new("GET", String::new()), input)?;
    let document = operations::document(context)?;
    let operation = operations::find(
        &document,
        Family::Function,
        &FUNCTION_NAME,
        name,
        row.is_some(),
    )?;
    let arguments = operations::arguments(&document, operation, input)?;
    let path = operations::function_path(
        &document,
        operation,
        &arguments,
        row.as_ref().map(|(path, _)| path.as_str()),
    );
    let request = impersonate(Request::new("GET", context.client.api_url(&path)), input)?;
    let entity_set = row.as_ref().map(|(_, set)| *set).unwrap_or_default();
    let response = context
        .client
        .send(request, RetryPolicy::RECORDS)?
        .into_success()
        .map_err(|failure| explain(context, entity_set, failure))?;
    operations::output(&response)
}
