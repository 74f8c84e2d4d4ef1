//! Upload File or Image: puts a file's bytes into a row's file or image column, in one request or
//! in 4 MB chunks ("Use file column data",
//! learn.microsoft.com/power-apps/developer/data-platform/file-column-data, "Upload Files"; image
//! columns take the same requests: "Use image column data", "Upload images").

use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::error::{Result, invalid_input};
use crate::files::{self, ColumnKind};
use crate::input::Input;
use crate::inputs::*;
use crate::records::{explain, record_path};

pub const ACTION: ActionDef = ActionDef {
    key: "upload-file",
    label: "Upload File or Image",
    description: "Upload a file or image to a file or image column of a Microsoft Dynamics 365 CRM record, replacing what the column held.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        ENTITY_ID,
        FILE_COLUMN,
        FILE_NAME,
        FILE_CONTENT,
        CONNECTION,
    ],
    example_output: Some(
        r#"{"entityId":"00000000-0000-0000-0000-000000000002","column":"sample_filecolumn","kind":"file","fileName":"contract.pdf","size":25870370,"chunks":7}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let (path, key) = record_path(entity_set, input)?;
    let column_name = input.text(FILE_COLUMN.key).unwrap_or_default();
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
    let column = files::column(context, entity_set, &FILE_COLUMN, column_name)?;
    files::check_image_name(&FILE_NAME, &column, file_name)?;
    files::check_size(&FILE_CONTENT, &column, bytes.len())?;
    let url = files::column_url(context, &path, column_name);
    let uploaded = files::upload(context, &url, file_name, bytes)
        .map_err(|failure| explain(context, entity_set, failure))?;
    Ok(json!({
        "entityId": key.display(),
        "column": column_name.to_ascii_lowercase(),
        "kind": match column.kind { ColumnKind::File => "file", ColumnKind::Image => "image" },
        "fileName": file_name,
        "size": bytes.len(),
        "chunks": uploaded.chunks,
    }))
}
