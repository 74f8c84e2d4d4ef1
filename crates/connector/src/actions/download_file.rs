//! Download File or Image: a row's file or image column as base64, whole or a byte range, read in
//! 4 MB ranges ("Use file column data",
//! learn.microsoft.com/power-apps/developer/data-platform/file-column-data, "Download the file in
//! chunks using Web API"; images: "Use image column data", "Download images", where `?size=full`
//! asks for the full-size image instead of the thumbnail).

use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::error::Result;
use crate::files::{self, ColumnKind};
use crate::input::Input;
use crate::inputs::*;
use crate::records::{explain, record_path};

pub const ACTION: ActionDef = ActionDef {
    key: "download-file",
    label: "Download File or Image",
    description: "Download the file or image stored in a file or image column of a Microsoft Dynamics 365 CRM record, as base64.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        ENTITY_ID,
        FILE_COLUMN,
        IMAGE_SIZE,
        FILE_OFFSET,
        FILE_LENGTH,
        CONNECTION,
    ],
    example_output: Some(
        r#"{"fileName":"contract.pdf","mimeType":"application/pdf","size":5,"offset":0,"length":5,"content":"aGVsbG8="}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let (path, _) = record_path(entity_set, input)?;
    let column_name = input.text(FILE_COLUMN.key).unwrap_or_default();
    let offset = input.number(FILE_OFFSET.key).unwrap_or(0.0) as u64;
    let length = input.number(FILE_LENGTH.key).map(|length| length as u64);
    let column = files::column(context, entity_set, &FILE_COLUMN, column_name)?;
    let mut url = format!("{}/$value", files::column_url(context, &path, column_name));
    // Thumbnails are what the service answers by default; the full-size image must be asked for,
    // and exists only where the column keeps one: otherwise the thumbnail is the image, and the
    // output's imageSize says so.
    let image_size = match column.kind {
        ColumnKind::Image if input.text(IMAGE_SIZE.key) == Some("full") && column.full_image => {
            url.push_str("?size=full");
            Some("full")
        }
        ColumnKind::Image => Some("thumbnail"),
        ColumnKind::File => None,
    };
    let got = files::download(context, &url, offset, length)
        .map_err(|failure| explain(context, entity_set, failure))?;
    Ok(json!({
        "fileName": got.file_name,
        "mimeType": got.mime_type,
        "size": got.size,
        "offset": offset,
        "length": got.bytes.len(),
        "content": dataverse::encoding::base64_encode(&got.bytes),
        "imageSize": image_size,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_host::{Script, Signed};

    fn script_for(kind: &str) -> Script {
        script_with(kind, "")
    }

    /// `extra` adds members to the column's definition.
    fn script_with(kind: &str, extra: &str) -> Script {
        Script::new()
            .json(
                200,
                r#"{"value":[{"LogicalName":"account","EntitySetName":"accounts","PrimaryIdAttribute":"accountid"}]}"#,
            )
            .json(
                200,
                &format!(r##"{{"@odata.type":"#Microsoft.Dynamics.CRM.{kind}","MaxSizeInKB":10240{extra}}}"##),
            )
            .answer_with(
                206,
                &[("x-ms-file-size", "3"), ("x-ms-file-name", "a.png"), ("mimetype", "image/png")],
                "abc",
            )
    }

    fn download(kind: &str, input: &str) -> (Value, String) {
        let signed = Signed::new();
        let script = script_for(kind);
        let context = signed.context(&script);
        let input = Input::parse(ACTION.inputs, input).unwrap();
        let answer = run(&context, &input).unwrap();
        (answer, script.sent()[2].url.clone())
    }

    const ROW: &str =
        r#""entityType": "accounts", "entityId": "00000000-0000-0000-0000-000000000001""#;

    #[test]
    fn a_column_without_full_size_images_gives_its_thumbnail_and_says_so() {
        let signed = Signed::new();
        let script = script_with("ImageAttributeMetadata", r#","CanStoreFullImage":false"#);
        let context = signed.context(&script);
        let input = Input::parse(
            ACTION.inputs,
            &format!(r#"{{{ROW}, "column": "entityimage"}}"#),
        )
        .unwrap();
        let answer = run(&context, &input).unwrap();
        assert!(
            script.sent()[2].url.ends_with("/entityimage/$value"),
            "no ?size=full"
        );
        assert_eq!(answer["imageSize"], "thumbnail");
        assert_eq!(answer["content"], "YWJj");
    }

    #[test]
    fn an_image_is_asked_for_full_size_by_default_and_as_the_thumbnail_on_request() {
        let (answer, url) = download(
            "ImageAttributeMetadata",
            &format!(r#"{{{ROW}, "column": "entityimage"}}"#),
        );
        assert!(url.ends_with("/entityimage/$value?size=full"), "{url}");
        assert_eq!(answer["content"], "YWJj");
        assert_eq!(answer["mimeType"], "image/png");
        let (_, url) = download(
            "ImageAttributeMetadata",
            &format!(r#"{{{ROW}, "column": "entityimage", "imageSize": "thumbnail"}}"#),
        );
        assert!(url.ends_with("/entityimage/$value"), "{url}");
        // A file column takes no size parameter.
        let (_, url) = download(
            "FileAttributeMetadata",
            &format!(r#"{{{ROW}, "column": "new_contract"}}"#),
        );
        assert!(url.ends_with("/new_contract/$value"), "{url}");
    }
}
