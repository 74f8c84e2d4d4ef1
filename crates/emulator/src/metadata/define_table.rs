//! Creating a table (`POST EntityDefinitions`) and an alternate key
//! (`POST EntityDefinitions(LogicalName='x')/Keys`).
//!
//! - "Create and update table definitions using the Web API"
//!   (learn.microsoft.com/power-apps/developer/data-platform/webapi/create-update-entity-definitions-using-web-api):
//!   the body is an `EntityMetadata` with `SchemaName`, `DisplayName`, `DisplayCollectionName`,
//!   `Description`, `OwnershipType`, `HasActivities`, `HasNotes`, `IsActivity` and an
//!   `Attributes` list holding the primary name column (`IsPrimaryName: true`, a
//!   `StringAttributeMetadata`); the answer is 204 with
//!   `OData-EntityId: [api]/EntityDefinitions(<MetadataId>)`. The `MSCRM.SolutionUniqueName`
//!   header names the solution the table joins; the emulator has no solutions and takes it as
//!   given. The table gets the columns a custom table starts with: its primary key
//!   `<logical name>id`, `statecode`/`statuscode`, the audit columns and, when user owned,
//!   `ownerid`; its entity set name is the plural of its logical name.
//! - Schema names carry the publisher's customization prefix: "between two and eight
//!   characters long, can consist only of alphanumeric characters, must start with a letter,
//!   and can't start with 'mscrm'" (learn.microsoft.com/power-apps/maker/data-platform/create-solution,
//!   "Solution publisher").
//! - "Define alternate keys using the Web API"
//!   (learn.microsoft.com/power-apps/developer/data-platform/define-alternate-keys-reference-records):
//!   an `EntityKeyMetadata` with `SchemaName`, `DisplayName` and `KeyAttributes`; Dataverse
//!   builds the key's index in a background job (`EntityKeyIndexStatus` Pending, then Active).
//!   The emulator builds it at once: the key is Active and enforced on the next write. Keys
//!   take whole number, decimal, single line of text, date and time, lookup and choice
//!   columns ("Define alternate keys for a table", "Columns that can be used"). Rows that
//!   already share a value would make the service's index job fail (status Failed); the
//!   emulator does not emulate a failed key and answers 501 for that case.

use serde_json::{Map, Value};

use super::write;
use super::write::{body_labels, body_object, kind_from_body, user_text, valid_schema_name};
use crate::error::DvError;
use crate::schema::{AltKey, AttrKind, EntityBuilder, Ownership, RelDecl, TableId, meta_guid};
use crate::store::Store;
use crate::wire::{Req, Resp};

/// The prefix rule of custom schema names, as the error for a name that breaks it.
pub fn check_schema_name(name: &str, what: &str) -> Result<(), DvError> {
    if valid_schema_name(name) {
        return Ok(());
    }
    Err(DvError::bad_request(format!(
        "'{name}' is not a valid SchemaName for {what}: it must start with a customization prefix of 2 to 8 letters and digits (starting with a letter, not 'mscrm') and an underscore, hold only letters, digits and underscores, and be at most 50 characters."
    )))
}

/// The English plural Dataverse gives a logical name for the entity set.
fn plural(logical: &str) -> String {
    let consonant_y = logical.ends_with('y')
        && !logical
            .chars()
            .rev()
            .nth(1)
            .is_some_and(|c| "aeiou".contains(c));
    if consonant_y {
        return format!("{}ies", &logical[..logical.len() - 1]);
    }
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|e| logical.ends_with(e))
    {
        return format!("{logical}es");
    }
    format!("{logical}s")
}

fn text<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

/// `POST EntityDefinitions`.
pub fn create_table(store: &mut Store, req: &Req) -> Result<Resp, DvError> {
    let body = body_object(req.body)?;
    let schema_name = text(&body, "SchemaName")
        .ok_or_else(|| DvError::bad_request("The table definition must have a SchemaName."))?;
    check_schema_name(schema_name, "a table")?;
    let logical = schema_name.to_lowercase();
    let set = plural(&logical);
    if store.schema.entity(&logical).is_some() || store.schema.entity_by_set(&set).is_some() {
        return Err(DvError::new(
            412,
            crate::error::DUPLICATE_RECORD,
            format!("A table with the name '{schema_name}' already exists."),
        ));
    }
    if body.get("IsActivity").and_then(Value::as_bool) == Some(true) {
        return Err(DvError::not_implemented(
            "creating activity tables (IsActivity true)",
        ));
    }
    let ownership = match text(&body, "OwnershipType") {
        None | Some("UserOwned") => Ownership::UserOwned,
        Some("OrganizationOwned") => Ownership::OrganizationOwned,
        Some(other) => {
            return Err(DvError::bad_request(format!(
                "OwnershipType '{other}' cannot be used for a custom table: use UserOwned or OrganizationOwned."
            )));
        }
    };
    let display = body_labels(body.get("DisplayName"), "DisplayName")?;
    let collection = body_labels(body.get("DisplayCollectionName"), "DisplayCollectionName")?;
    let description = body_labels(body.get("Description"), "Description")?;
    let attributes: Vec<Map<String, Value>> = match body.get("Attributes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::Object(m) => Ok(m.clone()),
                _ => Err(DvError::bad_request(
                    "The items of 'Attributes' must be column definitions.",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(DvError::bad_request(
                "'Attributes' must be a list of column definitions.",
            ));
        }
    };
    let primaries: Vec<&Map<String, Value>> = attributes
        .iter()
        .filter(|a| a.get("IsPrimaryName").and_then(Value::as_bool) == Some(true))
        .collect();
    let [primary] = primaries.as_slice() else {
        return Err(DvError::bad_request(format!(
            "The table definition must hold exactly one column with IsPrimaryName true in 'Attributes', not {}.",
            primaries.len()
        )));
    };
    let primary_schema = text(primary, "SchemaName")
        .ok_or_else(|| DvError::bad_request("The primary name column must have a SchemaName."))?;
    check_schema_name(primary_schema, "a column")?;
    let primary_type = write::body_type(primary).unwrap_or_default();
    let AttrKind::String { max_len } = kind_from_body(&primary_type, primary)? else {
        return Err(DvError::bad_request(format!(
            "The primary name column must be a StringAttributeMetadata, not '{primary_type}'."
        )));
    };
    let otc = store
        .schema
        .entities
        .iter()
        .map(|e| e.object_type_code)
        .max()
        .unwrap_or(10_000)
        .max(10_000)
        + 1;
    let display_text = user_text(&display);
    let mut builder = EntityBuilder::new(
        &logical,
        schema_name,
        &set,
        &display_text,
        &user_text(&collection),
        otc,
        ownership,
        &user_text(&description),
    )
    .id(&format!("{logical}id"), &display_text)
    .name(&primary_schema.to_lowercase(), "", max_len);
    if ownership == Ownership::UserOwned {
        builder = builder.lookup("ownerid", "Owner", &["systemuser", "team"]);
    }
    let mut entity = builder
        .state_status(
            &[(0, "Active"), (1, "Inactive")],
            &[(1, "Active"), (2, "Inactive")],
        )
        .audit()
        .build();
    entity.is_custom = true;
    entity.change_tracking =
        body.get("ChangeTrackingEnabled").and_then(Value::as_bool) == Some(true);
    let name_col = entity.primary_name;
    {
        let a = &mut entity.attributes[name_col];
        a.schema_name = primary_schema.to_string();
        a.is_custom = true;
        a.display_labels = body_labels(primary.get("DisplayName"), "DisplayName")?;
        a.description_labels = body_labels(primary.get("Description"), "Description")?;
        a.display_name = user_text(&a.display_labels);
        a.description = user_text(&a.description_labels);
        if let Some(r) = write::required_level(primary)? {
            a.required = r;
        }
        a.extra = write::kept_properties(primary);
    }
    let metadata_id = entity.metadata_id;
    let e = store.add_table(entity);
    for decl in standard_relationships(&logical, ownership) {
        store.add_relationship(&decl);
    }
    // Every other column of the list is created as `POST .../Attributes` would.
    for a in attributes.iter().filter(|a| !std::ptr::eq(*a, *primary)) {
        let bytes = serde_json::to_vec(a).map_err(|err| DvError::internal(&err.to_string()))?;
        write::add_column(store, e, &bytes)?;
    }
    crate::bulk_messages::register_table(store, &logical);
    Ok(Resp::empty(204).header(
        "OData-EntityId",
        format!("{}/EntityDefinitions({metadata_id})", req.api),
    ))
}

/// The relationships every custom table has: its owner and its audit columns.
fn standard_relationships(logical: &str, ownership: Ownership) -> Vec<RelDecl> {
    let rel = |schema: String, attribute: &str| RelDecl {
        referenced_nav: schema.clone(),
        schema_name: schema,
        referencing: logical.to_string(),
        attribute: attribute.to_string(),
        referenced: "systemuser".to_string(),
        referencing_nav: attribute.to_string(),
    };
    let mut out: Vec<RelDecl> = [
        "createdby",
        "modifiedby",
        "createdonbehalfby",
        "modifiedonbehalfby",
    ]
    .iter()
    .map(|c| rel(format!("lk_{logical}_{c}"), c))
    .collect();
    if ownership == Ownership::UserOwned {
        out.push(rel(format!("user_{logical}"), "ownerid"));
    }
    out
}

/// `POST EntityDefinitions(...)/Keys`.
pub fn create_key(
    store: &mut Store,
    req: &Req,
    e: TableId,
    raw_entity: &str,
) -> Result<Resp, DvError> {
    let body = body_object(req.body)?;
    let schema_name = text(&body, "SchemaName")
        .ok_or_else(|| DvError::bad_request("The key definition must have a SchemaName."))?;
    check_schema_name(schema_name, "a key")?;
    let ent = store.entity(e);
    let logical = schema_name.to_lowercase();
    if ent.alternate_keys.iter().any(|k| k.logical_name == logical) {
        return Err(DvError::new(
            412,
            crate::error::DUPLICATE_RECORD,
            format!(
                "The table '{}' already has a key named '{schema_name}'.",
                ent.logical_name
            ),
        ));
    }
    let columns: Vec<String> = match body.get("KeyAttributes") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    DvError::bad_request("KeyAttributes must list column logical names.")
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(DvError::bad_request(
                "The key definition must list its columns in KeyAttributes.",
            ));
        }
    };
    for c in &columns {
        let col = ent.attr(c).ok_or_else(|| {
            DvError::bad_request(format!(
                "KeyAttributes names '{c}', which is not a column of '{}'.",
                ent.logical_name
            ))
        })?;
        let usable = matches!(
            ent.attributes[col].kind,
            AttrKind::Integer { .. }
                | AttrKind::Decimal { .. }
                | AttrKind::String { .. }
                | AttrKind::DateTime { .. }
                | AttrKind::Lookup { .. }
                | AttrKind::Picklist { .. }
        );
        if !usable {
            return Err(DvError::bad_request(format!(
                "The column '{c}' is a {} column, which cannot be part of an alternate key.",
                ent.attributes[col].kind.type_name()
            )));
        }
    }
    if ent.alternate_keys.iter().any(|k| k.attributes == columns) {
        return Err(DvError::new(
            412,
            crate::error::DUPLICATE_RECORD,
            format!(
                "The table '{}' already has a key over {}.",
                ent.logical_name,
                columns.join(", ")
            ),
        ));
    }
    let display = body_labels(body.get("DisplayName"), "DisplayName")?;
    let key = AltKey {
        schema_name: schema_name.to_string(),
        logical_name: logical,
        display_name: user_text(&display),
        attributes: columns,
        metadata_id: meta_guid(&ent.logical_name, schema_name),
    };
    let id = key.metadata_id;
    store.add_key(e, key).map_err(|_| {
        DvError::not_implemented(format_args!(
            "a key over rows that already share its values (Dataverse's index job would fail: EntityKeyIndexStatus Failed); key '{schema_name}'"
        ))
    })?;
    Ok(Resp::empty(204).header(
        "OData-EntityId",
        format!("{}/EntityDefinitions({raw_entity})/Keys({id})", req.api),
    ))
}

/// The alternate key `Keys(...)` names: by `MetadataId`, `LogicalName='x'` or `'x'`; else the
/// documented 404 ("Query table definitions using the Web API", "Retrieve alternate keys").
pub fn find_key<'e>(ent: &'e crate::schema::Entity, raw: &str) -> Result<&'e AltKey, DvError> {
    use crate::odata::filter::Lit;
    use crate::odata::path::{Key, parse_key};
    let found = match parse_key(raw)? {
        Key::Id(g) => ent.alternate_keys.iter().find(|k| k.metadata_id == g),
        Key::Named(pairs) => match pairs.as_slice() {
            [(k, Lit::Str(v))] if k == "LogicalName" => {
                ent.alternate_keys.iter().find(|x| x.logical_name == *v)
            }
            _ => None,
        },
        Key::Single(Lit::Str(v)) => ent.alternate_keys.iter().find(|x| x.logical_name == v),
        Key::Single(_) => None,
    };
    found.ok_or_else(|| {
        DvError::new(
            404,
            crate::error::OBJECT_DOES_NOT_EXIST,
            format!("Could not find key with key '{raw}'."),
        )
    })
}
