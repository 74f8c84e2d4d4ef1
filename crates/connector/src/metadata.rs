//! Table metadata, fetched lazily and only for the tables an invocation touches: entity set
//! names, primary ID columns, and the lookup columns with their navigation properties.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

use crate::client::Client;
use crate::error::{Result, malformed};

/// What an invocation needs to know about one table.
#[derive(Debug, Clone)]
pub struct Table {
    pub logical_name: String,
    pub entity_set: String,
    pub primary_id: String,
}

/// One lookup column and a table it can point to.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub column: String,
    pub target: String,
    pub navigation_property: String,
}

/// Metadata read so far in this invocation.
#[derive(Default)]
pub struct MetadataCache {
    tables: RefCell<HashMap<String, Option<Rc<Table>>>>,
    lookups: RefCell<HashMap<String, Rc<Vec<Lookup>>>>,
    entity_sets: RefCell<Option<Rc<Vec<String>>>>,
}

impl MetadataCache {
    /// The table with this entity set name (`accounts`) or logical name (`account`); None when
    /// the environment has neither.
    pub fn table(&self, client: &Client, name: &str) -> Result<Option<Rc<Table>>> {
        let name = name.to_ascii_lowercase();
        if let Some(known) = self.tables.borrow().get(&name) {
            return Ok(known.clone());
        }
        // Table names are identifiers; anything else (a quote, a space) names no table and would
        // break the filter below, so it is not sent.
        if !dataverse::odata::is_identifier(&name) {
            return Ok(None);
        }
        let select = "$select=LogicalName,EntitySetName,PrimaryIdAttribute";
        let by_set = client.get_json(&format!(
            "EntityDefinitions?$filter=EntitySetName%20eq%20'{name}'&{select}"
        ))?;
        let mut found = first_table(&by_set)?;
        if found.is_none() {
            let by_logical = client.get_json(&format!(
                "EntityDefinitions?$filter=LogicalName%20eq%20'{name}'&{select}"
            ))?;
            found = first_table(&by_logical)?;
        }
        let found = found.map(Rc::new);
        let mut tables = self.tables.borrow_mut();
        if let Some(table) = &found {
            tables.insert(table.entity_set.clone(), found.clone());
            tables.insert(table.logical_name.clone(), found.clone());
        }
        tables.insert(name, found.clone());
        Ok(found)
    }

    /// The many-to-one relationships of a table, by logical name.
    pub fn lookups(&self, client: &Client, logical_name: &str) -> Result<Rc<Vec<Lookup>>> {
        if let Some(known) = self.lookups.borrow().get(logical_name) {
            return Ok(known.clone());
        }
        let answer = client.get_json(&format!(
            "EntityDefinitions(LogicalName='{logical_name}')/ManyToOneRelationships?$select=ReferencingAttribute,ReferencedEntity,ReferencingEntityNavigationPropertyName"
        ))?;
        let rows = answer
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("the relationship metadata has no value list"))?;
        let text = |row: &Value, name: &str| {
            row.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase()
        };
        let lookups: Vec<Lookup> = rows
            .iter()
            .map(|row| Lookup {
                column: text(row, "ReferencingAttribute"),
                target: text(row, "ReferencedEntity"),
                navigation_property: row
                    .get("ReferencingEntityNavigationPropertyName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
            .filter(|lookup| !lookup.navigation_property.is_empty())
            .collect();
        let lookups = Rc::new(lookups);
        self.lookups
            .borrow_mut()
            .insert(logical_name.to_string(), lookups.clone());
        Ok(lookups)
    }

    /// Every entity set name, for suggestions when one is mistyped.
    pub fn entity_sets(&self, client: &Client) -> Result<Rc<Vec<String>>> {
        if let Some(known) = self.entity_sets.borrow().as_ref() {
            return Ok(known.clone());
        }
        let answer = client.get_json("EntityDefinitions?$select=EntitySetName")?;
        let names: Vec<String> = answer
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|row| {
                row.get("EntitySetName")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        let names = Rc::new(names);
        *self.entity_sets.borrow_mut() = Some(names.clone());
        Ok(names)
    }
}

fn first_table(answer: &Value) -> Result<Option<Table>> {
    let rows = answer
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("the table metadata has no value list"))?;
    Ok(rows.first().map(|row| {
        let text = |name: &str| {
            row.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Table {
            logical_name: text("LogicalName"),
            entity_set: text("EntitySetName"),
            primary_id: text("PrimaryIdAttribute"),
        }
    }))
}
