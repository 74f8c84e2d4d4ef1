//! Many-to-many relationships created through the metadata API, and associating rows through
//! them.
//!
//! - "Create a many-to-many relationship" (learn.microsoft.com/power-apps/developer/data-platform/webapi/create-update-entity-relationships-using-web-api):
//!   `POST RelationshipDefinitions` with a `ManyToManyRelationshipMetadata` (`SchemaName`,
//!   `Entity1LogicalName`, `Entity2LogicalName`, `IntersectEntityName`, the two
//!   `Entity…AssociatedMenuConfiguration`s) answers 204 with its `OData-EntityId`. Dataverse
//!   keeps the pairs in an intersect table (`IntersectEntityName`) holding both tables' primary
//!   keys; the emulator does the same, and serves that table read-only as
//!   `<IntersectEntityName>set`. The navigation properties are `Entity1NavigationPropertyName`
//!   and `Entity2NavigationPropertyName`, else the relationship's schema name on both sides.
//! - "Associate and disassociate table rows using the Web API"
//!   (.../webapi/associate-disassociate-entities-using-web-api): `POST
//!   accounts(<id>)/<nav>/$ref` with `{"@odata.id": "contacts(<id>)"}` adds a pair (a pair
//!   that exists already is the duplicate-key error), `DELETE accounts(<id>)/<nav>(<id>)/$ref`
//!   or `…/<nav>/$ref?$id=…` removes it; deleting a row removes its pairs. The intersect table's
//!   rows are not written directly.
//!
//! Not emulated, answering 501: reading a many-to-many navigation property
//! (`GET accounts(<id>)/<nav>`, `$expand`), its CSDL navigation properties, and a relationship
//! of a table with itself.

use serde_json::{Map, Value, json};

use crate::error::DvError;
use crate::guid::Guid;
use crate::odata::path::Segment;
use crate::schema::{EntityBuilder, ManyToMany, Ownership, TableId, meta_guid};
use crate::store::{Store, Val};
use crate::wire::{Req, Resp};

/// The many-to-many relationship a navigation property of table `e` names, with the table on
/// its other side.
pub fn find<'s>(store: &'s Store, e: TableId, nav: &str) -> Option<(&'s ManyToMany, TableId)> {
    store.schema.additions.many_to_many.iter().find_map(|m| {
        if m.entity1 == e && m.entity1_nav == nav {
            Some((m, m.entity2))
        } else if m.entity2 == e && m.entity2_nav == nav {
            Some((m, m.entity1))
        } else {
            None
        }
    })
}

/// The refusal for writing the rows of an intersect table directly: its pairs are made and
/// removed by associating and disassociating; the table has no Create, Update or Delete
/// message (the answer a table without a message gets: `SdkEntityDoesNotSupportMessage`).
pub fn write_refusal(store: &Store, e: TableId, method: &str) -> Option<DvError> {
    let m = store
        .schema
        .additions
        .many_to_many
        .iter()
        .find(|m| m.intersect == e)?;
    let message = match method {
        "POST" => "Create",
        "DELETE" => "Delete",
        _ => "Update",
    };
    Some(DvError::new(
        400,
        crate::error::ENTITY_DOES_NOT_SUPPORT_MESSAGE,
        format!(
            "The '{message}' method does not support entities of type '{}'. Associate and disassociate rows through '{}' instead.",
            store.entity(m.intersect).logical_name,
            m.schema_name
        ),
    ))
}

/// The refusal for reading a many-to-many navigation property.
pub fn read_refusal(store: &Store, e: TableId, nav: &str) -> Option<DvError> {
    find(store, e, nav).map(|(m, _)| {
        DvError::not_implemented(format_args!(
            "reading the many-to-many navigation property '{nav}' of '{}' (read its intersect table {}set)",
            m.schema_name,
            store.entity(m.intersect).logical_name
        ))
    })
}

fn text<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `POST RelationshipDefinitions` with a `ManyToManyRelationshipMetadata` body, whose schema
/// name the caller checked.
pub fn create(
    store: &mut Store,
    req: &Req,
    body: &Map<String, Value>,
    schema_name: &str,
) -> Result<Resp, DvError> {
    let required = |name: &str| {
        text(body, name).ok_or_else(|| {
            DvError::bad_request(format!(
                "The many-to-many relationship definition must have {name}."
            ))
        })
    };
    let name1 = required("Entity1LogicalName")?;
    let name2 = required("Entity2LogicalName")?;
    let intersect_name = text(body, "IntersectEntityName")
        .unwrap_or(schema_name)
        .to_lowercase();
    let table = |name: &str, property: &str| {
        store.schema.entity(name).ok_or_else(|| {
            DvError::bad_request(format!("{property} names '{name}', which is not a table."))
        })
    };
    let entity1 = table(name1, "Entity1LogicalName")?;
    let entity2 = table(name2, "Entity2LogicalName")?;
    if entity1 == entity2 {
        return Err(DvError::not_implemented(
            "many-to-many relationships of a table with itself",
        ));
    }
    let set = format!("{intersect_name}set");
    if store.schema.entity(&intersect_name).is_some() || store.schema.entity_by_set(&set).is_some()
    {
        return Err(DvError::new(
            412,
            crate::error::DUPLICATE_RECORD,
            format!("A table named '{intersect_name}' already exists."),
        ));
    }
    let nav1 = text(body, "Entity1NavigationPropertyName")
        .unwrap_or(schema_name)
        .to_string();
    let nav2 = text(body, "Entity2NavigationPropertyName")
        .unwrap_or(schema_name)
        .to_string();
    for (e, nav) in [(entity1, &nav1), (entity2, &nav2)] {
        let taken = store.schema.single_nav(e, nav).is_some()
            || store.schema.collection_nav(e, nav).is_some()
            || find(store, e, nav).is_some()
            || store.entity(e).attr(nav).is_some();
        if taken {
            return Err(DvError::new(
                412,
                crate::error::DUPLICATE_RECORD,
                format!(
                    "'{}' already has a property named '{nav}'.",
                    store.entity(e).logical_name
                ),
            ));
        }
    }
    let key1 = store.entity(entity1).primary_id_name().to_string();
    let key2 = store.entity(entity2).primary_id_name().to_string();
    let mut intersect = EntityBuilder::new(
        &intersect_name,
        &intersect_name,
        &set,
        &intersect_name,
        &intersect_name,
        0,
        Ownership::OrganizationOwned,
        &format!("Intersect table of the relationship {schema_name}."),
    )
    .id(&format!("{intersect_name}id"), &intersect_name);
    for (key, e) in [(&key1, entity1), (&key2, entity2)] {
        intersect = intersect.uniqueidentifier(key, &store.entity(e).display_name);
    }
    let mut intersect = intersect.build();
    intersect.object_type_code = store
        .schema
        .entities
        .iter()
        .map(|e| e.object_type_code)
        .max()
        .unwrap_or(10_000)
        .max(10_000)
        + 1;
    // The intersect table has no primary name; its primary key stands in for it.
    intersect.primary_name = intersect.primary_id;
    let intersect = store.add_table(intersect);
    let kept: Vec<(String, Value)> = [
        "Entity1AssociatedMenuConfiguration",
        "Entity2AssociatedMenuConfiguration",
        "SecurityTypes",
    ]
    .iter()
    .filter_map(|k| body.get(*k).map(|v| (k.to_string(), v.clone())))
    .collect();
    let m = ManyToMany {
        schema_name: schema_name.to_string(),
        entity1,
        entity2,
        intersect,
        entity1_nav: nav1,
        entity2_nav: nav2,
        metadata_id: meta_guid(schema_name, "relationship"),
        kept,
    };
    let id = m.metadata_id;
    store.add_many_to_many(m);
    Ok(Resp::empty(204).header(
        "OData-EntityId",
        format!("{}/RelationshipDefinitions({id})", req.api),
    ))
}

/// The `ManyToManyRelationshipMetadata` of a relationship.
pub fn json(store: &Store, m: &ManyToMany) -> Map<String, Value> {
    let e1 = store.entity(m.entity1);
    let e2 = store.entity(m.entity2);
    let mut out = match json!({
        "@odata.type": "#Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata",
        "MetadataId": m.metadata_id.to_string(),
        "SchemaName": m.schema_name,
        "RelationshipType": "ManyToManyRelationship",
        "IsCustomRelationship": true,
        "IsManaged": false,
        "Entity1LogicalName": e1.logical_name,
        "Entity2LogicalName": e2.logical_name,
        "IntersectEntityName": store.entity(m.intersect).logical_name,
        "Entity1IntersectAttribute": e1.primary_id_name(),
        "Entity2IntersectAttribute": e2.primary_id_name(),
        "Entity1NavigationPropertyName": m.entity1_nav,
        "Entity2NavigationPropertyName": m.entity2_nav,
        "HasChanged": null,
    }) {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    for (k, v) in &m.kept {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// The many-to-many relationships a metadata read lists: all, or those of one table.
pub fn of(store: &Store, table: Option<TableId>) -> Vec<Map<String, Value>> {
    store
        .schema
        .additions
        .many_to_many
        .iter()
        .filter(|m| table.is_none_or(|t| m.entity1 == t || m.entity2 == t))
        .map(|m| json(store, m))
        .collect()
}

/// The many-to-many relationship a `RelationshipDefinitions(...)` key names.
pub fn by_key<'s>(
    store: &'s Store,
    name: Option<&str>,
    id: Option<Guid>,
) -> Option<&'s ManyToMany> {
    store
        .schema
        .additions
        .many_to_many
        .iter()
        .find(|m| Some(m.schema_name.as_str()) == name || Some(m.metadata_id) == id)
}

/// The intersect rows pairing `id1` of the relationship's first table with `id2` of its second.
fn pairs(store: &Store, m: &ManyToMany, id1: Option<Guid>, id2: Option<Guid>) -> Vec<Guid> {
    let ent = store.entity(m.intersect);
    let (Some(c1), Some(c2)) = (
        ent.attr(store.entity(m.entity1).primary_id_name()),
        ent.attr(store.entity(m.entity2).primary_id_name()),
    ) else {
        return Vec::new();
    };
    store
        .rows(m.intersect)
        .iter()
        .filter(|(_, r)| {
            id1.is_none_or(|g| r.vals[c1] == Val::Guid(g))
                && id2.is_none_or(|g| r.vals[c2] == Val::Guid(g))
        })
        .map(|(k, _)| *k)
        .collect()
}

/// `POST`/`DELETE …(<id>)/<nav>/$ref` on a many-to-many navigation property of table `e`; None
/// when `nav` is not one.
pub fn refs(
    store: &mut Store,
    req: &Req,
    e: TableId,
    id: Guid,
    nav: &Segment,
    target: Option<(TableId, Guid)>,
) -> Option<Result<Resp, DvError>> {
    let (m, other) = find(store, e, &nav.name)?;
    let m = m.clone();
    Some(associate(store, req, &m, e, id, other, nav, target))
}

#[allow(clippy::too_many_arguments)]
fn associate(
    store: &mut Store,
    req: &Req,
    m: &ManyToMany,
    e: TableId,
    id: Guid,
    other: TableId,
    nav: &Segment,
    target: Option<(TableId, Guid)>,
) -> Result<Resp, DvError> {
    let related = match (req.method, &nav.key, target) {
        (_, Some(k), _) => crate::row_key::resolve_existing(store, other, k)?,
        (_, None, Some((t, g))) if t == other => g,
        (_, None, Some(_)) => {
            return Err(DvError::bad_request(format!(
                "The reference is not a row of '{}', the other side of '{}'.",
                store.entity(other).logical_name,
                nav.name
            )));
        }
        (_, None, None) => {
            return Err(DvError::bad_request(
                "The request must name the related row ('@odata.id', or $id to remove one).",
            ));
        }
    };
    let (id1, id2) = if m.entity1 == e {
        (id, related)
    } else {
        (related, id)
    };
    let existing = pairs(store, m, Some(id1), Some(id2));
    match req.method {
        "POST" | "PUT" => {
            if !existing.is_empty() {
                return Err(DvError::duplicate_key());
            }
            let ent = store.entity(m.intersect);
            let mut vals = store.blank_row(m.intersect);
            let k1 = store.entity(m.entity1).primary_id_name().to_string();
            let k2 = store.entity(m.entity2).primary_id_name().to_string();
            if let (Some(c1), Some(c2)) = (ent.attr(&k1), ent.attr(&k2)) {
                vals[c1] = Val::Guid(id1);
                vals[c2] = Val::Guid(id2);
            }
            let pk = ent.primary_id;
            vals[pk] = Val::Guid(store.new_id(m.intersect));
            store.insert(m.intersect, vals, true)?;
            Ok(Resp::empty(204))
        }
        "DELETE" => {
            if existing.is_empty() {
                return Err(DvError::not_found(
                    &store.entity(other).logical_name,
                    &related,
                ));
            }
            for row in existing {
                store.remove(m.intersect, row)?;
            }
            Ok(Resp::empty(204))
        }
        other_method => Err(DvError::method_not_allowed(other_method, "a $ref")),
    }
}

/// Removes the pairs of a row that is being deleted ("deleting a row removes its associations").
pub fn before_delete(store: &mut Store, e: TableId, id: Guid) -> Result<(), DvError> {
    let list: Vec<ManyToMany> = store.schema.additions.many_to_many.clone();
    for m in &list {
        let rows = match (m.entity1 == e, m.entity2 == e) {
            (true, _) => pairs(store, m, Some(id), None),
            (_, true) => pairs(store, m, None, Some(id)),
            _ => continue,
        };
        for row in rows {
            store.remove(m.intersect, row)?;
        }
    }
    Ok(())
}
