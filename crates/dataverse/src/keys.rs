//! Addressing one record: by GUID, or by an alternate key of one or more columns, written as an
//! OData key segment whose values cannot break out of their quotes.

use serde_json::Value;

use crate::{guid, odata};

/// How a record is addressed.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordKey {
    /// The primary key.
    Id(String),
    /// Alternate key columns and values, in the order given.
    Alternate(Vec<(String, KeyValue)>),
}

/// One alternate key value.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    /// Written as a quoted string literal.
    Text(String),
    /// Written as it is (digits, a sign, one point).
    Number(String),
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Nothing was given.
    #[error("the key is empty")]
    Empty,
    #[error("{0:?} is neither a GUID nor an alternate key such as accountnumber='A-1'")]
    /// Neither a GUID nor `col=value` pairs.
    Unreadable(String),
    #[error("{0:?} is not a column name")]
    /// A column name that is not an identifier.
    Column(String),
    #[error("the value of {0} must be text or a number")]
    /// A JSON value that is neither text nor a number.
    Value(String),
    #[error("the quoted value of {0} is not closed")]
    /// A quote without its closing quote.
    Unclosed(String),
    /// A control character (CR, LF, tab, NUL...) in a value: no key column holds one, and in a
    /// header or a `$batch` request line it would start a line of its own.
    #[error("the value of {0} contains a control character (such as a line break)")]
    Control(String),
    /// A value longer than any text column holds.
    #[error(
        "the value of {0} has {1} characters; a key column holds at most {MAX_KEY_VALUE_CHARS}"
    )]
    TooLong(String, usize),
}

/// The longest text a single line of text column holds (4,000 characters: "Single line of text"
/// columns, learn.microsoft.com/power-apps/maker/data-platform/types-of-fields); no alternate
/// key can match a longer value, so such a key is refused before a URL is built from it.
pub const MAX_KEY_VALUE_CHARS: usize = 4_000;

impl RecordKey {
    /// Reads a key as users write it: a GUID (braces allowed), `col='text'` or `col=42`
    /// (several separated by commas), or a JSON object of columns and values.
    pub fn parse(text: &str) -> Result<RecordKey, KeyError> {
        RecordKey::parse_unchecked(text)?.checked()
    }

    fn parse_unchecked(text: &str) -> Result<RecordKey, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        if let Some(id) = guid::parse(text) {
            return Ok(RecordKey::Id(id));
        }
        if text.starts_with('{') {
            let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
                return Err(KeyError::Unreadable(text.to_string()));
            };
            return RecordKey::from_object_unchecked(&object);
        }
        if !text.contains('=') {
            return Err(KeyError::Unreadable(text.to_string()));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (column, after) = rest
                .split_once('=')
                .ok_or_else(|| KeyError::Unreadable(text.to_string()))?;
            let column = column.trim();
            if !odata::is_identifier(column) {
                return Err(KeyError::Column(column.to_string()));
            }
            let after = after.trim_start();
            let (value, remaining) = if let Some(quoted) = after.strip_prefix('\'') {
                read_quoted(quoted).ok_or_else(|| KeyError::Unclosed(column.to_string()))?
            } else {
                let end = after.find(',').unwrap_or(after.len());
                let raw = after[..end].trim();
                let value = if is_number(raw) {
                    KeyValue::Number(raw.to_string())
                } else {
                    KeyValue::Text(raw.to_string())
                };
                (value, &after[end..])
            };
            parts.push((column.to_ascii_lowercase(), value));
            let remaining = remaining.trim_start();
            rest = match remaining.strip_prefix(',') {
                Some(next) => next.trim_start(),
                None if remaining.is_empty() => remaining,
                None => return Err(KeyError::Unreadable(text.to_string())),
            };
        }
        Ok(RecordKey::Alternate(parts))
    }

    /// Reads a JSON object of key columns and values.
    pub fn from_object(object: &serde_json::Map<String, Value>) -> Result<RecordKey, KeyError> {
        RecordKey::from_object_unchecked(object)?.checked()
    }

    fn from_object_unchecked(
        object: &serde_json::Map<String, Value>,
    ) -> Result<RecordKey, KeyError> {
        if object.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut parts = Vec::with_capacity(object.len());
        for (column, value) in object {
            if !odata::is_identifier(column) {
                return Err(KeyError::Column(column.clone()));
            }
            let value = match value {
                Value::String(text) => KeyValue::Text(text.clone()),
                // JSON allows exponents (1e300); an OData key literal does not.
                Value::Number(number) if is_number(&number.to_string()) => {
                    KeyValue::Number(number.to_string())
                }
                _ => return Err(KeyError::Value(column.clone())),
            };
            parts.push((column.to_ascii_lowercase(), value));
        }
        Ok(RecordKey::Alternate(parts))
    }

    /// Refuses values no key column can hold: control characters, or more than
    /// [`MAX_KEY_VALUE_CHARS`] characters.
    fn checked(self) -> Result<RecordKey, KeyError> {
        if let RecordKey::Alternate(parts) = &self {
            for (column, value) in parts {
                let KeyValue::Text(text) = value else {
                    continue;
                };
                if text.chars().any(char::is_control) {
                    return Err(KeyError::Control(column.clone()));
                }
                let length = text.chars().count();
                if length > MAX_KEY_VALUE_CHARS {
                    return Err(KeyError::TooLong(column.clone(), length));
                }
            }
        }
        Ok(self)
    }

    /// `(guid)` or `(col1='a',col2=2)`, percent-encoded for a URL path or a `$batch` request
    /// line: the one place where a key becomes part of a URL.
    ///
    /// A text value is written as an OData string literal (quotes doubled) whose characters
    /// other than the unreserved ones (RFC 3986) and the doubled quotes are percent-encoded, so
    /// `%41` stays `%41` instead of being read as `A`, and `?`, `#`, `/`, spaces and line breaks
    /// cannot end the path or the request line.
    pub fn segment(&self) -> String {
        match self {
            RecordKey::Id(id) => format!("({id})"),
            RecordKey::Alternate(parts) => {
                let mut out = String::from("(");
                for (index, (column, value)) in parts.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    out.push_str(column);
                    out.push('=');
                    match value {
                        KeyValue::Text(text) => odata::push_url_string_literal(&mut out, text),
                        KeyValue::Number(number) => out.push_str(number),
                    }
                }
                out.push(')');
                out
            }
        }
    }

    /// The key as people write it (`accountnumber='A-1'`, or the GUID), for messages and
    /// outputs; never put into a URL (see [`RecordKey::segment`]).
    pub fn display(&self) -> String {
        match self {
            RecordKey::Id(id) => id.clone(),
            RecordKey::Alternate(parts) => {
                let inner: Vec<String> = parts
                    .iter()
                    .map(|(column, value)| match value {
                        KeyValue::Text(text) => format!("{column}={}", odata::string_literal(text)),
                        KeyValue::Number(number) => format!("{column}={number}"),
                    })
                    .collect();
                inner.join(",")
            }
        }
    }

    /// The GUID, when addressed by primary key.
    pub fn id(&self) -> Option<&str> {
        match self {
            RecordKey::Id(id) => Some(id),
            RecordKey::Alternate(_) => None,
        }
    }
}

fn read_quoted(text: &str) -> Option<(KeyValue, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((index, character)) = chars.next() {
        if character == '\'' {
            if matches!(chars.peek(), Some((_, '\''))) {
                chars.next();
                value.push('\'');
            } else {
                return Some((KeyValue::Text(value), &text[index + 1..]));
            }
        } else {
            value.push(character);
        }
    }
    None
}

/// An OData integer or decimal literal: digits, with an optional sign and one point between
/// digits (`.`, `1.` and `-.` are not numbers).
fn is_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "1"));
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && all_digits(fraction)
}

/// The record ID at the end of an `OData-EntityId` header: the GUID when the URL has one,
/// otherwise the key segment's content (`accountnumber='A-1'`).
pub fn id_from_entity_url(url: &str) -> Option<String> {
    let open = url.rfind('(')?;
    let inner = url[open + 1..].strip_suffix(')')?;
    Some(guid::parse(inner).unwrap_or_else(|| inner.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(text: &str) -> String {
        RecordKey::parse(text).unwrap().segment()
    }

    #[test]
    fn guids_with_or_without_braces_address_the_primary_key() {
        assert_eq!(
            segment("{6F4B8D4E-0000-0000-0000-000000000001}"),
            "(6f4b8d4e-0000-0000-0000-000000000001)"
        );
    }

    #[test]
    fn alternate_keys_are_escaped_so_values_cannot_break_out() {
        let cases = [
            ("accountnumber='A-1'", "(accountnumber='A-1')"),
            ("accountnumber=A-1", "(accountnumber='A-1')"),
            ("lastname='O''Brien'", "(lastname='O''Brien')"),
            (r#"{"lastname": "O'Brien"}"#, "(lastname='O''Brien')"),
            (r#"{"name": "'"}"#, "(name='''')"),
            (
                r#"{"name": "a') or (x eq 'b"}"#,
                "(name='a''%29%20or%20%28x%20eq%20''b')",
            ),
            (r#"{"name": "100% (net)"}"#, "(name='100%25%20%28net%29')"),
            (
                r#"{"name": "Zoë Ångström"}"#,
                "(name='Zo%C3%AB%20%C3%85ngstr%C3%B6m')",
            ),
            ("accountnumber='100%41'", "(accountnumber='100%2541')"),
            ("name='Fourth Coffee'", "(name='Fourth%20Coffee')"),
            (
                r#"{"name": "a?b#c/d&e=f+g"}"#,
                "(name='a%3Fb%23c%2Fd%26e%3Df%2Bg')",
            ),
            ("key1='a',key2=2", "(key1='a',key2=2)"),
            (r#"{"key1": "a", "key2": 2}"#, "(key1='a',key2=2)"),
        ];
        for (given, expected) in cases {
            assert_eq!(segment(given), expected, "{given}");
        }
    }

    #[test]
    fn unreadable_keys_are_refused_with_the_reason() {
        assert_eq!(RecordKey::parse(""), Err(KeyError::Empty));
        assert!(matches!(
            RecordKey::parse("A-1"),
            Err(KeyError::Unreadable(_))
        ));
        assert!(matches!(
            RecordKey::parse("account number='A'"),
            Err(KeyError::Column(_))
        ));
        assert!(matches!(
            RecordKey::parse("name='open"),
            Err(KeyError::Unclosed(_))
        ));
        assert!(matches!(
            RecordKey::parse(r#"{"a": [1]}"#),
            Err(KeyError::Value(_))
        ));
        assert!(matches!(
            RecordKey::parse("a='x' b='y'"),
            Err(KeyError::Unreadable(_))
        ));
    }

    #[test]
    fn control_characters_and_overlong_values_are_refused() {
        assert_eq!(
            RecordKey::parse("name='a\r\nIf-None-Match: *'"),
            Err(KeyError::Control("name".into()))
        );
        assert_eq!(
            RecordKey::parse(r#"{"name": "a\u0000"}"#),
            Err(KeyError::Control("name".into()))
        );
        let long = "x".repeat(MAX_KEY_VALUE_CHARS + 1);
        assert_eq!(
            RecordKey::parse(&format!("name='{long}'")),
            Err(KeyError::TooLong("name".into(), MAX_KEY_VALUE_CHARS + 1))
        );
        assert!(RecordKey::parse(&format!("name='{}'", "é".repeat(MAX_KEY_VALUE_CHARS))).is_ok());
    }

    #[test]
    fn display_is_the_unencoded_key() {
        assert_eq!(
            RecordKey::parse("name='Fourth Coffee',n=2")
                .unwrap()
                .display(),
            "name='Fourth Coffee',n=2"
        );
    }

    #[test]
    fn entity_urls_give_the_guid_or_the_key() {
        assert_eq!(
            id_from_entity_url(
                "https://x/api/data/v9.2/accounts(6F4B8D4E-0000-0000-0000-000000000001)"
            )
            .as_deref(),
            Some("6f4b8d4e-0000-0000-0000-000000000001")
        );
        assert_eq!(
            id_from_entity_url("https://x/api/data/v9.2/accounts(accountnumber='A-1')").as_deref(),
            Some("accountnumber='A-1'")
        );
        assert_eq!(id_from_entity_url("https://x/"), None);
    }
}
