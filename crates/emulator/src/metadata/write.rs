//! Metadata writes: the dispatch of every write below `EntityDefinitions`,
//! `RelationshipDefinitions` and `GlobalOptionSetDefinitions`, and the column writes —
//! creating a column (`POST .../Attributes`), updating one (`PUT .../Attributes(...)`), from a
//! body shaped like the column's metadata type, and deleting one (`DELETE .../Attributes(...)`).
//! Tables and keys are created in `define_table`, relationships in `relationships`, global
//! choices in `option_sets`.

use serde_json::{Map, Value};

use super::find_entity;
use super::json::{KEPT_PROPERTIES, column_labels};
use crate::error::DvError;
use crate::guid::Guid;
use crate::odata::filter::Lit;
use crate::odata::path::{self, Key, Segment};
use crate::schema::{AttrKind, Entity, TableId};
use crate::store::Store;
use crate::wire::{Req, Resp};

pub(super) fn body_object(body: &[u8]) -> Result<Map<String, Value>, DvError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(DvError::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(DvError::bad_request(format!("Invalid JSON. {e}"))),
    }
}

/// The metadata type a body names: `@odata.type`, else `AttributeType`, else
/// `AttributeTypeName.Value` (e.g. `StringAttributeMetadata`).
pub(super) fn body_type(body: &Map<String, Value>) -> Option<String> {
    if let Some(t) = body.get("@odata.type").and_then(Value::as_str) {
        let t = t.trim_start_matches('#');
        return Some(
            t.strip_prefix("Microsoft.Dynamics.CRM.")
                .unwrap_or(t)
                .to_string(),
        );
    }
    let plain = body
        .get("AttributeType")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            body.get("AttributeTypeName")
                .and_then(|v| v.get("Value"))
                .and_then(Value::as_str)
                .map(|s| s.strip_suffix("Type").unwrap_or(s).to_string())
        })?;
    Some(format!("{plain}AttributeMetadata"))
}

/// LocalizedLabels of a Label in a request body, as (LanguageCode, text).
pub(super) fn body_labels(
    v: Option<&Value>,
    property: &str,
) -> Result<Vec<(i64, String)>, DvError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let bad = || DvError::bad_request(format!("The property '{property}' must be a Label."));
    let items = match v.get("LocalizedLabels") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(_) => return Err(bad()),
    };
    let mut out: Vec<(i64, String)> = Vec::new();
    for item in items {
        let text = item.get("Label").and_then(Value::as_str).ok_or_else(bad)?;
        let lang = item
            .get("LanguageCode")
            .and_then(Value::as_i64)
            .ok_or_else(bad)?;
        match out.iter_mut().find(|(l, _)| *l == lang) {
            Some(slot) => slot.1 = text.to_string(),
            None => out.push((lang, text.to_string())),
        }
    }
    Ok(out)
}

pub(super) fn required_level(body: &Map<String, Value>) -> Result<Option<&'static str>, DvError> {
    let Some(v) = body.get("RequiredLevel").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let text = v.get("Value").and_then(Value::as_str).or(v.as_str());
    match text {
        Some("None") => Ok(Some("None")),
        Some("SystemRequired") => Ok(Some("SystemRequired")),
        Some("ApplicationRequired") => Ok(Some("ApplicationRequired")),
        Some("Recommended") => Ok(Some("Recommended")),
        _ => Err(DvError::bad_request(
            "RequiredLevel.Value must be None, SystemRequired, ApplicationRequired or Recommended.",
        )),
    }
}

fn int_prop(body: &Map<String, Value>, name: &str, default: i64) -> Result<i64, DvError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| {
                DvError::bad_request(format!("The property '{name}' must be a number."))
            }),
    }
}

fn option_label(v: Option<&Value>, fallback: &str) -> Result<String, DvError> {
    let labels = body_labels(v.and_then(|o| o.get("Label")), "Label")?;
    Ok(labels
        .iter()
        .find(|(l, _)| *l == 1033)
        .or(labels.first())
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| fallback.to_string()))
}

/// The column type a create body asks for.
pub(super) fn kind_from_body(t: &str, body: &Map<String, Value>) -> Result<AttrKind, DvError> {
    let ranged = |name: &str, v: i64, lo: i64, hi: i64| {
        if v < lo || v > hi {
            Err(DvError::bad_request(format!(
                "The value {v} of '{name}' is outside the valid range {lo} to {hi}."
            )))
        } else {
            Ok(v)
        }
    };
    Ok(match t {
        "StringAttributeMetadata" => AttrKind::String {
            max_len: ranged("MaxLength", int_prop(body, "MaxLength", 100)?, 1, 4000)? as u32,
        },
        "MemoAttributeMetadata" => AttrKind::Memo {
            max_len: ranged(
                "MaxLength",
                int_prop(body, "MaxLength", 2000)?,
                1,
                1_048_576,
            )? as u32,
        },
        "IntegerAttributeMetadata" => {
            let min = int_prop(body, "MinValue", -2_147_483_648)?;
            let max = int_prop(body, "MaxValue", 2_147_483_647)?;
            if min > max {
                return Err(DvError::bad_request(
                    "MinValue must not be greater than MaxValue.",
                ));
            }
            AttrKind::Integer { min, max }
        }
        "BigIntAttributeMetadata" => AttrKind::BigInt,
        "DecimalAttributeMetadata" => AttrKind::Decimal {
            precision: ranged("Precision", int_prop(body, "Precision", 2)?, 0, 10)? as u32,
        },
        "MoneyAttributeMetadata" => {
            ranged("Precision", int_prop(body, "Precision", 2)?, 0, 4)?;
            ranged(
                "PrecisionSource",
                int_prop(body, "PrecisionSource", 2)?,
                0,
                2,
            )?;
            AttrKind::Money
        }
        "BooleanAttributeMetadata" => {
            let set = body.get("OptionSet");
            AttrKind::Boolean {
                true_label: option_label(set.and_then(|s| s.get("TrueOption")), "Yes")?,
                false_label: option_label(set.and_then(|s| s.get("FalseOption")), "No")?,
            }
        }
        "DateTimeAttributeMetadata" => {
            let format = body.get("Format").and_then(Value::as_str);
            let behavior = body
                .get("DateTimeBehavior")
                .and_then(|b| b.get("Value"))
                .and_then(Value::as_str);
            AttrKind::DateTime {
                date_only: format == Some("DateOnly") || behavior == Some("DateOnly"),
            }
        }
        "PicklistAttributeMetadata" => {
            let items = body
                .get("OptionSet")
                .and_then(|s| s.get("Options"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let options = super::option_sets::numbered_options(&items)?;
            AttrKind::Picklist { options }
        }
        "LookupAttributeMetadata" | "CustomerAttributeMetadata" => {
            return Err(DvError::bad_request(
                "Lookup columns are created with their relationship (RelationshipDefinitions), which the emulator does not support.",
            ));
        }
        other => {
            return Err(DvError::bad_request(format!(
                "The emulator cannot create columns of type '{other}'."
            )));
        }
    })
}

pub(super) fn kept_properties(body: &Map<String, Value>) -> Vec<(String, Value)> {
    KEPT_PROPERTIES
        .iter()
        .filter_map(|k| {
            body.get(*k)
                .filter(|v| !v.is_null())
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect()
}

/// A custom schema name: the publisher's customization prefix ("between two and eight
/// characters long, can consist only of alphanumeric characters, must start with a letter, and
/// can't start with 'mscrm'", learn.microsoft.com/power-apps/maker/data-platform/create-solution),
/// an underscore, then letters, digits and underscores; at most 50 characters.
pub(super) fn valid_schema_name(name: &str) -> bool {
    let Some((prefix, rest)) = name.split_once('_') else {
        return false;
    };
    (2..=8).contains(&prefix.len())
        && prefix
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && prefix.chars().all(|c| c.is_ascii_alphanumeric())
        && !prefix.to_ascii_lowercase().starts_with("mscrm")
        && !rest.is_empty()
        && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 50
}

fn merge_labels(
    current: Vec<(i64, String)>,
    sent: Vec<(i64, String)>,
    merge: bool,
) -> Vec<(i64, String)> {
    if !merge {
        return sent;
    }
    let mut out = current;
    for (lang, text) in sent {
        match out.iter_mut().find(|(l, _)| *l == lang) {
            Some(slot) => slot.1 = text,
            None => out.push((lang, text)),
        }
    }
    out
}

pub(super) fn user_text(labels: &[(i64, String)]) -> String {
    labels
        .iter()
        .find(|(l, _)| *l == 1033)
        .or(labels.first())
        .map(|(_, t)| t.clone())
        .unwrap_or_default()
}

pub(super) fn find_attribute(ent: &Entity, raw: &str) -> Result<usize, DvError> {
    match path::parse_key(raw)? {
        Key::Id(g) => ent.attributes.iter().position(|x| x.metadata_id == g),
        Key::Named(p) => match p.as_slice() {
            [(k, Lit::Str(v))] if k == "LogicalName" => ent.attr(v),
            _ => None,
        },
        Key::Single(Lit::Str(v)) => ent.attr(&v),
        Key::Single(_) => None,
    }
    .ok_or_else(|| {
        DvError::new(
            404,
            crate::error::OBJECT_DOES_NOT_EXIST,
            format!("Could not find attribute with key '{raw}'."),
        )
    })
}

/// Handles POST / PUT below `EntityDefinitions`: column creation and column updates.
pub fn handle_write(store: &mut Store, req: &Req, segs: &[Segment]) -> Result<Resp, DvError> {
    // Dataverse updates definitions with PUT and never PATCH, so PATCH stays 405; the other
    // writes it takes (create-update-entity-definitions-using-web-api) the emulator does not run,
    // and says so with 501 rather than blaming the client.
    let not_supported = || {
        if req.method == "PATCH" {
            DvError::new(
                405,
                crate::error::ODATA_ERROR,
                "Metadata definitions are updated with PUT, not PATCH.",
            )
        } else {
            DvError::not_implemented(format_args!(
                "{} on this metadata resource (the emulator creates tables, columns, alternate keys, one-to-many relationships and global choices, updates columns and deletes columns)",
                req.method
            ))
        }
    };
    match (segs, req.method) {
        ([s], "POST") if s.key.is_none() && s.name == "EntityDefinitions" => {
            return super::define_table::create_table(store, req);
        }
        ([s], "POST") if s.key.is_none() && s.name == "RelationshipDefinitions" => {
            return super::relationships::create(store, req);
        }
        ([s], "POST") if s.key.is_none() && s.name == "GlobalOptionSetDefinitions" => {
            return super::option_sets::create(store, req);
        }
        _ => {}
    }
    if segs
        .first()
        .is_none_or(|s| s.name != "EntityDefinitions" || s.key.is_none())
    {
        return Err(not_supported());
    }
    let e = find_entity(store, &segs[0])?;
    let raw_entity = segs[0].key.clone().unwrap_or_default();
    match (&segs[1..], req.method) {
        ([a], "POST") if a.name == "Attributes" && a.key.is_none() => {
            create_attribute(store, req, e, &raw_entity)
        }
        ([a], "DELETE") if a.name == "Attributes" && a.key.is_some() => {
            delete_attribute(store, e, a.key.as_deref().unwrap_or(""))
        }
        ([k], "POST") if k.name == "Keys" && k.key.is_none() => {
            super::define_table::create_key(store, req, e, &raw_entity)
        }
        ([a], "PUT") if a.name == "Attributes" && a.key.is_some() => update_attribute(
            store,
            req,
            e,
            &raw_entity,
            a.key.as_deref().unwrap_or(""),
            None,
        ),
        ([a, cast], "PUT") if a.name == "Attributes" && a.key.is_some() => update_attribute(
            store,
            req,
            e,
            &raw_entity,
            a.key.as_deref().unwrap_or(""),
            Some(&cast.name),
        ),
        _ => Err(not_supported()),
    }
}

fn create_attribute(
    store: &mut Store,
    req: &Req,
    e: TableId,
    raw_entity: &str,
) -> Result<Resp, DvError> {
    let id = add_column(store, e, req.body)?;
    Ok(Resp::empty(204).header(
        "OData-EntityId",
        format!(
            "{}/EntityDefinitions({raw_entity})/Attributes({id})",
            req.api
        ),
    ))
}

/// Creates a column of table `e` from its definition; returns its `MetadataId`.
pub(super) fn add_column(store: &mut Store, e: TableId, body: &[u8]) -> Result<Guid, DvError> {
    let body = body_object(body)?;
    let schema_name = body
        .get("SchemaName")
        .and_then(Value::as_str)
        .ok_or_else(|| DvError::bad_request("The column definition must have a SchemaName."))?;
    if !valid_schema_name(schema_name) {
        return Err(DvError::bad_request(format!(
            "'{schema_name}' is not a valid SchemaName: it needs a customization prefix (e.g. new_), letters, digits and underscores only, at most 50 characters."
        )));
    }
    let t = body_type(&body).ok_or_else(|| {
        DvError::bad_request(
            "The column definition must name its type (@odata.type or AttributeType).",
        )
    })?;
    let mut kind = kind_from_body(&t, &body)?;
    // A choice column over a global choice takes its options from it
    // (create-update-optionsets, "Create a choice column using a global choice").
    if let Some(bind) = body.get("GlobalOptionSet@odata.bind") {
        let AttrKind::Picklist { options } = &mut kind else {
            return Err(DvError::bad_request(
                "GlobalOptionSet@odata.bind is for choice (Picklist) columns.",
            ));
        };
        let set = super::option_sets::resolve_bind(store, bind)?;
        *options = set.options.clone();
    }
    let ent = store.entity(e);
    let logical = schema_name.to_lowercase();
    let clash = ent.attr(&logical).is_some()
        || ent.attr_by_wire(&logical).is_some()
        || store.schema.single_nav(e, &logical).is_some()
        || store.schema.collection_nav(e, &logical).is_some();
    if clash {
        return Err(DvError::duplicate_key());
    }
    let required = required_level(&body)?.unwrap_or("None");
    let mut a = crate::schema::Attribute::custom(&ent.logical_name, schema_name, kind, required);
    a.display_labels = body_labels(body.get("DisplayName"), "DisplayName")?;
    a.description_labels = body_labels(body.get("Description"), "Description")?;
    a.display_name = user_text(&a.display_labels);
    a.description = user_text(&a.description_labels);
    a.extra = kept_properties(&body);
    let id = a.metadata_id;
    store.add_column(e, a);
    Ok(id)
}

/// `DELETE EntityDefinitions(...)/Attributes(...)` ("Delete a column",
/// learn.microsoft.com/power-apps/developer/data-platform/webapi/create-update-column-definitions-using-web-api):
/// the column leaves the definition and every row. Dataverse refuses to delete a column other
/// components depend on; here: the primary key and primary name, system columns, a column of
/// an alternate key, and a lookup behind a relationship (deleted with its relationship). The
/// documentation names no error code for these refusals; the emulator answers 400.
fn delete_attribute(store: &mut Store, e: TableId, raw_attr: &str) -> Result<Resp, DvError> {
    let ent = store.entity(e);
    let col = find_attribute(ent, raw_attr)?;
    let a = &ent.attributes[col];
    let refuse = |why: String| {
        Err(DvError::bad_request(format!(
            "The column '{}' of '{}' cannot be deleted: {why}.",
            a.logical_name, ent.logical_name
        )))
    };
    if a.is_primary_id || a.is_primary_name {
        return refuse("it is the table's primary column".into());
    }
    if !a.is_custom {
        return refuse("it is a system column".into());
    }
    if let Some(k) = ent
        .alternate_keys
        .iter()
        .find(|k| k.attributes.contains(&a.logical_name))
    {
        return refuse(format!("the alternate key '{}' uses it", k.schema_name));
    }
    if let Some(r) = store
        .schema
        .relationships
        .iter()
        .find(|r| r.referencing_entity == e && r.referencing_attribute == col)
    {
        return refuse(format!(
            "it is the lookup of the relationship '{}'; delete the relationship",
            r.schema_name
        ));
    }
    store.remove_column(e, col);
    Ok(Resp::empty(204))
}

fn update_attribute(
    store: &mut Store,
    req: &Req,
    e: TableId,
    raw_entity: &str,
    raw_attr: &str,
    cast: Option<&str>,
) -> Result<Resp, DvError> {
    let body = body_object(req.body)?;
    let ent = store.entity(e);
    let col = find_attribute(ent, raw_attr)?;
    let current = ent.attributes[col].clone();
    let current_type = current.kind.metadata_type();
    let cast_type = cast.map(|c| c.strip_prefix("Microsoft.Dynamics.CRM.").unwrap_or(c));
    for named in [cast_type.map(str::to_string), body_type(&body)]
        .into_iter()
        .flatten()
    {
        if named != current_type {
            return Err(DvError::bad_request(format!(
                "The type of column '{}' is {current_type}; it cannot be changed to {named}.",
                current.logical_name
            )));
        }
    }
    let merge = req
        .header("MSCRM.MergeLabels")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let mut a = current.clone();
    a.display_labels = merge_labels(
        column_labels(&current.display_labels, &current.display_name),
        body_labels(body.get("DisplayName"), "DisplayName")?,
        merge,
    );
    a.description_labels = merge_labels(
        column_labels(&current.description_labels, &current.description),
        body_labels(body.get("Description"), "Description")?,
        merge,
    );
    a.display_name = user_text(&a.display_labels);
    a.description = user_text(&a.description_labels);
    if let Some(r) = required_level(&body)? {
        a.required = r;
    }
    // Size and range settings may change; option values are managed by their own actions.
    match &current.kind {
        AttrKind::String { .. }
        | AttrKind::Memo { .. }
        | AttrKind::Integer { .. }
        | AttrKind::Decimal { .. } => a.kind = kind_from_body(current_type, &body)?,
        AttrKind::Money => {
            kind_from_body(current_type, &body)?;
        }
        _ => {}
    }
    if current.kind.metadata_type() == "StringAttributeMetadata" && !body.contains_key("MaxLength")
        || current.kind.metadata_type() == "MemoAttributeMetadata"
            && !body.contains_key("MaxLength")
    {
        a.kind = current.kind.clone();
    }
    let sent = kept_properties(&body);
    for (k, v) in sent {
        match a.extra.iter_mut().find(|(x, _)| *x == k) {
            Some(slot) => slot.1 = v,
            None => a.extra.push((k, v)),
        }
    }
    store.replace_column(e, col, a);
    Ok(Resp::empty(204).header(
        "OData-EntityId",
        format!(
            "{}/EntityDefinitions({raw_entity})/Attributes({raw_attr})",
            req.api
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn store() -> Store {
        Store::new(Arc::new(crate::catalog::schema()))
    }

    fn send(store: &mut Store, method: &str, path: &str, body: &str) -> Result<Resp, DvError> {
        let req = Req::test(method, path, "", &[], body.as_bytes());
        let segs = path::segments(path)?;
        handle_write(store, &req, &segs)
    }

    const BALANCE: &str = r#"{
        "@odata.type": "Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
        "SchemaName": "new_Balance",
        "DisplayName": {"LocalizedLabels": [{"Label": "Balance", "LanguageCode": 1033}]},
        "RequiredLevel": {"Value": "None"},
        "Precision": 2
    }"#;

    #[test]
    fn a_created_column_joins_the_table_with_a_null_in_every_row() {
        let mut store = store();
        let accounts = store.schema.entity("account").unwrap();
        crate::seed::seed(&mut store, 2, &[], "client");
        let resp = send(
            &mut store,
            "POST",
            "EntityDefinitions(LogicalName='account')/Attributes",
            BALANCE,
        )
        .unwrap();
        assert_eq!(resp.status, 204);
        let ent = store.entity(accounts);
        let col = ent.attr("new_balance").unwrap();
        assert!(matches!(ent.attributes[col].kind, AttrKind::Money));
        assert_eq!(ent.attributes[col].display_name, "Balance");
        assert!(store.rows(accounts).values().all(|r| r.vals[col].is_null()));
        let again = send(
            &mut store,
            "POST",
            "EntityDefinitions(LogicalName='account')/Attributes",
            BALANCE,
        )
        .unwrap_err();
        assert_eq!(again.status, 412);
    }

    #[test]
    fn column_definitions_the_emulator_cannot_take_are_refused() {
        let mut store = store();
        let path = "EntityDefinitions(LogicalName='account')/Attributes";
        let no_name = send(
            &mut store,
            "POST",
            path,
            r#"{"@odata.type":"Microsoft.Dynamics.CRM.StringAttributeMetadata"}"#,
        )
        .unwrap_err();
        assert!(
            no_name.message.contains("SchemaName"),
            "{}",
            no_name.message
        );
        let no_prefix = send(
            &mut store,
            "POST",
            path,
            r#"{"@odata.type":"Microsoft.Dynamics.CRM.StringAttributeMetadata","SchemaName":"Balance"}"#,
        )
        .unwrap_err();
        assert!(
            no_prefix.message.contains("'Balance'"),
            "{}",
            no_prefix.message
        );
        let lookup = send(
            &mut store,
            "POST",
            path,
            r#"{"@odata.type":"Microsoft.Dynamics.CRM.LookupAttributeMetadata","SchemaName":"new_Parent"}"#,
        )
        .unwrap_err();
        assert!(
            lookup.message.contains("RelationshipDefinitions"),
            "{}",
            lookup.message
        );
        // Updating a whole table definition is a Dataverse operation the emulator does not
        // run: 501, naming it.
        let table = send(
            &mut store,
            "PUT",
            "EntityDefinitions(LogicalName='account')",
            "{}",
        )
        .unwrap_err();
        assert_eq!(table.status, 501);
        assert!(
            table.message.contains("PUT on this metadata resource"),
            "{}",
            table.message
        );
        let no_name = send(&mut store, "POST", "EntityDefinitions", "{}").unwrap_err();
        assert!(
            no_name.message.contains("SchemaName"),
            "{}",
            no_name.message
        );
    }

    #[test]
    fn an_update_replaces_a_columns_labels() {
        let mut store = store();
        send(
            &mut store,
            "POST",
            "EntityDefinitions(LogicalName='account')/Attributes",
            BALANCE,
        )
        .unwrap();
        let updated = BALANCE.replace("\"Balance\"", "\"Account Balance\"");
        let resp = send(
            &mut store,
            "PUT",
            "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_balance')",
            &updated,
        )
        .unwrap();
        assert_eq!(resp.status, 204);
        let accounts = store.schema.entity("account").unwrap();
        let ent = store.entity(accounts);
        let a = &ent.attributes[ent.attr("new_balance").unwrap()];
        assert_eq!(a.display_name, "Account Balance");
        let missing = send(
            &mut store,
            "PUT",
            "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_nothing')",
            &updated,
        )
        .unwrap_err();
        assert_eq!(missing.status, 404);
    }
}
