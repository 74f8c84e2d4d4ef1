//! Resource paths below `/api/data/v9.x/`: segments with optional keys, e.g.
//! `accounts(accountnumber='A-1')/primarycontactid/$ref`.

use crate::error::DvError;
use crate::guid::Guid;
use crate::odata::filter::Lit;
use crate::odata::query::split_top;

/// One path segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub name: String,
    /// The raw text between the parentheses, if any.
    pub key: Option<String>,
}

/// A parsed key.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Id(Guid),
    /// `name=value` pairs (alternate keys, `LogicalName='x'`).
    Named(Vec<(String, Lit)>),
    /// A single unnamed non-GUID value (`('account')`).
    Single(Lit),
}

/// Splits a path at `/` outside quotes and parentheses and decodes each segment.
pub fn segments(path: &str) -> Result<Vec<Segment>, DvError> {
    let mut out = Vec::new();
    for raw in split_top(path, '/') {
        if raw.is_empty() {
            continue;
        }
        let text = percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned();
        let seg = match text.find('(') {
            Some(i) if text.ends_with(')') => Segment {
                name: text[..i].to_string(),
                key: Some(text[i + 1..text.len() - 1].to_string()),
            },
            Some(_) => return Err(DvError::segment_not_found(&text)),
            None => Segment {
                name: text,
                key: None,
            },
        };
        out.push(seg);
    }
    Ok(out)
}

fn literal(raw: &str) -> Option<Lit> {
    let t = raw.trim();
    if let Some(inner) = t.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return Some(Lit::Str(inner.replace("''", "'")));
    }
    if let Some(g) = Guid::parse(t) {
        return Some(Lit::Guid(g));
    }
    match t {
        "true" => return Some(Lit::Bool(true)),
        "false" => return Some(Lit::Bool(false)),
        "null" => return Some(Lit::Null),
        _ => {}
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(Lit::Int(i));
    }
    t.parse::<f64>().ok().map(Lit::Num)
}

/// Parses the text between a segment's parentheses.
pub fn parse_key(raw: &str) -> Result<Key, DvError> {
    let bad = || {
        DvError::bad_request(format!(
            "Bad Request - Error in query syntax: invalid key '({raw})'."
        ))
    };
    let t = raw.trim();
    if let Some(g) = Guid::parse(t) {
        return Ok(Key::Id(g));
    }
    let parts = split_top(t, ',');
    if parts.len() == 1 && !parts[0].contains('=') {
        return literal(parts[0]).map(Key::Single).ok_or_else(bad);
    }
    let mut named = Vec::new();
    for p in parts {
        let (k, v) = p.split_once('=').ok_or_else(bad)?;
        named.push((k.trim().to_string(), literal(v).ok_or_else(bad)?));
    }
    Ok(Key::Named(named))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_slashes_and_quotes_stay_in_one_segment() {
        let s = segments("accounts(accountnumber='A/1,''x''')/primarycontactid/$ref").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].key.as_deref(), Some("accountnumber='A/1,''x'''"));
        assert_eq!(
            parse_key(s[0].key.as_deref().unwrap()).unwrap(),
            Key::Named(vec![("accountnumber".into(), Lit::Str("A/1,'x'".into()))])
        );
    }

    #[test]
    fn guid_and_compound_keys_parse() {
        assert!(matches!(
            parse_key("7eb682f1-ca75-e511-80d4-00155d2a68d1").unwrap(),
            Key::Id(_)
        ));
        assert_eq!(
            parse_key("k1=2,k2='b'").unwrap(),
            Key::Named(vec![
                ("k1".into(), Lit::Int(2)),
                ("k2".into(), Lit::Str("b".into()))
            ])
        );
        assert!(parse_key("not a key").is_err());
    }
}
