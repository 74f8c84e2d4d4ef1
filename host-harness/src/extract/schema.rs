//! A table's columns in a database, typed from its Dataverse definition, and a row's values
//! converted to them.
//!
//! The types come from each column's `AttributeType` in the table definition that Get Entity
//! Metadata reads (`EntityDefinitions(...)?$expand=Attributes`): the attribute types are listed
//! at learn.microsoft.com/dotnet/api/microsoft.xrm.sdk.metadata.attributetypecode, and a
//! date-only column is a DateTime attribute whose `Format` is `DateOnly`
//! (learn.microsoft.com/power-apps/developer/data-platform/behavior-format-date-time-attribute).
//! A lookup reaches the Web API as `_<name>_value` with the target table in the
//! `@Microsoft.Dynamics.CRM.lookuplogicalname` annotation, and a choice's label in the
//! `@OData.Community.Display.V1.FormattedValue` annotation
//! (learn.microsoft.com/power-apps/developer/data-platform/webapi/query/select-columns#formatted-values).

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail};
use serde_json::Value;
use serde_json::value::RawValue;

const LOOKUP_TABLE: &str = "@Microsoft.Dynamics.CRM.lookuplogicalname";
const FORMATTED: &str = "@OData.Community.Display.V1.FormattedValue";

/// What a column holds, whatever the database calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Uuid,
    /// Integer (32-bit in Dataverse).
    Integer,
    BigInt,
    /// Money and Decimal: kept exact, as the service wrote the number.
    Numeric,
    /// Double (floating point in Dataverse too).
    Float,
    Boolean,
    /// Date and time, UTC.
    Timestamp,
    /// Date only: no time zone.
    Date,
}

/// Where a column's value comes from in a row of the Web API.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The property of that name.
    Plain(String),
    /// The target table of the lookup `_<name>_value`: its annotation, else the lookup's only
    /// target from the definition.
    LookupTable {
        key: String,
        only_target: Option<String>,
    },
    /// The label of the choice: its annotation, else the option set's label from metadata.
    ChoiceLabel {
        key: String,
        labels: BTreeMap<i64, String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    pub source: Source,
}

/// A value ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    /// A decimal number's exact text.
    Number(String),
    Float(f64),
}

/// A table as it lands: the entity set, its primary ID column and the other columns.
#[derive(Debug, Clone)]
pub struct TableSchema {
    pub table: String,
    pub primary_id: String,
    pub columns: Vec<Column>,
    /// Dataverse tracks the table's changes, so deletes can be read.
    pub change_tracking: bool,
}

/// Column names become SQL identifiers: only what a Dataverse logical name can be.
pub fn check_identifier(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 120
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        bail!("{name:?} is not a column or table name of lower-case letters, digits and _");
    }
    Ok(())
}

impl TableSchema {
    /// The schema from the table definition Get Entity Metadata answers; `labels` are the
    /// choice columns' option labels by column.
    pub fn from_definition(
        table: &str,
        definition: &Value,
        labels: &HashMap<String, BTreeMap<i64, String>>,
    ) -> anyhow::Result<TableSchema> {
        let primary_id = definition["PrimaryIdAttribute"]
            .as_str()
            .ok_or_else(|| anyhow!("the definition of {table} has no PrimaryIdAttribute"))?
            .to_ascii_lowercase();
        check_identifier(&primary_id)?;
        let change_tracking = definition["ChangeTrackingEnabled"].as_bool() == Some(true);
        let mut schema = TableSchema {
            table: table.to_string(),
            primary_id: primary_id.clone(),
            columns: Vec::new(),
            change_tracking,
        };
        let attributes = definition["Attributes"]
            .as_array()
            .ok_or_else(|| anyhow!("the definition of {table} lists no Attributes"))?;
        for attribute in attributes {
            let Some(name) = attribute["LogicalName"].as_str() else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            // A column "of" another (owneridname, the lookup's name) is not stored on its own,
            // and one that cannot be read never comes in a row.
            if !attribute["AttributeOf"].is_null()
                || attribute["IsValidForRead"].as_bool() == Some(false)
                || name == primary_id
                || check_identifier(&name).is_err()
            {
                continue;
            }
            let kind = attribute["AttributeType"].as_str().unwrap_or("String");
            let date_only = attribute["Format"].as_str() == Some("DateOnly")
                || attribute["DateTimeBehavior"]["Value"].as_str() == Some("DateOnly");
            match kind {
                "Lookup" | "Customer" | "Owner" => {
                    let targets: Vec<&str> = attribute["Targets"]
                        .as_array()
                        .map(|t| t.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    schema.add_lookup(&name, (targets.len() == 1).then(|| targets[0].to_string()));
                }
                "Picklist" | "State" | "Status" => {
                    schema.add_choice(&name, labels.get(&name).cloned().unwrap_or_default());
                }
                "Virtual" | "PartyList" | "CalendarRules" | "ManagedProperty" => {}
                other => {
                    let kind = match other {
                        "Uniqueidentifier" => Kind::Uuid,
                        "Integer" => Kind::Integer,
                        "BigInt" => Kind::BigInt,
                        "Money" | "Decimal" => Kind::Numeric,
                        "Double" => Kind::Float,
                        "Boolean" => Kind::Boolean,
                        "DateTime" if date_only => Kind::Date,
                        "DateTime" => Kind::Timestamp,
                        _ => Kind::Text,
                    };
                    schema.push(Column {
                        name: name.clone(),
                        kind,
                        source: Source::Plain(name),
                    });
                }
            }
        }
        Ok(schema)
    }

    fn has(&self, name: &str) -> bool {
        name == self.primary_id || self.columns.iter().any(|c| c.name == name)
    }

    fn push(&mut self, column: Column) {
        if !self.has(&column.name) {
            self.columns.push(column);
        }
    }

    fn add_lookup(&mut self, name: &str, only_target: Option<String>) {
        let key = format!("_{name}_value");
        self.push(Column {
            name: name.to_string(),
            kind: Kind::Uuid,
            source: Source::Plain(key.clone()),
        });
        self.push(Column {
            name: format!("{name}_table"),
            kind: Kind::Text,
            source: Source::LookupTable { key, only_target },
        });
    }

    fn add_choice(&mut self, name: &str, labels: BTreeMap<i64, String>) {
        self.push(Column {
            name: name.to_string(),
            kind: Kind::Integer,
            source: Source::Plain(name.to_string()),
        });
        self.push(Column {
            name: format!("{name}_label"),
            kind: Kind::Text,
            source: Source::ChoiceLabel {
                key: name.to_string(),
                labels,
            },
        });
    }

    /// Adds the columns a row has that the definition did not list (a column created since),
    /// as text, or as a lookup for `_<name>_value`. True when the schema grew.
    pub fn grow_from(&mut self, row: &BTreeMap<&str, &RawValue>) -> bool {
        let before = self.columns.len();
        for key in row.keys() {
            if key.contains('@') || self.source_known(key) {
                continue;
            }
            if let Some(name) = key.strip_prefix('_').and_then(|k| k.strip_suffix("_value")) {
                if check_identifier(name).is_ok() && !self.has(name) {
                    self.add_lookup(name, None);
                }
            } else if check_identifier(key).is_ok() {
                self.push(Column {
                    name: key.to_string(),
                    kind: Kind::Text,
                    source: Source::Plain(key.to_string()),
                });
            }
        }
        self.columns.len() > before
    }

    fn source_known(&self, key: &str) -> bool {
        key == self.primary_id
            || self
                .columns
                .iter()
                .any(|c| matches!(&c.source, Source::Plain(k) if k == key))
    }

    /// The row's ID (lower case) and its cells in the order of `columns`.
    pub fn cells(&self, row: &BTreeMap<&str, &RawValue>) -> anyhow::Result<(String, Vec<Cell>)> {
        let id = row
            .get(self.primary_id.as_str())
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
            .ok_or_else(|| {
                anyhow!(
                    "a row of {} has no {} to key it on",
                    self.table,
                    self.primary_id
                )
            })?
            .to_ascii_lowercase();
        let mut cells = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            let cell = match &column.source {
                Source::Plain(key) => match row.get(key.as_str()) {
                    Some(raw) => convert(raw, column.kind).map_err(|problem| {
                        anyhow!(
                            "row {id} of {}: column {}: {problem}",
                            self.table,
                            column.name
                        )
                    })?,
                    None => Cell::Null,
                },
                Source::LookupTable { key, only_target } => {
                    match annotation(row, key, LOOKUP_TABLE) {
                        Some(table) => Cell::Text(table),
                        None if is_set(row, key) => {
                            only_target.clone().map_or(Cell::Null, Cell::Text)
                        }
                        None => Cell::Null,
                    }
                }
                Source::ChoiceLabel { key, labels } => match annotation(row, key, FORMATTED) {
                    Some(label) => Cell::Text(label),
                    None => row
                        .get(key.as_str())
                        .and_then(|raw| raw.get().parse::<i64>().ok())
                        .and_then(|value| labels.get(&value).cloned())
                        .map_or(Cell::Null, Cell::Text),
                },
            };
            cells.push(cell);
        }
        Ok((id, cells))
    }
}

fn is_set(row: &BTreeMap<&str, &RawValue>, key: &str) -> bool {
    row.get(key).is_some_and(|raw| raw.get() != "null")
}

fn annotation(row: &BTreeMap<&str, &RawValue>, key: &str, name: &str) -> Option<String> {
    let raw = row.get(format!("{key}{name}").as_str())?;
    serde_json::from_str::<String>(raw.get()).ok()
}

/// A JSON value as the column's kind; a value of another shape is an error naming both, never a
/// silent null.
fn convert(raw: &RawValue, kind: Kind) -> anyhow::Result<Cell> {
    let text = raw.get().trim();
    if text == "null" {
        return Ok(Cell::Null);
    }
    let is_number = text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
    let string = || serde_json::from_str::<String>(text).ok();
    Ok(match kind {
        Kind::Integer | Kind::BigInt => Cell::Int(
            text.parse::<i64>()
                .map_err(|_| anyhow!("{text} is not a whole number"))?,
        ),
        Kind::Numeric if is_number => Cell::Number(text.to_string()),
        Kind::Numeric => bail!("{text} is not a number"),
        Kind::Float => Cell::Float(
            text.parse::<f64>()
                .map_err(|_| anyhow!("{text} is not a number"))?,
        ),
        Kind::Boolean => match text {
            "true" => Cell::Bool(true),
            "false" => Cell::Bool(false),
            _ => bail!("{text} is not true or false"),
        },
        Kind::Uuid | Kind::Timestamp | Kind::Date => {
            Cell::Text(string().ok_or_else(|| anyhow!("{text} is not a string"))?)
        }
        // Text keeps a string as it is and anything else (a number in a column the definition
        // did not list) as its JSON.
        Kind::Text => Cell::Text(string().unwrap_or_else(|| text.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definition() -> Value {
        json!({
            "PrimaryIdAttribute": "opportunityid",
            "ChangeTrackingEnabled": true,
            "Attributes": [
                {"LogicalName": "opportunityid", "AttributeType": "Uniqueidentifier", "AttributeOf": null},
                {"LogicalName": "name", "AttributeType": "String", "AttributeOf": null},
                {"LogicalName": "estimatedvalue", "AttributeType": "Money", "AttributeOf": null},
                {"LogicalName": "estimatedclosedate", "AttributeType": "DateTime", "Format": "DateOnly", "AttributeOf": null},
                {"LogicalName": "modifiedon", "AttributeType": "DateTime", "Format": "DateAndTime", "AttributeOf": null},
                {"LogicalName": "closeprobability", "AttributeType": "Integer", "AttributeOf": null},
                {"LogicalName": "parentaccountid", "AttributeType": "Lookup", "Targets": ["account"], "AttributeOf": null},
                {"LogicalName": "customerid", "AttributeType": "Customer", "Targets": ["account", "contact"], "AttributeOf": null},
                {"LogicalName": "customeridname", "AttributeType": "String", "AttributeOf": "customerid"},
                {"LogicalName": "statecode", "AttributeType": "State", "AttributeOf": null},
                {"LogicalName": "isprivate", "AttributeType": "Boolean", "AttributeOf": null},
            ]
        })
    }

    fn parse(text: &str) -> BTreeMap<&str, &RawValue> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn columns_are_typed_from_the_definition_with_lookup_tables_and_choice_labels() {
        let labels = HashMap::from([(
            "statecode".to_string(),
            BTreeMap::from([(0, "Open".to_string())]),
        )]);
        let schema = TableSchema::from_definition("opportunities", &definition(), &labels).unwrap();
        let kinds: Vec<(&str, Kind)> = schema
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("name", Kind::Text),
                ("estimatedvalue", Kind::Numeric),
                ("estimatedclosedate", Kind::Date),
                ("modifiedon", Kind::Timestamp),
                ("closeprobability", Kind::Integer),
                ("parentaccountid", Kind::Uuid),
                ("parentaccountid_table", Kind::Text),
                ("customerid", Kind::Uuid),
                ("customerid_table", Kind::Text),
                ("statecode", Kind::Integer),
                ("statecode_label", Kind::Text),
                ("isprivate", Kind::Boolean),
            ]
        );
        let row = parse(
            r#"{"opportunityid":"AB-1","name":"x","estimatedvalue":12345678901234567.891,
               "estimatedclosedate":"2024-06-25","modifiedon":"2024-01-01T00:00:00Z",
               "closeprobability":37,"_parentaccountid_value":"p","_customerid_value":"c",
               "_customerid_value@Microsoft.Dynamics.CRM.lookuplogicalname":"contact",
               "statecode":0,"isprivate":false}"#,
        );
        let (id, cells) = schema.cells(&row).unwrap();
        assert_eq!(id, "ab-1");
        assert_eq!(cells[1], Cell::Number("12345678901234567.891".into()));
        assert_eq!(cells[6], Cell::Text("account".into()), "the only target");
        assert_eq!(cells[8], Cell::Text("contact".into()), "the annotation");
        assert_eq!(cells[10], Cell::Text("Open".into()));
        assert_eq!(cells[11], Cell::Bool(false));
    }

    #[test]
    fn a_value_of_the_wrong_shape_names_the_row_and_column() {
        let schema =
            TableSchema::from_definition("opportunities", &definition(), &HashMap::new()).unwrap();
        let row = parse(r#"{"opportunityid":"a","closeprobability":"high"}"#);
        let problem = schema.cells(&row).unwrap_err().to_string();
        assert!(problem.contains("column closeprobability"), "{problem}");
        assert!(problem.contains("row a of opportunities"), "{problem}");
    }

    #[test]
    fn a_row_with_columns_the_definition_lacks_grows_the_schema() {
        let mut schema =
            TableSchema::from_definition("opportunities", &definition(), &HashMap::new()).unwrap();
        let row = parse(r#"{"opportunityid":"a","new_score":5,"_new_partner_value":"b"}"#);
        assert!(schema.grow_from(&row));
        assert!(!schema.grow_from(&row), "once");
        let (_, cells) = schema.cells(&row).unwrap();
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert!(names.ends_with(&["new_partner", "new_partner_table", "new_score"]));
        assert_eq!(cells[cells.len() - 1], Cell::Text("5".into()));
    }
}
