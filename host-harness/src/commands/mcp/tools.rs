//! The component's actions as MCP tools: what each action does to the environment (one table,
//! [`CLASSES`]), and the tool an agent sees (name, description, input schema, annotations),
//! generated from the action's definition.

use std::sync::Arc;

use dynamics_host::{ActionDefinition, InputDefinition, InputType};
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Map, Value, json};

/// What an action does to the environment, told to agents as the tool annotations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effect {
    /// Changes nothing.
    pub read_only: bool,
    /// May overwrite or remove what is there (as opposed to only adding).
    pub destructive: bool,
    /// A second call with the same arguments changes nothing more.
    pub idempotent: bool,
    /// May reach beyond the environment's tables: any endpoint, messages that run plug-ins,
    /// flows or e-mail.
    pub open_world: bool,
}

const READ: Effect = Effect {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: false,
};
/// Adds rows or columns. Not idempotent: a create without an idempotency key makes a second
/// row when called again.
const CREATE: Effect = Effect {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: false,
};
/// Sets values that were there before (update, upsert, sync), or deletes: the same call again
/// finds the work done.
const OVERWRITE: Effect = Effect {
    read_only: false,
    destructive: true,
    idempotent: true,
    open_world: false,
};
/// Creates, updates and deletes in one call.
const MIXED: Effect = Effect {
    read_only: false,
    destructive: true,
    idempotent: false,
    open_world: false,
};
/// Any method on any path of the environment; also what an action missing from [`CLASSES`]
/// is taken to be, so that it is never offered as harmless by mistake.
const ANYTHING: Effect = Effect {
    read_only: false,
    destructive: true,
    idempotent: false,
    open_world: true,
};

/// How an action names the tables it touches, which decides how `--tables` is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tables {
    /// Reads no table's rows: who the user is, the list of tables and their definitions.
    None,
    /// One table, by entity set name, in this input; its other inputs (expand, filter, order,
    /// field values) are checked for paths into other tables.
    EntitySet(&'static str),
    /// Batch Entity Actions: each item's `collection` and `data`.
    BatchItems,
    /// A table's definition, by logical name in this input (by entity set name when the call
    /// sets `useLogicalNameForLookup` to false, as Get Entity Metadata allows).
    Logical(&'static str),
    /// Run Fetch XML Query: the entity set in `entityType`, and the logical name of every
    /// `entity` and `link-entity` of the query.
    FetchXml,
    /// Dataverse search: the tables in `tables` or `searchEntities`, by logical name; a search
    /// of every table is refused.
    Search,
    /// A note on a row: the row's table in this input, and the notes table (`annotations`).
    Notes(&'static str),
    /// The notes table only (a note by its ID).
    NotesOnly,
    /// Can reach tables the list cannot check (any URL, a relationship's other side, a
    /// message's plug-ins, a new definition): not offered when a table list is set.
    Unchecked,
}

impl Tables {
    /// Whether checking a call needs the logical names of the listed tables.
    pub fn needs_logical_names(self) -> bool {
        matches!(self, Tables::Logical(_) | Tables::FetchXml | Tables::Search)
    }
}

/// One action's classification.
pub struct Class {
    pub key: &'static str,
    pub effect: Effect,
    pub tables: Tables,
}

const fn class(key: &'static str, effect: Effect, tables: Tables) -> Class {
    Class {
        key,
        effect,
        tables,
    }
}

/// Every action of the catalogue, by what it does. A test fails when the component has an
/// action missing here; until it is added, such an action is treated as [`ANYTHING`] with
/// [`Tables::Unchecked`] (hidden by `--read-only` and by a table list).
pub const CLASSES: &[Class] = &[
    class("batch-entity-actions", MIXED, Tables::BatchItems),
    class("create-attribute", CREATE, Tables::Logical("entityId")),
    class("create-entity", CREATE, Tables::EntitySet("entityType")),
    class("delete-entity", OVERWRITE, Tables::EntitySet("entityType")),
    class("get-attribute", READ, Tables::Logical("entityId")),
    class("get-current-user", READ, Tables::None),
    class("get-entities-metadata", READ, Tables::None),
    class("get-entity", READ, Tables::EntitySet("entityType")),
    class("get-entity-metadata", READ, Tables::Logical("entityType")),
    class("list-attributes", READ, Tables::Logical("entityId")),
    class("list-entities", READ, Tables::None),
    class("query-attributes", READ, Tables::Logical("entityId")),
    class("query-entities", READ, Tables::EntitySet("entityType")),
    class("raw-request-crm", ANYTHING, Tables::Unchecked),
    class("run-fetch-xml-query", READ, Tables::FetchXml),
    class("update-attribute", OVERWRITE, Tables::Logical("entityId")),
    class("update-entity", OVERWRITE, Tables::EntitySet("entityType")),
    class("upsert-entity", OVERWRITE, Tables::EntitySet("entityType")),
    class("list-entity-types", READ, Tables::None),
    class("raw-request", ANYTHING, Tables::Unchecked),
    class("sync-records", OVERWRITE, Tables::EntitySet("entityType")),
    class(
        "get-new-and-updated-records",
        READ,
        Tables::EntitySet("entityType"),
    ),
    // The related table follows from the relationship, which only metadata resolves.
    class("relate-rows", OVERWRITE, Tables::Unchecked),
    class("unrelate-rows", OVERWRITE, Tables::Unchecked),
    // Messages and custom APIs run plug-ins and flows that may do anything, anywhere.
    class("perform-unbound-action", ANYTHING, Tables::Unchecked),
    class("perform-bound-action", ANYTHING, Tables::Unchecked),
    // A function is called with GET, but not every one changes nothing: a custom API marked
    // as a function runs its plug-in (the main operation) like any other message
    // (learn.microsoft.com/power-apps/developer/data-platform/custom-api-tables: "Plugin
    // Type ... provides the main operation"), and CalculateRollupField stores the value it
    // computes. Its parameters may name any table.
    class("call-function", ANYTHING, Tables::Unchecked),
    class("upload-file", OVERWRITE, Tables::EntitySet("entityType")),
    class("download-file", READ, Tables::EntitySet("entityType")),
    // Notes are rows of their own table (annotations), attached to a row of another.
    class("attach-note", CREATE, Tables::Notes("entityType")),
    class("download-note-attachment", READ, Tables::NotesOnly),
    class("search-rows", READ, Tables::Search),
    class("suggest-rows", READ, Tables::Search),
    class("autocomplete-rows", READ, Tables::Search),
    // Definitions of new tables and relationships between tables: not one listed table.
    class("create-table", CREATE, Tables::Unchecked),
    class(
        "create-alternate-key",
        CREATE,
        Tables::Logical("entityType"),
    ),
    class("create-one-to-many-relationship", CREATE, Tables::Unchecked),
    class(
        "create-many-to-many-relationship",
        CREATE,
        Tables::Unchecked,
    ),
    class("create-global-choice", CREATE, Tables::Unchecked),
    class("delete-column", OVERWRITE, Tables::Logical("entityType")),
    // A background operation is a row of its own table, whatever the custom API touched.
    class("get-background-operation", READ, Tables::Unchecked),
    class("cancel-background-operation", OVERWRITE, Tables::Unchecked),
];

/// The classification of `key`, or the most cautious one for an action not in [`CLASSES`].
pub fn classify(key: &str) -> (Effect, Tables, bool) {
    match CLASSES.iter().find(|class| class.key == key) {
        Some(class) => (class.effect, class.tables, true),
        None => (ANYTHING, Tables::Unchecked, false),
    }
}

/// Key-value inputs whose values are column values (any JSON), not text.
const FIELD_MAPS: &[&str] = &["fieldValues"];

/// The tool for an action: its key as the name, its label as the title, its description and
/// inputs' comments as descriptions, its inputs as the JSON Schema of the arguments.
pub fn tool(action: &ActionDefinition, effect: Effect) -> Tool {
    let mut description = action.description.clone();
    if action.dynamic_inputs {
        description.push_str(
            " Takes further inputs that depend on the environment (such as an action's parameters), as extra properties.",
        );
    }
    let annotations = ToolAnnotations::with_title(action.label.clone())
        .read_only(effect.read_only)
        .destructive(effect.destructive)
        .idempotent(effect.idempotent)
        .open_world(effect.open_world);
    Tool::new(
        action.key.clone(),
        description,
        Arc::new(input_schema(action)),
    )
    .with_title(action.label.clone())
    .with_annotations(annotations)
}

/// Removes `keys` from a tool's input schema (its properties and required list): inputs this
/// server does not let an agent give.
pub fn leave_out_inputs(tool: &mut Tool, keys: &[&str]) {
    let mut schema = (*tool.input_schema).clone();
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        for key in keys {
            properties.remove(*key);
        }
    }
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.retain(|name| !keys.iter().any(|key| name == key));
    }
    tool.input_schema = Arc::new(schema);
}

/// The JSON Schema of an action's input object. The connection is not among the properties:
/// the server runs every call with the one connection it was started for.
pub fn input_schema(action: &ActionDefinition) -> JsonObject {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for input in &action.inputs {
        if input.input_type == InputType::Connection {
            continue;
        }
        properties.insert(input.key.clone(), property(input));
        if input.required {
            required.push(Value::String(input.key.clone()));
        }
    }
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    schema.insert(
        "additionalProperties".into(),
        Value::Bool(action.dynamic_inputs),
    );
    schema
}

fn property(input: &InputDefinition) -> Value {
    let mut schema = match input.input_type {
        InputType::Text | InputType::Multiline | InputType::Secret | InputType::Connection => {
            json!({"type": "string"})
        }
        InputType::Picklist if !input.choices.is_empty() => json!({
            "type": "string",
            "enum": input.choices.iter().map(|choice| choice.value.as_str()).collect::<Vec<_>>(),
        }),
        // Its choices come from the environment (a data source): any text.
        InputType::Picklist => json!({"type": "string"}),
        InputType::Number => json!({"type": "number"}),
        InputType::Boolean => json!({"type": "boolean"}),
        // Any JSON value: no type keyword.
        InputType::Code => json!({}),
        InputType::StringList => json!({"type": "array", "items": {"type": "string"}}),
        InputType::KeyValueList if FIELD_MAPS.contains(&input.key.as_str()) => {
            json!({"type": "object"})
        }
        InputType::KeyValueList => {
            json!({"type": "object", "additionalProperties": {"type": "string"}})
        }
        InputType::File => json!({"type": "string", "contentEncoding": "base64"}),
    };
    let object = schema
        .as_object_mut()
        .expect("every property schema above is an object");
    object.insert("title".into(), Value::String(input.label.clone()));
    let mut description = input.comments.clone().unwrap_or_default();
    if let Some(example) = &input.example {
        if !description.is_empty() {
            description.push(' ');
        }
        description.push_str(&format!("Example: {example}"));
    }
    if !description.is_empty() {
        object.insert("description".into(), Value::String(description));
    }
    if let Some(default) = input
        .default
        .as_deref()
        .and_then(|text| typed_default(input, text))
    {
        object.insert("default".into(), default);
    }
    schema
}

/// A default as a value of the property's type; none when the text does not fit the type
/// (a schema's default that its own type refuses would mislead an agent).
fn typed_default(input: &InputDefinition, text: &str) -> Option<Value> {
    match input.input_type {
        InputType::Number => serde_json::from_str::<serde_json::Number>(text.trim())
            .ok()
            .map(Value::Number),
        InputType::Boolean => match text.trim() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        InputType::Code => serde_json::from_str(text).ok(),
        InputType::Text | InputType::Multiline | InputType::Picklist => {
            Some(Value::String(text.to_string()))
        }
        // A secret's default would be shown to the agent; lists and files have none worth
        // stating.
        InputType::Secret
        | InputType::StringList
        | InputType::KeyValueList
        | InputType::File
        | InputType::Connection => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamics_host::Choice;

    fn input(key: &str, input_type: InputType, required: bool) -> InputDefinition {
        InputDefinition {
            key: key.into(),
            label: format!("{key} label"),
            input_type,
            required,
            default: None,
            comments: None,
            example: None,
            choices: Vec::new(),
            data_source: None,
        }
    }

    fn action(inputs: Vec<InputDefinition>, dynamic_inputs: bool) -> ActionDefinition {
        ActionDefinition {
            key: "do-it".into(),
            label: "Do It".into(),
            description: "Does it.".into(),
            group: None,
            inputs,
            example_output: None,
            dynamic_inputs,
        }
    }

    #[test]
    fn each_input_type_maps_to_its_json_schema_and_the_connection_is_left_out() {
        let mut pick = input("mode", InputType::Picklist, false);
        pick.choices = vec![
            Choice {
                label: "Up".into(),
                value: "up".into(),
            },
            Choice {
                label: "Down".into(),
                value: "down".into(),
            },
        ];
        let schema = input_schema(&action(
            vec![
                input("connection", InputType::Connection, true),
                input("name", InputType::Text, true),
                input("notes", InputType::Multiline, false),
                input("password", InputType::Secret, false),
                pick,
                input("count", InputType::Number, false),
                input("flag", InputType::Boolean, false),
                input("body", InputType::Code, false),
                input("columns", InputType::StringList, false),
                input("headers", InputType::KeyValueList, false),
                input("fieldValues", InputType::KeyValueList, false),
                input("content", InputType::File, false),
            ],
            false,
        ));
        let properties = schema["properties"].as_object().unwrap();
        assert!(!properties.contains_key("connection"));
        let kind = |key: &str| {
            let mut property = properties[key].clone();
            let object = property.as_object_mut().unwrap();
            object.remove("title");
            property
        };
        assert_eq!(kind("name"), json!({"type": "string"}));
        assert_eq!(kind("notes"), json!({"type": "string"}));
        assert_eq!(kind("password"), json!({"type": "string"}));
        assert_eq!(
            kind("mode"),
            json!({"type": "string", "enum": ["up", "down"]})
        );
        assert_eq!(kind("count"), json!({"type": "number"}));
        assert_eq!(kind("flag"), json!({"type": "boolean"}));
        assert_eq!(kind("body"), json!({}));
        assert_eq!(
            kind("columns"),
            json!({"type": "array", "items": {"type": "string"}})
        );
        assert_eq!(
            kind("headers"),
            json!({"type": "object", "additionalProperties": {"type": "string"}})
        );
        assert_eq!(kind("fieldValues"), json!({"type": "object"}));
        assert_eq!(
            kind("content"),
            json!({"type": "string", "contentEncoding": "base64"})
        );
        assert_eq!(schema["required"], json!(["name"]));
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(properties["name"]["title"], json!("name label"));
    }

    #[test]
    fn defaults_are_typed_comments_describe_and_secret_defaults_are_not_shown() {
        let mut count = input("count", InputType::Number, false);
        count.default = Some("100".into());
        count.comments = Some("How many.".into());
        count.example = Some("5".into());
        let mut flag = input("flag", InputType::Boolean, false);
        flag.default = Some("true".into());
        let mut body = input("body", InputType::Code, false);
        body.default = Some(r#"{"a": 1}"#.into());
        let mut secret = input("secret", InputType::Secret, false);
        secret.default = Some("hunter2".into());
        let mut odd = input("odd", InputType::Number, false);
        odd.default = Some("lots".into());
        let schema = input_schema(&action(vec![count, flag, body, secret, odd], false));
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(properties["count"]["default"], json!(100));
        assert_eq!(
            properties["count"]["description"],
            json!("How many. Example: 5")
        );
        assert_eq!(properties["flag"]["default"], json!(true));
        assert_eq!(properties["body"]["default"], json!({"a": 1}));
        assert!(properties["secret"].get("default").is_none());
        assert!(properties["odd"].get("default").is_none());
        assert!(!schema.contains_key("required"));
    }

    #[test]
    fn an_action_with_dynamic_inputs_accepts_extra_properties_and_says_so() {
        let tool = tool(&action(Vec::new(), true), READ);
        assert_eq!(tool.input_schema["additionalProperties"], json!(true));
        assert!(tool.description.unwrap().contains("extra properties"));
    }

    #[test]
    fn annotations_carry_the_actions_effect() {
        let tool = tool(&action(Vec::new(), false), OVERWRITE);
        let annotations = tool.annotations.unwrap();
        assert_eq!(annotations.read_only_hint, Some(false));
        assert_eq!(annotations.destructive_hint, Some(true));
        assert_eq!(annotations.idempotent_hint, Some(true));
        assert_eq!(annotations.open_world_hint, Some(false));
        assert_eq!(tool.title.as_deref(), Some("Do It"));
    }

    #[test]
    fn an_unclassified_action_is_taken_as_able_to_do_anything() {
        let (effect, tables, known) = classify("launch-rockets");
        assert!(!known);
        assert_eq!(effect, ANYTHING);
        assert_eq!(tables, Tables::Unchecked);
    }

    #[test]
    fn the_classification_table_names_each_action_once() {
        let mut keys: Vec<&str> = CLASSES.iter().map(|class| class.key).collect();
        keys.sort_unstable();
        let count = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), count);
        // Read-only actions cannot also be destructive.
        assert!(
            CLASSES
                .iter()
                .all(|class| !(class.effect.read_only && class.effect.destructive))
        );
    }
}
