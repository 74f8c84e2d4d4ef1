//! An action's input JSON, checked against the action's input definitions before any request.
//!
//! Low-code hosts send what their designers hold: numbers as strings, lists as comma-separated
//! text, empty strings for empty fields. Those forms are accepted; anything else that does not
//! fit an input's kind is refused with the input's key and label, and so are unknown keys, which
//! are almost always typos that would otherwise be silently ignored.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, invalid_field, invalid_input};

/// A checked input value.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    Text(String),
    Flag(bool),
    Number(f64),
    Json(Value),
    List(Vec<String>),
    Pairs(Vec<(String, String)>),
    Bytes(Vec<u8>),
}

/// Checked inputs of one invocation, keyed by input key. Absent optional inputs without a default
/// are not in the map.
#[derive(Debug, Clone, Default)]
pub struct Input {
    values: BTreeMap<&'static str, Typed>,
    /// Keys outside the definitions, kept only for actions with dynamic inputs, whose handler
    /// checks them against the inputs the environment gives (see `ActionDef::dynamic_inputs`).
    extra: Map<String, Value>,
}

/// How strictly `Input::parse_with` reads.
#[derive(Clone, Copy)]
struct Mode {
    /// Keep unknown keys in `Input::extra` instead of refusing them.
    open: bool,
    /// Skip the check of required inputs: a designer's form being filled in.
    partial: bool,
}

impl Input {
    /// Parses `json` and checks it against `definitions`.
    pub fn parse(definitions: &[InputDef], json: &str) -> Result<Input> {
        Self::parse_with(
            definitions,
            json,
            Mode {
                open: false,
                partial: false,
            },
        )
    }

    /// As `parse`, keeping keys outside `definitions` in `extra` (still refused when empty-named
    /// or holding control characters in the key) for a handler to check.
    pub fn parse_open(definitions: &[InputDef], json: &str) -> Result<Input> {
        Self::parse_with(
            definitions,
            json,
            Mode {
                open: true,
                partial: false,
            },
        )
    }

    /// As `parse_open`, without requiring the required inputs: what a designer has so far.
    pub fn parse_partial(definitions: &[InputDef], json: &str) -> Result<Input> {
        Self::parse_with(
            definitions,
            json,
            Mode {
                open: true,
                partial: true,
            },
        )
    }

    /// The keys outside the action's own inputs (only kept by `parse_open`), empty values left
    /// out as for defined inputs.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }

    fn parse_with(definitions: &[InputDef], json: &str, mode: Mode) -> Result<Input> {
        let mut object = parse_object(json)?;
        for key in object.keys() {
            if mode.open && !definitions.iter().any(|d| d.key == key) {
                if key.is_empty() || key.chars().any(char::is_control) {
                    return Err(invalid_field(
                        "input",
                        None,
                        format!("has a key that is empty or holds a control character: {key:?}"),
                    ));
                }
                continue;
            }
            if !definitions
                .iter()
                .any(|d| d.key == key && d.kind != Kind::Connection)
            {
                let known: Vec<&str> = definitions
                    .iter()
                    .filter(|d| d.kind != Kind::Connection)
                    .map(|d| d.key)
                    .collect();
                let suggestion = closest(key, &known)
                    .map(|near| format!("; did you mean \"{near}\"?"))
                    .unwrap_or_default();
                return Err(invalid_field(
                    key,
                    None,
                    format!(
                        "this action has no such input{suggestion} (inputs: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        let mut values = BTreeMap::new();
        for definition in definitions.iter().filter(|d| d.kind != Kind::Connection) {
            let given = object
                .remove(definition.key)
                .filter(|value| !is_empty(value));
            let value = match (given, definition.default) {
                (Some(value), _) => value,
                (None, Some(default)) => default_value(definition, default),
                (None, None) if definition.required && !mode.partial => {
                    return Err(invalid_input(definition, "is required"));
                }
                (None, None) => continue,
            };
            let typed = convert(definition, value)?;
            check_one_line(definition, &typed)?;
            check_format(definition, &typed)?;
            values.insert(definition.key, typed);
        }
        // What is left are the unknown keys, which `open` keeps; a connection key never reaches
        // here as data, it was refused above.
        let extra = if mode.open {
            object
                .retain(|key, value| !is_empty(value) && !definitions.iter().any(|d| d.key == key));
            object
        } else {
            Map::new()
        };
        Ok(Input { values, extra })
    }

    pub fn text(&self, key: &str) -> Option<&str> {
        match self.values.get(key) {
            Some(Typed::Text(text)) => Some(text),
            _ => None,
        }
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.values.get(key), Some(Typed::Flag(true)))
    }

    pub fn number(&self, key: &str) -> Option<f64> {
        match self.values.get(key) {
            Some(Typed::Number(number)) => Some(*number),
            _ => None,
        }
    }

    pub fn json(&self, key: &str) -> Option<&Value> {
        match self.values.get(key) {
            Some(Typed::Json(value)) => Some(value),
            _ => None,
        }
    }

    pub fn list(&self, key: &str) -> &[String] {
        match self.values.get(key) {
            Some(Typed::List(list)) => list,
            _ => &[],
        }
    }

    /// A `file` input's bytes.
    pub fn bytes(&self, key: &str) -> Option<&[u8]> {
        match self.values.get(key) {
            Some(Typed::Bytes(bytes)) => Some(bytes),
            _ => None,
        }
    }

    pub fn pairs(&self, key: &str) -> &[(String, String)] {
        match self.values.get(key) {
            Some(Typed::Pairs(pairs)) => pairs,
            _ => &[],
        }
    }
}

fn parse_object(json: &str) -> Result<Map<String, Value>> {
    if json.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(invalid_field(
            "input",
            None,
            format!(
                "must be a JSON object of input keys and values, got {}",
                type_name(&other)
            ),
        )),
        Err(problem) => Err(invalid_field(
            "input",
            None,
            format!("is not valid JSON: {problem}"),
        )),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.trim().is_empty(),
        _ => false,
    }
}

/// Defaults are written as designers show them; code defaults are JSON text.
fn default_value(definition: &InputDef, default: &str) -> Value {
    match definition.kind {
        Kind::Code => {
            serde_json::from_str(default).unwrap_or_else(|_| Value::String(default.to_string()))
        }
        _ => Value::String(default.to_string()),
    }
}

/// Base64 bytes, as designers send a picked file: the standard alphabet, padding optional, line
/// breaks ignored, and a browser's `data:<type>;base64,` prefix taken off.
fn decode_file(definition: &InputDef, text: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let body = match text.strip_prefix("data:") {
        Some(url) => match url.split_once(";base64,") {
            Some((_, body)) => body,
            None => {
                return Err(invalid_input(
                    definition,
                    "is a data URL without \";base64,\"; give the file's bytes in base64",
                ));
            }
        },
        None => text,
    };
    let compact: String = body.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    LENIENT.decode(compact.trim()).map_err(|problem| {
        invalid_input(
            definition,
            format!("must be the file's bytes in base64: {problem}"),
        )
    })
}

fn convert(definition: &InputDef, value: Value) -> Result<Typed> {
    let wrong = |expected: &str, value: &Value| {
        invalid_input(
            definition,
            format!("must be {expected}, got {}", type_name(value)),
        )
    };
    Ok(match definition.kind {
        Kind::Text | Kind::Multiline | Kind::Secret | Kind::Picklist => {
            let text = match value {
                Value::String(text) => text,
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                other => return Err(wrong("text", &other)),
            };
            if definition.kind == Kind::Picklist
                && !definition.choices.is_empty()
                && !definition.choices.iter().any(|(_, choice)| *choice == text)
            {
                let allowed: Vec<&str> = definition
                    .choices
                    .iter()
                    .map(|(_, choice)| *choice)
                    .collect();
                return Err(invalid_input(
                    definition,
                    format!("{text:?} is not one of {}", allowed.join(", ")),
                ));
            }
            Typed::Text(text)
        }
        Kind::Boolean => match &value {
            Value::Bool(flag) => Typed::Flag(*flag),
            Value::String(text) if text.eq_ignore_ascii_case("true") => Typed::Flag(true),
            Value::String(text) if text.eq_ignore_ascii_case("false") => Typed::Flag(false),
            other => return Err(wrong("true or false", other)),
        },
        Kind::Number => match &value {
            Value::Number(number) => Typed::Number(number.as_f64().unwrap_or(f64::NAN)),
            Value::String(text) => match text.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => Typed::Number(number),
                _ => {
                    return Err(invalid_input(
                        definition,
                        format!("must be a number, got {text:?}"),
                    ));
                }
            },
            other => return Err(wrong("a number", other)),
        },
        Kind::File => match value {
            Value::String(text) => Typed::Bytes(decode_file(definition, &text)?),
            other => return Err(wrong("base64 text", &other)),
        },
        Kind::Code => match value {
            Value::String(text) => match serde_json::from_str(&text) {
                Ok(parsed) => Typed::Json(parsed),
                Err(_) => Typed::Json(Value::String(text)),
            },
            other => Typed::Json(other),
        },
        Kind::StringList => match value {
            Value::String(text) => Typed::List(
                text.split(',')
                    .map(str::trim)
                    .filter(|entry| !entry.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            Value::Array(entries) => {
                let mut list = Vec::with_capacity(entries.len());
                for (index, entry) in entries.into_iter().enumerate() {
                    match entry {
                        Value::String(text) if !text.trim().is_empty() => {
                            list.push(text.trim().to_string())
                        }
                        Value::String(_) | Value::Null => {}
                        other => {
                            return Err(invalid_input(
                                definition,
                                format!("entry {index} must be text, got {}", type_name(&other)),
                            ));
                        }
                    }
                }
                Typed::List(list)
            }
            other => return Err(wrong("a list of text", &other)),
        },
        Kind::KeyValueList => Typed::Pairs(key_values(definition, value)?),
        Kind::FieldMap => Typed::Json(Value::Object(field_map(definition, value)?)),
        Kind::Connection => {
            return Err(invalid_input(
                definition,
                "is passed as the connection, not in the input",
            ));
        }
    })
}

fn key_values(definition: &InputDef, value: Value) -> Result<Vec<(String, String)>> {
    let scalar = |key: &str, value: Value| -> Result<String> {
        match value {
            Value::String(text) => Ok(text),
            Value::Number(number) => Ok(number.to_string()),
            Value::Bool(flag) => Ok(flag.to_string()),
            Value::Null => Ok(String::new()),
            other => Err(invalid_input(
                definition,
                format!(
                    "the value of {key:?} must be text, got {}",
                    type_name(&other)
                ),
            )),
        }
    };
    match value {
        Value::Object(object) => object
            .into_iter()
            .map(|(key, value)| Ok((key.clone(), scalar(&key, value)?)))
            .collect(),
        Value::Array(entries) => pair_entries(definition, entries)?
            .into_iter()
            .map(|(key, value)| Ok((key.clone(), scalar(&key, value)?)))
            .collect(),
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(parsed @ (Value::Object(_) | Value::Array(_))) => key_values(definition, parsed),
            _ => Err(invalid_input(
                definition,
                "must be a JSON object of keys and values, or a list of {\"key\", \"value\"} objects",
            )),
        },
        other => Err(invalid_input(
            definition,
            format!(
                "must be a list of keys and values, got {}",
                type_name(&other)
            ),
        )),
    }
}

/// The entries of an array of `{"key": ..., "value": ...}` objects, in order.
fn pair_entries(definition: &InputDef, entries: Vec<Value>) -> Result<Vec<(String, Value)>> {
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let Value::Object(mut pair) = entry else {
                return Err(invalid_input(
                    definition,
                    format!("entry {index} must be an object with \"key\" and \"value\""),
                ));
            };
            let Some(Value::String(key)) = pair.remove("key") else {
                return Err(invalid_input(
                    definition,
                    format!("entry {index} has no text \"key\""),
                ));
            };
            Ok((key, pair.remove("value").unwrap_or(Value::Null)))
        })
        .collect()
}

/// A JSON object, an array of `{"key", "value"}` objects, or JSON text of either; values keep
/// their JSON types.
fn field_map(definition: &InputDef, value: Value) -> Result<Map<String, Value>> {
    match value {
        Value::Object(object) => Ok(object),
        Value::Array(entries) => {
            let mut object = Map::new();
            for (key, value) in pair_entries(definition, entries)? {
                if object.insert(key.clone(), value).is_some() {
                    return Err(invalid_input(definition, format!("{key:?} is given twice")));
                }
            }
            Ok(object)
        }
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(parsed @ (Value::Object(_) | Value::Array(_))) => field_map(definition, parsed),
            _ => Err(invalid_input(
                definition,
                "must be a JSON object of fields and values",
            )),
        },
        other => Err(invalid_input(
            definition,
            format!("must be fields and values, got {}", type_name(&other)),
        )),
    }
}

/// Text, list and key-value inputs are one line each: their values end up in URLs, headers
/// (ETags, annotations, raw headers) and `$batch` request lines, where a line break or another
/// control character would start a header or a request of its own. Multi-line text and JSON
/// inputs are bodies, where such characters are data.
fn check_one_line(definition: &InputDef, typed: &Typed) -> Result<()> {
    let has_control = |text: &str| text.chars().any(char::is_control);
    let bad = match typed {
        Typed::Text(text) if matches!(definition.kind, Kind::Text | Kind::Picklist) => {
            has_control(text)
        }
        Typed::List(items) => items.iter().any(|item| has_control(item)),
        Typed::Pairs(pairs) => pairs
            .iter()
            .any(|(key, value)| has_control(key) || has_control(value)),
        _ => false,
    };
    if bad {
        return Err(invalid_input(
            definition,
            "contains a control character (such as a line break); this input takes one line of text",
        ));
    }
    Ok(())
}

fn check_format(definition: &InputDef, typed: &Typed) -> Result<()> {
    match (definition.format, typed) {
        (Format::Any, _) => Ok(()),
        (Format::Guid, Typed::Text(text)) if dataverse::guid::is_guid(text) => Ok(()),
        (Format::Guid, Typed::Text(text)) => Err(invalid_input(
            definition,
            format!(
                "{text:?} is not a GUID (expected 8-4-4-4-12 hex digits, such as 00000000-0000-0000-0000-000000000001)"
            ),
        )),
        (Format::Identifier, Typed::Text(text)) if dataverse::odata::is_identifier(text) => Ok(()),
        (Format::Identifier, Typed::Text(text)) => Err(invalid_input(
            definition,
            format!(
                "{text:?} is not a table or column name (letters, digits and underscores only)"
            ),
        )),
        (Format::Identifiers, Typed::List(list)) => match list
            .iter()
            .find(|name| !dataverse::odata::is_identifier(name))
        {
            None => Ok(()),
            Some(bad) => Err(invalid_input(
                definition,
                format!("{bad:?} is not a column name (letters, digits and underscores only)"),
            )),
        },
        // One tag: a list (`W/"1", *`) would hold `*` and match any version, which is no
        // concurrency check at all (RFC 9110 13.1.1).
        (Format::EntityTag, Typed::Text(text)) if dataverse::odata::is_entity_tag(text) => Ok(()),
        (Format::EntityTag, Typed::Text(text)) => Err(invalid_input(
            definition,
            format!(
                "{:?} is not one entity tag such as W/\"12345\" (the record's @odata.etag)",
                crate::error::short(text)
            ),
        )),
        (Format::Range(low, high), Typed::Number(number)) => {
            if number.fract() != 0.0 || *number < low as f64 || *number > high as f64 {
                Err(invalid_input(
                    definition,
                    format!("must be a whole number from {low} to {high}, got {number}"),
                ))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The known key closest to `key` by edit distance, when it is close enough to be a typo.
pub fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| {
            (
                edit_distance(&key.to_ascii_lowercase(), &candidate.to_ascii_lowercase()),
                *candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::dynamics::connector::types::ErrorCode;

    const NAME: InputDef = InputDef::new("name", "Name", Kind::Text).required();
    const NOTES: InputDef = InputDef::new("notes", "Notes", Kind::Multiline);
    const COUNT: InputDef = InputDef::new("count", "Count", Kind::Number)
        .default("10")
        .format(Format::Range(1, 100));
    const ENABLED: InputDef = InputDef::new("enabled", "Enabled", Kind::Boolean).default("false");
    const MODE: InputDef = InputDef::new("mode", "Mode", Kind::Picklist)
        .default("upsert")
        .choices(&[("Upsert", "upsert"), ("Create only", "createOnly")]);
    const COLUMNS: InputDef =
        InputDef::new("columns", "Columns", Kind::StringList).format(Format::Identifiers);
    const HEADERS: InputDef = InputDef::new("headers", "Headers", Kind::KeyValueList);
    const FIELDS: InputDef = InputDef::new("fields", "Fields", Kind::FieldMap);
    const BODY: InputDef = InputDef::new("body", "Body", Kind::Code);
    const ID: InputDef = InputDef::new("id", "ID", Kind::Text).format(Format::Guid);
    const TABLE: InputDef = InputDef::new("table", "Table", Kind::Text).format(Format::Identifier);
    const CONNECTION: InputDef = InputDef::new("connection", "Connection", Kind::Connection);

    const INPUTS: &[InputDef] = &[
        CONNECTION, NAME, NOTES, COUNT, ENABLED, MODE, COLUMNS, HEADERS, FIELDS, BODY, ID, TABLE,
    ];

    fn parse(json: &str) -> Result<Input> {
        Input::parse(INPUTS, json)
    }

    #[test]
    fn an_open_parse_keeps_unknown_keys_for_the_handler_and_still_checks_its_own() {
        let input = Input::parse_open(
            INPUTS,
            r#"{"name":"A","Target":{"x":1},"Empty":"","count":"5"}"#,
        )
        .unwrap();
        assert_eq!(input.text("name"), Some("A"));
        assert_eq!(input.number("count"), Some(5.0));
        let extra: Vec<&str> = input.extra().keys().map(String::as_str).collect();
        assert_eq!(
            extra,
            ["Target"],
            "empty values are left out as for defined inputs"
        );
        // Its own inputs are checked as strictly as ever, and a connection is never data.
        assert!(Input::parse_open(INPUTS, r#"{"name":"A","count":"x"}"#).is_err());
        assert!(Input::parse_open(INPUTS, r#"{"name":"A","connection":"c"}"#).is_err());
        assert!(Input::parse_open(INPUTS, r#"{"name":"A","a\u0000b":1}"#).is_err());
        assert!(
            Input::parse_open(INPUTS, r#"{"Target":1}"#).is_err(),
            "name is required"
        );
        // A strict parse refuses what an open one keeps.
        assert!(parse(r#"{"name":"A","Target":1}"#).is_err());
        assert!(parse(r#"{"name":"A"}"#).unwrap().extra().is_empty());
    }

    #[test]
    fn a_file_is_base64_with_or_without_padding_or_a_data_url_prefix() {
        const FILE: InputDef = InputDef::new("file", "File", Kind::File);
        let bytes = |text: &str| {
            Input::parse(&[FILE], &serde_json::json!({ "file": text }).to_string())
                .map(|input| input.bytes("file").map(<[u8]>::to_vec))
        };
        assert_eq!(bytes("aGk=").unwrap(), Some(b"hi".to_vec()));
        assert_eq!(bytes("aGk").unwrap(), Some(b"hi".to_vec()));
        assert_eq!(bytes("aG\r\nk=").unwrap(), Some(b"hi".to_vec()));
        assert_eq!(
            bytes("data:text/plain;base64,aGk=").unwrap(),
            Some(b"hi".to_vec())
        );
        let refused = bytes("not base64!").unwrap_err();
        assert_eq!(refused.field.as_deref(), Some("file"));
        assert!(refused.message.contains("base64"), "{}", refused.message);
        assert!(bytes("data:text/plain,hi").is_err());
        assert!(Input::parse(&[FILE], r#"{"file": 12}"#).is_err());
    }

    #[test]
    fn a_partial_parse_is_what_a_designer_has_so_far() {
        let input = Input::parse_partial(INPUTS, r#"{"Target":1}"#).unwrap();
        assert_eq!(input.text("name"), None);
        assert_eq!(input.extra().len(), 1);
        assert!(Input::parse_partial(INPUTS, r#"{"count":"x"}"#).is_err());
    }

    /// The error's field and message, for refusals.
    fn refusal(json: &str) -> (String, String) {
        let failure = parse(json).expect_err("the input is refused");
        assert_eq!(failure.code, ErrorCode::InvalidInput, "{failure:?}");
        (failure.field.unwrap_or_default(), failure.message)
    }

    #[test]
    fn defaults_fill_absent_and_blank_inputs() {
        let input = parse(r#"{"name": "A", "count": "  ", "mode": null}"#).unwrap();
        assert_eq!(input.number("count"), Some(10.0));
        assert!(!input.flag("enabled"));
        assert_eq!(input.text("mode"), Some("upsert"));
        assert_eq!(input.text("notes"), None);
        assert!(input.list("columns").is_empty());
    }

    #[test]
    fn numbers_and_booleans_sent_as_text_are_read_as_such() {
        let input = parse(r#"{"name": 42, "count": " 25 ", "enabled": "TRUE"}"#).unwrap();
        assert_eq!(input.text("name"), Some("42"));
        assert_eq!(input.number("count"), Some(25.0));
        assert!(input.flag("enabled"));
    }

    #[test]
    fn a_missing_required_input_is_refused_by_key_and_label() {
        let (field, message) = refusal(r#"{"name": "   "}"#);
        assert_eq!(field, "name");
        assert_eq!(message, "input \"name\" (Name): is required");
    }

    #[test]
    fn an_unknown_key_is_refused_with_the_closest_known_key() {
        let (field, message) = refusal(r#"{"name": "A", "colums": "a"}"#);
        assert_eq!(field, "colums");
        assert!(message.contains("did you mean \"columns\"?"), "{message}");
        let (_, far) = refusal(r#"{"name": "A", "zzzzzzzz": 1}"#);
        assert!(!far.contains("did you mean"), "{far}");
    }

    #[test]
    fn the_connection_is_not_an_input() {
        let (field, message) = refusal(r#"{"name": "A", "connection": "x"}"#);
        assert_eq!(field, "connection");
        assert!(message.contains("no such input"), "{message}");
    }

    #[test]
    fn input_that_is_not_a_json_object_is_refused_and_empty_input_is_no_values() {
        assert_eq!(
            refusal("[1]").1,
            "input \"input\": must be a JSON object of input keys and values, got a list"
        );
        assert!(refusal("{").1.contains("is not valid JSON"));
        let no_required = [COUNT, ENABLED];
        for empty in ["", "  ", "null", "{}"] {
            let input = Input::parse(&no_required, empty).unwrap();
            assert_eq!(input.number("count"), Some(10.0), "{empty:?}");
        }
    }

    #[test]
    fn values_of_the_wrong_kind_are_refused() {
        assert_eq!(
            refusal(r#"{"name": ["A"]}"#).1,
            "input \"name\" (Name): must be text, got a list"
        );
        assert_eq!(
            refusal(r#"{"name": "A", "enabled": "yes"}"#).1,
            "input \"enabled\" (Enabled): must be true or false, got text"
        );
        assert_eq!(
            refusal(r#"{"name": "A", "count": "ten"}"#).1,
            "input \"count\" (Count): must be a number, got \"ten\""
        );
        assert_eq!(refusal(r#"{"name": "A", "count": "inf"}"#).0, "count");
    }

    #[test]
    fn a_picklist_takes_only_its_choices() {
        let input = parse(r#"{"name": "A", "mode": "createOnly"}"#).unwrap();
        assert_eq!(input.text("mode"), Some("createOnly"));
        let (field, message) = refusal(r#"{"name": "A", "mode": "CreateOnly"}"#);
        assert_eq!(field, "mode");
        assert!(
            message.ends_with("\"CreateOnly\" is not one of upsert, createOnly"),
            "{message}"
        );
    }

    #[test]
    fn string_lists_come_as_comma_separated_text_or_lists_without_blank_entries() {
        let from_text = parse(r#"{"name": "A", "columns": " name, ,accountnumber "}"#).unwrap();
        assert_eq!(from_text.list("columns"), ["name", "accountnumber"]);
        let from_list =
            parse(r#"{"name": "A", "columns": ["name", "", null, " accountnumber "]}"#).unwrap();
        assert_eq!(from_list.list("columns"), ["name", "accountnumber"]);
        let (_, message) = refusal(r#"{"name": "A", "columns": ["name", 3]}"#);
        assert!(
            message.ends_with("entry 1 must be text, got a number"),
            "{message}"
        );
    }

    #[test]
    fn key_value_lists_come_as_objects_entry_lists_or_json_text_and_keep_their_order() {
        let expected = [
            ("Prefer".to_string(), "return=representation".to_string()),
            ("If-Match".to_string(), "*".to_string()),
        ];
        for json in [
            r#"{"name": "A", "headers": [{"key": "Prefer", "value": "return=representation"}, {"key": "If-Match", "value": "*"}]}"#,
            r#"{"name": "A", "headers": "[{\"key\": \"Prefer\", \"value\": \"return=representation\"}, {\"key\": \"If-Match\", \"value\": \"*\"}]"}"#,
        ] {
            assert_eq!(parse(json).unwrap().pairs("headers"), expected, "{json}");
        }
        let object = parse(r#"{"name": "A", "headers": {"a": 1, "b": true, "c": null}}"#).unwrap();
        assert_eq!(
            object.pairs("headers"),
            [
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "true".to_string()),
                ("c".to_string(), String::new())
            ]
        );
        assert!(
            refusal(r#"{"name": "A", "headers": {"a": [1]}}"#)
                .1
                .contains("the value of \"a\" must be text")
        );
        assert!(
            refusal(r#"{"name": "A", "headers": [{"value": "x"}]}"#)
                .1
                .contains("entry 0 has no text \"key\"")
        );
    }

    #[test]
    fn field_maps_keep_json_types_and_refuse_a_field_given_twice() {
        let input = parse(
            r#"{"name": "A", "fields": [{"key": "revenue", "value": 12.5}, {"key": "parentaccountid", "value": {"table": "accounts", "id": "x"}}]}"#,
        )
        .unwrap();
        let fields = input.json("fields").unwrap();
        assert_eq!(fields["revenue"], 12.5);
        assert_eq!(fields["parentaccountid"]["table"], "accounts");
        let (_, message) = refusal(
            r#"{"name": "A", "fields": [{"key": "a", "value": 1}, {"key": "a", "value": 2}]}"#,
        );
        assert!(message.ends_with("\"a\" is given twice"), "{message}");
    }

    #[test]
    fn code_inputs_read_json_text_and_keep_other_text_as_text() {
        let json = parse(r#"{"name": "A", "body": "{\"a\": [1]}"}"#).unwrap();
        assert_eq!(json.json("body"), Some(&serde_json::json!({"a": [1]})));
        let text = parse(r#"{"name": "A", "body": "plain words"}"#).unwrap();
        assert_eq!(
            text.json("body"),
            Some(&Value::String("plain words".into()))
        );
    }

    #[test]
    fn one_line_inputs_refuse_control_characters_and_bodies_keep_them() {
        for json in [
            r#"{"name": "A\r\nX-Injected: 1"}"#,
            r#"{"name": "A", "columns": ["na\nme"]}"#,
            r#"{"name": "A", "headers": {"Prefer": "x\u0000"}}"#,
            r#"{"name": "A\tB"}"#,
        ] {
            let (_, message) = refusal(json);
            assert!(
                message.contains("contains a control character"),
                "{json}: {message}"
            );
        }
        let input = parse(r#"{"name": "A", "notes": "line one\nline two"}"#).unwrap();
        assert_eq!(input.text("notes"), Some("line one\nline two"));
    }

    #[test]
    fn formats_are_checked_before_any_request() {
        let input = parse(
            r#"{"name": "A", "id": "00000000-0000-0000-0000-000000000001", "table": "new_projects", "columns": "name,new_code", "count": 100}"#,
        )
        .unwrap();
        assert_eq!(input.text("table"), Some("new_projects"));
        assert_eq!(refusal(r#"{"name": "A", "id": "42"}"#).0, "id");
        assert!(
            refusal(r#"{"name": "A", "table": "accounts)?$x"}"#)
                .1
                .contains("is not a table or column name")
        );
        assert!(
            refusal(r#"{"name": "A", "columns": "name,full name"}"#)
                .1
                .contains("\"full name\" is not a column name")
        );
        for count in ["0", "101", "2.5"] {
            let json = format!(r#"{{"name": "A", "count": {count}}}"#);
            let (_, message) = refusal(&json);
            assert!(
                message.contains("must be a whole number from 1 to 100"),
                "{count}: {message}"
            );
        }
    }

    #[test]
    fn the_closest_key_is_a_typo_away_and_ignores_case() {
        let known = ["entityType", "entityId", "fieldNames"];
        assert_eq!(closest("entitytpye", &known), Some("entityType"));
        assert_eq!(closest("FIELDNAME", &known), Some("fieldNames"));
        assert_eq!(closest("batchActions", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
