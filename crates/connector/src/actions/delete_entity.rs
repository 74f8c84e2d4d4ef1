//! Delete Entity: one record by GUID or alternate key, optionally only at a known ETag.

use dataverse::retry::RetryPolicy;
use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::bindings::dynamics::connector::types::ErrorCode;
use crate::client::Request;
use crate::context::Context;
use crate::error::Result;
use crate::input::Input;
use crate::inputs::*;
use crate::records::{explain, impersonate, record_path};
use crate::switches::{BYPASS_CUSTOM_LOGIC, SUPPRESS_FLOW_TRIGGERS};

pub const ACTION: ActionDef = ActionDef {
    key: "delete-entity",
    label: "Delete Entity",
    description: "Delete the specified Microsoft Dynamics 365 CRM entity record.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        ENTITY_ID,
        CONNECTION,
        ETAG,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
        BYPASS_CUSTOM_LOGIC,
        SUPPRESS_FLOW_TRIGGERS,
    ],
    example_output: Some(r#"{"id":"00000000-0000-0000-0000-000000000002","deleted":true}"#),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let (path, key) = record_path(entity_set, input)?;
    let mut request = Request::new("DELETE", context.client.api_url(&path));
    if let Some(etag) = input.text(ETAG.key) {
        request = request.header("If-Match", etag);
    }
    let request = impersonate(request, input)?;
    let request = crate::switches::apply(request, input);
    let response = context.client.send(request, RetryPolicy::RECORDS)?;
    let id = key
        .id()
        .map(str::to_string)
        .unwrap_or_else(|| key.display());
    // A retried delete whose first attempt landed finds nothing the second time: that is success.
    let already_gone =
        response.status == 404 && response.attempts > 1 && input.text(ETAG.key).is_none();
    if already_gone {
        return Ok(json!({ "id": id, "deleted": true }));
    }
    match response.into_success() {
        Ok(_) => Ok(json!({ "id": id, "deleted": true })),
        Err(failure) if failure.code == ErrorCode::NotFound => {
            Err(explain(context, entity_set, failure))
        }
        Err(failure) => Err(failure),
    }
}
