//! Create Entity: Field Value and Dynamic Values merged into one new record.

use dataverse::retry::RetryPolicy;
use serde_json::Value;

use crate::actions::{ActionDef, Context, Run};
use crate::client::Request;
use crate::error::Result;
use crate::input::Input;
use crate::inputs::*;
use crate::records::write;

pub const ACTION: ActionDef = ActionDef {
    key: "create-entity",
    label: "Create Entity",
    description: "Create a new Microsoft Dynamics 365 CRM entity record.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        DYNAMIC_VALUES,
        FIELD_VALUES,
        CONNECTION,
        RETURN_REPRESENTATION,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
    ],
    example_output: Some(r#"{"id":"00000000-0000-0000-0000-000000000002"}"#),
    run: Run::Value(run),
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let request = Request::new("POST", context.client.api_url(entity_set));
    // A create whose answer was lost may have landed; only answers proving it did not (429,
    // 503) are retried, so a retry never makes a second record.
    write(
        context,
        entity_set,
        request,
        input,
        RetryPolicy::RECORDS.not_idempotent(),
    )
}
