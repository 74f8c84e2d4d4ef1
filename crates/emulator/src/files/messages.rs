//! The file messages of "Use file column data"
//! (learn.microsoft.com/power-apps/developer/data-platform/file-column-data): uploading with
//! `InitializeFileBlocksUpload`, `UploadBlock` and `CommitFileBlocksUpload`, downloading with
//! `InitializeFileBlocksDownload` and `DownloadBlock` ("Use Dataverse messages to upload a
//! file" / "... to download a file"), and `DeleteFile` ("Use the DeleteFile message").

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::{
    CHUNK_SIZE, MAX_BLOCK_ID_BYTES, commit, full_images_not_emulated, image_id_of, json_body,
    new_token, remove, stored, stores_full_images,
};
use crate::blobs::{Parts, Upload};
use crate::error::{self, DvError};
use crate::guid::Guid;
use crate::odata::path::Segment;
use crate::schema::{AttrKind, TableId};
use crate::store::{Store, Val};
use crate::wire::{Req, Resp};

/// The message names this module answers.
pub const MESSAGES: &[&str] = &[
    "InitializeFileBlocksUpload",
    "UploadBlock",
    "CommitFileBlocksUpload",
    "InitializeFileBlocksDownload",
    "DownloadBlock",
    "DeleteFile",
];

/// Answers one of [`MESSAGES`] called unbound at the root (`POST [api]/UploadBlock`), or `None`
/// when the path names none of them.
pub fn message(store: &mut Store, req: &Req, segs: &[Segment]) -> Option<Result<Resp, DvError>> {
    let [seg] = segs else {
        return None;
    };
    if seg.key.is_some() {
        return None;
    }
    let name = seg
        .name
        .strip_prefix(crate::messages::NAMESPACE)
        .unwrap_or(&seg.name);
    let name = MESSAGES.iter().find(|m| **m == name)?;
    Some((|| {
        if req.method != "POST" {
            return Err(DvError::method_not_allowed(
                req.method,
                &format!("the action {name}"),
            ));
        }
        let body = json_body(req.body)?;
        match *name {
            "InitializeFileBlocksUpload" => initialize_upload(store, req, &body),
            "UploadBlock" => upload_block(store, &body),
            "CommitFileBlocksUpload" => commit_blocks(store, req, &body),
            "InitializeFileBlocksDownload" => initialize_download(store, req, &body),
            "DownloadBlock" => download_block(store, req, &body),
            _ => delete_file(store, req, &body),
        }
    })())
}

fn required_str<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, DvError> {
    match body.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(DvError::bad_request(format!(
            "The parameter '{name}' is required."
        ))),
        Some(other) => Err(DvError::bad_request(format!(
            "The parameter '{name}' must be a string, not {other}."
        ))),
    }
}

fn required_int(body: &Map<String, Value>, name: &str) -> Result<u64, DvError> {
    let v = body
        .get(name)
        .ok_or_else(|| DvError::bad_request(format!("The parameter '{name}' is required.")))?;
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| {
            DvError::bad_request(format!(
                "The parameter '{name}' must be a non-negative integer, not {v}."
            ))
        })
}

/// The row a `Target` entity reference names: `{"@odata.type": "Microsoft.Dynamics.CRM.<table>",
/// "<primary id>": "<id>"}`, and the file column `FileAttributeName` names on its table.
fn target(store: &Store, body: &Map<String, Value>) -> Result<(TableId, Guid, usize), DvError> {
    let t = body
        .get("Target")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            DvError::bad_request(
                "The parameter 'Target' is required: an entity reference with @odata.type and the primary key.",
            )
        })?;
    let ty = t
        .get("@odata.type")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            DvError::bad_request(
                "The 'Target' parameter needs '@odata.type' (Microsoft.Dynamics.CRM.<table>).",
            )
        })?;
    let logical = ty
        .trim_start_matches('#')
        .strip_prefix(crate::messages::NAMESPACE)
        .unwrap_or(ty);
    let e = store.schema.entity(logical).ok_or_else(|| {
        DvError::bad_request(format!(
            "The '@odata.type' of 'Target' names no table: '{ty}'."
        ))
    })?;
    let ent = store.entity(e);
    let id = t
        .get(ent.primary_id_name())
        .and_then(Value::as_str)
        .and_then(Guid::parse)
        .ok_or_else(|| {
            DvError::bad_request(format!(
                "The 'Target' parameter needs '{}' (the id of the {} row).",
                ent.primary_id_name(),
                ent.logical_name
            ))
        })?;
    if store.get(e, &id).is_none() {
        return Err(DvError::not_found(&ent.logical_name, &id));
    }
    let column = required_str(body, "FileAttributeName")?;
    let col = ent
        .attr(column)
        .filter(|c| {
            matches!(
                ent.attributes[*c].kind,
                AttrKind::File { .. } | AttrKind::Image { .. }
            )
        })
        .ok_or_else(|| {
            DvError::bad_request(format!(
                "'{column}' is not a file or image column of {}.",
                ent.logical_name
            ))
        })?;
    if stores_full_images(&ent.attributes[col].kind) {
        return Err(full_images_not_emulated(&ent.logical_name, column));
    }
    Ok((e, id, col))
}

fn action_response(req: &Req, ty: &str, mut body: Map<String, Value>) -> Resp {
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/$metadata#Microsoft.Dynamics.CRM.{ty}", req.api)),
    );
    // The context first, as the service writes it.
    let mut out = Map::new();
    if let Some(c) = body.remove("@odata.context") {
        out.insert("@odata.context".into(), c);
    }
    out.extend(body);
    Resp::json(200, Value::Object(out).to_string().into_bytes())
}

fn initialize_upload(
    store: &mut Store,
    req: &Req,
    body: &Map<String, Value>,
) -> Result<Resp, DvError> {
    let (e, id, col) = target(store, body)?;
    let name = required_str(body, "FileName")?.to_string();
    let token = new_token();
    store.blobs.uploads.insert(
        token.clone(),
        Upload {
            table: e,
            row: id,
            column: col,
            name,
            parts: Parts::Blocks(Default::default()),
            committed: None,
        },
    );
    let mut out = Map::new();
    out.insert("FileContinuationToken".into(), json!(token));
    Ok(action_response(
        req,
        "InitializeFileBlocksUploadResponse",
        out,
    ))
}

fn unknown_token(token: &str) -> DvError {
    DvError::bad_request(format!(
        "The FileContinuationToken '{token}' does not name a file operation in progress."
    ))
}

fn upload_block(store: &mut Store, body: &Map<String, Value>) -> Result<Resp, DvError> {
    let token = required_str(body, "FileContinuationToken")?;
    let block_id = required_str(body, "BlockId")?;
    let id_bytes = STANDARD.decode(block_id).map_err(|_| {
        DvError::bad_request(format!(
            "The BlockId '{block_id}' is not a valid Base64 string."
        ))
    })?;
    if id_bytes.len() > MAX_BLOCK_ID_BYTES {
        return Err(DvError::bad_request(format!(
            "The BlockId must be at most {MAX_BLOCK_ID_BYTES} bytes before encoding; it is {}.",
            id_bytes.len()
        )));
    }
    let data = STANDARD
        .decode(required_str(body, "BlockData")?)
        .map_err(|_| DvError::bad_request("The BlockData is not a valid Base64 string."))?;
    if data.len() > CHUNK_SIZE {
        return Err(DvError::bad_request(format!(
            "A block holds at most {CHUNK_SIZE} bytes (4 MB); this one holds {}.",
            data.len()
        )));
    }
    let session = store
        .blobs
        .uploads
        .get_mut(token)
        .ok_or_else(|| unknown_token(token))?;
    let Parts::Blocks(blocks) = &mut session.parts else {
        return Err(unknown_token(token));
    };
    if let Some(other) = blocks.keys().next()
        && other.len() != block_id.len()
    {
        return Err(DvError::bad_request(format!(
            "Every BlockId of a file must have the same length: '{block_id}' differs from '{other}'."
        )));
    }
    blocks.insert(block_id.to_string(), data);
    Ok(Resp::empty(204))
}

fn commit_blocks(store: &mut Store, req: &Req, body: &Map<String, Value>) -> Result<Resp, DvError> {
    let token = required_str(body, "FileContinuationToken")?;
    let name = required_str(body, "FileName")?.to_string();
    let mime = required_str(body, "MimeType")?.to_string();
    let list: Vec<&str> = match body.get("BlockList") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().ok_or_else(|| {
                    DvError::bad_request("The BlockList must be an array of BlockId strings.")
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(DvError::bad_request(
                "The parameter 'BlockList' is required: the BlockId values in file order.",
            ));
        }
    };
    let session = store
        .blobs
        .uploads
        .get(token)
        .ok_or_else(|| unknown_token(token))?;
    let (e, id, col) = (session.table, session.row, session.column);
    if let Some(file_id) = session.committed {
        // Committed already (a retry): answer as before, store nothing twice.
        let size = store.blobs.files.get(&file_id).map_or(0, |f| f.bytes.len());
        let mut out = Map::new();
        out.insert("FileId".into(), json!(file_id.to_string()));
        out.insert("FileSizeInBytes".into(), json!(size));
        return Ok(action_response(req, "CommitFileBlocksUploadResponse", out));
    }
    let Parts::Blocks(blocks) = &session.parts else {
        return Err(unknown_token(token));
    };
    let mut bytes = Vec::new();
    for b in &list {
        let block = blocks.get(*b).ok_or_else(|| {
            DvError::bad_request(format!(
                "The BlockList names '{b}', which no UploadBlock sent."
            ))
        })?;
        bytes.extend_from_slice(block);
    }
    let size = bytes.len();
    let file_id = commit(store, req, e, id, col, name, mime, bytes)?;
    if let Some(s) = store.blobs.uploads.get_mut(token) {
        s.committed = Some(file_id);
        s.parts = Parts::Blocks(Default::default());
    }
    let mut out = Map::new();
    out.insert("FileId".into(), json!(file_id.to_string()));
    out.insert("FileSizeInBytes".into(), json!(size));
    Ok(action_response(req, "CommitFileBlocksUploadResponse", out))
}

fn initialize_download(
    store: &mut Store,
    req: &Req,
    body: &Map<String, Value>,
) -> Result<Resp, DvError> {
    let (e, id, col) = target(store, body)?;
    if matches!(store.entity(e).attributes[col].kind, AttrKind::Image { .. }) {
        // The messages download full-size images only ("Download images").
        let ent = store.entity(e);
        return Err(DvError::new(
            404,
            error::OBJECT_DOES_NOT_EXIST,
            format!(
                "No FileAttachment records found for imagedescriptorId: {} for image attribute: {} of {} record with id {id}.",
                image_id_of(store, e, id, col).unwrap_or_default(),
                ent.attributes[col].logical_name,
                ent.logical_name
            ),
        ));
    }
    let file_id = match store.get(e, &id).map(|r| &r.vals[col]) {
        Some(Val::Guid(g)) => *g,
        _ => {
            stored(store, e, id, col)?;
            return Err(DvError::internal("a file column without its file"));
        }
    };
    let file = stored(store, e, id, col)?;
    let mut out = Map::new();
    out.insert("FileSizeInBytes".into(), json!(file.bytes.len()));
    out.insert("FileName".into(), json!(file.name));
    let token = new_token();
    out.insert("FileContinuationToken".into(), json!(token));
    out.insert("IsChunkingSupported".into(), json!(true));
    store.blobs.downloads.insert(token, file_id);
    Ok(action_response(
        req,
        "InitializeFileBlocksDownloadResponse",
        out,
    ))
}

fn download_block(
    store: &mut Store,
    req: &Req,
    body: &Map<String, Value>,
) -> Result<Resp, DvError> {
    let token = required_str(body, "FileContinuationToken")?;
    let offset = required_int(body, "Offset")?;
    let length = required_int(body, "BlockLength")?;
    let file_id = store
        .blobs
        .downloads
        .get(token)
        .ok_or_else(|| unknown_token(token))?;
    let file = store.blobs.files.get(file_id).ok_or_else(|| {
        DvError::new(
            404,
            error::OBJECT_DOES_NOT_EXIST,
            format!("The file {file_id} no longer exists."),
        )
    })?;
    let size = file.bytes.len() as u64;
    if offset > size {
        return Err(DvError::bad_request(format!(
            "The Offset {offset} is past the end of the file ({size} bytes)."
        )));
    }
    let end = offset.saturating_add(length).min(size);
    let data = STANDARD.encode(&file.bytes[offset as usize..end as usize]);
    let mut out = Map::new();
    out.insert("Data".into(), json!(data));
    Ok(action_response(req, "DownloadBlockResponse", out))
}

fn delete_file(store: &mut Store, req: &Req, body: &Map<String, Value>) -> Result<Resp, DvError> {
    let text = required_str(body, "FileId")?;
    let file_id = Guid::parse(text)
        .ok_or_else(|| DvError::bad_request(format!("The FileId '{text}' is not a GUID.")))?;
    let Some(file) = store.blobs.files.get(&file_id) else {
        return Err(DvError::new(
            404,
            error::OBJECT_DOES_NOT_EXIST,
            format!("fileattachment With Id = {file_id} Does Not Exist"),
        ));
    };
    let (e, id, col) = (file.table, file.row, file.column);
    remove(store, req, e, id, col)?;
    Ok(Resp::empty(204))
}
