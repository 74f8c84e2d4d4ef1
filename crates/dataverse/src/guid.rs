//! GUIDs as Dataverse writes them: 8-4-4-4-12 hex digits.

/// Returns the GUID in lower case when `text` is one (braces are accepted and removed).
pub fn parse(text: &str) -> Option<String> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or(trimmed);
    let bytes = inner.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    for (index, byte) in bytes.iter().enumerate() {
        let dash_expected = matches!(index, 8 | 13 | 18 | 23);
        let valid = if dash_expected {
            *byte == b'-'
        } else {
            byte.is_ascii_hexdigit()
        };
        if !valid {
            return None;
        }
    }
    Some(inner.to_ascii_lowercase())
}

/// True when `text` is a GUID.
pub fn is_guid(text: &str) -> bool {
    parse(text).is_some()
}

/// A GUID derived from `parts`: the same parts always give the same GUID, different parts
/// practically never do. The connector names the rows it creates this way (Dataverse lets a
/// client choose the primary key of a new row), so that repeating a create whose answer was lost
/// meets the row it made instead of making a second one.
///
/// Written as an RFC 9562 version 8 UUID (custom, here SHA-256 of the length-prefixed parts),
/// so it cannot collide with the random version 4 GUIDs Dataverse assigns itself.
pub fn derive(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    // Written digit by digit: this runs once per created row, in bulk paths too.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_guids_are_stable_distinct_and_version_8() {
        let a = derive(&["key", "accounts", "0"]);
        assert_eq!(a, derive(&["key", "accounts", "0"]));
        assert_ne!(a, derive(&["key", "accounts", "1"]));
        assert_ne!(derive(&["ab", "c"]), derive(&["a", "bc"]));
        assert!(is_guid(&a));
        assert_eq!(&a[14..15], "8");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn accepts_plain_braced_and_upper_case_guids() {
        assert_eq!(
            parse("00000000-0000-0000-0000-00000000000A").as_deref(),
            Some("00000000-0000-0000-0000-00000000000a")
        );
        assert!(is_guid("{11bb11bb-cc22-dd33-ee44-55ff55ff55ff}"));
    }

    #[test]
    fn rejects_wrong_length_wrong_dashes_and_non_hex() {
        for bad in [
            "",
            "not-a-guid",
            "11bb11bb-cc22-dd33-ee44-55ff55ff55f",
            "11bb11bbcc22-dd33-ee44-55ff55ff55ff0",
            "11bb11bb-cc22-dd33-ee44-55ff55ff55fg",
            "{11bb11bb-cc22-dd33-ee44-55ff55ff55ff",
        ] {
            assert!(!is_guid(bad), "{bad:?} should be rejected");
        }
    }
}
