//! Upsert Entity: create or update by GUID or alternate key, or limit it to one of the two.

use dataverse::retry::RetryPolicy;
use serde_json::Value;

use crate::actions::{ActionDef, Run};
use crate::client::Request;
use crate::context::Context;
use crate::definition::{InputDef, Kind};
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;
use crate::records::{record_path, write};
use crate::switches::{BYPASS_CUSTOM_LOGIC, DETECT_DUPLICATES, SUPPRESS_FLOW_TRIGGERS};

const MODE: InputDef = InputDef::new("upsertMode", "Upsert Mode", Kind::Picklist)
    .default("upsert")
    .comments("upsert creates or updates; createOnly fails if the record exists (If-None-Match: *); updateOnly fails if it does not (If-Match: *)")
    .choices(&[("Create or update", "upsert"), ("Create only", "createOnly"), ("Update only", "updateOnly")]);

pub const ACTION: ActionDef = ActionDef {
    key: "upsert-entity",
    label: "Upsert Entity",
    description: "Upsert a Microsoft Dynamics 365 CRM entity record.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        ENTITY_ID,
        FIELD_VALUES,
        DYNAMIC_VALUES,
        CONNECTION,
        MODE,
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
    let mut request = Request::new("PATCH", context.client.api_url(&path));
    let etag = input.text(ETAG.key);
    request = match (input.text(MODE.key).unwrap_or("upsert"), etag) {
        ("createOnly", Some(_)) => {
            return Err(invalid_input(
                &ETAG,
                "cannot be used with createOnly: a new record has no ETag",
            ));
        }
        ("createOnly", None) => request.header("If-None-Match", "*"),
        ("updateOnly", etag) => request.header("If-Match", etag.unwrap_or("*")),
        (_, Some(etag)) => request.header("If-Match", etag),
        (_, None) => request,
    };
    write(context, entity_set, request, input, RetryPolicy::RECORDS)
}
