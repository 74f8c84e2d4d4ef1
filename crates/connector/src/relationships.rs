//! A table's relationships as navigation properties from its side, read from the relationship
//! metadata: what Relate Rows and Unrelate Rows address, and the choices of the "relationships"
//! data source.
//!
//! Sources:
//! - <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query-metadata-web-api#retrieve-relationships>
//!   (`EntityDefinitions(LogicalName='x')/OneToManyRelationships`, `ManyToOneRelationships`,
//!   `ManyToManyRelationships`)
//! - <https://learn.microsoft.com/power-apps/developer/data-platform/entity-relationship-metadata>
//!   (`ReferencedEntityNavigationPropertyName` is the collection-valued property on the
//!   referenced (one) side, `ReferencingEntityNavigationPropertyName` the single-valued one on
//!   the referencing (many) side; `Entity1NavigationPropertyName` and
//!   `Entity2NavigationPropertyName` the collection-valued ones of a many-to-many)

use dataverse::keys::RecordKey;
use serde_json::Value;

use crate::bindings::dynamics::connector::types::{Choice, ErrorCode};
use crate::context::Context;
use crate::definition::{Format, InputDef, Kind};
use crate::entity_metadata::{entity_path, get, rows};
use crate::error::{Result, error, invalid_input};
use crate::input::{Input, closest};
use crate::inputs::ENTITY_TYPE;
use crate::records::{record_path, unknown_set_error};

/// The kind of relationship, seen from the table it is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    /// This table is the "one": the property lists the related rows.
    OneToMany,
    /// This table is the "many": the property is its lookup to one related row.
    ManyToOne,
    /// Rows on both sides relate to many rows.
    ManyToMany,
}

impl Cardinality {
    fn label(self) -> &'static str {
        match self {
            Cardinality::OneToMany => "one-to-many",
            Cardinality::ManyToOne => "many-to-one",
            Cardinality::ManyToMany => "many-to-many",
        }
    }
}

/// One relationship, from a table's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    pub schema_name: String,
    pub kind: Cardinality,
    /// The navigation property on this table's side.
    pub navigation_property: String,
    /// The related table's logical name.
    pub related_table: String,
    /// For many-to-one: this table's lookup column.
    pub lookup_column: Option<String>,
}

impl Relationship {
    /// Single-valued properties are set with PUT and cleared without naming the related row.
    pub fn is_single_valued(&self) -> bool {
        self.kind == Cardinality::ManyToOne
    }
}

/// Every relationship of the table with this logical name, as navigation properties.
pub fn of_table(
    context: &Context,
    table: &InputDef,
    logical_name: &str,
) -> Result<Vec<Relationship>> {
    let path = entity_path(table, logical_name)?;
    let text = |row: &Value, name: &str| -> String {
        row.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut found = Vec::new();
    for row in rows(&get(
        context,
        &format!(
            "{path}/OneToManyRelationships?$select=SchemaName,ReferencingEntity,ReferencedEntityNavigationPropertyName"
        ),
    )?)? {
        found.push(Relationship {
            schema_name: text(&row, "SchemaName"),
            kind: Cardinality::OneToMany,
            navigation_property: text(&row, "ReferencedEntityNavigationPropertyName"),
            related_table: text(&row, "ReferencingEntity"),
            lookup_column: None,
        });
    }
    for row in rows(&get(
        context,
        &format!(
            "{path}/ManyToOneRelationships?$select=SchemaName,ReferencedEntity,ReferencingEntityNavigationPropertyName,ReferencingAttribute"
        ),
    )?)? {
        found.push(Relationship {
            schema_name: text(&row, "SchemaName"),
            kind: Cardinality::ManyToOne,
            navigation_property: text(&row, "ReferencingEntityNavigationPropertyName"),
            related_table: text(&row, "ReferencedEntity"),
            lookup_column: Some(text(&row, "ReferencingAttribute")),
        });
    }
    for row in rows(&get(
        context,
        &format!(
            "{path}/ManyToManyRelationships?$select=SchemaName,Entity1LogicalName,Entity2LogicalName,Entity1NavigationPropertyName,Entity2NavigationPropertyName"
        ),
    )?)? {
        let one = text(&row, "Entity1LogicalName");
        let two = text(&row, "Entity2LogicalName");
        // A self-referencing many-to-many has a property on each side; both are offered.
        for (side, other, property) in [
            (&one, &two, "Entity1NavigationPropertyName"),
            (&two, &one, "Entity2NavigationPropertyName"),
        ] {
            if side.eq_ignore_ascii_case(logical_name) {
                found.push(Relationship {
                    schema_name: text(&row, "SchemaName"),
                    kind: Cardinality::ManyToMany,
                    navigation_property: text(&row, property),
                    related_table: other.clone(),
                    lookup_column: None,
                });
            }
        }
    }
    found.retain(|relationship| {
        !relationship.navigation_property.is_empty() && !relationship.related_table.is_empty()
    });
    Ok(found)
}

/// The relationship whose navigation property `input` names; refused, with the closest
/// property, when the table has none by that name.
pub fn find(
    relationships: Vec<Relationship>,
    input: &InputDef,
    given: &str,
    table: &str,
) -> Result<Relationship> {
    let names: Vec<String> = relationships
        .iter()
        .map(|relationship| relationship.navigation_property.clone())
        .collect();
    if let Some(found) = relationships
        .iter()
        .position(|relationship| relationship.navigation_property == given)
        .or_else(|| {
            relationships.iter().position(|relationship| {
                relationship.navigation_property.eq_ignore_ascii_case(given)
            })
        })
    {
        return Ok(relationships.into_iter().nth(found).expect("found above"));
    }
    let known: Vec<&str> = names.iter().map(String::as_str).collect();
    let suggestion = closest(given, &known)
        .map(|near| format!("; did you mean {near:?}?"))
        .unwrap_or_default();
    Err(invalid_input(
        input,
        format!(
            "table {table:?} has no relationship with the navigation property {given:?}{suggestion}"
        ),
    ))
}

/// The "relationships" data source: the relationships of the table with this entity set or
/// logical name.
pub fn source(context: &Context, name: &str) -> Result<Vec<Choice>> {
    let logical = match context.metadata.table(&context.client, name)? {
        Some(table) => table.logical_name.clone(),
        None => name.to_string(),
    };
    Ok(choices(&of_table(context, &ENTITY_TYPE, &logical)?))
}

/// The choices of the "relationships" data source: label "schema name (kind, related table)",
/// value the navigation property.
pub fn choices(relationships: &[Relationship]) -> Vec<Choice> {
    relationships
        .iter()
        .map(|relationship| Choice {
            label: format!(
                "{} ({}, {}) via {}",
                relationship.schema_name,
                relationship.kind.label(),
                relationship.related_table,
                relationship.navigation_property
            ),
            value: relationship.navigation_property.clone(),
        })
        .collect()
}

/// The relationship of Relate Rows and Unrelate Rows, by navigation property.
pub const RELATIONSHIP: InputDef = InputDef::new("relationship", "Relationship", Kind::Text)
    .required()
    .comments("The relationship, as the navigation property on the row's side (contact_customer_accounts, parentcustomerid_account); the related table follows from it")
    .example("contact_customer_accounts")
    .data_source("relationships")
    .format(Format::Identifier);

/// The row on the other side of the relationship.
pub const RELATED_ID: InputDef = InputDef::new("relatedEntityId", "Related Entity ID", Kind::Text)
    .required()
    .comments("The related row: its GUID or an alternate key such as accountnumber='A-1'")
    .example("00000000-0000-0000-0000-000000000003");

/// The two rows of Relate Rows or Unrelate Rows and the relationship between them.
pub struct Pair {
    /// The row, under the Web API root: `contacts(<id>)`.
    pub path: String,
    pub relationship: Relationship,
    /// The related table's entity set.
    pub related_set: String,
    /// The related row, when given.
    pub related: Option<Related>,
}

/// The row on the other side.
pub struct Related {
    pub key: RecordKey,
    /// `<entity set><key segment>`, under the Web API root.
    pub path: String,
}

/// Reads the inputs of Relate Rows and Unrelate Rows: both keys are checked before any request,
/// then the relationship is looked up in the table's metadata. The related row may be absent
/// (clearing a lookup names none); callers that need it say so.
pub fn pair(context: &Context, input: &Input) -> Result<Pair> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let (path, _) = record_path(entity_set, input)?;
    let related_key = match input.text(RELATED_ID.key) {
        Some(given) => Some(
            RecordKey::parse(given)
                .map_err(|problem| invalid_input(&RELATED_ID, problem.to_string()))?,
        ),
        None => None,
    };
    let table = context
        .metadata
        .table(&context.client, entity_set)?
        .ok_or_else(|| unknown_set_error(context, entity_set))?;
    let relationships = of_table(context, &ENTITY_TYPE, &table.logical_name)?;
    let given = input.text(RELATIONSHIP.key).unwrap_or_default();
    let relationship = find(relationships, &RELATIONSHIP, given, &table.logical_name)?;
    let related_table = context
        .metadata
        .table(&context.client, &relationship.related_table)?
        .ok_or_else(|| {
            error(
                ErrorCode::NotFound,
                format!(
                    "the related table {:?} of {:?} is not in the environment's metadata",
                    relationship.related_table, relationship.navigation_property
                ),
            )
        })?;
    let related_set = related_table.entity_set.clone();
    let related = related_key.map(|key| Related {
        path: format!("{related_set}{}", key.segment()),
        key,
    });
    Ok(Pair {
        path,
        relationship,
        related_set,
        related,
    })
}

/// Unrelate Rows' related row: needed for collections, optional when clearing a lookup.
pub const UNRELATED_ID: InputDef = InputDef::new("relatedEntityId", "Related Entity ID", Kind::Text)
    .comments("The related row: its GUID or an alternate key such as accountnumber='A-1'. Required for one-to-many and many-to-many; for a many-to-one lookup, when given, the lookup is cleared only if it still points to this row")
    .example("00000000-0000-0000-0000-000000000003");
