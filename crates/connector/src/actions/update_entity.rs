//! Update Entity: changes an existing record and never creates one (`If-Match`).

use dataverse::retry::RetryPolicy;
use serde_json::Value;

use crate::actions::{ActionDef, Run};
use crate::client::Request;
use crate::context::Context;
use crate::error::Result;
use crate::input::Input;
use crate::inputs::*;
use crate::records::{record_path, write};
use crate::switches::{BYPASS_CUSTOM_LOGIC, DETECT_DUPLICATES, SUPPRESS_FLOW_TRIGGERS};

pub const ACTION: ActionDef = ActionDef {
    key: "update-entity",
    label: "Update Entity",
    description: "Update a Microsoft Dynamics 365 CRM entity record.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        ENTITY_ID,
        FIELD_VALUES,
        DYNAMIC_VALUES,
        CONNECTION,
        ETAG,
        RETURN_REPRESENTATION,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
        BYPASS_CUSTOM_LOGIC,
        SUPPRESS_FLOW_TRIGGERS,
        DETECT_DUPLICATES,
    ],
    example_output: Some(r#"{"id":"00000000-0000-0000-0000-000000000002"}"#),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let (path, _) = record_path(entity_set, input)?;
    let request = Request::new("PATCH", context.client.api_url(&path))
        .header("If-Match", input.text(ETAG.key).unwrap_or("*"));
    write(context, entity_set, request, input, RetryPolicy::RECORDS)
}
