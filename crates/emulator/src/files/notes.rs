//! A note's file ("Use file data with Attachment and Note records",
//! learn.microsoft.com/power-apps/developer/data-platform/attachment-annotation-files): the
//! `documentbody`, `filename`, `mimetype`, `filesize` and `isdocument` columns of `annotation`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{self, DvError};
use crate::schema::TableId;
use crate::store::{Store, Val};

/// The most a note's `documentbody` may hold, in base64 characters: `Organization.MaxUploadFileSize`,
/// 5 MB by default, which "applies to the size of the file in Base64 encoding" ("Use file data
/// with Attachment and Note records", learn.microsoft.com/power-apps/developer/data-platform/attachment-annotation-files,
/// "File size limits").
pub const MAX_UPLOAD_FILE_SIZE: usize = 5_242_880;

/// A note's file (same page): `documentbody` holds the file as base64, `filename` and
/// `mimetype` beside it. When a write sets `documentbody`, its base64 is checked and its size
/// bounded by [`MAX_UPLOAD_FILE_SIZE`] (`0x80044a02` "Attachment file size is too big."), and
/// the system-set `filesize` (bytes of the file) and `isdocument` follow it.
pub fn note_document(
    store: &Store,
    e: TableId,
    cols: &mut Vec<(usize, Val)>,
) -> Result<(), DvError> {
    let ent = store.entity(e);
    if ent.logical_name != "annotation" {
        return Ok(());
    }
    let Some(body_col) = ent.attr("documentbody") else {
        return Ok(());
    };
    let Some((_, body)) = cols.iter().find(|(c, _)| *c == body_col) else {
        return Ok(());
    };
    let size = match body {
        Val::Str(text) => {
            if text.len() > MAX_UPLOAD_FILE_SIZE {
                return Err(DvError::new(
                    400,
                    error::ATTACHMENT_INVALID_FILE_SIZE,
                    "Attachment file size is too big.",
                ));
            }
            let bytes = STANDARD.decode(text.as_bytes()).map_err(|_| {
                DvError::payload(
                    &ent.entity_set_name,
                    "The value of 'documentbody' is not a valid Base64 string.",
                )
            })?;
            Some(bytes.len() as i64)
        }
        _ => None,
    };
    let mut set = |name: &str, v: Val| {
        if let Some(c) = ent.attr(name) {
            cols.retain(|(x, _)| *x != c);
            cols.push((c, v));
        }
    };
    set("filesize", Val::Int(size.unwrap_or(0)));
    set("isdocument", Val::Bool(size.is_some()));
    Ok(())
}
