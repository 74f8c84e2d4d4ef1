//! Attach a Note: a note (annotation) with a file, bound to a row. The file is the note's
//! `documentbody` in base64 with its `filename` and `mimetype`, and the row is bound through
//! `objectid_<table>@odata.bind` ("Use file data with Attachment and Note records",
//! learn.microsoft.com/power-apps/developer/data-platform/attachment-annotation-files; the
//! columns: learn.microsoft.com/power-apps/developer/data-platform/reference/entities/annotation).
//!
//! Exactly-once as Create Entity: the note's ID is derived from the idempotency key and the note
//! itself, and it is created with `PATCH annotations(id)` + `If-None-Match: *`, so a retry after a
//! lost answer, or a rerun with the same key, finds the note instead of making a second one.

use dataverse::keys::RecordKey;
use dataverse::retry::RetryPolicy;
use serde_json::{Map, Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::creates::{self, IDEMPOTENCY_KEY, RunKey};
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;
use crate::records::{record_path, unknown_set_error, write_body};

pub const ACTION: ActionDef = ActionDef {
    key: "attach-note",
    label: "Attach a Note",
    description: "Attach a note with a file to a Microsoft Dynamics 365 CRM record.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        ENTITY_ID,
        FILE_NAME,
        FILE_CONTENT,
        MIME_TYPE,
        NOTE_SUBJECT,
        NOTE_TEXT,
        CONNECTION,
        IDEMPOTENCY_KEY,
    ],
    example_output: Some(r#"{"id":"00000000-0000-0000-0000-000000000002","size":5}"#),
    run: Run::Value(run),
    dynamic_inputs: None,
};

const NOTES: &str = "annotations";

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let (path, _key): (String, RecordKey) = record_path(entity_set, input)?;
    let file_name = input.text(FILE_NAME.key).unwrap_or_default().trim();
    if file_name.contains(['/', '\\']) {
        return Err(invalid_input(
            &FILE_NAME,
            "is a path; give the file's name only, such as contract.pdf",
        ));
    }
    let bytes = input.bytes(FILE_CONTENT.key).unwrap_or_default();
    if bytes.is_empty() {
        return Err(invalid_input(&FILE_CONTENT, "is an empty file"));
    }
    let mime_type = match input.text(MIME_TYPE.key) {
        Some(given) if given.contains('/') => given.trim().to_string(),
        Some(given) => {
            return Err(invalid_input(
                &MIME_TYPE,
                format!("{given:?} is not a MIME type such as application/pdf"),
            ));
        }
        None => mime_from_name(file_name).to_string(),
    };
    let table = context
        .metadata
        .table(&context.client, entity_set)?
        .ok_or_else(|| unknown_set_error(context, entity_set))?;
    let mut body = Map::new();
    body.insert(
        format!("objectid_{}@odata.bind", table.logical_name),
        Value::String(format!("/{path}")),
    );
    if let Some(subject) = input.text(NOTE_SUBJECT.key) {
        body.insert("subject".into(), json!(subject));
    }
    if let Some(text) = input.text(NOTE_TEXT.key) {
        body.insert("notetext".into(), json!(text));
    }
    body.insert("filename".into(), json!(file_name));
    body.insert("mimetype".into(), json!(mime_type));
    body.insert(
        "documentbody".into(),
        json!(dataverse::encoding::base64_encode(bytes)),
    );
    if !creates::named_creates(context) {
        let request = crate::client::Request::new("POST", context.client.api_url(NOTES));
        let mut output = write_body(
            context,
            NOTES,
            request,
            input,
            body,
            RetryPolicy::RECORDS.not_idempotent(),
        )?;
        output["size"] = json!(bytes.len());
        return Ok(output);
    }
    let run_key = RunKey::of(input);
    let write = creates::fingerprint("attach-note", &body);
    let id = run_key.row_id(NOTES, 0, &write);
    let request = creates::request(context, NOTES, &id);
    match write_body(context, NOTES, request, input, body, RetryPolicy::RECORDS) {
        Ok(mut output) => {
            output["size"] = json!(bytes.len());
            Ok(output)
        }
        // 412: the note with this derived ID exists: this call's lost attempt or an earlier run
        // of the same input and key made it.
        Err(failure) if failure.http_status == Some(412) => {
            match creates::existing(context, input, NOTES, &id)? {
                Some(_) => Ok(json!({"id": id, "size": bytes.len(), "alreadyCreated": true})),
                None => Err(failure),
            }
        }
        Err(mut failure) if is_lost(&failure) => {
            failure.hint = Some(run_key.resume_hint());
            Err(failure)
        }
        Err(failure) => Err(failure),
    }
}

/// A failure after which the note may have been made: no answer, or no usable one.
fn is_lost(failure: &crate::bindings::dynamics::connector::types::ConnectorError) -> bool {
    use crate::bindings::dynamics::connector::types::ErrorCode;
    failure.http_status.is_none()
        && matches!(
            failure.code,
            ErrorCode::Unavailable | ErrorCode::Timeout | ErrorCode::MalformedResponse
        )
}

/// The MIME type of the common extensions; others are sent as bytes without a known type.
fn mime_from_name(file_name: &str) -> &'static str {
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "htm" | "html" => "text/html",
        "json" => "application/json",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "zip" => "application/zip",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mime_type_comes_from_the_extension_in_any_case() {
        assert_eq!(mime_from_name("Contract.PDF"), "application/pdf");
        assert_eq!(mime_from_name("photo.jpeg"), "image/jpeg");
        assert_eq!(mime_from_name("noextension"), "application/octet-stream");
    }
}
