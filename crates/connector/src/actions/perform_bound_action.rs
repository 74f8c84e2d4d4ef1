//! Perform a Bound Action: a Dataverse message or custom API bound to a row (QualifyLead on a
//! lead, a custom API bound to a table), with its parameters.
//!
//! Source: <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/use-web-api-actions#bound-actions>
//! (`POST [Organization URI]/api/data/v9.2/<entity set>(<key>)/Microsoft.Dynamics.CRM.<Name>`).

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
use crate::operations::{self, Family, PARAMETERS};
use crate::records::{explain, impersonate, record_path};
use crate::switches::{self, BYPASS_CUSTOM_LOGIC, SUPPRESS_FLOW_TRIGGERS};

const ACTION_NAME: InputDef = InputDef::new("actionName", "Action Name", Kind::Text)
    .required()
    .comments("The bound action or custom API to run on the row, by its name in the environment's $metadata (QualifyLead on leads); its parameters become inputs")
    .example("QualifyLead")
    .data_source("bound-actions")
    .format(Format::Identifier);

pub const ACTION: ActionDef = ActionDef {
    key: "perform-bound-action",
    label: "Perform a Bound Action",
    description: "Run a Microsoft Dynamics 365 CRM action or custom API on a row, with its parameters.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        ENTITY_ID,
        ACTION_NAME,
        PARAMETERS,
        CONNECTION,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
        BYPASS_CUSTOM_LOGIC,
        SUPPRESS_FLOW_TRIGGERS,
    ],
    example_output: Some(
        r##"{"value":[{"@odata.type":"#Microsoft.Dynamics.CRM.account","accountid":"00000000-0000-0000-0000-000000000002"}]}"##,
    ),
    run: Run::Value(run),
    dynamic_inputs: Some(dynamic_inputs),
};

fn dynamic_inputs(context: &Context, input: &Input) -> Result<Vec<wit::InputDefinition>> {
    let Some(name) = input.text(ACTION_NAME.key) else {
        return Ok(Vec::new());
    };
    let document = operations::document(context)?;
    let operation = operations::find(&document, Family::BoundAction, &ACTION_NAME, name, true)?;
    Ok(operations::parameter_inputs(&document, operation))
}

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let (path, _) = record_path(entity_set, input)?;
    let name = input.text(ACTION_NAME.key).unwrap_or_default();
    impersonate(Request::new("POST", String::new()), input)?;
    let document = operations::document(context)?;
    let operation = operations::find(&document, Family::BoundAction, &ACTION_NAME, name, true)?;
    let arguments = operations::arguments(&document, operation, input)?;
    if let Some(bound_to) = operation.bound_table() {
        let table = context.metadata.table(&context.client, entity_set)?;
        if let Some(table) = table.filter(|table| table.logical_name != bound_to) {
            return Err(invalid_input(
                &ENTITY_TYPE,
                format!(
                    "{} runs on {bound_to} rows, not on {} ({entity_set})",
                    operation.name, table.logical_name
                ),
            ));
        }
    }
    let mut request = Request::new(
        "POST",
        context
            .client
            .api_url(&operations::action_path(operation, Some(&path))),
    )
    .header("Content-Type", "application/json");
    request.body = Value::Object(arguments).to_string().into_bytes();
    let request = switches::apply(impersonate(request, input)?, input);
    let response = context
        .client
        .send(request, RetryPolicy::RECORDS.not_idempotent())
        .and_then(|response| response.into_success())
        .map_err(|failure| {
            explain(
                context,
                entity_set,
                operations::lost_action(operation, failure),
            )
        })?;
    // A 2xx whose body cannot be read is an action that ran with its answer lost.
    operations::output(&response).map_err(|failure| operations::lost_action(operation, failure))
}
