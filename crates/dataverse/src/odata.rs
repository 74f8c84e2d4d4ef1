//! OData identifiers and literals, written so that user values cannot change a URL's meaning.

/// True for names Dataverse uses for entity sets, columns and navigation properties:
/// a letter or underscore, then letters, digits or underscores, at most 128 characters.
pub fn is_identifier(text: &str) -> bool {
    let mut bytes = text.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphabetic() || first == b'_' => {}
        _ => return false,
    }
    text.len() <= 128 && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An OData string literal: single quotes, a quote inside doubled (`O'Brien` → `'O''Brien'`).
pub fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for character in value.chars() {
        if character == '\'' {
            out.push('\'');
        }
        out.push(character);
    }
    out.push('\'');
    out
}

/// Appends `value` as an OData string literal for a URL (a key segment or a `$batch` request
/// line): quotes doubled, then every byte that is not unreserved (RFC 3986: letters, digits,
/// `-._~`) percent-encoded; the delimiting and doubled quotes stay as they are, as the OData
/// URL conventions write them (`SQUOTE-in-string`).
pub fn push_url_string_literal(out: &mut String, value: &str) {
    out.push('\'');
    for (index, piece) in value.split('\'').enumerate() {
        if index > 0 {
            out.push_str("''");
        }
        out.push_str(&crate::encoding::percent_encode(piece));
    }
    out.push('\'');
}

/// True for one entity tag as `If-Match` takes it: `*`, `"opaque"` or `W/"opaque"`, the opaque
/// part without quotes, spaces or control characters (RFC 9110 8.8.3).
pub fn is_entity_tag(text: &str) -> bool {
    if text == "*" {
        return true;
    }
    let quoted = text.strip_prefix("W/").unwrap_or(text);
    quoted
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .is_some_and(|opaque| {
            opaque
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_accept_dataverse_names_and_refuse_anything_that_changes_a_url() {
        for good in [
            "accounts",
            "new_projects",
            "_parentcustomerid_value",
            "msevtmgt_events",
        ] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in [
            "",
            "1accounts",
            "accounts(1)",
            "accounts?$top=1",
            "a b",
            "accounts/x",
            "ä",
        ] {
            assert!(!is_identifier(bad), "{bad}");
        }
        assert!(!is_identifier(&"a".repeat(129)));
    }

    #[test]
    fn entity_tags_are_one_tag_or_star() {
        for good in ["*", "W/\"12345\"", "\"12345\"", "W/\"\""] {
            assert!(is_entity_tag(good), "{good}");
        }
        for bad in [
            "W/\"1\", *",
            "12345",
            "W/\"1 2\"",
            "\"a\"b\"",
            "W/1",
            "",
            "* ",
        ] {
            assert!(!is_entity_tag(bad), "{bad}");
        }
    }

    #[test]
    fn string_literals_double_quotes_so_values_cannot_break_out() {
        assert_eq!(string_literal("O'Brien"), "'O''Brien'");
        assert_eq!(string_literal("'"), "''''");
        assert_eq!(string_literal("a') or (1 eq 1"), "'a'') or (1 eq 1'");
        assert_eq!(string_literal("Zoë"), "'Zoë'");
    }
}
