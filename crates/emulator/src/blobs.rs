//! What file and image columns hold outside their rows: the bytes of stored files and the
//! upload and download sessions in progress. The row keeps the file's id and name (see
//! `files.rs`, which reads and writes these); this is only the data, kept by the store.

use std::collections::{BTreeMap, HashMap};

use crate::guid::Guid;
use crate::schema::TableId;

/// One stored file: the value of a file column (or a full-size image) of one row.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub table: TableId,
    pub row: Guid,
    /// The column's position in its table.
    pub column: usize,
    pub name: String,
    pub mime_type: String,
    pub bytes: Vec<u8>,
}

/// How an upload in progress receives its bytes.
#[derive(Debug, Clone)]
pub enum Parts {
    /// `PATCH` with `x-ms-transfer-mode: chunked`: chunks by byte offset (`Content-Range`),
    /// complete once they cover `total` bytes without a gap.
    Chunks {
        total: Option<u64>,
        chunks: BTreeMap<u64, Vec<u8>>,
    },
    /// `UploadBlock` messages: blocks by block id, ordered by `CommitFileBlocksUpload`.
    Blocks(HashMap<String, Vec<u8>>),
}

/// An upload session: a chunked `PATCH` (named by its `sessiontoken`) or the block messages
/// (named by their `FileContinuationToken`).
#[derive(Debug, Clone)]
pub struct Upload {
    pub table: TableId,
    pub row: Guid,
    pub column: usize,
    pub name: String,
    pub parts: Parts,
    /// Set once the upload was stored: a repeated last chunk answers as before and stores
    /// nothing twice.
    pub committed: Option<Guid>,
}

/// File data of the store.
#[derive(Debug, Clone, Default)]
pub struct Blobs {
    /// Stored files by file id (the value of the file column).
    pub files: HashMap<Guid, StoredFile>,
    /// Uploads in progress by session token.
    pub uploads: HashMap<String, Upload>,
    /// Download continuation tokens (`InitializeFileBlocksDownload`) by token: the file id.
    pub downloads: HashMap<String, Guid>,
}
