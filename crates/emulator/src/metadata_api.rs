//! `EntityDefinitions`, their `Attributes`, `Keys` and relationships, and
//! `RelationshipDefinitions`, generated from the same schema that types the rows.
//! Metadata queries are not paged and rows carry no ETag.
//!
//! `$select` is checked against the type the path declares (`metadata_types`): a property the
//! type does not have answers the documented 400, one the emulator does not render answers 501.

use serde_json::{Map, Value, json};

use crate::error::DvError;
use crate::messages::NAMESPACE;
use crate::metadata_types::{check_select, is_attribute_type};
use crate::odata::eval::{Filter, Record, Term};
use crate::odata::filter::Lit;
use crate::odata::path::{self, Key, Segment};
use crate::odata::query::QueryOptions;
use crate::schema::{AttrKind, Attribute, Entity, Relationship, TableId};
use crate::store::Store;
use crate::wire::{Caller, Req, Resp};

fn label(text: &str, id_seed: &str) -> Value {
    if text.is_empty() {
        return json!({"LocalizedLabels": [], "UserLocalizedLabel": null});
    }
    labels_json(&[(1033, text.to_string())], id_seed, true)
}

/// A Label: every LocalizedLabel, and the 1033 one (else the first) as UserLocalizedLabel.
fn labels_json(labels: &[(i64, String)], id_seed: &str, managed: bool) -> Value {
    let items: Vec<Value> = labels
        .iter()
        .map(|(lang, text)| {
            json!({
                "Label": text,
                "LanguageCode": lang,
                "IsManaged": managed,
                "MetadataId": crate::schema::meta_guid("label", &format!("{id_seed}/{lang}")).to_string(),
                "HasChanged": null
            })
        })
        .collect();
    let user = labels
        .iter()
        .position(|(l, _)| *l == 1033)
        .or(if labels.is_empty() { None } else { Some(0) })
        .and_then(|i| items.get(i).cloned())
        .unwrap_or(Value::Null);
    json!({"LocalizedLabels": items, "UserLocalizedLabel": user})
}

/// The labels of a column property: the stored list, else the single 1033 text.
fn column_labels(list: &[(i64, String)], text: &str) -> Vec<(i64, String)> {
    if !list.is_empty() {
        list.to_vec()
    } else if text.is_empty() {
        Vec::new()
    } else {
        vec![(1033, text.to_string())]
    }
}

fn managed(value: bool, name: &str) -> Value {
    json!({"Value": value, "CanBeChanged": true, "ManagedPropertyLogicalName": name})
}

/// The EntityMetadata of a table (without navigation collections).
pub fn entity_json(e: &Entity) -> Map<String, Value> {
    let v = json!({
        "MetadataId": e.metadata_id.to_string(),
        "LogicalName": e.logical_name,
        "SchemaName": e.schema_name,
        "EntitySetName": e.entity_set_name,
        "LogicalCollectionName": e.entity_set_name,
        "CollectionSchemaName": format!("{}s", e.schema_name),
        "ObjectTypeCode": e.object_type_code,
        "IsCustomEntity": e.is_custom,
        "IsActivity": e.is_activity,
        "IsIntersect": false,
        // None of the emulator's tables exists only under a parent row (IsChildEntity marks
        // tables such as customeraddress); connectors read it to list top-level tables.
        "IsChildEntity": false,
        "IsManaged": !e.is_custom,
        "IsValidForAdvancedFind": true,
        "IsOptimisticConcurrencyEnabled": true,
        // Per table, with the managed property a production client's discovery reads
        // (learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems,
        // "Tables not eligible for change tracking").
        "ChangeTrackingEnabled": e.change_tracking,
        "CanChangeTrackingBeEnabled": managed(e.can_change_tracking_be_enabled, "canchangetrackingbeenabled"),
        "IsPrivate": false,
        "OwnershipType": e.ownership.as_str(),
        "PrimaryIdAttribute": e.primary_id_name(),
        "PrimaryNameAttribute": e.primary_name_name(),
        "DisplayName": label(&e.display_name, &e.logical_name),
        "DisplayCollectionName": label(&e.display_collection_name, &format!("{}s", e.logical_name)),
        "Description": label(&e.description, &format!("{}-d", e.logical_name)),
        "IsCustomizable": managed(true, "iscustomizable"),
        "IsAuditEnabled": managed(false, "canmodifyauditsettings"),
        "HasChanged": null,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn options_json(entity: &Entity, a: &Attribute, options: &[(i64, String)]) -> Value {
    let opts: Vec<Value> = options
        .iter()
        .map(|(v, l)| {
            json!({
                "Value": v,
                "Color": null,
                "IsManaged": true,
                "ExternalValue": null,
                "ParentValues": [],
                "Tag": null,
                "IsHidden": false,
                "MetadataId": null,
                "HasChanged": null,
                "Label": label(l, &format!("{}.{}.{v}", entity.logical_name, a.logical_name)),
                "Description": label("", ""),
            })
        })
        .collect();
    let set_type = match a.kind {
        AttrKind::State { .. } => "State",
        AttrKind::Status { .. } => "Status",
        _ => "Picklist",
    };
    json!({
        "Options": opts,
        "IsGlobal": false,
        "Name": format!("{}_{}", entity.logical_name, a.logical_name),
        "OptionSetType": set_type,
        "IntroducedVersion": "1.0",
        "MetadataId": crate::schema::meta_guid(&entity.logical_name, &format!("{}.options", a.logical_name)).to_string(),
        "HasChanged": null,
    })
}

/// The AttributeMetadata of a column; the OptionSet only when expanded, as the service does.
pub fn attribute_json(e: &Entity, a: &Attribute, with_option_set: bool) -> Map<String, Value> {
    let kind = &a.kind;
    let mut m = match json!({
        "@odata.type": format!("#Microsoft.Dynamics.CRM.{}", kind.metadata_type()),
        "MetadataId": a.metadata_id.to_string(),
        "LogicalName": a.logical_name,
        "SchemaName": a.schema_name,
        "EntityLogicalName": e.logical_name,
        "AttributeType": kind.type_name(),
        "AttributeTypeName": {"Value": format!("{}Type", kind.type_name())},
        "AttributeOf": null,
        "DisplayName": labels_json(&column_labels(&a.display_labels, &a.display_name), &format!("{}.{}", e.logical_name, a.logical_name), !a.is_custom),
        "Description": labels_json(&column_labels(&a.description_labels, &a.description), &format!("{}.{}-d", e.logical_name, a.logical_name), !a.is_custom),
        "IsPrimaryId": a.is_primary_id,
        "IsPrimaryName": a.is_primary_name,
        "IsCustomAttribute": a.is_custom,
        "IsLogical": false,
        "IsValidForCreate": a.writable,
        "IsValidForRead": true,
        "IsValidForUpdate": a.writable && !a.is_primary_id,
        "IsValidODataAttribute": true,
        "IsFilterable": true,
        "IsRetrievable": true,
        "IsSearchable": true,
        "IsSecured": false,
        "IsManaged": !a.is_custom,
        "RequiredLevel": {"Value": a.required, "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"},
        "IsAuditEnabled": managed(true, "canmodifyauditsettings"),
        "IsCustomizable": managed(true, "iscustomizable"),
        "HasChanged": null,
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    match kind {
        AttrKind::String { max_len } => {
            m.insert("MaxLength".into(), json!(max_len));
            m.insert("Format".into(), json!("Text"));
            m.insert("FormatName".into(), json!({"Value": "Text"}));
        }
        AttrKind::Memo { max_len } => {
            m.insert("MaxLength".into(), json!(max_len));
            m.insert("Format".into(), json!("TextArea"));
        }
        AttrKind::Integer { min, max } => {
            m.insert("MinValue".into(), json!(min));
            m.insert("MaxValue".into(), json!(max));
            m.insert("Format".into(), json!("None"));
        }
        AttrKind::BigInt => {
            m.insert("MinValue".into(), json!(i64::MIN));
            m.insert("MaxValue".into(), json!(i64::MAX));
        }
        AttrKind::Decimal { precision } => {
            m.insert("Precision".into(), json!(precision));
            m.insert("MinValue".into(), json!(-100_000_000_000.0));
            m.insert("MaxValue".into(), json!(100_000_000_000.0));
        }
        AttrKind::Money => {
            m.insert("Precision".into(), json!(2));
            m.insert("PrecisionSource".into(), json!(2));
            m.insert("MinValue".into(), json!(-922_337_203_685_477.0));
            m.insert("MaxValue".into(), json!(922_337_203_685_477.0));
        }
        AttrKind::Boolean {
            true_label,
            false_label,
        } => {
            m.insert("DefaultValue".into(), json!(false));
            if with_option_set {
                m.insert(
                    "OptionSet".into(),
                    json!({
                        "TrueOption": {"Value": 1, "Label": label(true_label, &format!("{}.{}.t", e.logical_name, a.logical_name))},
                        "FalseOption": {"Value": 0, "Label": label(false_label, &format!("{}.{}.f", e.logical_name, a.logical_name))},
                        "OptionSetType": "Boolean",
                    }),
                );
            }
        }
        AttrKind::DateTime { date_only } => {
            m.insert(
                "Format".into(),
                json!(if *date_only {
                    "DateOnly"
                } else {
                    "DateAndTime"
                }),
            );
            m.insert(
                "DateTimeBehavior".into(),
                json!({"Value": if *date_only { "DateOnly" } else { "UserLocal" }}),
            );
        }
        AttrKind::Picklist { options }
        | AttrKind::State { options }
        | AttrKind::Status { options } => {
            m.insert(
                "DefaultFormValue".into(),
                json!(options.first().map(|o| o.0)),
            );
            if with_option_set {
                m.insert("OptionSet".into(), options_json(e, a, options));
            }
        }
        AttrKind::Lookup { targets, .. } => {
            m.insert("Targets".into(), json!(targets));
            m.insert("Format".into(), json!("None"));
        }
        AttrKind::Uniqueidentifier => {}
    }
    for (k, v) in &a.extra {
        m.insert(k.clone(), v.clone());
    }
    m
}

fn relationship_json(store: &Store, r: &Relationship) -> Map<String, Value> {
    let s = &store.schema;
    let referencing = s.table(r.referencing_entity);
    let referenced = s.table(r.referenced_entity);
    match json!({
        "@odata.type": "#Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
        "MetadataId": r.metadata_id.to_string(),
        "SchemaName": r.schema_name,
        "RelationshipType": "OneToManyRelationship",
        "IsCustomRelationship": r.is_custom,
        "IsManaged": !r.is_custom,
        "ReferencedEntity": referenced.logical_name,
        "ReferencedAttribute": referenced.primary_id_name(),
        "ReferencingEntity": referencing.logical_name,
        "ReferencingAttribute": referencing.attributes[r.referencing_attribute].logical_name,
        "ReferencedEntityNavigationPropertyName": r.referenced_nav,
        "ReferencingEntityNavigationPropertyName": r.referencing_nav,
        "IsHierarchical": r.referenced_entity == r.referencing_entity,
        "CascadeConfiguration": {"Assign": "NoCascade", "Delete": "RemoveLink", "Merge": "NoCascade", "Reparent": "NoCascade", "Share": "NoCascade", "Unshare": "NoCascade"},
        "HasChanged": null,
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn key_json(e: &Entity, k: &crate::schema::AltKey) -> Map<String, Value> {
    match json!({
        "MetadataId": k.metadata_id.to_string(),
        "LogicalName": k.logical_name,
        "SchemaName": k.schema_name,
        "EntityLogicalName": e.logical_name,
        "KeyAttributes": k.attributes,
        "DisplayName": label(&k.display_name, &k.logical_name),
        "EntityKeyIndexStatus": "Active",
        "IsManaged": false,
        "HasChanged": null,
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn path_value<'a>(obj: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj.get(path.first()?)?;
    for seg in &path[1..] {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

/// A metadata object is a `$filter` record: a property path walks its JSON. Numbers, strings
/// and booleans compare as such; objects and arrays (labels, option sets) compare with nothing.
impl Record for Map<String, Value> {
    fn property(&self, path: &[String]) -> Term<'_> {
        match path_value(self, path) {
            None | Some(Value::Null) => Term::Null,
            Some(Value::String(s)) => Term::Str(s),
            Some(Value::Bool(b)) => Term::Bool(*b),
            Some(Value::Number(n)) => n.as_f64().map_or(Term::Other, Term::Num),
            Some(Value::Array(_) | Value::Object(_)) => Term::Other,
        }
    }
}

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

fn find_entity(store: &Store, seg: &Segment) -> Result<TableId, DvError> {
    let raw = seg.key.as_deref().unwrap_or("");
    let found = match path::parse_key(raw)? {
        Key::Id(g) => store
            .schema
            .tables()
            .find(|(_, e)| e.metadata_id == g)
            .map(|(id, _)| id),
        Key::Named(pairs) => match pairs.as_slice() {
            [(k, Lit::Str(v))] if k == "LogicalName" => store.schema.entity(v),
            _ => None,
        },
        Key::Single(Lit::Str(v)) => store.schema.entity(&v),
        Key::Single(_) => None,
    };
    found.ok_or_else(|| {
        DvError::new(
            404,
            crate::error::OBJECT_DOES_NOT_EXIST,
            format!("Could not find entity with key '{raw}'."),
        )
    })
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
            "ManyToManyRelationships" => Vec::new(),
            other => return Err(DvError::unknown_property(other, "EntityMetadata")),
        };
        m.insert(
            x.nav.clone(),
            Value::Array(v.into_iter().map(Value::Object).collect()),
        );
    }
    Ok(m)
}

/// Whether the emulator renders `property` on an attribute of `type_name` (the
/// AttributeMetadata type or a derived one): some attribute of that type carries it, or it is
/// kept as sent on the columns created through the API.
fn attribute_renders(store: &Store, type_name: &str, property: &str) -> bool {
    KEPT_PROPERTIES.contains(&property)
        || store.schema.entities.iter().any(|e| {
            e.attributes
                .iter()
                .filter(|a| {
                    let t = a.kind.metadata_type();
                    match type_name {
                        "AttributeMetadata" => true,
                        "EnumAttributeMetadata" => matches!(
                            a.kind,
                            AttrKind::Picklist { .. }
                                | AttrKind::State { .. }
                                | AttrKind::Status { .. }
                        ),
                        _ => t == type_name,
                    }
                })
                .any(|a| attribute_json(e, a, true).contains_key(property))
        })
}

fn entity_renders(store: &Store, property: &str) -> bool {
    store
        .schema
        .entities
        .first()
        .is_some_and(|e| entity_json(e).contains_key(property))
}

fn key_renders(store: &Store, property: &str) -> bool {
    store.schema.entities.iter().any(|e| {
        e.alternate_keys
            .iter()
            .any(|k| key_json(e, k).contains_key(property))
    })
}

fn relationship_renders(store: &Store, property: &str) -> bool {
    store
        .schema
        .relationships
        .first()
        .is_some_and(|r| relationship_json(store, r).contains_key(property))
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
            None if many_to_many => Ok(list_response(context(req, &tail, &q), Vec::new())),
            None => Ok(list_response(
                context(req, &tail, &q),
                relationships_of(store, &q, |_| true),
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
    if segs[0].name == "GlobalOptionSetDefinitions" {
        return Ok(list_response(
            context(req, "GlobalOptionSetDefinitions", &q),
            Vec::new(),
        ));
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
                Vec::new(),
            ))
        }
        [s, ..] => Err(DvError::segment_not_found(&s.name)),
    }
}

// ---- metadata writes: creating and updating columns ----------------------------------------

/// Settable properties kept as sent and echoed on reads (the rest is derived from the type).
const KEPT_PROPERTIES: &[&str] = &[
    "PrecisionSource",
    "Precision",
    "FormatName",
    "ImeMode",
    "DefaultValue",
    "IsAuditEnabled",
    "IsValidForAdvancedFind",
    "IsSecured",
    "IsCustomizable",
    "IsRenameable",
    "IsGlobalFilterEnabled",
    "IsSortableEnabled",
    "CanModifyAdditionalSettings",
    "SourceType",
    "FormulaDefinition",
    "AutoNumberFormat",
    "IsLocalizable",
];

fn body_object(body: &[u8]) -> Result<Map<String, Value>, DvError> {
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
fn body_type(body: &Map<String, Value>) -> Option<String> {
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
fn body_labels(v: Option<&Value>, property: &str) -> Result<Vec<(i64, String)>, DvError> {
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

fn required_level(body: &Map<String, Value>) -> Result<Option<&'static str>, DvError> {
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
fn kind_from_body(t: &str, body: &Map<String, Value>) -> Result<AttrKind, DvError> {
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
            let mut options: Vec<(i64, String)> = Vec::new();
            let items = body
                .get("OptionSet")
                .and_then(|s| s.get("Options"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (i, o) in items.iter().enumerate() {
                let value = match o.get("Value") {
                    None | Some(Value::Null) => 100_000_000 + i as i64,
                    Some(v) => v.as_i64().ok_or_else(|| {
                        DvError::bad_request("An option Value must be an integer.")
                    })?,
                };
                if options.iter().any(|(v, _)| *v == value) {
                    return Err(DvError::bad_request(format!(
                        "The option value {value} is used more than once."
                    )));
                }
                options.push((value, option_label(Some(o), &value.to_string())?));
            }
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

fn kept_properties(body: &Map<String, Value>) -> Vec<(String, Value)> {
    KEPT_PROPERTIES
        .iter()
        .filter_map(|k| {
            body.get(*k)
                .filter(|v| !v.is_null())
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect()
}

fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.contains('_')
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

fn user_text(labels: &[(i64, String)]) -> String {
    labels
        .iter()
        .find(|(l, _)| *l == 1033)
        .or(labels.first())
        .map(|(_, t)| t.clone())
        .unwrap_or_default()
}

fn find_attribute(ent: &Entity, raw: &str) -> Result<usize, DvError> {
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
    let not_supported = || {
        DvError::new(
            405,
            crate::error::ODATA_ERROR,
            format!(
                "{} on this metadata resource is not supported by the emulator (columns can be created and updated).",
                req.method
            ),
        )
    };
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
    let body = body_object(req.body)?;
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
    let kind = kind_from_body(&t, &body)?;
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
    Ok(Resp::empty(204).header(
        "OData-EntityId",
        format!(
            "{}/EntityDefinitions({raw_entity})/Attributes({id})",
            req.api
        ),
    ))
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
