//! Get Background Operation: the state, result or error of an action run in the background.
//!
//! Source: <https://learn.microsoft.com/power-apps/developer/data-platform/background-operations#poll-the-background-operations-table>
//! (`GET [Organization URI]/api/data/v9.2/backgroundoperations(<id>)?$select=name,
//! backgroundoperationstatecode,backgroundoperationstatuscode,outputparameters,errorcode,errormessage`).

use serde_json::Value;

use crate::actions::{ActionDef, Run};
use crate::background::{self, BACKGROUND_OPERATION_ID};
use crate::context::Context;
use crate::error::Result;
use crate::input::Input;
use crate::inputs::*;

pub const ACTION: ActionDef = ActionDef {
    key: "get-background-operation",
    label: "Get Background Operation",
    description: "Read the state of a Microsoft Dynamics 365 CRM background operation: whether it is done, its output parameters when it succeeded, its error when it failed.",
    group: Some("CRM"),
    inputs: &[
        BACKGROUND_OPERATION_ID,
        CONNECTION,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
    ],
    example_output: Some(
        r#"{"backgroundOperationId":"00000000-0000-0000-0000-000000000002","name":"sample_ExportDataUsingFetchXmlToAnnotation","state":3,"stateLabel":"Completed","status":30,"statusLabel":"Succeeded","done":true,"succeeded":true,"output":{"AnnotationId":"00000000-0000-0000-0000-000000000003"},"error":null}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let id = background::operation_id(input)?;
    let row = background::read(context, input, &id)?;
    background::summary(&id, &row)
}
