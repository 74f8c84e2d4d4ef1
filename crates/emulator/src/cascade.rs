//! What deleting a row does to the rows related to it through relationships created with a
//! `CascadeConfiguration` (`metadata/relationships.rs`): "Configure table relationship
//! cascading behavior" (learn.microsoft.com/power-apps/developer/data-platform/configure-entity-relationship-cascading-behavior):
//! `Delete: Cascade` deletes the related rows too, `RemoveLink` clears their lookup (what the
//! store does for every relationship), `Restrict` prevents deleting a row that related rows
//! point at. The emulator does not emulate the restriction's refusal and answers 501 for it.
//! The seeded relationships remove the link. A deleted row's many-to-many pairs are removed
//! with it (`many_to_many.rs`).

use serde_json::Value;

use crate::error::DvError;
use crate::guid::Guid;
use crate::schema::TableId;
use crate::store::{Store, Val};

/// The `CascadeConfiguration.Delete` a created relationship was given, if any.
fn delete_behaviour<'s>(store: &'s Store, schema_name: &str) -> Option<&'s str> {
    store
        .schema
        .additions
        .relationship_properties
        .iter()
        .filter(|(name, _)| name == schema_name)
        .flat_map(|(_, props)| props)
        .find(|(k, _)| k == "CascadeConfiguration")
        .and_then(|(_, v)| v.get("Delete"))
        .and_then(Value::as_str)
}

/// Applies the delete behaviour of the relationships pointing at row `id` of table `e`, before
/// the row itself is deleted: deletes the rows a `Cascade` relationship relates (and theirs),
/// and refuses (501) when a `Restrict` relationship relates any — undoing what it deleted.
pub fn before_delete(store: &mut Store, e: TableId, id: Guid) -> Result<(), DvError> {
    let additions = &store.schema.additions;
    if additions.relationship_properties.is_empty() && additions.many_to_many.is_empty() {
        return Ok(());
    }
    let own = !store.in_tx();
    if own {
        store.begin_tx();
    }
    let result = cascade(store, e, id);
    match (&result, own) {
        (Err(_), _) => store.rollback_tx(),
        (Ok(()), true) => store.commit_tx(),
        (Ok(()), false) => {}
    }
    result
}

fn cascade(store: &mut Store, e: TableId, id: Guid) -> Result<(), DvError> {
    // Its many-to-many pairs go with the row.
    crate::many_to_many::before_delete(store, e, id)?;
    let schema = store.schema.clone();
    for rel in schema
        .relationships
        .iter()
        .filter(|r| r.referenced_entity == e)
    {
        let behaviour = delete_behaviour(store, &rel.schema_name);
        if !matches!(behaviour, Some("Cascade" | "Restrict")) {
            continue;
        }
        let col = rel.referencing_attribute;
        let related: Vec<Guid> = store
            .rows(rel.referencing_entity)
            .iter()
            .filter(|(_, r)| matches!(&r.vals[col], Val::Ref(g, t) if *g == id && *t == e))
            .map(|(cid, _)| *cid)
            .collect();
        if related.is_empty() {
            continue;
        }
        if behaviour == Some("Restrict") {
            return Err(DvError::not_implemented(format_args!(
                "the Restrict delete behaviour of the relationship '{}'",
                rel.schema_name
            )));
        }
        for child in related {
            if store.get(rel.referencing_entity, &child).is_some() {
                cascade(store, rel.referencing_entity, child)?;
                store.remove(rel.referencing_entity, child)?;
            }
        }
    }
    Ok(())
}
