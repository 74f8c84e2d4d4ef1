//! `EntityDefinitions`, their `Attributes`, `Keys` and relationships, and
//! `RelationshipDefinitions`, generated from the same schema that types the rows.
//! Metadata queries are not paged and rows carry no ETag.

use serde_json::{Map, Value, json};

use crate::error::DvError;
use crate::odata::filter::{CmpOp, Expr, Lit, Operand, StrFn};
use crate::odata::path::{self, Key, Segment};
use crate::odata::query::QueryOptions;
use crate::schema::{AttrKind, Attribute, Entity, Relationship};
use crate::store::Store;
use crate::webapi::{Req, Resp};

fn label(text: &str, id_seed: &str) -> Value {
    if text.is_empty() {
        return json!({"LocalizedLabels": [], "UserLocalizedLabel": null});
    }
    let l = json!({
        "Label": text,
        "LanguageCode": 1033,
        "IsManaged": true,
        "MetadataId": crate::schema::meta_guid("label", id_seed).to_string(),
        "HasChanged": null
    });
    json!({"LocalizedLabels": [l.clone()], "UserLocalizedLabel": l})
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
        "IsManaged": !e.is_custom,
        "IsValidForAdvancedFind": true,
        "IsOptimisticConcurrencyEnabled": true,
        "ChangeTrackingEnabled": true,
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
        "DisplayName": label(&a.display_name, &format!("{}.{}", e.logical_name, a.logical_name)),
        "Description": label(&a.description, &format!("{}.{}-d", e.logical_name, a.logical_name)),
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
    m
}

fn relationship_json(store: &Store, r: &Relationship) -> Map<String, Value> {
    let s = &store.schema;
    let referencing = &s.entities[r.referencing_entity];
    let referenced = &s.entities[r.referenced_entity];
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

// ---- generic JSON filtering / selection ------------------------------------------------------

fn path_value<'a>(obj: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj.get(path.first()?)?;
    for seg in &path[1..] {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

fn lit_json(l: &Lit) -> Value {
    match l {
        Lit::Null => Value::Null,
        Lit::Str(s) | Lit::Enum(s) => Value::String(s.clone()),
        Lit::Int(i) => json!(i),
        Lit::Num(n) => json!(n),
        Lit::Bool(b) => json!(b),
        Lit::Guid(g) => Value::String(g.to_string()),
        Lit::Date(d, _) => Value::String(crate::datetime::format_iso(*d)),
    }
}

fn operand_json(obj: &Map<String, Value>, o: &Operand) -> Value {
    match o {
        Operand::Lit(l) => lit_json(l),
        Operand::Path(p) => path_value(obj, p).cloned().unwrap_or(Value::Null),
    }
}

fn json_cmp(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

/// Evaluates a `$filter` over a metadata object.
pub fn json_matches(obj: &Map<String, Value>, e: &Expr) -> bool {
    use std::cmp::Ordering::*;
    match e {
        Expr::Or(a, b) => json_matches(obj, a) || json_matches(obj, b),
        Expr::And(a, b) => json_matches(obj, a) && json_matches(obj, b),
        Expr::Not(a) => !json_matches(obj, a),
        Expr::Cmp(op, a, b) => {
            let (x, y) = (operand_json(obj, a), operand_json(obj, b));
            let o = json_cmp(&x, &y);
            match op {
                CmpOp::Eq => o == Some(Equal),
                CmpOp::Ne => o != Some(Equal),
                CmpOp::Gt => o == Some(Greater),
                CmpOp::Ge => matches!(o, Some(Greater | Equal)),
                CmpOp::Lt => o == Some(Less),
                CmpOp::Le => matches!(o, Some(Less | Equal)),
            }
        }
        Expr::Str(f, a, b) => {
            let (Value::String(x), Value::String(y)) = (operand_json(obj, a), operand_json(obj, b))
            else {
                return false;
            };
            let (x, y) = (x.to_lowercase(), y.to_lowercase());
            match f {
                StrFn::Contains => x.contains(&y),
                StrFn::StartsWith => x.starts_with(&y),
                StrFn::EndsWith => x.ends_with(&y),
            }
        }
        Expr::In(p, lits, neg) => {
            let v = path_value(obj, p).cloned().unwrap_or(Value::Null);
            lits.iter()
                .any(|l| json_cmp(&v, &lit_json(l)) == Some(Equal))
                != *neg
        }
        Expr::Operand(o) => operand_json(obj, o) == Value::Bool(true),
        Expr::Between(..) | Expr::Lambda { .. } => false,
    }
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

fn find_entity(store: &Store, seg: &Segment) -> Result<usize, DvError> {
    let raw = seg.key.as_deref().unwrap_or("");
    let found = match path::parse_key(raw)? {
        Key::Id(g) => store
            .schema
            .entities
            .iter()
            .position(|e| e.metadata_id == g),
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
            "0x80040217",
            format!("Could not find entity with key '{raw}'."),
        )
    })
}

fn attributes_of(
    store: &Store,
    e: usize,
    q: &QueryOptions,
    cast: Option<&str>,
) -> Vec<Map<String, Value>> {
    let ent = store.entity(e);
    let expand_options = q
        .expand
        .iter()
        .any(|x| x.nav == "OptionSet" || x.nav == "GlobalOptionSet");
    ent.attributes
        .iter()
        .filter(|a| cast.is_none_or(|c| a.kind.metadata_type() == c))
        .map(|a| attribute_json(ent, a, expand_options))
        .filter(|m| q.filter.as_ref().is_none_or(|f| json_matches(m, f)))
        .map(|m| select(m, q, &["MetadataId", "@odata.type", "OptionSet"]))
        .collect()
}

fn relationships_of(
    store: &Store,
    q: &QueryOptions,
    pred: impl Fn(&Relationship) -> bool,
) -> Vec<Map<String, Value>> {
    store
        .schema
        .relationships
        .iter()
        .filter(|r| pred(r))
        .map(|r| relationship_json(store, r))
        .filter(|m| q.filter.as_ref().is_none_or(|f| json_matches(m, f)))
        .map(|m| select(m, q, &["MetadataId"]))
        .collect()
}

fn entity_with_expands(
    store: &Store,
    e: usize,
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

/// Handles a GET below `EntityDefinitions` or `RelationshipDefinitions`.
pub fn handle(store: &Store, req: &Req, segs: &[Segment]) -> Result<Resp, DvError> {
    let q = QueryOptions::parse(req.query)?;
    if segs[0].name == "RelationshipDefinitions" {
        return match (&segs[0].key, &segs[1..]) {
            (None, []) => Ok(list_response(
                context(req, "RelationshipDefinitions", &q),
                relationships_of(store, &q, |_| true),
            )),
            (Some(k), []) => {
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
                    .find(|r| Some(&r.schema_name) == name.as_ref())
                    .ok_or_else(|| {
                        DvError::new(
                            404,
                            "0x80040217",
                            format!("Could not find relationship with key '{k}'."),
                        )
                    })?;
                Ok(entity_response(
                    context(req, "RelationshipDefinitions", &q),
                    select(relationship_json(store, r), &q, &["MetadataId"]),
                ))
            }
            (_, [s, ..]) => Err(DvError::segment_not_found(&s.name)),
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
        let mut items = Vec::new();
        for (i, ent) in store.schema.entities.iter().enumerate() {
            let full = entity_json(ent);
            if q.filter.as_ref().is_none_or(|f| json_matches(&full, f)) {
                items.push(entity_with_expands(store, i, &q)?);
            }
        }
        return Ok(list_response(context(req, "EntityDefinitions", &q), items));
    }
    let e = find_entity(store, &segs[0])?;
    let ent = store.entity(e);
    let base = format!("EntityDefinitions('{}')", ent.logical_name);
    match &segs[1..] {
        [] => Ok(entity_response(
            context(req, "EntityDefinitions", &q),
            entity_with_expands(store, e, &q)?,
        )),
        [a] if a.name == "Attributes" && a.key.is_none() => Ok(list_response(
            context(req, &format!("{base}/Attributes"), &q),
            attributes_of(store, e, &q, None),
        )),
        [a, cast] if a.name == "Attributes" && a.key.is_none() => {
            let t = cast
                .name
                .strip_prefix("Microsoft.Dynamics.CRM.")
                .ok_or_else(|| DvError::segment_not_found(&cast.name))?;
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
                    "0x80040217",
                    format!("Could not find attribute with key '{raw}'."),
                )
            })?;
            let with_options = q
                .expand
                .iter()
                .any(|x| x.nav == "OptionSet" || x.nav == "GlobalOptionSet");
            let mut ctx_tail = format!("{base}/Attributes");
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
        [k] if k.name == "Keys" => Ok(list_response(
            context(req, &format!("{base}/Keys"), &q),
            ent.alternate_keys
                .iter()
                .map(|x| select(key_json(ent, x), &q, &["MetadataId"]))
                .collect(),
        )),
        [k] if k.name == "ManyToOneRelationships" => Ok(list_response(
            context(req, &format!("{base}/ManyToOneRelationships"), &q),
            relationships_of(store, &q, |r| r.referencing_entity == e),
        )),
        [k] if k.name == "OneToManyRelationships" => Ok(list_response(
            context(req, &format!("{base}/OneToManyRelationships"), &q),
            relationships_of(store, &q, |r| r.referenced_entity == e),
        )),
        [s, ..] => Err(DvError::segment_not_found(&s.name)),
    }
}
