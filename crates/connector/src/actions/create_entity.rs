//! Create Entity: Field Value and Dynamic Values merged into one new record.

use dataverse::retry::RetryPolicy;
use serde_json::Value;

use crate::actions::{ActionDef, Run};
use crate::client::Request;
use crate::context::Context;
use crate::creates::{self, IDEMPOTENCY_KEY, RunKey};
use crate::error::Result;
use crate::input::Input;
use crate::inputs::*;
use crate::records::{record_body, write, write_body};
use crate::switches::{BYPASS_CUSTOM_LOGIC, DETECT_DUPLICATES, SUPPRESS_FLOW_TRIGGERS};

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
        BYPASS_CUSTOM_LOGIC,
        SUPPRESS_FLOW_TRIGGERS,
        DETECT_DUPLICATES,
        IDEMPOTENCY_KEY,
    ],
    example_output: Some(r#"{"id":"00000000-0000-0000-0000-000000000002"}"#),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    if creates::named_creates(context) {
        return create_named(context, entity_set, input);
    }
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

/// The row gets its ID from the run key (or the caller's data), so a retry after a lost answer,
/// and a rerun with the same idempotency key, meet the row instead of making another.
fn create_named(context: &Context, entity_set: &str, input: &Input) -> Result<Value> {
    let run_key = RunKey::of(input);
    let mut body = record_body(context, entity_set, input)?;
    let write = creates::fingerprint("create-entity", &body);
    let row = creates::new_row(context, entity_set, &body, &run_key, 0, &write)?;
    if let Some(column) = &row.given_in {
        body.remove(column);
    }
    // What was sent, kept only where a 412 must be compared with the stored row.
    let sent = row.given_in.is_some().then(|| body.clone());
    let request = creates::request(context, entity_set, &row.id);
    match write_body(
        context,
        entity_set,
        request,
        input,
        body,
        RetryPolicy::RECORDS,
    ) {
        Ok(output) => Ok(output),
        // 412: a row with this ID exists. Ours when the ID came from the run key and this very
        // write (this run's lost attempt, or an earlier run of the same input and key). The
        // caller's own ID may be taken by someone else: that is reported as already made only
        // when the stored row holds exactly what was sent, else it stays the service's error.
        Err(failure) if failure.http_status == Some(412) => {
            match creates::existing(context, input, entity_set, &row.id)? {
                Some(record)
                    if sent
                        .as_ref()
                        .is_none_or(|sent| crate::records::matches_row(&record, sent)) =>
                {
                    let mut output = serde_json::Map::new();
                    output.insert("id".into(), Value::String(row.id));
                    output.insert("alreadyCreated".into(), Value::Bool(true));
                    if input.flag(RETURN_REPRESENTATION.key) {
                        output.insert("record".into(), record);
                    }
                    Ok(Value::Object(output))
                }
                _ => Err(failure),
            }
        }
        Err(mut failure) if failure.http_status.is_none() && is_lost(&failure) => {
            failure.message = format!(
                "the create of {entity_set}({}) may or may not have been applied: {}",
                row.id, failure.message
            );
            failure.hint = Some(run_key.resume_hint());
            Err(failure)
        }
        Err(failure) => Err(failure),
    }
}

/// A failure after which the service may have applied the request: no answer, or no usable one.
fn is_lost(failure: &crate::bindings::dynamics::connector::types::ConnectorError) -> bool {
    use crate::bindings::dynamics::connector::types::ErrorCode;
    matches!(
        failure.code,
        ErrorCode::Unavailable | ErrorCode::Timeout | ErrorCode::MalformedResponse
    )
}
