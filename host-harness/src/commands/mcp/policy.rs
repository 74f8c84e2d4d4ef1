//! What the server lets an agent do: `--read-only` offers only the actions that change nothing,
//! `--tables` only the tables listed. Both are checked here, before the component is called, so
//! a refused call makes no request.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::tools::{Effect, Tables};

/// The limits the server was started with.
#[derive(Debug, Default)]
pub struct Policy {
    pub read_only: bool,
    /// Entity set names, lower-case; `None` means every table.
    pub tables: Option<BTreeSet<String>>,
    /// Whether a tool call may act as another user (`--allow-impersonation`).
    pub allow_impersonation: bool,
}

/// The inputs that make a call act as another user: Dataverse sends them as `MSCRMCallerID`
/// and `CallerObjectId` (impersonate-another-user). The connection's own user needs the Act on
/// Behalf of Another User privilege, which service principals often hold: with it, an agent
/// could act as an administrator.
pub const IMPERSONATION_INPUTS: [&str; 2] = ["impersonateUserId", "impersonateObjectId"];

/// The headers of a raw request that impersonate, compared without case.
const IMPERSONATION_HEADERS: [&str; 2] = ["MSCRMCallerID", "CallerObjectId"];

/// A call the policy refuses: the input it is about (when one is) and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub field: Option<String>,
    pub message: String,
}

impl Refusal {
    fn of(field: impl Into<String>, message: impl Into<String>) -> Refusal {
        Refusal {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl Policy {
    /// Parses the `--tables` list: entity set names separated by commas. An empty list would
    /// refuse every table-bound tool yet look like a restriction that was meant to allow some.
    pub fn new(read_only: bool, tables: Option<&str>) -> anyhow::Result<Policy> {
        let tables = match tables {
            None => None,
            Some(list) => {
                let mut names = BTreeSet::new();
                for name in list.split(',').map(str::trim) {
                    if name.is_empty() {
                        continue;
                    }
                    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        anyhow::bail!(
                            "--tables: {name:?} is not an entity set name (letters, digits and _, such as accounts)"
                        );
                    }
                    names.insert(name.to_ascii_lowercase());
                }
                if names.is_empty() {
                    anyhow::bail!("--tables needs at least one entity set name, such as accounts");
                }
                Some(names)
            }
        };
        Ok(Policy {
            read_only,
            tables,
            allow_impersonation: false,
        })
    }

    /// Refuses a call that would act as another user, unless the server allows it: the
    /// impersonation inputs of any tool (given at all, even empty), and Raw Request's
    /// impersonation headers in every shape the component reads headers in (an object, a list
    /// of `{"key", "value"}`, or JSON text of either).
    pub fn check_impersonation(
        &self,
        tool: &str,
        arguments: &Map<String, Value>,
    ) -> Result<(), Refusal> {
        if self.allow_impersonation {
            return Ok(());
        }
        for key in IMPERSONATION_INPUTS {
            if arguments.contains_key(key) {
                return Err(Refusal::of(
                    key,
                    format!(
                        "{tool}: acting as another user is not allowed; this server runs without --allow-impersonation"
                    ),
                ));
            }
        }
        if !tool.starts_with("raw-request") {
            return Ok(());
        }
        // A $batch body carries headers of its own for each request in it; Raw Request cannot
        // send multipart/mixed today, but the refusal should not rest on that.
        if let Some(Value::String(url)) = arguments.get("url")
            && url
                .to_ascii_lowercase()
                .replace("%24", "$")
                .split(['?', '#'])
                .next()
                .is_some_and(|path| path.contains("$batch"))
        {
            return Err(Refusal::of(
                "url",
                format!(
                    "{tool}: a $batch can act as another user in each of its requests, which is not allowed; this server runs without --allow-impersonation"
                ),
            ));
        }
        if let Some(headers) = arguments.get("headers")
            && let Some(name) = header_names(headers).into_iter().find(|name| {
                IMPERSONATION_HEADERS
                    .iter()
                    .any(|header| name.trim().eq_ignore_ascii_case(header))
            })
        {
            return Err(Refusal::of(
                "headers",
                format!(
                    "{tool}: the {name} header acts as another user, which is not allowed; this server runs without --allow-impersonation"
                ),
            ));
        }
        Ok(())
    }

    /// Why an action is not offered as a tool, or `None` when it is.
    pub fn hides(&self, effect: Effect, tables: Tables) -> Option<&'static str> {
        if self.read_only && !effect.read_only {
            return Some("the server runs with --read-only and this tool changes data");
        }
        if self.tables.is_some() && tables == Tables::Unchecked {
            return Some(
                "the server runs with a table list (--tables) and this tool can reach tables the list cannot check",
            );
        }
        None
    }

    /// Checks a call's arguments against the table list. Tables are compared without regard
    /// to case, as Dataverse names them. `logical` holds the logical names of the listed
    /// tables, for the actions whose [`Tables::needs_logical_names`].
    pub fn check_tables(
        &self,
        tables: Tables,
        arguments: &Map<String, Value>,
        logical: &BTreeSet<String>,
    ) -> Result<(), Refusal> {
        let Some(allowed) = &self.tables else {
            return Ok(());
        };
        let check = Check { allowed, logical };
        match tables {
            Tables::None => Ok(()),
            Tables::Unchecked => Err(Refusal {
                field: None,
                message: "this tool is not available with a table list".to_string(),
            }),
            Tables::EntitySet(key) => {
                // Missing: the component names the required input, and sends nothing.
                if let Some(name) = text_input(arguments, key)? {
                    check.table(key, name)?;
                }
                check.reads_no_other_table(arguments)?;
                check.writes_no_other_table(arguments)
            }
            Tables::Logical(key) => {
                let Some(name) = text_input(arguments, key)? else {
                    return Ok(());
                };
                // Read as the component reads a boolean ("false" in any case is false), and
                // anything but a clear true as an entity set name: the check then never
                // passes a name the component reads the other way.
                let by_set = match arguments.get("useLogicalNameForLookup") {
                    None | Some(Value::Null) | Some(Value::Bool(true)) => false,
                    Some(Value::String(text)) => !text.eq_ignore_ascii_case("true"),
                    Some(_) => true,
                };
                if by_set {
                    check.table(key, name)
                } else {
                    check.logical_name(key, name)
                }
            }
            Tables::FetchXml => {
                if let Some(name) = text_input(arguments, "entityType")? {
                    check.table("entityType", name)?;
                }
                let Some(query) = text_input(arguments, "xmlQuery")? else {
                    return Ok(());
                };
                for name in
                    fetch_entities(query).map_err(|problem| Refusal::of("xmlQuery", problem))?
                {
                    check.logical_name("xmlQuery", &name)?;
                }
                Ok(())
            }
            Tables::Search => {
                let mut named = 0;
                for name in list_input(arguments, "tables") {
                    check.logical_name("tables", name)?;
                    named += 1;
                }
                match arguments.get("searchEntities") {
                    None | Some(Value::Null) => {}
                    Some(given) => {
                        let Some(Value::Array(entities)) = parsed(given) else {
                            return Err(Refusal::of(
                                "searchEntities",
                                "must be a JSON list of tables such as [{\"name\": \"account\"}]",
                            ));
                        };
                        for entity in &entities {
                            // The component reads the keys of an entry in any case.
                            let names: Vec<&Value> = entity
                                .as_object()
                                .into_iter()
                                .flatten()
                                .filter(|(key, _)| key.eq_ignore_ascii_case("name"))
                                .map(|(_, name)| name)
                                .collect();
                            if names.is_empty() {
                                return Err(Refusal::of(
                                    "searchEntities",
                                    "each entry needs the name of a table from the list",
                                ));
                            }
                            for name in names {
                                let Some(name) = name.as_str() else {
                                    return Err(Refusal::of(
                                        "searchEntities",
                                        "an entry's name must be text",
                                    ));
                                };
                                check.logical_name("searchEntities", name)?;
                            }
                            named += 1;
                        }
                    }
                }
                if named == 0 {
                    return Err(Refusal::of(
                        "tables",
                        "a search of every table is not allowed with a table list; name the tables to search (by logical name)",
                    ));
                }
                Ok(())
            }
            Tables::Notes(key) => {
                check
                    .table("annotations", "annotations")
                    .map_err(|refusal| Refusal {
                        field: Some(key.to_string()),
                        message: format!(
                            "notes are rows of the annotations table: {}",
                            refusal.message
                        ),
                    })?;
                match text_input(arguments, key)? {
                    Some(name) => check.table(key, name),
                    None => Ok(()),
                }
            }
            Tables::NotesOnly => check
                .table("noteId", "annotations")
                .map_err(|refusal| Refusal {
                    message: format!(
                        "notes are rows of the annotations table: {}",
                        refusal.message
                    ),
                    ..refusal
                }),
            Tables::BatchItems => {
                let Some(items) = arguments.get("batchActions").and_then(parsed) else {
                    return Ok(());
                };
                let Value::Array(items) = items else {
                    return Ok(());
                };
                for (index, item) in items.iter().enumerate() {
                    let prefix = format!("item {index}: ");
                    let Some(name) = item.get("collection").and_then(Value::as_str) else {
                        // The component refuses an item without a collection.
                        continue;
                    };
                    check
                        .table("batchActions", name)
                        .map_err(|refusal| Refusal {
                            message: format!("{prefix}{}", refusal.message),
                            ..refusal
                        })?;
                    if let Some(data) = item.get("data") {
                        check.row("batchActions", &prefix, data)?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// A `code` input's value: JSON, or a JSON string holding JSON (the component takes both).
fn parsed(value: &Value) -> Option<Value> {
    match value {
        Value::String(text) => serde_json::from_str(text).ok(),
        other => Some(other.clone()),
    }
}

/// A text input's value; `None` when it is missing (the component names a required input
/// that is, and sends nothing).
fn text_input<'a>(
    arguments: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, Refusal> {
    match arguments.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(Refusal::of(key, format!("{key} must be text"))),
    }
}

/// The entries of a string-list input: a JSON list, or text separated by commas.
fn list_input<'a>(arguments: &'a Map<String, Value>, key: &str) -> Vec<&'a str> {
    match arguments.get(key) {
        Some(Value::String(text)) => text
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The `name` of every `entity` and `link-entity` element of a FetchXML query. Deliberately
/// strict rather than a full XML reader: tag names are matched without regard to case, and
/// elements inside comments count too, so a name this cannot read is refused instead of
/// passed.
fn fetch_entities(query: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for (start, _) in query.match_indices('<') {
        let after = &query[start + 1..];
        let tag_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '_')))
            .unwrap_or(after.len());
        let tag = after[..tag_len].to_ascii_lowercase();
        let local = tag.rsplit(':').next().unwrap_or_default();
        if local != "entity" && local != "link-entity" {
            continue;
        }
        let end = after.find('>').unwrap_or(after.len());
        match attribute(&after[tag_len..end], "name") {
            Some(name) if !name.contains('&') => names.push(name.to_string()),
            Some(name) => {
                return Err(format!(
                    "the table name {name:?} uses an XML character reference; write it plainly"
                ));
            }
            None => return Err(format!("a <{tag}> element names no table")),
        }
    }
    Ok(names)
}

/// The value of attribute `name` in the text between a tag's name and its `>`.
fn attribute<'a>(attributes: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = attributes;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        let equals = rest.find('=')?;
        let key = rest[..equals].trim();
        let value = rest[equals + 1..].trim_start();
        let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let close = value[1..].find(quote)?;
        if key.eq_ignore_ascii_case(name) {
            return Some(&value[1..1 + close]);
        }
        rest = &value[close + 2..];
    }
}

/// Whether an OData filter goes through a navigation property: a `/` outside its string
/// literals (OData divides with `div`, so a slash is always a path).
fn navigates(filter: &str) -> bool {
    let mut in_literal = false;
    for c in filter.chars() {
        match c {
            // A doubled quote inside a literal closes and reopens it: the state comes back.
            '\'' => in_literal = !in_literal,
            '/' if !in_literal => return true,
            _ => {}
        }
    }
    false
}

/// The entity set of a binding's target, when it is one row: `/set(key)` or `set(key)`, with
/// nothing after the key (a path past it would reach another table through the row).
fn bound_set(target: &str) -> Option<&str> {
    let target = target.trim();
    let target = target.strip_prefix('/').unwrap_or(target);
    let (set, key) = target.split_once('(')?;
    let key = key.strip_suffix(')')?;
    // The key ends at the last `)`: no quote left open, no path after it.
    let quotes = key.chars().filter(|c| *c == '\'').count();
    if quotes % 2 != 0 || (quotes == 0 && (key.contains(')') || key.contains('/'))) {
        return None;
    }
    if quotes > 0 {
        // Outside the quoted values, a key holds no `)` or `/`.
        let outside: String = key.split('\'').step_by(2).collect();
        if outside.contains(')') || outside.contains('/') {
            return None;
        }
    }
    Some(set)
}

struct Check<'a> {
    allowed: &'a BTreeSet<String>,
    logical: &'a BTreeSet<String>,
}

impl Check<'_> {
    fn logical_name(&self, field: &str, name: &str) -> Result<(), Refusal> {
        if self.logical.contains(&name.trim().to_ascii_lowercase()) {
            return Ok(());
        }
        let logical: Vec<&str> = self.logical.iter().map(String::as_str).collect();
        Err(Refusal::of(
            field,
            format!(
                "table {name:?} is not in the tables this server may touch; by logical name they are: {}",
                if logical.is_empty() {
                    "(none found in this environment)".to_string()
                } else {
                    logical.join(", ")
                }
            ),
        ))
    }

    /// Refuses a link of a previous output (a next page, a delta link) that reads another
    /// table: its path must be a listed entity set itself, not a row's navigation property,
    /// and its query may not expand or navigate. The component checks that a link is of the
    /// environment, not what it reads.
    fn link(&self, field: &str, link: &str) -> Result<(), Refusal> {
        let after_scheme = link.split_once("://").map_or(link, |(_, rest)| rest);
        let path_and_query = after_scheme
            .find('/')
            .map_or("", |slash| &after_scheme[slash..]);
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let set = path.rsplit('/').next().unwrap_or_default();
        // Only plain segments: a row key, an escape, a parameter (`;`) or a step back (`..`)
        // could make the service read another table than the last segment names.
        if !path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
            || path.contains("..")
        {
            return Err(Refusal::of(
                field,
                "the link goes through a row to related rows, which the table list does not allow",
            ));
        }
        self.table(field, set)?;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let option = key.trim_start_matches('$').to_ascii_lowercase();
            // The options of a page of one table; any other (fetchXml, savedQuery,
            // userQuery, $apply, $expand, ...) may read what it names, so it is refused.
            let reaches = match option.as_str() {
                "filter" => navigates(&value),
                "orderby" | "select" => value.contains('/') || value.contains('('),
                "top" | "skiptoken" | "count" | "deltatoken" => false,
                _ => true,
            };
            if reaches {
                return Err(Refusal::of(
                    field,
                    format!(
                        "the link's {key} option may read another table, which the table list does not allow"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Refuses the read inputs that follow a navigation property into another table.
    fn reads_no_other_table(&self, arguments: &Map<String, Value>) -> Result<(), Refusal> {
        for key in ["nextPageId", "deltaLink"] {
            if let Some(link) = arguments.get(key).and_then(Value::as_str)
                && !link.trim().is_empty()
            {
                self.link(key, link.trim())?;
            }
        }
        self.no_paths(arguments, "expand", |_| true)?;
        self.no_paths(arguments, "fieldNames", |text| {
            text.contains('/') || text.contains('(')
        })?;
        self.no_paths(arguments, "orderBy", |text| text.contains('/'))?;
        if let Some(filter) = arguments.get("filterExpression").and_then(Value::as_str)
            && navigates(filter)
        {
            return Err(Refusal::of(
                "filterExpression",
                "a filter through a navigation property (a / or any/all) reads other tables, which the table list does not allow",
            ));
        }
        Ok(())
    }

    /// Refuses written values that bind, look up or create rows of tables not in the list.
    fn writes_no_other_table(&self, arguments: &Map<String, Value>) -> Result<(), Refusal> {
        for key in ["fieldValues", "dynamicValues"] {
            if let Some(values) = arguments.get(key) {
                self.row(key, "", values)?;
            }
        }
        if let Some(mapping) = arguments.get("fieldMapping").and_then(Value::as_object)
            && let Some((source, _)) = mapping
                .iter()
                .find(|(_, column)| column.as_str().is_some_and(|column| column.contains('@')))
        {
            return Err(Refusal::of(
                "fieldMapping",
                format!(
                    "{source:?} maps to an annotation (such as @odata.bind), which could reach tables the list does not allow"
                ),
            ));
        }
        // Not a list: the component refuses it, naming the input.
        if let Some(Value::Array(records)) = arguments.get("records").and_then(parsed) {
            for (index, record) in records.iter().enumerate() {
                self.row("records", &format!("record {index}: "), record)?;
            }
        }
        Ok(())
    }

    fn table(&self, field: &str, name: &str) -> Result<(), Refusal> {
        if self.allowed.contains(&name.trim().to_ascii_lowercase()) {
            return Ok(());
        }
        let allowed: Vec<&str> = self.allowed.iter().map(String::as_str).collect();
        Err(Refusal::of(
            field,
            format!(
                "table {name:?} is not in the tables this server may touch ({}); give an entity set name from the list",
                allowed.join(", ")
            ),
        ))
    }

    /// Refuses a list input whose entries (or a comma-separated text) `reaches` other tables.
    fn no_paths(
        &self,
        arguments: &Map<String, Value>,
        key: &str,
        reaches: impl Fn(&str) -> bool,
    ) -> Result<(), Refusal> {
        let entries: Vec<&str> = match arguments.get(key) {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::String(text)) => text.split(',').map(str::trim).collect(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(_) => return Ok(()),
        };
        match entries
            .iter()
            .find(|entry| !entry.is_empty() && reaches(entry))
        {
            Some(entry) => Err(Refusal::of(
                key,
                format!("{entry:?} reads a related table, which the table list does not allow"),
            )),
            None => Ok(()),
        }
    }

    /// Checks the column values of a row to write: a lookup names its table (which must be
    /// listed), an `@odata.bind` its entity set; any other object or list would be a deep
    /// insert, creating rows in another table.
    fn row(&self, field: &str, prefix: &str, values: &Value) -> Result<(), Refusal> {
        let values = match parsed(values) {
            Some(Value::Object(values)) => values,
            Some(Value::Array(pairs)) => {
                // Key-value lists may come as [{"key": ..., "value": ...}].
                pairs
                    .iter()
                    .filter_map(|pair| {
                        Some((
                            pair.get("key")?.as_str()?.to_string(),
                            pair.get("value")?.clone(),
                        ))
                    })
                    .collect()
            }
            // Not an object: the component refuses it, naming the input.
            _ => return Ok(()),
        };
        for (column, value) in &values {
            let named = |table: &str| {
                self.table(field, table).map_err(|refusal| Refusal {
                    message: format!("{prefix}column {column:?}: {}", refusal.message),
                    ..refusal
                })
            };
            // Any annotation naming bind, in any case and with any spacing (OData 4.01 also
            // has a short `@bind`): which spellings the service takes is not ours to guess.
            if column
                .split_once('@')
                .is_some_and(|(_, annotation)| annotation.to_ascii_lowercase().contains("bind"))
            {
                let targets: Vec<&Value> = match value {
                    // A collection-valued navigation property binds a list of rows.
                    Value::Array(targets) => targets.iter().collect(),
                    target => vec![target],
                };
                for target in targets {
                    let Some(target) = target.as_str() else {
                        return Err(Refusal::of(
                            field,
                            format!(
                                "{prefix}column {column:?} must bind a row by its path, such as /accounts(<id>)"
                            ),
                        ));
                    };
                    match bound_set(target) {
                        Some(set) => named(set)?,
                        None => {
                            return Err(Refusal::of(
                                field,
                                format!(
                                    "{prefix}column {column:?} binds {target:?}, which is not one row of a listed table such as /accounts(<id>)"
                                ),
                            ));
                        }
                    }
                }
                continue;
            }
            match value {
                // Exactly the lookup shapes the component binds; any other object is sent as
                // it is, a deep insert.
                Value::Object(object)
                    if object.len() == 1 && object.get("ref").is_some_and(Value::is_string) => {}
                Value::Object(object) => match object.get("table").and_then(Value::as_str) {
                    Some(table)
                        if object
                            .keys()
                            .all(|key| matches!(key.as_str(), "table" | "id" | "key"))
                            && (object.get("id").is_some_and(Value::is_string)
                                || object.contains_key("key")) =>
                    {
                        named(table)?
                    }
                    _ => {
                        return Err(Refusal::of(
                            field,
                            format!(
                                "{prefix}column {column:?} holds an object, which would create rows in another table (deep insert); the table list does not allow that"
                            ),
                        ));
                    }
                },
                Value::Array(_) => {
                    return Err(Refusal::of(
                        field,
                        format!(
                            "{prefix}column {column:?} holds a list, which would create rows in another table (deep insert); the table list does not allow that"
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The header names in a Headers argument, read as the component reads it: an object's keys,
/// the `key` of each entry of a list, or either of those given as JSON text.
fn header_names(headers: &Value) -> Vec<String> {
    match headers {
        Value::Object(object) => object.keys().cloned().collect(),
        Value::Array(entries) => entries
            .iter()
            .filter_map(|entry| entry.get("key").and_then(Value::as_str))
            .map(str::to_string)
            .collect(),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(parsed @ (Value::Object(_) | Value::Array(_))) => header_names(&parsed),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const READ: Effect = Effect {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
    };
    const WRITE: Effect = Effect {
        read_only: false,
        destructive: false,
        idempotent: false,
        open_world: false,
    };

    fn tables(list: &str) -> Policy {
        Policy::new(false, Some(list)).unwrap()
    }

    fn args(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    /// The logical names of the listed tables, as the server resolves them.
    fn logical() -> BTreeSet<String> {
        ["account", "contact"].map(String::from).into()
    }

    fn check(policy: &Policy, tables: Tables, value: Value) -> Result<(), Refusal> {
        policy.check_tables(tables, &args(value), &logical())
    }

    #[test]
    fn read_only_hides_every_tool_that_changes_data() {
        let policy = Policy::new(true, None).unwrap();
        assert!(
            policy
                .hides(WRITE, Tables::EntitySet("entityType"))
                .is_some()
        );
        assert!(
            policy
                .hides(READ, Tables::EntitySet("entityType"))
                .is_none()
        );
        assert!(policy.hides(READ, Tables::Unchecked).is_none());
    }

    #[test]
    fn a_table_list_hides_the_tools_it_cannot_check() {
        let policy = tables("accounts");
        assert!(policy.hides(WRITE, Tables::Unchecked).is_some());
        assert!(
            policy
                .hides(WRITE, Tables::EntitySet("entityType"))
                .is_none()
        );
        assert!(policy.hides(READ, Tables::None).is_none());
        assert!(Policy::default().hides(WRITE, Tables::Unchecked).is_none());
    }

    #[test]
    fn the_table_list_is_parsed_and_bad_names_are_refused() {
        let policy = tables(" Accounts, contacts ,");
        assert_eq!(
            policy.tables.unwrap().into_iter().collect::<Vec<_>>(),
            ["accounts", "contacts"]
        );
        let error = Policy::new(false, Some("accounts,con tacts")).unwrap_err();
        assert!(error.to_string().contains("\"con tacts\""));
        assert!(Policy::new(false, Some(" , ")).is_err());
    }

    #[test]
    fn a_table_outside_the_list_is_refused_naming_the_input() {
        let policy = tables("accounts,contacts");
        let entity_set = Tables::EntitySet("entityType");
        assert_eq!(
            check(&policy, entity_set, json!({"entityType": "Accounts"})),
            Ok(())
        );
        let refusal = check(&policy, entity_set, json!({"entityType": "leads"})).unwrap_err();
        assert_eq!(refusal.field.as_deref(), Some("entityType"));
        assert!(refusal.message.contains("\"leads\""));
        assert!(refusal.message.contains("accounts, contacts"));
        let refusal = check(&policy, entity_set, json!({"entityType": 5})).unwrap_err();
        assert_eq!(refusal.field.as_deref(), Some("entityType"));
        // Without a list every table goes.
        assert_eq!(
            check(
                &Policy::default(),
                entity_set,
                json!({"entityType": "leads"})
            ),
            Ok(())
        );
    }

    #[test]
    fn paths_into_other_tables_are_refused_with_a_table_list() {
        let policy = tables("accounts");
        let entity_set = Tables::EntitySet("entityType");
        let refused = |value: Value| {
            check(&policy, entity_set, value)
                .unwrap_err()
                .field
                .unwrap()
        };
        assert_eq!(
            refused(json!({"entityType": "accounts", "expand": ["primarycontactid"]})),
            "expand"
        );
        assert_eq!(
            refused(json!({"entityType": "accounts", "orderBy": "primarycontactid/fullname"})),
            "orderBy"
        );
        assert_eq!(
            refused(
                json!({"entityType": "accounts", "filterExpression": "primarycontactid/fullname eq 'x'"})
            ),
            "filterExpression"
        );
        assert_eq!(
            refused(
                json!({"entityType": "accounts", "filterExpression": "contact_customer_accounts/any(c: c.fullname eq 'x')"})
            ),
            "filterExpression"
        );
        // A slash inside a string literal is text, not a path.
        assert_eq!(
            check(
                &policy,
                entity_set,
                json!({"entityType": "accounts", "filterExpression": "name eq 'a/b' and revenue gt 5", "orderBy": ["name desc"], "expand": []})
            ),
            Ok(())
        );
    }

    #[test]
    fn written_values_may_not_reach_another_table() {
        let policy = tables("accounts,contacts");
        let entity_set = Tables::EntitySet("entityType");
        let ok = json!({"entityType": "accounts", "fieldValues": {
            "name": "A", "revenue": 5,
            "primarycontactid@odata.bind": "/contacts(00000000-0000-0000-0000-000000000001)",
            "parentaccountid": {"table": "accounts", "id": "00000000-0000-0000-0000-000000000002"},
        }});
        assert_eq!(check(&policy, entity_set, ok), Ok(()));
        let bind = json!({"entityType": "accounts", "dynamicValues": "{\"ownerid@odata.bind\": \"/systemusers(00000000-0000-0000-0000-000000000001)\"}"});
        let refusal = check(&policy, entity_set, bind).unwrap_err();
        assert_eq!(refusal.field.as_deref(), Some("dynamicValues"));
        assert!(refusal.message.contains("\"systemusers\""));
        let lookup = json!({"entityType": "accounts", "fieldValues": [{"key": "x", "value": {"table": "leads", "id": "1"}}]});
        assert!(
            check(&policy, entity_set, lookup)
                .unwrap_err()
                .message
                .contains("\"leads\"")
        );
        let deep = json!({"entityType": "accounts", "fieldValues": {"primarycontactid": {"firstname": "Deep"}}});
        assert!(
            check(&policy, entity_set, deep)
                .unwrap_err()
                .message
                .contains("deep insert")
        );
        let records = json!({"entityType": "accounts", "records": [{"name": "a"}, {"tasks": [{"subject": "x"}]}]});
        let refusal = check(&policy, entity_set, records).unwrap_err();
        assert_eq!(refusal.field.as_deref(), Some("records"));
        assert!(refusal.message.starts_with("record 1: "));
        let mapping =
            json!({"entityType": "accounts", "fieldMapping": {"owner": "ownerid@odata.bind"}});
        assert_eq!(
            check(&policy, entity_set, mapping)
                .unwrap_err()
                .field
                .as_deref(),
            Some("fieldMapping")
        );
    }

    #[test]
    fn batch_items_are_checked_one_by_one() {
        let policy = tables("accounts");
        let batch = json!({"batchActions": [
            {"collection": "accounts", "action": "create", "data": {"name": "a"}, "ref": "a"},
            {"collection": "accounts", "action": "create", "data": {"parentaccountid": {"ref": "a"}}},
            {"collection": "contacts", "action": "delete", "key": "00000000-0000-0000-0000-000000000001"},
        ]});
        let refusal = check(&policy, Tables::BatchItems, batch).unwrap_err();
        assert_eq!(refusal.field.as_deref(), Some("batchActions"));
        assert!(refusal.message.starts_with("item 2: table \"contacts\""));
        let as_text = json!({"batchActions": "[{\"collection\": \"accounts\", \"action\": \"create\", \"data\": {\"x\": {\"y\": 1}}}]"});
        let refusal = check(&policy, Tables::BatchItems, as_text).unwrap_err();
        assert!(refusal.message.starts_with("item 0: column \"x\""));
    }

    #[test]
    fn an_unchecked_tool_is_refused_even_if_called_by_name() {
        let refusal = check(&tables("accounts"), Tables::Unchecked, json!({})).unwrap_err();
        assert!(refusal.message.contains("table list"));
    }

    #[test]
    fn definitions_are_checked_by_logical_name_or_by_entity_set_when_asked() {
        let policy = tables("accounts,contacts");
        let by_logical = Tables::Logical("entityType");
        assert_eq!(
            check(&policy, by_logical, json!({"entityType": "Account"})),
            Ok(())
        );
        let refusal = check(&policy, by_logical, json!({"entityType": "accounts"})).unwrap_err();
        assert!(refusal.message.contains("account, contact"));
        assert!(check(&policy, by_logical, json!({"entityType": "lead"})).is_err());
        assert_eq!(
            check(
                &policy,
                by_logical,
                json!({"entityType": "accounts", "useLogicalNameForLookup": false})
            ),
            Ok(())
        );
        // A metadata ID cannot be checked without asking the service: refused.
        assert!(
            check(
                &policy,
                Tables::Logical("entityId"),
                json!({"entityId": "70816501-edb9-4740-a16c-6a5efbc05d84"})
            )
            .is_err()
        );
    }

    #[test]
    fn every_entity_and_link_entity_of_a_fetch_query_must_be_listed() {
        let policy = tables("accounts,contacts");
        let query = |xml: &str| json!({"entityType": "accounts", "xmlQuery": xml});
        let linked = r#"<fetch><entity name="account"><attribute name="name"/>
            <link-entity name='contact' from='contactid' to='primarycontactid'/></entity></fetch>"#;
        assert_eq!(check(&policy, Tables::FetchXml, query(linked)), Ok(()));
        let other = r#"<fetch><entity name="account"><link-entity to="x" name="lead" from="y"/></entity></fetch>"#;
        let refusal = check(&policy, Tables::FetchXml, query(other)).unwrap_err();
        assert_eq!(refusal.field.as_deref(), Some("xmlQuery"));
        assert!(refusal.message.contains("\"lead\""));
        let shouting = r#"<fetch><ENTITY NAME="lead"/></fetch>"#;
        assert!(check(&policy, Tables::FetchXml, query(shouting)).is_err());
        let encoded = r#"<fetch><entity name="&#108;ead"/></fetch>"#;
        assert!(check(&policy, Tables::FetchXml, query(encoded)).is_err());
        let nameless = r#"<fetch><entity><all-attributes/></entity></fetch>"#;
        assert!(check(&policy, Tables::FetchXml, query(nameless)).is_err());
        let wrong_set =
            json!({"entityType": "leads", "xmlQuery": "<fetch><entity name=\"account\"/></fetch>"});
        assert_eq!(
            check(&policy, Tables::FetchXml, wrong_set)
                .unwrap_err()
                .field
                .as_deref(),
            Some("entityType")
        );
    }

    #[test]
    fn a_search_must_name_its_tables_and_only_listed_ones() {
        let policy = tables("accounts,contacts");
        assert_eq!(
            check(
                &policy,
                Tables::Search,
                json!({"search": "blue", "tables": ["account", "contact"]})
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &policy,
                Tables::Search,
                json!({"search": "blue", "searchEntities": [{"name": "account"}]})
            ),
            Ok(())
        );
        let everything = check(&policy, Tables::Search, json!({"search": "blue"})).unwrap_err();
        assert_eq!(everything.field.as_deref(), Some("tables"));
        assert!(
            check(
                &policy,
                Tables::Search,
                json!({"search": "blue", "tables": "account,lead"})
            )
            .is_err()
        );
        assert_eq!(
            check(
                &policy,
                Tables::Search,
                json!({"search": "blue", "searchEntities": "[{\"name\": \"lead\"}]"})
            )
            .unwrap_err()
            .field
            .as_deref(),
            Some("searchEntities")
        );
    }

    #[test]
    fn notes_need_the_annotations_table_listed() {
        let without = tables("accounts");
        let note = json!({"entityType": "accounts", "noteId": "x"});
        assert!(check(&without, Tables::Notes("entityType"), note.clone()).is_err());
        assert!(check(&without, Tables::NotesOnly, note.clone()).is_err());
        let with = tables("accounts,annotations");
        assert_eq!(
            check(&with, Tables::Notes("entityType"), note.clone()),
            Ok(())
        );
        assert_eq!(check(&with, Tables::NotesOnly, note), Ok(()));
        assert!(
            check(
                &with,
                Tables::Notes("entityType"),
                json!({"entityType": "leads"})
            )
            .is_err()
        );
    }

    #[test]
    fn a_link_of_a_previous_output_must_read_a_listed_table_and_nothing_related() {
        let policy = tables("accounts");
        let entity_set = Tables::EntitySet("entityType");
        let next = |link: &str| json!({"entityType": "accounts", "nextPageId": link});
        let root = "https://contoso.crm.dynamics.com/api/data/v9.2";
        let page = format!(
            "{root}/accounts?$select=name&$skiptoken=%3Ccookie%20pagenumber=%222%22%20/%3E"
        );
        assert_eq!(check(&policy, entity_set, next(&page)), Ok(()));
        for (link, field) in [
            (format!("{root}/contacts?$skiptoken=x"), "nextPageId"),
            (
                format!(
                    "{root}/accounts(00000000-0000-0000-0000-000000000001)/contact_customer_accounts"
                ),
                "nextPageId",
            ),
            (
                format!("{root}/accounts?$expand=primarycontactid"),
                "nextPageId",
            ),
            (
                format!("{root}/accounts?%24filter=primarycontactid%2Ffullname%20eq%20%27x%27"),
                "nextPageId",
            ),
        ] {
            let refusal = check(&policy, entity_set, next(&link)).unwrap_err();
            assert_eq!(refusal.field.as_deref(), Some(field), "{link}");
        }
        let delta = json!({"entityType": "accounts", "deltaLink": format!("{root}/contacts?$deltatoken=1")});
        assert_eq!(
            check(&policy, entity_set, delta)
                .unwrap_err()
                .field
                .as_deref(),
            Some("deltaLink")
        );
    }
    #[test]
    fn a_link_may_carry_only_the_query_options_of_a_page_of_one_table() {
        let policy = tables("accounts");
        let entity_set = Tables::EntitySet("entityType");
        let root = "https://contoso.crm.dynamics.com/api/data/v9.2";
        let next = |link: String| json!({"entityType": "accounts", "nextPageId": link});
        // A FetchXML query, a saved or user query in a link of a listed set reads whatever
        // they name; so do options this check does not know.
        for query in [
            "fetchXml=%3Cfetch%3E%3Centity%20name%3D%22account%22%3E%3Clink-entity%20name%3D%22systemuser%22%20from%3D%22systemuserid%22%20to%3D%22ownerid%22%2F%3E%3C%2Fentity%3E%3C%2Ffetch%3E",
            "savedQuery=00000000-0000-0000-0000-000000000001",
            "userQuery=00000000-0000-0000-0000-000000000001",
            "$compute=x",
            "$search=blue",
        ] {
            let refusal = check(
                &policy,
                entity_set,
                next(format!("{root}/accounts?{query}")),
            )
            .unwrap_err();
            assert_eq!(refusal.field.as_deref(), Some("nextPageId"), "{query}");
        }
        // Path tricks: a parameter segment, a step back, an escaped character.
        for path in [
            "contacts;x/../accounts",
            "contacts/../accounts",
            "account%73",
        ] {
            assert!(
                check(&policy, entity_set, next(format!("{root}/{path}?$top=1"))).is_err(),
                "{path}"
            );
        }
        let page = format!(
            "{root}/accounts?$select=name&$filter=name%20ne%20null&$orderby=name&$count=true&$top=5&$skiptoken=%3Ccookie%20pagenumber=%222%22%20/%3E"
        );
        assert_eq!(check(&policy, entity_set, next(page)), Ok(()));
        let delta = json!({"entityType": "accounts", "deltaLink": format!("{root}/accounts?$select=name&$deltatoken=919042%2108%2f22%2f2017")});
        assert_eq!(check(&policy, entity_set, delta), Ok(()));
    }

    #[test]
    fn every_spelling_and_shape_of_a_binding_is_checked() {
        let policy = tables("accounts");
        let entity_set = Tables::EntitySet("entityType");
        let refused = |values: Value| {
            check(
                &policy,
                entity_set,
                json!({"entityType": "accounts", "fieldValues": values}),
            )
            .is_err()
        };
        // Annotation names in another case, or OData 4.01's short @bind.
        assert!(refused(
            json!({"ownerid@OData.Bind": "/systemusers(00000000-0000-0000-0000-000000000001)"})
        ));
        assert!(refused(
            json!({"ownerid@bind": "/systemusers(00000000-0000-0000-0000-000000000001)"})
        ));
        assert!(refused(
            json!({"ownerid@odata.bind ": "/systemusers(00000000-0000-0000-0000-000000000001)"})
        ));
        // A collection-valued navigation property binds a list of rows.
        assert!(refused(
            json!({"contact_customer_accounts@odata.bind": ["/contacts(00000000-0000-0000-0000-000000000001)"]})
        ));
        assert!(refused(json!({"x@odata.bind": {"table": "accounts"}})));
        // A path past the row reaches another table through it.
        assert!(refused(
            json!({"parentaccountid@odata.bind": "/accounts(00000000-0000-0000-0000-000000000001)/primarycontactid"})
        ));
        assert!(refused(json!({"parentaccountid@odata.bind": "accounts"})));
        // An object that is not exactly a lookup is sent as it is: a deep insert.
        assert!(refused(
            json!({"primarycontactid": {"table": "accounts", "id": "00000000-0000-0000-0000-000000000001", "firstname": "Deep"}})
        ));
        assert!(refused(json!({"primarycontactid": {"table": "accounts"}})));
        assert!(refused(json!({"primarycontactid": {"ref": 5}})));
        // These stay allowed.
        for values in [
            json!({"parentaccountid@odata.bind": "/accounts(00000000-0000-0000-0000-000000000001)"}),
            json!({"parentaccountid@odata.bind": "accounts(accountnumber='A/1')"}),
            json!({"parentaccountid@odata.bind": ["/accounts(00000000-0000-0000-0000-000000000001)"]}),
            json!({"parentaccountid": {"table": "accounts", "key": {"accountnumber": "A-1"}}}),
            json!({"parentaccountid": {"ref": "a"}}),
        ] {
            assert!(!refused(values.clone()), "{values}");
        }
    }

    #[test]
    fn the_lookup_mode_of_a_definition_is_read_as_the_component_reads_it() {
        let policy = tables("accounts");
        let by_logical = Tables::Logical("entityType");
        // The component takes "False" in any case as false: the name is an entity set name.
        assert_eq!(
            check(
                &policy,
                by_logical,
                json!({"entityType": "accounts", "useLogicalNameForLookup": "FALSE"})
            ),
            Ok(())
        );
        assert!(
            check(
                &policy,
                by_logical,
                json!({"entityType": "account", "useLogicalNameForLookup": "False"})
            )
            .is_err()
        );
        assert_eq!(
            check(
                &policy,
                by_logical,
                json!({"entityType": "account", "useLogicalNameForLookup": "TRUE"})
            ),
            Ok(())
        );
    }

    #[test]
    fn a_search_entry_names_its_table_under_any_spelling_of_name() {
        let policy = tables("accounts");
        let refusal = check(
            &policy,
            Tables::Search,
            json!({"search": "x", "searchEntities": [{"name": "account", "NAME": "systemuser"}]}),
        )
        .unwrap_err();
        assert_eq!(refusal.field.as_deref(), Some("searchEntities"));
        assert!(
            check(
                &policy,
                Tables::Search,
                json!({"search": "x", "searchEntities": [{"Name": "systemuser"}], "tables": ["account"]})
            )
            .is_err()
        );
        assert!(
            check(
                &policy,
                Tables::Search,
                json!({"search": "x", "searchEntities": {"name": "systemuser"}, "tables": ["account"]})
            )
            .is_err()
        );
        assert_eq!(
            check(
                &policy,
                Tables::Search,
                json!({"search": "x", "searchEntities": [{"Name": "Account"}]})
            ),
            Ok(())
        );
    }

    #[test]
    fn selected_columns_may_not_follow_a_path() {
        let policy = tables("accounts");
        let refusal = check(
            &policy,
            Tables::EntitySet("entityType"),
            json!({"entityType": "accounts", "fieldNames": ["name", "primarycontactid/fullname"]}),
        )
        .unwrap_err();
        assert_eq!(refusal.field.as_deref(), Some("fieldNames"));
    }
}
