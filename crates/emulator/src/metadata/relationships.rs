//! Creating a relationship (`POST RelationshipDefinitions`).
//!
//! "Create and update table relationships using the Web API"
//! (learn.microsoft.com/power-apps/developer/data-platform/webapi/create-update-entity-relationships-using-web-api),
//! "Create a one-to-many relationship": a `OneToManyRelationshipMetadata` (`SchemaName`,
//! `ReferencedEntity`, `ReferencedAttribute`, `ReferencingEntity`, `CascadeConfiguration`,
//! `AssociatedMenuConfiguration`) whose `Lookup` (a `LookupAttributeMetadata` with its
//! `SchemaName`, `DisplayName`, `RequiredLevel`) becomes the lookup column of the referencing
//! table; the answer is 204 with `OData-EntityId: [api]/RelationshipDefinitions(<MetadataId>)`.
//! The referencing table gets the single-valued navigation property (the lookup's schema name,
//! unless `ReferencingEntityNavigationPropertyName` names another) and the referenced table the
//! collection-valued one (the relationship's schema name, unless
//! `ReferencedEntityNavigationPropertyName` names another), usable in `@odata.bind`, `$expand`
//! and `$ref` at once.
//!
//! Many-to-many relationships (`ManyToManyRelationshipMetadata`) are created by
//! `many_to_many.rs`, with their intersect table.

use serde_json::{Map, Value};

use super::define_table::check_schema_name;
use super::write::{body_labels, body_object, required_level, user_text};
use crate::error::DvError;
use crate::schema::{AttrKind, Attribute, RelDecl, meta_guid};
use crate::store::Store;
use crate::wire::{Req, Resp};

fn text<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn required<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, DvError> {
    text(body, name).ok_or_else(|| {
        DvError::bad_request(format!("The relationship definition must have a {name}."))
    })
}

/// Whether a relationship of either kind has this schema name.
fn exists(store: &Store, schema_name: &str) -> bool {
    store
        .schema
        .relationships
        .iter()
        .any(|r| r.schema_name.eq_ignore_ascii_case(schema_name))
        || store
            .schema
            .additions
            .many_to_many
            .iter()
            .any(|m| m.schema_name.eq_ignore_ascii_case(schema_name))
}

fn duplicate(schema_name: &str) -> DvError {
    DvError::new(
        412,
        crate::error::DUPLICATE_RECORD,
        format!("A relationship named '{schema_name}' already exists."),
    )
}

/// `POST RelationshipDefinitions`.
pub fn create(store: &mut Store, req: &Req) -> Result<Resp, DvError> {
    let body = body_object(req.body)?;
    let kind = body.get("@odata.type").and_then(Value::as_str).map(|t| {
        t.trim_start_matches('#')
            .trim_start_matches("Microsoft.Dynamics.CRM.")
    });
    match kind {
        Some("OneToManyRelationshipMetadata") => {}
        Some("ManyToManyRelationshipMetadata") => {
            let schema_name = required(&body, "SchemaName")?;
            check_schema_name(schema_name, "a relationship")?;
            if exists(store, schema_name) {
                return Err(duplicate(schema_name));
            }
            return crate::many_to_many::create(store, req, &body, schema_name);
        }
        Some(other) => {
            return Err(DvError::bad_request(format!(
                "'{other}' is not a relationship type: use OneToManyRelationshipMetadata or ManyToManyRelationshipMetadata."
            )));
        }
        None => {
            return Err(DvError::bad_request(
                "The relationship definition must name its type in '@odata.type'.",
            ));
        }
    }
    let schema_name = required(&body, "SchemaName")?;
    check_schema_name(schema_name, "a relationship")?;
    if exists(store, schema_name) {
        return Err(duplicate(schema_name));
    }
    let referenced_name = required(&body, "ReferencedEntity")?;
    let referencing_name = required(&body, "ReferencingEntity")?;
    let table = |name: &str, property: &str| {
        store.schema.entity(name).ok_or_else(|| {
            DvError::bad_request(format!("{property} names '{name}', which is not a table."))
        })
    };
    let referenced = table(referenced_name, "ReferencedEntity")?;
    let referencing = table(referencing_name, "ReferencingEntity")?;
    let primary = store.entity(referenced).primary_id_name().to_string();
    if let Some(attr) = text(&body, "ReferencedAttribute")
        && attr != primary
    {
        return Err(DvError::bad_request(format!(
            "ReferencedAttribute must be the primary key of '{referenced_name}' ('{primary}'), not '{attr}'."
        )));
    }
    let Some(Value::Object(lookup)) = body.get("Lookup") else {
        return Err(DvError::bad_request(
            "A one-to-many relationship must define its lookup column in 'Lookup'.",
        ));
    };
    let lookup_schema = text(lookup, "SchemaName").ok_or_else(|| {
        DvError::bad_request("The lookup column ('Lookup') must have a SchemaName.")
    })?;
    check_schema_name(lookup_schema, "a column")?;
    if let Some(t) = lookup.get("@odata.type").and_then(Value::as_str)
        && !t.ends_with("LookupAttributeMetadata")
    {
        return Err(DvError::bad_request(format!(
            "The lookup column ('Lookup') must be a LookupAttributeMetadata, not '{t}'."
        )));
    }
    let logical = lookup_schema.to_lowercase();
    let referencing_nav = text(&body, "ReferencingEntityNavigationPropertyName")
        .unwrap_or(lookup_schema)
        .to_string();
    let referenced_nav = text(&body, "ReferencedEntityNavigationPropertyName")
        .unwrap_or(schema_name)
        .to_string();
    let ent = store.entity(referencing);
    let taken = ent.attr(&logical).is_some()
        || ent.attr_by_wire(&logical).is_some()
        || store
            .schema
            .single_nav(referencing, &referencing_nav)
            .is_some()
        || store
            .schema
            .collection_nav(referencing, &referencing_nav)
            .is_some();
    if taken {
        return Err(DvError::new(
            412,
            crate::error::DUPLICATE_RECORD,
            format!(
                "'{referencing_name}' already has a column or navigation property named '{logical}'."
            ),
        ));
    }
    if store
        .schema
        .collection_nav(referenced, &referenced_nav)
        .is_some()
        || store
            .schema
            .single_nav(referenced, &referenced_nav)
            .is_some()
    {
        return Err(DvError::new(
            412,
            crate::error::DUPLICATE_RECORD,
            format!(
                "'{referenced_name}' already has a navigation property named '{referenced_nav}'."
            ),
        ));
    }
    let mut a = Attribute::custom(
        referencing_name,
        lookup_schema,
        AttrKind::Lookup {
            targets: vec![referenced_name.to_string()],
            type_name: "Lookup",
        },
        required_level(lookup)?.unwrap_or("None"),
    );
    a.display_labels = body_labels(lookup.get("DisplayName"), "DisplayName")?;
    a.description_labels = body_labels(lookup.get("Description"), "Description")?;
    a.display_name = user_text(&a.display_labels);
    a.description = user_text(&a.description_labels);
    store.add_column(referencing, a);
    let decl = RelDecl {
        schema_name: schema_name.to_string(),
        referencing: referencing_name.to_string(),
        attribute: logical,
        referenced: referenced_name.to_string(),
        referencing_nav,
        referenced_nav,
    };
    store
        .add_relationship(&decl)
        .ok_or_else(|| DvError::internal("the new lookup column was not found"))?;
    // How the relationship cascades and shows in menus is kept as sent and read back; the
    // emulator's deletes still remove the link only (a delete clears the lookups pointing at it).
    let kept: Vec<(String, Value)> = ["CascadeConfiguration", "AssociatedMenuConfiguration"]
        .iter()
        .filter_map(|k| {
            body.get(*k)
                .filter(|v| v.is_object())
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect();
    store.keep_relationship_properties(schema_name, kept);
    Ok(Resp::empty(204).header(
        "OData-EntityId",
        format!(
            "{}/RelationshipDefinitions({})",
            req.api,
            meta_guid(schema_name, "relationship")
        ),
    ))
}
