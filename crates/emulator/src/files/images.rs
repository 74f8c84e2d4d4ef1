//! Image column data ("Use image column data",
//! learn.microsoft.com/power-apps/developer/data-platform/image-column-data): which images are
//! taken (GIF, JPEG, TIFF, BMP, PNG: "Image file types"), their size limit (`ProcessImageFailure`,
//! `0x80072553`), the thumbnail Dataverse keeps of each ("Resize rules for thumbnail-sized
//! images"), and the companion columns' values ("Download URL").
//!
//! The emulator does not resize images. A square image of at most 144x144 pixels needs no
//! resizing under the documented rules, and is its own thumbnail; any other image answers 501
//! naming what would be needed, never a thumbnail Dataverse would not make.

use crate::error::{self, DvError};
use crate::guid::Guid;

/// The side of a thumbnail, in pixels ("cropped on center to 144x144").
pub const THUMBNAIL_SIDE: u32 = 144;

/// What an image's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub mime_type: &'static str,
    pub width: u32,
    pub height: u32,
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The type and size of an image of one of the documented types, read from its header; None
/// for anything else.
pub fn info(b: &[u8]) -> Option<ImageInfo> {
    let image = |mime_type, width, height| {
        Some(ImageInfo {
            mime_type,
            width,
            height,
        })
    };
    if b.starts_with(b"\x89PNG\r\n\x1a\n") && b.get(12..16) == Some(b"IHDR") {
        return image("image/png", be32(b, 16)?, be32(b, 20)?);
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return image("image/gif", le16(b, 6)?, le16(b, 8)?);
    }
    if b.starts_with(b"BM") {
        let height = i32::from_le_bytes(b.get(22..26)?.try_into().ok()?);
        return image("image/bmp", le32(b, 18)?, height.unsigned_abs());
    }
    if b.starts_with(&[0xff, 0xd8]) {
        return jpeg(b);
    }
    if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        return tiff(b);
    }
    None
}

/// A JPEG's size from its first start-of-frame segment.
fn jpeg(b: &[u8]) -> Option<ImageInfo> {
    let mut at = 2;
    loop {
        while *b.get(at)? != 0xff {
            at += 1;
        }
        while *b.get(at)? == 0xff {
            at += 1;
        }
        let marker = *b.get(at)?;
        at += 1;
        if matches!(marker, 0xd8 | 0x01 | 0xd0..=0xd7) {
            continue;
        }
        let len = be16(b, at)? as usize;
        let sof = matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc);
        if sof {
            return Some(ImageInfo {
                mime_type: "image/jpeg",
                width: be16(b, at + 5)?,
                height: be16(b, at + 3)?,
            });
        }
        at += len;
    }
}

/// A TIFF's size from the ImageWidth (256) and ImageLength (257) tags of its first directory.
fn tiff(b: &[u8]) -> Option<ImageInfo> {
    let little = b.starts_with(b"II");
    let u16_at = |at| if little { le16(b, at) } else { be16(b, at) };
    let u32_at = |at| if little { le32(b, at) } else { be32(b, at) };
    let dir = u32_at(4)? as usize;
    let count = u16_at(dir)? as usize;
    let (mut width, mut height) = (None, None);
    for i in 0..count {
        let entry = dir + 2 + i * 12;
        let tag = u16_at(entry)?;
        let value = match u16_at(entry + 2)? {
            3 => u16_at(entry + 8)?,
            _ => u32_at(entry + 8)?,
        };
        match tag {
            256 => width = Some(value),
            257 => height = Some(value),
            _ => {}
        }
    }
    Some(ImageInfo {
        mime_type: "image/tiff",
        width: width?,
        height: height?,
    })
}

/// The documented `ProcessImageFailure` error.
pub fn failure(reason: &str) -> DvError {
    DvError::new(
        400,
        error::PROCESS_IMAGE_FAILURE,
        format!("Error occured when processing image. Reason: {reason}"),
    )
}

/// Checks an image for a column and returns its thumbnail: the image itself when it is a square
/// of at most 144x144 pixels (the resize rules leave it as it is); 501 for any other image.
pub fn thumbnail(
    entity: &str,
    column: &str,
    bytes: &[u8],
    max_size_kb: u32,
) -> Result<(Vec<u8>, &'static str), DvError> {
    let max = u64::from(max_size_kb) * 1024;
    if bytes.len() as u64 > max {
        let mb = |n: u64| n / (1024 * 1024);
        return Err(failure(&format!(
            "File size is too big. MaxSize: {} MB, Uploaded filesize: {} MB.",
            mb(max),
            mb(bytes.len() as u64)
        )));
    }
    let info = info(bytes).ok_or_else(|| {
        failure(&format!(
            "Update image properties failed for attribute: {column} of entity: {entity}: the data is not a GIF, JPEG, TIFF, BMP or PNG image."
        ))
    })?;
    if info.width != info.height || info.width > THUMBNAIL_SIDE || info.width == 0 {
        return Err(DvError::not_implemented(format_args!(
            "the thumbnail of a {}x{} image: Dataverse crops and resizes images to a square of at most 144x144 pixels and the emulator does not resize images (it takes square images of at most 144x144, which need no resizing)",
            info.width, info.height
        )));
    }
    Ok((bytes.to_vec(), info.mime_type))
}

/// `<column>_timestamp`: when the image was last set, in .NET ticks (100 ns since 0001-01-01),
/// as the documented example's 637388308718090885 is.
pub fn ticks(unix_secs: i64) -> i64 {
    (unix_secs + 62_135_596_800) * 10_000_000
}

/// `<column>_url`: "/Image/download.aspx?Entity=<entity>&Attribute=<column>&Id=<image id>&Timestamp=<time stamp>".
pub fn url(entity: &str, column: &str, image_id: &Guid, timestamp: i64) -> String {
    format!(
        "/Image/download.aspx?Entity={entity}&Attribute={column}&Id={image_id}&Timestamp={timestamp}"
    )
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A PNG header of the given size (enough for `info`).
    pub fn png(width: u32, height: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend_from_slice(&width.to_be_bytes());
        b.extend_from_slice(&height.to_be_bytes());
        b.extend_from_slice(&[8, 6, 0, 0, 0]);
        b
    }

    #[test]
    fn image_headers_give_type_and_size() {
        assert_eq!(
            info(&png(100, 100)),
            Some(ImageInfo {
                mime_type: "image/png",
                width: 100,
                height: 100
            })
        );
        let gif = [b"GIF89a".as_slice(), &[64, 0, 32, 0]].concat();
        assert_eq!(info(&gif).map(|i| (i.width, i.height)), Some((64, 32)));
        let jpeg = [
            0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc0, 0, 11, 8, 0, 50, 0, 60,
        ];
        assert_eq!(
            info(&jpeg).map(|i| (i.mime_type, i.width, i.height)),
            Some(("image/jpeg", 60, 50))
        );
        assert_eq!(info(b"%PDF-1.7"), None);
    }

    #[test]
    fn only_small_squares_are_their_own_thumbnail() {
        assert!(thumbnail("contact", "entityimage", &png(144, 144), 10_240).is_ok());
        assert_eq!(
            thumbnail("contact", "entityimage", &png(300, 428), 10_240)
                .unwrap_err()
                .status,
            501
        );
        let not_image = thumbnail("contact", "entityimage", b"hello", 10_240).unwrap_err();
        assert_eq!(not_image.code, error::PROCESS_IMAGE_FAILURE);
        let too_big = thumbnail("contact", "entityimage", &vec![0; 2048], 1).unwrap_err();
        assert_eq!(too_big.code, error::PROCESS_IMAGE_FAILURE);
        assert!(too_big.message.contains("File size is too big"));
    }

    #[test]
    fn the_timestamp_is_in_dotnet_ticks() {
        // 2020-10-24T12:07:51Z, the documented example's moment to the second.
        assert_eq!(ticks(1_603_541_271), 637_391_380_710_000_000);
    }
}
