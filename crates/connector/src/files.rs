//! File and image columns: which column an upload or download names, its size limit, and moving
//! bytes in 4 MB pieces, as "Use file column data"
//! (learn.microsoft.com/power-apps/developer/data-platform/file-column-data) and "Use image column
//! data" (learn.microsoft.com/power-apps/developer/data-platform/image-column-data) document them.

use dataverse::retry::RetryPolicy;
use serde_json::Value;

use crate::bindings::dynamics::connector::types::ErrorCode;
use crate::client::{Request, Response};
use crate::context::Context;
use crate::definition::InputDef;
use crate::entity_metadata::{attribute_path, entity_path};
use crate::error::{ConnectorErrorExt, Result, error, invalid_input, malformed, with_hint};
use crate::records::unknown_set_error;

/// The chunk size the service recommends (`x-ms-chunk-size: 4194304`), the most one `UploadBlock`
/// holds, and the size of the ranges a download asks for ("Use file column data").
pub const CHUNK: usize = 4 * 1024 * 1024;

/// Image columns hold at most 30 MB whatever their `MaxSizeInKB` ("Use image column data",
/// "Maximum image size").
const MAX_IMAGE_BYTES: u64 = 30 * 1024 * 1024;

/// What the table's metadata says of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    File,
    Image,
}

/// A file or image column of a table.
#[derive(Debug, Clone)]
pub struct FileColumn {
    pub kind: ColumnKind,
    /// The largest file the column takes, from `MaxSizeInKB`.
    pub max_bytes: Option<u64>,
    /// For images, `CanStoreFullImage`: without it the service keeps only the thumbnail and
    /// answers `?size=full` with 204 ("Use image column data", full-size and thumbnail images).
    pub full_image: bool,
}

/// Reads the column's definition and checks it is a file or image column
/// (`EntityDefinitions(LogicalName='t')/Attributes(LogicalName='c')`, whose `@odata.type` is
/// `FileAttributeMetadata` or `ImageAttributeMetadata` with `MaxSizeInKB`: "Check maximum file
/// size").
pub fn column(
    context: &Context,
    entity_set: &str,
    input: &InputDef,
    column: &str,
) -> Result<FileColumn> {
    let table = context
        .metadata
        .table(&context.client, entity_set)?
        .ok_or_else(|| unknown_set_error(context, entity_set))?;
    let path = format!(
        "{}/{}",
        entity_path(input, &table.logical_name)?,
        attribute_path(input, column)?
    );
    let response = context.client.send(
        Request::new("GET", context.client.api_url(&path)),
        RetryPolicy::RECORDS,
    )?;
    if response.status == 404 {
        return Err(invalid_input(
            input,
            format!("table {:?} has no column {column:?}", table.logical_name),
        ));
    }
    let definition = response.into_success()?.json()?;
    read_column(&definition).ok_or_else(|| {
        let kind = definition
            .get("AttributeTypeName")
            .and_then(|name| name.get("Value"))
            .and_then(Value::as_str)
            .or_else(|| definition.get("@odata.type").and_then(Value::as_str))
            .unwrap_or("unknown");
        invalid_input(
            input,
            format!("{column:?} is not a file or image column (its type is {kind})"),
        )
    })
}

/// The kind and limit of a column definition, None when it is neither a file nor an image column.
pub fn read_column(definition: &Value) -> Option<FileColumn> {
    let odata_type = definition
        .get("@odata.type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let type_name = definition
        .get("AttributeTypeName")
        .and_then(|name| name.get("Value"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = if odata_type.ends_with("FileAttributeMetadata") || type_name == "FileType" {
        ColumnKind::File
    } else if odata_type.ends_with("ImageAttributeMetadata") || type_name == "ImageType" {
        ColumnKind::Image
    } else {
        return None;
    };
    let max_kb = definition.get("MaxSizeInKB").and_then(Value::as_u64);
    let mut max_bytes = max_kb.map(|kb| kb.saturating_mul(1024));
    if kind == ColumnKind::Image {
        max_bytes = Some(max_bytes.unwrap_or(MAX_IMAGE_BYTES).min(MAX_IMAGE_BYTES));
    }
    let full_image = kind == ColumnKind::Image
        && definition
            .get("CanStoreFullImage")
            .and_then(Value::as_bool)
            .unwrap_or(true);
    Some(FileColumn {
        kind,
        max_bytes,
        full_image,
    })
}

/// Refuses a file larger than the column takes, before any byte is sent: the service would
/// answer `0x80044a02` "Attachment file size is too big." only after the upload.
pub fn check_size(input: &InputDef, column: &FileColumn, size: usize) -> Result<()> {
    match column.max_bytes {
        Some(max) if size as u64 > max => Err(invalid_input(
            input,
            format!(
                "the file is {size} bytes; the column takes at most {max} bytes ({} KB)",
                max / 1024
            ),
        )),
        _ => Ok(()),
    }
}

/// The image types an image column stores ("Use image column data", "Image file types"):
/// another file is refused by the service with `0x80072553` after the upload, so it is refused here
/// before.
const IMAGE_EXTENSIONS: &[&str] = &["gif", "jpg", "jpeg", "tif", "tiff", "bmp", "png"];

/// Refuses a file an image column cannot store, by its name's extension.
pub fn check_image_name(input: &InputDef, column: &FileColumn, file_name: &str) -> Result<()> {
    if column.kind != ColumnKind::Image {
        return Ok(());
    }
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_default();
    if IMAGE_EXTENSIONS.contains(&extension.as_str()) {
        return Ok(());
    }
    Err(invalid_input(
        input,
        format!(
            "{file_name:?} is not an image an image column stores (.{})",
            IMAGE_EXTENSIONS.join(", .")
        ),
    ))
}

/// How an upload went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uploaded {
    /// Requests that carried bytes.
    pub chunks: usize,
}

/// Uploads `bytes` to `column_url` (`.../set(id)/column`): one `PATCH` when the file fits one
/// chunk and its name fits a header, else in chunks.
///
/// Exactly-once: every request of an upload writes the same bytes to the same column of the same
/// row, so repeating one after a lost answer (or rerunning the whole upload) leaves the column as
/// one upload would; nothing is appended and no row is made. That is why these requests are
/// retried like reads.
pub fn upload(
    context: &Context,
    column_url: &str,
    file_name: &str,
    bytes: &[u8],
) -> Result<Uploaded> {
    // The header cannot carry names outside ASCII ("the file name can also be included as a
    // x-ms-file-name request header, but this will not support file names outside the ASCII
    // character set"); the chunked upload takes the name as a query parameter instead.
    let ascii_name = file_name.is_ascii();
    if bytes.len() <= CHUNK && ascii_name {
        let mut request = Request::new("PATCH", column_url.to_string())
            .header("Content-Type", "application/octet-stream")
            .header("x-ms-file-name", file_name);
        request.body = bytes.to_vec();
        send(context, request)?;
        return Ok(Uploaded { chunks: 1 });
    }
    let start = Request::new(
        "PATCH",
        format!(
            "{column_url}?x-ms-file-name={}",
            dataverse::encoding::percent_encode(file_name)
        ),
    )
    .header("x-ms-transfer-mode", "chunked");
    let answer = send(context, start)?;
    let location = answer
        .header("location")
        .ok_or_else(|| malformed("the chunked upload was not answered with a Location"))?
        .to_string();
    // The session URL gets the bearer token, so it must be the environment's own.
    if !context.client.settings.environment.owns_url(&location) {
        return Err(malformed(
            "the chunked upload's Location points outside the environment; nothing was sent there",
        ));
    }
    let chunk = answer
        .header("x-ms-chunk-size")
        .and_then(|size| size.trim().parse::<usize>().ok())
        .filter(|size| *size > 0)
        .unwrap_or(CHUNK)
        .min(CHUNK);
    let total = bytes.len();
    let mut chunks = 0;
    for (index, piece) in bytes.chunks(chunk).enumerate() {
        let first = index * chunk;
        let last = first + piece.len() - 1;
        let mut request = Request::new("PATCH", location.clone())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("bytes {first}-{last}/{total}"));
        if ascii_name {
            request = request.header("x-ms-file-name", file_name);
        }
        request.body = piece.to_vec();
        send(context, request)?;
        chunks += 1;
    }
    Ok(Uploaded { chunks })
}

fn send(context: &Context, request: Request) -> Result<Response> {
    context
        .client
        .send(request, RetryPolicy::RECORDS)?
        .into_success()
}

/// A downloaded file or part of one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Downloaded {
    pub bytes: Vec<u8>,
    pub file_name: Option<String>,
    pub mime_type: Option<String>,
    /// The whole file's size (`x-ms-file-size`).
    pub size: u64,
}

/// Downloads `length` bytes (all when None) from `offset` of `value_url`
/// (`.../set(id)/column/$value`, with `?size=full` for a full-size image), in 4 MB ranges
/// (`Range: bytes=a-b`, answered 206 with `x-ms-file-size`). A server that answers 200 sends the
/// whole file at once, and the part asked for is taken from it.
pub fn download(
    context: &Context,
    value_url: &str,
    offset: u64,
    length: Option<u64>,
) -> Result<Downloaded> {
    let mut out = Downloaded::default();
    let mut position = offset;
    let mut end: Option<u64> = length.map(|length| offset + length);
    loop {
        let want_end = match end {
            Some(end) => end.min(position + CHUNK as u64),
            None => position + CHUNK as u64,
        };
        let request = Request::new("GET", value_url.to_string())
            .header("Range", format!("bytes={position}-{}", want_end - 1));
        let response = context.client.send(request, RetryPolicy::RECORDS)?;
        if response.status == 204 {
            return Err(with_hint(
                error(ErrorCode::NotFound, "the column holds no file of this size"),
                "an image column keeps a full-size image only when its CanStoreFullImage is true; ask for the thumbnail",
            ));
        }
        if response.status == 416 {
            return Err(invalid_input(
                &crate::inputs::FILE_OFFSET,
                format!("byte {position} is past the end of the file"),
            )
            .with_field(crate::inputs::FILE_OFFSET.key));
        }
        let response = response.into_success()?;
        if out.file_name.is_none() {
            out.file_name = response.header("x-ms-file-name").map(str::to_string);
            out.mime_type = response.header("mimetype").map(str::to_string);
        }
        let size = response
            .header("x-ms-file-size")
            .and_then(|size| size.trim().parse::<u64>().ok());
        if response.status == 200 {
            // The whole file: take the part asked for.
            let body = response.body;
            out.size = size.unwrap_or(body.len() as u64);
            let from = (offset as usize).min(body.len());
            let to = end.map_or(body.len(), |end| (end as usize).min(body.len()));
            out.bytes = body[from..to.max(from)].to_vec();
            return Ok(out);
        }
        let size =
            size.ok_or_else(|| malformed("a ranged download answer has no x-ms-file-size"))?;
        out.size = size;
        let file_end = end.map_or(size, |end| end.min(size));
        end = Some(file_end);
        if response.body.is_empty() && position < file_end {
            return Err(malformed(format!(
                "the download answered no bytes at byte {position} of {size}"
            )));
        }
        position += response.body.len() as u64;
        out.bytes.extend_from_slice(&response.body);
        if position >= file_end {
            out.bytes
                .truncate((file_end - offset.min(file_end)) as usize);
            return Ok(out);
        }
    }
}

/// The URL of a row's column: `.../set(key)/column`.
pub fn column_url(context: &Context, record_path: &str, column: &str) -> String {
    context
        .client
        .api_url(&format!("{record_path}/{}", column.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_host::{Script, Signed, header};
    use serde_json::json;

    #[test]
    fn file_and_image_columns_are_told_apart_and_images_stay_under_30_mb() {
        let file = read_column(&json!({
            "@odata.type": "#Microsoft.Dynamics.CRM.FileAttributeMetadata", "MaxSizeInKB": 102400
        }))
        .unwrap();
        assert_eq!(file.kind, ColumnKind::File);
        assert_eq!(file.max_bytes, Some(102400 * 1024));
        let image = read_column(&json!({
            "AttributeTypeName": {"Value": "ImageType"}, "MaxSizeInKB": 102400
        }))
        .unwrap();
        assert_eq!(image.kind, ColumnKind::Image);
        assert_eq!(image.max_bytes, Some(MAX_IMAGE_BYTES));
        assert!(read_column(&json!({"AttributeTypeName": {"Value": "StringType"}})).is_none());
    }

    #[test]
    fn an_image_column_takes_only_the_documented_image_types() {
        let image = FileColumn {
            kind: ColumnKind::Image,
            max_bytes: None,
            full_image: true,
        };
        let file = FileColumn {
            kind: ColumnKind::File,
            ..image.clone()
        };
        let name = crate::inputs::FILE_NAME;
        assert!(check_image_name(&name, &image, "logo.PNG").is_ok());
        assert!(check_image_name(&name, &image, "photo.jpeg").is_ok());
        let refused = check_image_name(&name, &image, "logo.svg").unwrap_err();
        assert_eq!(refused.field.as_deref(), Some("fileName"));
        assert!(check_image_name(&name, &image, "noextension").is_err());
        assert!(check_image_name(&name, &file, "logo.svg").is_ok());
    }

    #[test]
    fn a_small_file_is_one_patch_with_its_name_and_octet_stream() {
        let signed = Signed::new();
        let script = Script::new().answer(204, "text/plain", "");
        let context = signed.context(&script);
        let url = column_url(
            &context,
            "accounts(00000000-0000-0000-0000-000000000001)",
            "f",
        );
        let done = upload(&context, &url, "a.txt", b"hello").unwrap();
        assert_eq!(done.chunks, 1);
        let sent = script.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, "PATCH");
        assert!(
            sent[0]
                .url
                .ends_with("/accounts(00000000-0000-0000-0000-000000000001)/f")
        );
        assert_eq!(header(&sent[0].headers, "x-ms-file-name"), Some("a.txt"));
        assert_eq!(
            header(&sent[0].headers, "content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(sent[0].body, b"hello");
    }

    #[test]
    fn a_file_over_4_mb_goes_in_chunks_to_the_session_location_with_content_ranges() {
        let signed = Signed::new();
        let location = format!(
            "{}/api/data/v9.2/accounts(00000000-0000-0000-0000-000000000001)/f?sessiontoken=abc",
            crate::test_host::ORIGIN
        );
        let script = Script::new()
            .answer_with(
                200,
                &[("location", &location), ("x-ms-chunk-size", "4194304")],
                "",
            )
            .answer(206, "text/plain", "")
            .answer(204, "text/plain", "");
        let context = signed.context(&script);
        let url = column_url(
            &context,
            "accounts(00000000-0000-0000-0000-000000000001)",
            "f",
        );
        let bytes: Vec<u8> = (0..CHUNK + 10).map(|i| (i % 251) as u8).collect();
        let done = upload(&context, &url, "big file.bin", &bytes).unwrap();
        assert_eq!(done.chunks, 2);
        let sent = script.sent();
        assert_eq!(sent.len(), 3);
        assert!(sent[0].url.ends_with("/f?x-ms-file-name=big%20file.bin"));
        assert_eq!(
            header(&sent[0].headers, "x-ms-transfer-mode"),
            Some("chunked")
        );
        assert!(sent[0].body.is_empty());
        assert_eq!(sent[1].url, location);
        assert_eq!(
            header(&sent[1].headers, "content-range"),
            Some(format!("bytes 0-{}/{}", CHUNK - 1, CHUNK + 10).as_str())
        );
        assert_eq!(sent[1].body.len(), CHUNK);
        assert_eq!(
            header(&sent[2].headers, "content-range"),
            Some(format!("bytes {CHUNK}-{}/{}", CHUNK + 9, CHUNK + 10).as_str())
        );
        assert_eq!([&sent[1].body[..], &sent[2].body[..]].concat(), bytes);
    }

    #[test]
    fn a_session_location_on_another_host_gets_no_bytes_and_no_token() {
        let signed = Signed::new();
        let script = Script::new().answer_with(
            200,
            &[(
                "location",
                "https://elsewhere.example/upload?sessiontoken=abc",
            )],
            "",
        );
        let context = signed.context(&script);
        let bytes = vec![0u8; CHUNK + 1];
        let failure = upload(
            &context,
            "https://contoso.crm.dynamics.com/api/data/v9.2/accounts(1)/f",
            "a.bin",
            &bytes,
        )
        .unwrap_err();
        assert!(failure.message.contains("outside the environment"));
        assert_eq!(script.sent().len(), 1);
    }

    #[test]
    fn a_download_asks_4_mb_ranges_until_the_file_size_and_keeps_name_and_type() {
        let signed = Signed::new();
        let total = CHUNK + 3;
        let first = "a".repeat(CHUNK);
        let size = total.to_string();
        let headers = [
            ("x-ms-file-size", size.as_str()),
            ("x-ms-file-name", "a.txt"),
            ("mimetype", "text/plain"),
        ];
        let script = Script::new()
            .answer_with(206, &headers, &first)
            .answer_with(206, &headers, "bcd");
        let context = signed.context(&script);
        let got = download(
            &context,
            "https://contoso.crm.dynamics.com/api/data/v9.2/accounts(1)/f/$value",
            0,
            None,
        )
        .unwrap();
        assert_eq!(got.size, total as u64);
        assert_eq!(got.bytes.len(), total);
        assert!(got.bytes.ends_with(b"bcd"));
        assert_eq!(got.file_name.as_deref(), Some("a.txt"));
        assert_eq!(got.mime_type.as_deref(), Some("text/plain"));
        let sent = script.sent();
        assert_eq!(
            header(&sent[0].headers, "range"),
            Some(format!("bytes=0-{}", CHUNK - 1).as_str())
        );
        assert_eq!(
            header(&sent[1].headers, "range"),
            // Once the size is known, the last range ends at the file's last byte.
            Some(format!("bytes={CHUNK}-{}", CHUNK + 2).as_str())
        );
    }

    #[test]
    fn a_part_of_a_file_is_one_range_and_a_whole_file_answer_is_cut_to_it() {
        let signed = Signed::new();
        let script = Script::new()
            .answer_with(206, &[("x-ms-file-size", "10")], "cde")
            .answer_with(200, &[("x-ms-file-size", "10")], "abcdefghij");
        let context = signed.context(&script);
        let url = "https://contoso.crm.dynamics.com/api/data/v9.2/accounts(1)/f/$value";
        let got = download(&context, url, 2, Some(3)).unwrap();
        assert_eq!(got.bytes, b"cde");
        assert_eq!(
            header(&script.sent()[0].headers, "range"),
            Some("bytes=2-4")
        );
        let got = download(&context, url, 2, Some(3)).unwrap();
        assert_eq!(got.bytes, b"cde");
        assert_eq!(got.size, 10);
    }
}
