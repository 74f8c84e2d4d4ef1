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
}

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
        Ok(Policy { read_only, tables })
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
    /// to case, as Dataverse names them.
    pub fn check_tables(
        &self,
        tables: Tables,
        arguments: &Map<String, Value>,
    ) -> Result<(), Refusal> {
        let Some(allowed) = &self.tables else {
            return Ok(());
        };
        let check = Check { allowed };
        match tables {
            Tables::None => Ok(()),
            Tables::Unchecked => Err(Refusal {
                field: None,
                message: "this tool is not available with a table list".to_string(),
            }),
            Tables::EntitySet(key) => {
                let Some(value) = arguments.get(key) else {
                    // Missing: the component names the required input, and sends nothing.
                    return Ok(());
                };
                let Some(name) = value.as_str() else {
                    return Err(Refusal::of(
                        key,
                        format!("{key} must be text, an entity set name"),
                    ));
                };
                check.table(key, name)?;
                check.no_paths(arguments, "expand", |_| true)?;
                check.no_paths(arguments, "orderBy", |text| text.contains('/'))?;
                if let Some(filter) = arguments.get("filterExpression").and_then(Value::as_str)
                    && navigates(filter)
                {
                    return Err(Refusal::of(
                        "filterExpression",
                        "a filter through a navigation property (a / or any/all) reads other tables, which the table list does not allow",
                    ));
                }
                for key in ["fieldValues", "dynamicValues"] {
                    if let Some(values) = arguments.get(key) {
                        check.row(key, "", values)?;
                    }
                }
                if let Some(mapping) = arguments.get("fieldMapping").and_then(Value::as_object)
                    && let Some((source, _)) = mapping.iter().find(|(_, column)| {
                        column.as_str().is_some_and(|column| column.contains('@'))
                    })
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
                        check.row("records", &format!("record {index}: "), record)?;
                    }
                }
                Ok(())
            }
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

struct Check<'a> {
    allowed: &'a BTreeSet<String>,
}

impl Check<'_> {
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
            if column.ends_with("@odata.bind") {
                let Some(target) = value.as_str() else {
                    continue;
                };
                let set = target
                    .trim_start_matches('/')
                    .split(['(', '/'])
                    .next()
                    .unwrap_or_default();
                named(set)?;
                continue;
            }
            match value {
                Value::Object(object) if object.len() == 1 && object.contains_key("ref") => {}
                Value::Object(object) => match object.get("table").and_then(Value::as_str) {
                    Some(table) => named(table)?,
                    None => {
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

    fn check(policy: &Policy, tables: Tables, value: Value) -> Result<(), Refusal> {
        policy.check_tables(tables, &args(value))
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
}
