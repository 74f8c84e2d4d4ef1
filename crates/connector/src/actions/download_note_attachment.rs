//! Download Note Attachment: the file of a note (annotation): its `documentbody` (base64), with
//! `filename`, `mimetype` and `filesize` ("Use file data with Attachment and Note records",
//! learn.microsoft.com/power-apps/developer/data-platform/attachment-annotation-files).

use dataverse::retry::RetryPolicy;
use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::bindings::dynamics::connector::types::ErrorCode;
use crate::client::Request;
use crate::context::Context;
use crate::error::{ConnectorErrorExt, Result, error};
use crate::input::Input;
use crate::inputs::*;

pub const ACTION: ActionDef = ActionDef {
    key: "download-note-attachment",
    label: "Download Note Attachment",
    description: "Download the file attached to a Microsoft Dynamics 365 CRM note, as base64.",
    group: Some("CRM"),
    inputs: &[NOTE_ID, CONNECTION],
    example_output: Some(
        r#"{"id":"00000000-0000-0000-0000-000000000002","fileName":"contract.pdf","mimeType":"application/pdf","size":5,"content":"aGVsbG8="}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let id = input.text(NOTE_ID.key).unwrap_or_default();
    let url = context.client.api_url(&format!(
        "annotations({id})?$select=filename,mimetype,filesize,documentbody"
    ));
    let note = context
        .client
        .send(Request::new("GET", url), RetryPolicy::RECORDS)?
        .into_success()
        .map_err(|failure| failure.with_field(NOTE_ID.key))?
        .json()?;
    let Some(content) = note.get("documentbody").and_then(Value::as_str) else {
        return Err(
            error(ErrorCode::NotFound, format!("note {id} has no attachment"))
                .with_field(NOTE_ID.key),
        );
    };
    let size = note
        .get("filesize")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| decoded_len(content));
    Ok(json!({
        "id": id,
        "fileName": note.get("filename"),
        "mimeType": note.get("mimetype"),
        "size": size,
        "content": content,
    }))
}

/// The byte count of base64 text without decoding it.
fn decoded_len(base64: &str) -> u64 {
    let text = base64.trim();
    let padding = text.bytes().rev().take_while(|b| *b == b'=').count();
    ((text.len() / 4 * 3).saturating_sub(padding)) as u64
}
