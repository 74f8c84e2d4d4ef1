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

#[cfg(test)]
mod tests {
    use super::*;

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
