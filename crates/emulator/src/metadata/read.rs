//! Reads below `EntityDefinitions`, `RelationshipDefinitions` and
//! `GlobalOptionSetDefinitions`: the path picks tables, columns (all, by type cast, or one),
//! keys or relationships; `$select` is checked against the type the path declares (`types`);
//! `$filter` runs through the OData evaluator over the rendered objects; `$expand` adds a
//! table's columns, keys and relationships. Metadata queries are not paged and rows carry no
//! ETag.

use serde_json::{Map, Value, json};

use super::find_entity;
use super::json::{
    attribute_json, attribute_renders, entity_json, entity_renders, key_json, key_renders,
    relationship_json, relationship_renders,
};
use super::types::{check_select, is_attribute_type};
use crate::error::DvError;
use crate::messages::NAMESPACE;
use crate::odata::eval::Filter;
use crate::odata::filter::Lit;
use crate::odata::path::{self, Key, Segment};
use crate::odata::query::QueryOptions;
use crate::schema::{Relationship, TableId};
use crate::store::Store;
use crate::wire::{Caller, Req, Resp};

/// The `$filter` of a metadata query, compiled for records. Metadata has no user columns, so
/// `EqualUserId` and its kin find nothing whoever calls.
fn record_filter(q: &QueryOptions) -> Option<Filter> {
    q.filter
        .as_ref()
        .map(|f| Filter::for_records(f, Caller::default()))
}

fn select(mut obj: Map<String, Value>, q: &QueryOptions, keep: &[&str]) -> Map<String, Value> {
    if let Some(sel) = &q.select {
        obj.retain(|k, _| sel.iter().any(|s| s == k) || keep.contains(&k.as_str()));
    }
    obj
}

fn context(req: &Req, tail: &str, q: &QueryOptions) -> String {
    let sel = q
        .select
        .as_ref()
        .map(|s| format!("({})", s.join(",")))
        .unwrap_or_default();
    format!("{}/$metadata#{tail}{sel}", req.api)
}

fn list_response(ctx: String, items: Vec<Map<String, Value>>) -> Resp {
    let body = json!({"@odata.context": ctx, "value": items});
    Resp::json(200, body.to_string().into_bytes())
}

fn entity_response(ctx: String, mut item: Map<String, Value>) -> Resp {
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        Value::String(format!("{ctx}/$entity")),
    );
    out.append(&mut item);
    Resp::json(200, Value::Object(out).to_string().into_bytes())
}

fn attributes_of(
    store: &Store,
    e: TableId,
    q: &QueryOptions,
    cast: Option<&str>,
) -> Vec<Map<String, Value>> {
    let ent = store.entity(e);
    let filter = record_filter(q);
    let expand_options = q
        .expand
        .iter()
        .any(|x| x.nav == "OptionSet" || x.nav == "GlobalOptionSet");
    ent.attributes
        .iter()
        .filter(|a| cast.is_none_or(|c| a.kind.metadata_type() == c))
        .map(|a| attribute_json(ent, a, expand_options))
        .filter(|m| filter.as_ref().is_none_or(|f| f.matches_record(m)))
        .map(|m| select(m, q, &["MetadataId", "@odata.type", "OptionSet"]))
        .collect()
}

fn relationships_of(
    store: &Store,
    q: &QueryOptions,
    pred: impl Fn(&Relationship) -> bool,
) -> Vec<Map<String, Value>> {
    let filter = record_filter(q);
    store
        .schema
        .relationships
        .iter()
        .filter(|r| pred(r))
        .map(|r| relationship_json(store, r))
        .filter(|m| filter.as_ref().is_none_or(|f| f.matches_record(m)))
        .map(|m| select(m, q, &["MetadataId"]))
        .collect()
}

fn entity_with_expands(
    store: &Store,
    e: TableId,
    q: &QueryOptions,
) -> Result<Map<String, Value>, DvError> {
    let ent = store.entity(e);
    let mut m = select(entity_json(ent), q, &["MetadataId"]);
    for x in &q.expand {
        let o = &x.options;
        let v = match x.nav.as_str() {
            "Attributes" => attributes_of(store, e, o, None),
            "Keys" => ent
                .alternate_keys
                .iter()
                .map(|k| select(key_json(ent, k), o, &["MetadataId"]))
                .collect(),
            "ManyToOneRelationships" => relationships_of(store, o, |r| r.referencing_entity == e),
            "OneToManyRelationships" => relationships_of(store, o, |r| r.referenced_entity == e),
            "ManyToManyRelationships" => crate::many_to_many::of(store, Some(e)),
            other => return Err(DvError::unknown_property(other, "EntityMetadata")),
        };
        m.insert(
            x.nav.clone(),
            Value::Array(v.into_iter().map(Value::Object).collect()),
        );
    }
    Ok(m)
}

/// Checks the `$select` of a request on EntityDefinitions and of its `$expand` items.
fn check_entity_select(store: &Store, q: &QueryOptions) -> Result<(), DvError> {
    check_select(q, "EntityMetadata", |p| entity_renders(store, p))?;
    for x in &q.expand {
        let o = &x.options;
        match x.nav.as_str() {
            "Attributes" => check_select(o, "AttributeMetadata", |p| {
                attribute_renders(store, "AttributeMetadata", p)
            })?,
            "Keys" => check_select(o, "EntityKeyMetadata", |p| key_renders(store, p))?,
            "ManyToOneRelationships" | "OneToManyRelationships" => {
                check_select(o, "OneToManyRelationshipMetadata", |p| {
                    relationship_renders(store, p)
                })?
            }
            // The emulator has no many-to-many relationships: nothing to render.
            "ManyToManyRelationships" => {
                check_select(o, "ManyToManyRelationshipMetadata", |_| true)?
            }
            _ => {}
        }
    }
    Ok(())
}

/// The AttributeMetadata type a cast segment names, or the documented 404 for one that names no
/// such type.
fn attribute_cast(cast: &Segment) -> Result<&str, DvError> {
    cast.name
        .strip_prefix(NAMESPACE)
        .filter(|t| is_attribute_type(t) && cast.key.is_none())
        .ok_or_else(|| DvError::segment_not_found(&cast.name))
}

/// Handles a GET below `EntityDefinitions` or `RelationshipDefinitions`.
pub fn handle(store: &Store, req: &Req, segs: &[Segment]) -> Result<Resp, DvError> {
    let q = QueryOptions::parse(req.query)?;
    if segs[0].name == "RelationshipDefinitions" {
        // A cast picks one kind of relationship (query-metadata-web-api, "Retrieve
        // relationships": `RelationshipDefinitions/Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata`).
        // Every relationship of the emulator is one-to-many; it has no many-to-many ones.
        let cast = match &segs[1..] {
            [] => None,
            [c] if c.key.is_none() => match c.name.strip_prefix(NAMESPACE) {
                Some(t @ ("OneToManyRelationshipMetadata" | "ManyToManyRelationshipMetadata")) => {
                    Some(t)
                }
                _ => return Err(DvError::segment_not_found(&c.name)),
            },
            [s, ..] => return Err(DvError::segment_not_found(&s.name)),
        };
        let many_to_many = cast == Some("ManyToManyRelationshipMetadata");
        check_select(&q, cast.unwrap_or("RelationshipMetadataBase"), |p| {
            many_to_many || relationship_renders(store, p)
        })?;
        let tail = match cast {
            Some(t) => format!("RelationshipDefinitions/{NAMESPACE}{t}"),
            None => "RelationshipDefinitions".to_string(),
        };
        return match &segs[0].key {
            None if many_to_many => Ok(list_response(
                context(req, &tail, &q),
                crate::many_to_many::of(store, None),
            )),
            None => Ok(list_response(
                context(req, &tail, &q),
                relationships_of(store, &q, |_| true)
                    .into_iter()
                    .chain(match cast {
                        None => crate::many_to_many::of(store, None),
                        Some(_) => Vec::new(),
                    })
                    .collect(),
            )),
            Some(k) => {
                let name =
                    match path::parse_key(k)? {
                        Key::Named(p) => p.into_iter().find(|(n, _)| n == "SchemaName").and_then(
                            |(_, l)| match l {
                                Lit::Str(s) => Some(s),
                                _ => None,
                            },
                        ),
                        Key::Id(g) => store
                            .schema
                            .relationships
                            .iter()
                            .find(|r| r.metadata_id == g)
                            .map(|r| r.schema_name.clone()),
                        Key::Single(_) => None,
                    };
                // Many-to-many relationships made through the metadata API (many_to_many.rs).
                let by_id = match path::parse_key(k)? {
                    Key::Id(g) => Some(g),
                    _ => None,
                };
                if let Some(m) = crate::many_to_many::by_key(store, name.as_deref(), by_id) {
                    return Ok(entity_response(
                        context(req, &tail, &q),
                        select(crate::many_to_many::json(store, m), &q, &["MetadataId"]),
                    ));
                }
                let r = store
                    .schema
                    .relationships
                    .iter()
                    .filter(|_| !many_to_many)
                    .find(|r| Some(&r.schema_name) == name.as_ref())
                    .ok_or_else(|| {
                        DvError::new(
                            404,
                            crate::error::OBJECT_DOES_NOT_EXIST,
                            format!("Could not find relationship with key '{k}'."),
                        )
                    })?;
                Ok(entity_response(
                    context(req, &tail, &q),
                    select(relationship_json(store, r), &q, &["MetadataId"]),
                ))
            }
        };
    }
    // Global choices made through the metadata API (option_sets.rs).
    if segs[0].name == "GlobalOptionSetDefinitions" {
        return super::option_sets::read(store, req, segs);
    }
    if segs[0].key.is_none() {
        if let Some(s) = segs.get(1) {
            return Err(DvError::segment_not_found(&s.name));
        }
        check_entity_select(store, &q)?;
        let filter = record_filter(&q);
        let mut items = Vec::new();
        for (i, ent) in store.schema.tables() {
            let full = entity_json(ent);
            if filter.as_ref().is_none_or(|f| f.matches_record(&full)) {
                items.push(entity_with_expands(store, i, &q)?);
            }
        }
        return Ok(list_response(context(req, "EntityDefinitions", &q), items));
    }
    let e = find_entity(store, &segs[0])?;
    let ent = store.entity(e);
    let base = format!("EntityDefinitions('{}')", ent.logical_name);
    let attribute_select =
        |type_name: &str| check_select(&q, type_name, |p| attribute_renders(store, type_name, p));
    match &segs[1..] {
        [] => {
            check_entity_select(store, &q)?;
            Ok(entity_response(
                context(req, "EntityDefinitions", &q),
                entity_with_expands(store, e, &q)?,
            ))
        }
        [a] if a.name == "Attributes" && a.key.is_none() => {
            attribute_select("AttributeMetadata")?;
            Ok(list_response(
                context(req, &format!("{base}/Attributes"), &q),
                attributes_of(store, e, &q, None),
            ))
        }
        [a, cast] if a.name == "Attributes" && a.key.is_none() => {
            let t = attribute_cast(cast)?;
            attribute_select(t)?;
            Ok(list_response(
                context(req, &format!("{base}/Attributes/{}", cast.name), &q),
                attributes_of(store, e, &q, Some(t)),
            ))
        }
        [a, rest @ ..] if a.name == "Attributes" => {
            let raw = a.key.as_deref().unwrap_or("");
            let attr = match path::parse_key(raw)? {
                Key::Id(g) => ent.attributes.iter().find(|x| x.metadata_id == g),
                Key::Named(p) => match p.as_slice() {
                    [(k, Lit::Str(v))] if k == "LogicalName" => {
                        ent.attr(v).map(|i| &ent.attributes[i])
                    }
                    _ => None,
                },
                Key::Single(Lit::Str(v)) => ent.attr(&v).map(|i| &ent.attributes[i]),
                Key::Single(_) => None,
            }
            .ok_or_else(|| {
                DvError::new(
                    404,
                    crate::error::OBJECT_DOES_NOT_EXIST,
                    format!("Could not find attribute with key '{raw}'."),
                )
            })?;
            let with_options = q
                .expand
                .iter()
                .any(|x| x.nav == "OptionSet" || x.nav == "GlobalOptionSet");
            let mut ctx_tail = format!("{base}/Attributes");
            match rest {
                [cast] => attribute_select(attribute_cast(cast)?)?,
                _ => attribute_select("AttributeMetadata")?,
            }
            if let [cast] = rest {
                let t = cast
                    .name
                    .strip_prefix("Microsoft.Dynamics.CRM.")
                    .unwrap_or("");
                if attr.kind.metadata_type() != t {
                    return Err(DvError::bad_request(format!(
                        "The attribute '{}' is not of type '{}'.",
                        attr.logical_name, cast.name
                    )));
                }
                ctx_tail = format!("{ctx_tail}/{}", cast.name);
            } else if let [s, ..] = rest {
                return Err(DvError::segment_not_found(&s.name));
            }
            let m = select(
                attribute_json(ent, attr, with_options),
                &q,
                &["MetadataId", "@odata.type", "OptionSet"],
            );
            Ok(entity_response(context(req, &ctx_tail, &q), m))
        }
        // One key by MetadataId or LogicalName (define_table.rs).
        [k] if k.name == "Keys" && k.key.is_some() => {
            check_select(&q, "EntityKeyMetadata", |p| key_renders(store, p))?;
            let key = super::define_table::find_key(ent, k.key.as_deref().unwrap_or(""))?;
            Ok(entity_response(
                context(req, &format!("{base}/Keys"), &q),
                select(key_json(ent, key), &q, &["MetadataId"]),
            ))
        }
        [k] if k.name == "Keys" => {
            check_select(&q, "EntityKeyMetadata", |p| key_renders(store, p))?;
            Ok(list_response(
                context(req, &format!("{base}/Keys"), &q),
                ent.alternate_keys
                    .iter()
                    .map(|x| select(key_json(ent, x), &q, &["MetadataId"]))
                    .collect(),
            ))
        }
        [k] if k.name == "ManyToOneRelationships" => {
            check_select(&q, "OneToManyRelationshipMetadata", |p| {
                relationship_renders(store, p)
            })?;
            Ok(list_response(
                context(req, &format!("{base}/ManyToOneRelationships"), &q),
                relationships_of(store, &q, |r| r.referencing_entity == e),
            ))
        }
        [k] if k.name == "OneToManyRelationships" => {
            check_select(&q, "OneToManyRelationshipMetadata", |p| {
                relationship_renders(store, p)
            })?;
            Ok(list_response(
                context(req, &format!("{base}/OneToManyRelationships"), &q),
                relationships_of(store, &q, |r| r.referenced_entity == e),
            ))
        }
        // The emulator has no many-to-many relationships (as `$expand` already answers).
        [k] if k.name == "ManyToManyRelationships" && k.key.is_none() => {
            check_select(&q, "ManyToManyRelationshipMetadata", |_| true)?;
            Ok(list_response(
                context(req, &format!("{base}/ManyToManyRelationships"), &q),
                crate::many_to_many::of(store, Some(e))
                    .into_iter()
                    .map(|m| select(m, &q, &["MetadataId"]))
                    .collect(),
            ))
        }
        [s, ..] => Err(DvError::segment_not_found(&s.name)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::{NOT_IMPLEMENTED, ODATA_ERROR};

    fn get(path_and_query: &str) -> Result<Value, DvError> {
        let store = Store::new(Arc::new(crate::catalog::schema()));
        let (p, q) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let req = Req::test("GET", p, q, &[], b"");
        let segs = path::segments(p)?;
        let resp = handle(&store, &req, &segs)?;
        Ok(serde_json::from_slice(&resp.body).unwrap())
    }

    fn names(list: &Value, property: &str) -> Vec<String> {
        list["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[property].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_filter_and_select_pick_tables_and_their_properties() {
        let list = get(
            "EntityDefinitions?$select=LogicalName&$filter=LogicalName eq 'account' or LogicalName eq 'contact'",
        )
        .unwrap();
        let mut found = names(&list, "LogicalName");
        found.sort();
        assert_eq!(found, ["account", "contact"]);
        let first = list["value"][0].as_object().unwrap();
        let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["LogicalName", "MetadataId"]);
        assert_eq!(
            list["@odata.context"],
            "http://127.0.0.1/api/data/v9.2/$metadata#EntityDefinitions(LogicalName)"
        );
    }

    #[test]
    fn columns_are_listed_whole_by_type_cast_or_one_by_name() {
        let cast = get(
            "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.MoneyAttributeMetadata?$select=LogicalName",
        )
        .unwrap();
        let mut money = names(&cast, "LogicalName");
        money.sort();
        assert!(money.contains(&"revenue".to_string()), "{money:?}");
        let one = get(
            "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength",
        )
        .unwrap();
        assert_eq!(
            (one["LogicalName"].as_str(), one["MaxLength"].as_i64()),
            (Some("name"), Some(160))
        );
        // A property of a derived type needs the cast, as Dataverse answers.
        let uncast = get(
            "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')?$select=MaxLength",
        )
        .unwrap_err();
        assert_eq!(uncast.status, 400);
        let filtered = get(
            "EntityDefinitions(LogicalName='account')/Attributes?$select=LogicalName&$filter=AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Money'",
        )
        .unwrap();
        let mut by_filter = names(&filtered, "LogicalName");
        by_filter.sort();
        assert_eq!(by_filter, money);
    }

    #[test]
    fn expands_add_columns_keys_and_relationships() {
        let account = get(
            "EntityDefinitions(LogicalName='account')?$select=LogicalName&$expand=Keys($select=LogicalName),ManyToOneRelationships($select=ReferencedEntity;$filter=ReferencingAttribute eq 'primarycontactid')",
        )
        .unwrap();
        assert_eq!(account["Keys"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            account["ManyToOneRelationships"][0]["ReferencedEntity"],
            "contact"
        );
        assert_eq!(
            account["ManyToOneRelationships"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn relationships_are_found_by_schema_name() {
        let all = get("RelationshipDefinitions?$select=SchemaName").unwrap();
        let first = names(&all, "SchemaName").remove(0);
        let one = get(&format!(
            "RelationshipDefinitions(SchemaName='{first}')?$select=SchemaName"
        ))
        .unwrap();
        assert_eq!(one["SchemaName"], first.as_str());
        let err = get("RelationshipDefinitions(SchemaName='nosuch')").unwrap_err();
        assert_eq!(err.status, 404);
    }

    #[test]
    fn selects_outside_the_type_are_400_and_unrendered_ones_501() {
        let unknown = get("EntityDefinitions?$select=NoSuchProperty").unwrap_err();
        assert_eq!((unknown.status, unknown.code.as_str()), (400, ODATA_ERROR));
        let unrendered = get("EntityDefinitions?$select=AutoRouteToOwnerQueue").unwrap_err();
        assert_eq!(
            (unrendered.status, unrendered.code.as_str()),
            (501, NOT_IMPLEMENTED)
        );
        let cast = get("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.NoSuchMetadata")
            .unwrap_err();
        assert_eq!(cast.status, 404);
    }
}
