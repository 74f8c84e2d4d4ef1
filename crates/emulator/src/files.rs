//! File columns: upload, download and delete, the three ways "Use file column data"
//! (learn.microsoft.com/power-apps/developer/data-platform/file-column-data) documents them.
//!
//! - A single request: `PATCH <set>(<id>)/<column>` with `Content-Type: application/octet-stream`
//!   and `x-ms-file-name`, answered 204.
//! - In chunks: a first `PATCH` with `x-ms-transfer-mode: chunked` and the file name (header or
//!   `x-ms-file-name` query parameter; the header wins) is answered 200 with `Location` (the same
//!   URL with a `sessiontoken`), `x-ms-chunk-size: 4194304` and `Accept-Ranges: bytes`; each
//!   chunk is a `PATCH` to that URL with `Content-Range: bytes a-b/total`, answered 206, the last
//!   one 204.
//! - The messages `InitializeFileBlocksUpload`, `UploadBlock`, `CommitFileBlocksUpload`,
//!   `InitializeFileBlocksDownload`, `DownloadBlock` and `DeleteFile`.
//! - Download: `GET <set>(<id>)/<column>/$value`, with `x-ms-file-size`, `x-ms-file-name` and
//!   `mimetype`; with `Range: bytes=a-b`, 206 and `x-ms-chunk-size`.
//! - Delete: `DELETE <set>(<id>)/<column>`, 204.
//!
//! A file bigger than the column's `MaxSizeInKB` is refused with `0x80044a02` "Attachment file
//! size is too big." (same page, "Check maximum file size"). When a file is stored the row's
//! file column holds a new file id and its `<column>_name` companion the file name ("Behavior
//! when retrieving", "File name column"); the bytes live in the store's `blobs`.
//!
//! The messages live in `files/messages.rs`, a note's file (`annotation.documentbody`) in
//! `files/notes.rs`, what an image is and its thumbnail in `files/images.rs`.
//!
//! Image columns ("Use image column data") take the same uploads, and a
//! base64 value in a create or update; the row holds the thumbnail as base64 with its
//! companions `<column>id`, `<column>_timestamp` and `<column>_url`. `$value` downloads the
//! thumbnail; `?size=full` answers 204 for a column that does not store full-size images, as
//! documented.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::blobs::{Parts, StoredFile, Upload};
use crate::error::{self, DvError};
use crate::guid::Guid;
use crate::odata::path::Segment;
use crate::odata::query::parse_pairs;
use crate::row_key;
use crate::schema::{AttrKind, TableId};
use crate::store::{Store, Val};
use crate::wire::{Req, Resp};

mod images;
mod messages;
mod notes;

pub use messages::message;
pub use notes::note_document;

/// The chunk size the service recommends in `x-ms-chunk-size` (4 MB), and the most a block of
/// the block messages may hold ("UploadBlock": "less than 4 MB").
pub const CHUNK_SIZE: usize = 4 * 1024 * 1024;

/// The most a block id may be before base64 encoding ("UploadBlock": "less than or equal to 64
/// bytes").
const MAX_BLOCK_ID_BYTES: usize = 64;

/// The error for a file column (or an image column) named in a create or update body: file
/// data is written only through the requests of this module ("Use file column data": "you can't
/// directly set the values in a create or update operation").
pub fn set_in_record(entity: &str, a: &crate::schema::Attribute) -> DvError {
    let column = &a.logical_name;
    DvError::bad_request(format!(
        "The column '{column}' of '{entity}' holds a file: it can't be set in a create or update; upload the file to {column} with PATCH or the InitializeFileBlocksUpload message."
    ))
}

/// The file or image column a path segment names, with its kind.
fn file_column<'s>(store: &'s Store, e: TableId, seg: &Segment) -> Option<(usize, &'s AttrKind)> {
    if seg.key.is_some() {
        return None;
    }
    let ent = store.entity(e);
    let col = ent.attr(&seg.name)?;
    let kind = &ent.attributes[col].kind;
    matches!(kind, AttrKind::File { .. } | AttrKind::Image { .. }).then_some((col, kind))
}

/// An image column keeping full-size images: the emulator keeps thumbnails only.
fn full_images_not_emulated(entity: &str, column: &str) -> DvError {
    DvError::not_implemented(format_args!(
        "full-size images ({entity}.{column} has CanStoreFullImage; learn.microsoft.com/power-apps/developer/data-platform/image-column-data)"
    ))
}

fn stores_full_images(kind: &AttrKind) -> bool {
    matches!(
        kind,
        AttrKind::Image {
            can_store_full_image: true,
            ..
        }
    )
}

fn wants_full_size(req: &Req) -> bool {
    parse_pairs(req.query)
        .iter()
        .any(|(k, v)| k == "size" && v.eq_ignore_ascii_case("full"))
}

/// The value of an image column set in a create or update (a base64 string, or null): the
/// thumbnail, as base64 ("Use image data with records").
pub fn image_value(entity: &str, a: &crate::schema::Attribute, v: &Value) -> Result<Val, DvError> {
    let AttrKind::Image { max_size_kb, .. } = a.kind else {
        return Err(DvError::internal(
            "image_value on a column that holds no image",
        ));
    };
    if stores_full_images(&a.kind) {
        return Err(full_images_not_emulated(entity, &a.logical_name));
    }
    let text = match v {
        Value::Null => return Ok(Val::Null),
        Value::String(s) => s,
        other => {
            return Err(DvError::bad_request(format!(
                "The image column '{}' takes a base64 string or null, not {other}.",
                a.logical_name
            )));
        }
    };
    let bytes = STANDARD.decode(text.as_bytes()).map_err(|_| {
        DvError::bad_request(format!(
            "The value of the image column '{}' is not a valid Base64 string.",
            a.logical_name
        ))
    })?;
    let (thumb, _) = images::thumbnail(entity, &a.logical_name, &bytes, max_size_kb)?;
    Ok(Val::str(&STANDARD.encode(thumb)))
}

/// The companion columns of an image column (`<column>id`, `<column>_timestamp`,
/// `<column>_url`, "Download URL") for a new image, or empty for none; and the new image id.
fn companion_changes(
    store: &mut Store,
    e: TableId,
    col: usize,
    set: bool,
) -> (Vec<(usize, Val)>, Option<Guid>) {
    let image_id = set.then(|| store.new_id(e));
    let ent = store.entity(e);
    let column = ent.attributes[col].logical_name.clone();
    let ts = images::ticks((store.clock)());
    let mut out = Vec::new();
    let mut put = |suffix: &str, v: Val| {
        if let Some(c) = ent.attr(&format!("{column}{suffix}")) {
            out.push((c, v));
        }
    };
    match image_id {
        Some(g) => {
            put("id", Val::Guid(g));
            put("_timestamp", Val::Int(ts));
            put(
                "_url",
                Val::str(&images::url(&ent.logical_name, &column, &g, ts)),
            );
        }
        None => {
            put("id", Val::Null);
            put("_timestamp", Val::Null);
            put("_url", Val::Null);
        }
    }
    (out, image_id)
}

/// Sets the companions of every image column a create or update sets.
pub fn image_companions(store: &mut Store, e: TableId, cols: &mut Vec<(usize, Val)>) {
    let images: Vec<(usize, bool)> = cols
        .iter()
        .filter(|(c, _)| matches!(store.entity(e).attributes[*c].kind, AttrKind::Image { .. }))
        .map(|(c, v)| (*c, !v.is_null()))
        .collect();
    for (col, set) in images {
        let (changes, _) = companion_changes(store, e, col, set);
        for (c, v) in changes {
            cols.retain(|(x, _)| *x != c);
            cols.push((c, v));
        }
    }
}

/// The thumbnail an image column holds, as a file to download: the bytes, the name it was
/// uploaded with (if it came as a file) and its type.
fn stored_image(store: &Store, e: TableId, id: Guid, col: usize) -> Result<StoredFile, DvError> {
    let ent = store.entity(e);
    let row = store
        .get(e, &id)
        .ok_or_else(|| DvError::not_found(&ent.logical_name, &id))?;
    let column = &ent.attributes[col].logical_name;
    let no_image = || {
        DvError::new(
            404,
            error::OBJECT_DOES_NOT_EXIST,
            format!("No image found for attribute: {column} EntityId: {id}."),
        )
    };
    let Val::Str(b64) = &row.vals[col] else {
        return Err(no_image());
    };
    let bytes = STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| DvError::internal("an image column holding invalid base64"))?;
    let image_id = ent
        .attr(&format!("{column}id"))
        .and_then(|c| match &row.vals[c] {
            Val::Guid(g) => Some(*g),
            _ => None,
        });
    let name = image_id
        .and_then(|g| store.blobs.files.get(&g))
        .map(|f| f.name.clone())
        .unwrap_or_default();
    let mime_type = images::info(&bytes)
        .map_or("application/octet-stream", |i| i.mime_type)
        .to_string();
    Ok(StoredFile {
        table: e,
        row: id,
        column: col,
        name,
        mime_type,
        bytes,
    })
}

/// Answers a read of `<set>(<key>)/<file column>/$value` (the bytes), or of
/// `<set>(<key>)/<file column>` (the same bytes as base64 in `{"value": ...}`, with the same
/// headers and the same `Range` handling), or `None` when the path is neither.
///
/// The second form is not on the file-column page; it is what DynamicsWebApi's `downloadFile`
/// sends (`GET .../<column>?size=full` with `Range`, reading `value` as base64), a client used
/// against Dataverse, so Dataverse answers it so.
pub fn read(
    store: &Store,
    req: &Req,
    e: TableId,
    key: &str,
    rest: &[Segment],
) -> Option<Result<Resp, DvError>> {
    let (col_seg, as_json) = match rest {
        [col_seg, value] if value.name == "$value" && value.key.is_none() => (col_seg, false),
        [col_seg] => (col_seg, true),
        _ => return None,
    };
    let (col, kind) = file_column(store, e, col_seg)?;
    let is_image = matches!(kind, AttrKind::Image { .. });
    let full = is_image && wants_full_size(req);
    if as_json && is_image && !full {
        // An image property read is the thumbnail, which read.rs answers from the row.
        return None;
    }
    let full_kept = stores_full_images(kind);
    Some((|| {
        let ent = store.entity(e);
        let id = row_key::resolve_existing(store, e, key)?;
        if full {
            // "If the image column doesn't support full-sized images ... the response will
            // return 204 No Content."
            if full_kept {
                return Err(full_images_not_emulated(&ent.logical_name, &col_seg.name));
            }
            return Ok(Resp::empty(204));
        }
        let image;
        let file = if is_image {
            image = stored_image(store, e, id, col)?;
            &image
        } else {
            stored(store, e, id, col)?
        };
        let mut resp = download(req, file)?;
        if as_json {
            let context = format!(
                "{}/$metadata#{}({id})/{}",
                req.api, ent.entity_set_name, col_seg.name
            );
            resp.body = json!({"@odata.context": context, "value": STANDARD.encode(&resp.body)})
                .to_string()
                .into_bytes();
            resp.content_type = Some(crate::wire::JSON);
        }
        Ok(resp)
    })())
}

/// The file a row's file column holds, or the 404 saying it holds none.
fn stored(store: &Store, e: TableId, id: Guid, col: usize) -> Result<&StoredFile, DvError> {
    let ent = store.entity(e);
    let row = store
        .get(e, &id)
        .ok_or_else(|| DvError::not_found(&ent.logical_name, &id))?;
    let no_file = || {
        DvError::new(
            404,
            error::OBJECT_DOES_NOT_EXIST,
            format!(
                "No file attachment found for attribute: {} EntityId: {id}.",
                ent.attributes[col].logical_name
            ),
        )
    };
    match &row.vals[col] {
        Val::Guid(file_id) => store.blobs.files.get(file_id).ok_or_else(no_file),
        _ => Err(no_file()),
    }
}

/// `GET .../$value`, whole or by `Range: bytes=a-b`.
fn download(req: &Req, file: &StoredFile) -> Result<Resp, DvError> {
    let size = file.bytes.len() as u64;
    // Content-Disposition names the file as HTTP downloads do (RFC 6266); DynamicsWebApi's
    // downloadFile reads an answer as a file only when it has one.
    let common = |resp: Resp| {
        let resp = resp
            .header("x-ms-file-size", size.to_string())
            .header("mimetype", file.mime_type.clone());
        // An image set as base64 in a record has no file name.
        if file.name.is_empty() {
            return resp.header("Content-Disposition", "attachment");
        }
        resp.header("x-ms-file-name", file.name.clone())
            .header("Content-Disposition", content_disposition(&file.name))
    };
    let Some(range) = req.header("range") else {
        let resp = common(Resp {
            status: 200,
            headers: Vec::new(),
            body: file.bytes.clone(),
            content_type: Some("application/octet-stream"),
        });
        return Ok(resp.header(
            "Access-Control-Expose-Headers",
            "x-ms-file-size; x-ms-file-name; mimetype",
        ));
    };
    let (start, end) = parse_range(range, size)?;
    let resp = common(Resp {
        status: 206,
        headers: Vec::new(),
        body: file.bytes[start as usize..=end as usize].to_vec(),
        content_type: Some("application/octet-stream"),
    });
    Ok(resp
        .header("x-ms-chunk-size", CHUNK_SIZE.to_string())
        .header("Content-Range", format!("bytes {start}-{end}/{size}"))
        .header(
            "Access-Control-Expose-Headers",
            "x-ms-file-size; x-ms-file-name; x-ms-chunk-size; mimetype",
        ))
}

/// `attachment; filename="..."`, with `filename*` (RFC 8187) when the name is not plain ASCII.
fn content_disposition(name: &str) -> String {
    let plain = name
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if plain {
        return format!("attachment; filename=\"{name}\"");
    }
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// `bytes=a-b` (b past the end is the end; `bytes=a-` is to the end), as RFC 9110 reads a
/// byte range; a start past the end is 416.
fn parse_range(text: &str, size: u64) -> Result<(u64, u64), DvError> {
    let bad = || {
        DvError::bad_request(format!(
            "The Range header '{text}' is not valid: expected 'bytes=<start>-<end>'."
        ))
    };
    let spec = text.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = match b.trim() {
        "" => size.saturating_sub(1),
        b => b.parse().map_err(|_| bad())?,
    };
    if end < start {
        return Err(bad());
    }
    if start >= size {
        return Err(DvError::new(
            416,
            error::ODATA_ERROR,
            format!("The range start {start} is not below the file size {size}."),
        ));
    }
    Ok((start, end.min(size - 1)))
}

/// Answers a write to `<set>(<key>)/<file column>` (PATCH uploads, DELETE deletes), or `None`
/// when the path is not one.
pub fn write(
    store: &mut Store,
    req: &Req,
    e: TableId,
    key: &str,
    rest: &[Segment],
) -> Option<Result<Resp, DvError>> {
    let [col_seg] = rest else {
        return None;
    };
    let (col, kind) = file_column(store, e, col_seg)?;
    let full_kept = stores_full_images(kind);
    Some((|| {
        let ent = store.entity(e);
        if full_kept {
            return Err(full_images_not_emulated(&ent.logical_name, &col_seg.name));
        }
        let id = row_key::resolve_existing(store, e, key)?;
        match req.method {
            "PATCH" => upload(store, req, e, id, col, key, &col_seg.name),
            "DELETE" => {
                remove(store, req, e, id, col)?;
                Ok(Resp::empty(204))
            }
            // `PUT .../<image column>` with {"value": ...} ("Delete images").
            "PUT" if matches!(store.entity(e).attributes[col].kind, AttrKind::Image { .. }) => {
                put_image(store, req, e, id, col)?;
                Ok(Resp::empty(204))
            }
            m => Err(DvError::method_not_allowed(m, "a file column")),
        }
    })())
}

fn query_param(req: &Req, name: &str) -> Option<String> {
    parse_pairs(req.query)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The file name of an upload: the `x-ms-file-name` header, else the query parameter of the
/// same name (the header takes precedence, "Upload the file in chunks using Web API").
fn file_name(req: &Req) -> Option<String> {
    req.header("x-ms-file-name")
        .map(str::to_string)
        .or_else(|| query_param(req, "x-ms-file-name"))
        .filter(|n| !n.trim().is_empty())
}

fn missing_file_name() -> DvError {
    DvError::bad_request(
        "The file name is missing: send it in the x-ms-file-name header (or, for a chunked upload, the x-ms-file-name query parameter).",
    )
}

fn upload(
    store: &mut Store,
    req: &Req,
    e: TableId,
    id: Guid,
    col: usize,
    key: &str,
    column: &str,
) -> Result<Resp, DvError> {
    if let Some(token) = query_param(req, "sessiontoken") {
        return upload_chunk(store, req, e, id, col, &token);
    }
    let name = file_name(req).ok_or_else(missing_file_name)?;
    if req
        .header("x-ms-transfer-mode")
        .is_some_and(|m| m.eq_ignore_ascii_case("chunked"))
    {
        let token = new_token();
        store.blobs.uploads.insert(
            token.clone(),
            Upload {
                table: e,
                row: id,
                column: col,
                name,
                parts: Parts::Chunks {
                    total: None,
                    chunks: Default::default(),
                },
                committed: None,
            },
        );
        let location = format!(
            "{}/{}({key})/{column}?sessiontoken={token}",
            req.api,
            store.entity(e).entity_set_name
        );
        return Ok(Resp::empty(200)
            .header("Accept-Ranges", "bytes")
            .header("Location", location)
            .header("x-ms-chunk-size", CHUNK_SIZE.to_string())
            .header("Access-Control-Expose-Headers", "x-ms-chunk-size"));
    }
    check_content_type(req)?;
    let mime = mime_of(req, &name);
    commit(store, req, e, id, col, name, mime, req.body.to_vec())?;
    Ok(Resp::empty(204))
}

fn check_content_type(req: &Req) -> Result<(), DvError> {
    match req.header("content-type") {
        Some(ct) if ct.trim().starts_with("application/octet-stream") => Ok(()),
        other => Err(DvError::bad_request(format!(
            "A file upload must be sent with Content-Type: application/octet-stream, not {}.",
            other.map_or("none".to_string(), |c| format!("'{c}'"))
        ))),
    }
}

/// The MIME type stored with a file uploaded through the Web API: the documented requests send
/// the bytes as `application/octet-stream`, so the type comes from the file name's extension.
fn mime_of(_req: &Req, name: &str) -> String {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" => "text/plain",
        "csv" => "text/csv",
        "htm" | "html" => "text/html",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
    .to_string()
}

/// `bytes a-b/total` of a chunk.
fn content_range(req: &Req) -> Result<(u64, u64, u64), DvError> {
    let text = req.header("content-range").ok_or_else(|| {
        DvError::bad_request("A chunk of a chunked upload must carry a Content-Range header ('bytes <start>-<end>/<size>').")
    })?;
    let bad = || {
        DvError::bad_request(format!(
            "The Content-Range header '{text}' is not valid: expected 'bytes <start>-<end>/<size>'."
        ))
    };
    let spec = text.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, total) = spec.split_once('/').ok_or_else(bad)?;
    let (a, b) = range.split_once('-').ok_or_else(bad)?;
    let (start, end, total): (u64, u64, u64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
        total.trim().parse().map_err(|_| bad())?,
    );
    if end < start || end >= total {
        return Err(bad());
    }
    Ok((start, end, total))
}

fn upload_chunk(
    store: &mut Store,
    req: &Req,
    e: TableId,
    id: Guid,
    col: usize,
    token: &str,
) -> Result<Resp, DvError> {
    let unknown = || {
        DvError::bad_request(format!(
            "The sessiontoken '{token}' does not name an upload in progress for this column."
        ))
    };
    let session = store.blobs.uploads.get(token).ok_or_else(unknown)?;
    if session.table != e || session.row != id || session.column != col {
        return Err(unknown());
    }
    check_content_type(req)?;
    let (start, end, total) = content_range(req)?;
    if req.body.len() as u64 != end - start + 1 {
        return Err(DvError::bad_request(format!(
            "The chunk holds {} bytes but its Content-Range names {} ({start}-{end}).",
            req.body.len(),
            end - start + 1
        )));
    }
    if session.committed.is_some() {
        // A chunk of an upload already stored (a retry of the last one): nothing changes.
        return Ok(Resp::empty(204));
    }
    check_size(store, e, col, total)?;
    let name = file_name(req).unwrap_or_else(|| session.name.clone());
    let Some(session) = store.blobs.uploads.get_mut(token) else {
        return Err(unknown());
    };
    let Parts::Chunks {
        total: known,
        chunks,
    } = &mut session.parts
    else {
        return Err(unknown());
    };
    if known.is_some_and(|t| t != total) {
        return Err(DvError::bad_request(format!(
            "The Content-Range size {total} differs from the size {} of the earlier chunks.",
            known.unwrap_or_default()
        )));
    }
    *known = Some(total);
    chunks.insert(start, req.body.to_vec());
    let Some(bytes) = contiguous(chunks, total) else {
        return Ok(Resp::empty(206));
    };
    let mime = mime_of(req, &name);
    let file_id = commit(store, req, e, id, col, name, mime, bytes)?;
    if let Some(s) = store.blobs.uploads.get_mut(token) {
        s.committed = Some(file_id);
        s.parts = Parts::Chunks {
            total: Some(total),
            chunks: Default::default(),
        };
    }
    Ok(Resp::empty(204))
}

/// The file, once the chunks cover `0..total` without a gap (a chunk sent again replaces the
/// one at its offset).
fn contiguous(chunks: &std::collections::BTreeMap<u64, Vec<u8>>, total: u64) -> Option<Vec<u8>> {
    let mut next = 0u64;
    for (start, bytes) in chunks {
        if *start > next {
            return None;
        }
        next = next.max(start + bytes.len() as u64);
    }
    if next < total {
        return None;
    }
    let mut out = vec![0u8; total as usize];
    for (start, bytes) in chunks {
        let s = *start as usize;
        out[s..s + bytes.len()].copy_from_slice(bytes);
    }
    Some(out)
}

fn max_size_kb(store: &Store, e: TableId, col: usize) -> u64 {
    match store.entity(e).attributes[col].kind {
        AttrKind::File { max_size_kb } | AttrKind::Image { max_size_kb, .. } => max_size_kb.into(),
        _ => 0,
    }
}

fn check_size(store: &Store, e: TableId, col: usize, size: u64) -> Result<(), DvError> {
    let max = max_size_kb(store, e, col) * 1024;
    if size > max && matches!(store.entity(e).attributes[col].kind, AttrKind::Image { .. }) {
        let mb = |n: u64| n / (1024 * 1024);
        return Err(images::failure(&format!(
            "File size is too big. MaxSize: {} MB, Uploaded filesize: {} MB.",
            mb(max),
            mb(size)
        )));
    }
    if size > max {
        return Err(DvError::new(
            400,
            error::ATTACHMENT_INVALID_FILE_SIZE,
            "Attachment file size is too big.",
        ));
    }
    Ok(())
}

/// Stores a file in a row's file column (replacing the one it held): a new file id in the
/// column, the name in `<column>_name`, the bytes in the store's blobs.
#[allow(clippy::too_many_arguments)]
fn commit(
    store: &mut Store,
    req: &Req,
    e: TableId,
    id: Guid,
    col: usize,
    name: String,
    mime_type: String,
    bytes: Vec<u8>,
) -> Result<Guid, DvError> {
    check_size(store, e, col, bytes.len() as u64)?;
    if let AttrKind::Image { max_size_kb, .. } = store.entity(e).attributes[col].kind {
        return commit_image(store, req, e, id, col, name, &bytes, max_size_kb);
    }
    let ent = store.entity(e);
    let name_col = ent.attr(&format!("{}_name", ent.attributes[col].logical_name));
    let old = match store.get(e, &id).map(|r| &r.vals[col]) {
        Some(Val::Guid(g)) => Some(*g),
        _ => None,
    };
    let file_id = store.new_id(e);
    let mut changes = vec![(col, Val::Guid(file_id))];
    if let Some(c) = name_col {
        changes.push((c, Val::str(&name)));
    }
    crate::writes::stamp_update(store, e, req, &mut changes)?;
    store.update(e, id, changes)?;
    if let Some(old) = old {
        store.blobs.files.remove(&old);
    }
    store.blobs.files.insert(
        file_id,
        StoredFile {
            table: e,
            row: id,
            column: col,
            name,
            mime_type,
            bytes,
        },
    );
    Ok(file_id)
}

/// `PUT` of an image column's value: null empties it, base64 sets it.
fn put_image(
    store: &mut Store,
    req: &Req,
    e: TableId,
    id: Guid,
    col: usize,
) -> Result<(), DvError> {
    let body = json_body(req.body)?;
    let value = body.get("value").ok_or_else(|| {
        DvError::bad_request("A PUT of a property needs a body {\"value\": ...}.")
    })?;
    let ent = store.entity(e);
    let val = image_value(&ent.logical_name, &ent.attributes[col], value)?;
    if val.is_null() {
        return remove(store, req, e, id, col);
    }
    let old = image_id_of(store, e, id, col);
    let mut changes = vec![(col, val)];
    image_companions(store, e, &mut changes);
    crate::writes::stamp_update(store, e, req, &mut changes)?;
    store.update(e, id, changes)?;
    if let Some(old) = old {
        store.blobs.files.remove(&old);
    }
    Ok(())
}

/// The image id (`<column>id`) a row's image column holds.
fn image_id_of(store: &Store, e: TableId, id: Guid, col: usize) -> Option<Guid> {
    let ent = store.entity(e);
    let c = ent.attr(&format!("{}id", ent.attributes[col].logical_name))?;
    match store.get(e, &id)?.vals.get(c)? {
        Val::Guid(g) => Some(*g),
        _ => None,
    }
}

/// Stores an image uploaded as a file: its thumbnail in the row with new companions; the name
/// it came with beside it (for the download headers).
#[allow(clippy::too_many_arguments)]
fn commit_image(
    store: &mut Store,
    req: &Req,
    e: TableId,
    id: Guid,
    col: usize,
    name: String,
    bytes: &[u8],
    max_size_kb: u32,
) -> Result<Guid, DvError> {
    let ent = store.entity(e);
    let (thumb, mime) = images::thumbnail(
        &ent.logical_name,
        &ent.attributes[col].logical_name,
        bytes,
        max_size_kb,
    )?;
    let old = image_id_of(store, e, id, col);
    let (mut changes, image_id) = companion_changes(store, e, col, true);
    let image_id = image_id.ok_or_else(|| DvError::internal("no image id"))?;
    changes.push((col, Val::str(&STANDARD.encode(&thumb))));
    crate::writes::stamp_update(store, e, req, &mut changes)?;
    store.update(e, id, changes)?;
    if let Some(old) = old {
        store.blobs.files.remove(&old);
    }
    store.blobs.files.insert(
        image_id,
        StoredFile {
            table: e,
            row: id,
            column: col,
            name,
            mime_type: mime.to_string(),
            bytes: thumb,
        },
    );
    Ok(image_id)
}

/// Empties a row's file column (and its name); nothing to do when it holds no file.
fn remove(store: &mut Store, req: &Req, e: TableId, id: Guid, col: usize) -> Result<(), DvError> {
    if matches!(store.entity(e).attributes[col].kind, AttrKind::Image { .. }) {
        let old = image_id_of(store, e, id, col);
        let (mut changes, _) = companion_changes(store, e, col, false);
        changes.push((col, Val::Null));
        crate::writes::stamp_update(store, e, req, &mut changes)?;
        store.update(e, id, changes)?;
        if let Some(old) = old {
            store.blobs.files.remove(&old);
        }
        return Ok(());
    }
    let ent = store.entity(e);
    let name_col = ent.attr(&format!("{}_name", ent.attributes[col].logical_name));
    let Some(Val::Guid(file_id)) = store.get(e, &id).map(|r| r.vals[col].clone()) else {
        return Ok(());
    };
    let mut changes = vec![(col, Val::Null)];
    if let Some(c) = name_col {
        changes.push((c, Val::Null));
    }
    crate::writes::stamp_update(store, e, req, &mut changes)?;
    store.update(e, id, changes)?;
    store.blobs.files.remove(&file_id);
    Ok(())
}

/// A session or continuation token nobody can guess.
fn new_token() -> String {
    let mut bytes = [0u8; 24];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back on the clock, still unique within this process.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes[..16].copy_from_slice(&nanos.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file a row's file column holds, for [`crate::Emulator::file`]: name, MIME type, bytes.
pub fn file_of(
    store: &Store,
    entity_set_or_logical_name: &str,
    id: &str,
    column: &str,
) -> Option<(String, String, Vec<u8>)> {
    let e = store
        .schema
        .entity_by_set(entity_set_or_logical_name)
        .or_else(|| store.schema.entity(entity_set_or_logical_name))?;
    let id = Guid::parse(id)?;
    let col = store.entity(e).attr(column)?;
    let file = stored(store, e, id, col).ok()?;
    Some((
        file.name.clone(),
        file.mime_type.clone(),
        file.bytes.clone(),
    ))
}

fn json_body(body: &[u8]) -> Result<Map<String, Value>, DvError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(DvError::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(DvError::bad_request(format!("Invalid JSON. {e}"))),
    }
}
