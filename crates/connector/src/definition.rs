//! Static definitions of inputs and actions, turned into the WIT records on export.

use crate::bindings::dynamics::connector::types as wit;

/// How an input is rendered and which JSON it takes; mirrors `wit::InputType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Multiline,
    Secret,
    Boolean,
    Number,
    Code,
    Picklist,
    StringList,
    KeyValueList,
    /// Rendered as a key-value list, but values keep their JSON types (numbers, lookups).
    FieldMap,
    Connection,
    /// Bytes as base64 text; a designer offers a file picker.
    File,
}

/// Extra validation beyond the kind, applied before any request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Any,
    /// A GUID (8-4-4-4-12 hex digits).
    Guid,
    /// An OData identifier: entity set, column or navigation property name.
    Identifier,
    /// Every entry of a list is an identifier.
    Identifiers,
    /// A whole number within the bounds.
    Range(i64, i64),
    /// One entity tag (`W/"123"`, `"123"`) or `*`, for `If-Match`.
    EntityTag,
}

/// One input of an action, connection or trigger.
#[derive(Debug, Clone, Copy)]
pub struct InputDef {
    pub key: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub default: Option<&'static str>,
    pub comments: Option<&'static str>,
    pub example: Option<&'static str>,
    pub choices: &'static [(&'static str, &'static str)],
    pub data_source: Option<&'static str>,
    pub format: Format,
}

impl InputDef {
    pub const fn new(key: &'static str, label: &'static str, kind: Kind) -> InputDef {
        InputDef {
            key,
            label,
            kind,
            required: false,
            default: None,
            comments: None,
            example: None,
            choices: &[],
            data_source: None,
            format: Format::Any,
        }
    }

    pub const fn required(self) -> InputDef {
        InputDef {
            required: true,
            ..self
        }
    }

    pub const fn default(self, default: &'static str) -> InputDef {
        InputDef {
            default: Some(default),
            ..self
        }
    }

    pub const fn comments(self, comments: &'static str) -> InputDef {
        InputDef {
            comments: Some(comments),
            ..self
        }
    }

    pub const fn example(self, example: &'static str) -> InputDef {
        InputDef {
            example: Some(example),
            ..self
        }
    }

    pub const fn choices(self, choices: &'static [(&'static str, &'static str)]) -> InputDef {
        InputDef { choices, ..self }
    }

    pub const fn data_source(self, data_source: &'static str) -> InputDef {
        InputDef {
            data_source: Some(data_source),
            ..self
        }
    }

    pub const fn format(self, format: Format) -> InputDef {
        InputDef { format, ..self }
    }

    pub fn to_wit(self) -> wit::InputDefinition {
        wit::InputDefinition {
            key: self.key.to_string(),
            label: self.label.to_string(),
            input_type: match self.kind {
                Kind::Text => wit::InputType::Text,
                Kind::Multiline => wit::InputType::Multiline,
                Kind::Secret => wit::InputType::Secret,
                Kind::Boolean => wit::InputType::Boolean,
                Kind::Number => wit::InputType::Number,
                Kind::Code => wit::InputType::Code,
                Kind::Picklist => wit::InputType::Picklist,
                Kind::StringList => wit::InputType::StringList,
                Kind::KeyValueList | Kind::FieldMap => wit::InputType::KeyValueList,
                Kind::Connection => wit::InputType::Connection,
                Kind::File => wit::InputType::File,
            },
            required: self.required,
            default: self.default.map(str::to_string),
            comments: self.comments.map(str::to_string),
            example: self.example.map(str::to_string),
            choices: self
                .choices
                .iter()
                .map(|(label, value)| wit::Choice {
                    label: label.to_string(),
                    value: value.to_string(),
                })
                .collect(),
            data_source: self.data_source.map(str::to_string),
        }
    }
}

/// Converts a list of static inputs.
pub fn inputs_to_wit(inputs: &[InputDef]) -> Vec<wit::InputDefinition> {
    inputs.iter().map(|input| input.to_wit()).collect()
}
