//! Metadata as the Web API writes it: `EntityMetadata`, `AttributeMetadata` and its derived
//! types (with option sets), `OneToManyRelationshipMetadata` and `EntityKeyMetadata` as JSON
//! objects, generated from the schema that types the rows; which properties the emulator
//! renders (for `$select` checks); and a metadata object as a `$filter` record.

use serde_json::{Map, Value, json};

use crate::odata::eval::{Record, Term};
use crate::schema::{AttrKind, Attribute, Entity, Relationship};
use crate::store::Store;

fn label(text: &str, id_seed: &str) -> Value {
    if text.is_empty() {
        return json!({"LocalizedLabels": [], "UserLocalizedLabel": null});
    }
    labels_json(&[(1033, text.to_string())], id_seed, true)
}

/// A Label: every LocalizedLabel, and the 1033 one (else the first) as UserLocalizedLabel.
pub(super) fn labels_json(labels: &[(i64, String)], id_seed: &str, managed: bool) -> Value {
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
pub fn column_labels(list: &[(i64, String)], text: &str) -> Vec<(i64, String)> {
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
        // "Standard" or "Elastic" (learn.microsoft.com/power-apps/developer/data-platform/create-elastic-tables).
        "TableType": e.table_type,
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
        "AttributeTypeName": {"Value": kind.attribute_type_name()},
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
        // learn.microsoft.com/power-apps/developer/data-platform/file-attributes
        AttrKind::File { max_size_kb } => {
            m.insert("MaxSizeInKB".into(), json!(max_size_kb));
        }
        // learn.microsoft.com/power-apps/developer/data-platform/image-attributes
        AttrKind::Image {
            max_size_kb,
            can_store_full_image,
        } => {
            m.insert("MaxSizeInKB".into(), json!(max_size_kb));
            m.insert("CanStoreFullImage".into(), json!(can_store_full_image));
            m.insert(
                "IsPrimaryImage".into(),
                json!(a.logical_name == "entityimage"),
            );
            m.insert("MaxHeight".into(), json!(144));
            m.insert("MaxWidth".into(), json!(144));
        }
    }
    for (k, v) in &a.extra {
        m.insert(k.clone(), v.clone());
    }
    m
}

pub fn relationship_json(store: &Store, r: &Relationship) -> Map<String, Value> {
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
        Value::Object(mut m) => {
            // What a relationship created through the metadata API was sent with.
            let kept = s
                .additions
                .relationship_properties
                .iter()
                .filter(|(name, _)| *name == r.schema_name);
            for (k, v) in kept.flat_map(|(_, props)| props) {
                m.insert(k.clone(), v.clone());
            }
            m
        }
        _ => Map::new(),
    }
}

pub fn key_json(e: &Entity, k: &crate::schema::AltKey) -> Map<String, Value> {
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

/// Settable properties kept as sent and echoed on reads (the rest is derived from the type).
pub const KEPT_PROPERTIES: &[&str] = &[
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

/// Whether the emulator renders `property` on an attribute of `type_name` (the
/// AttributeMetadata type or a derived one): some attribute of that type carries it, or it is
/// kept as sent on the columns created through the API.
pub fn attribute_renders(store: &Store, type_name: &str, property: &str) -> bool {
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

pub fn entity_renders(store: &Store, property: &str) -> bool {
    store
        .schema
        .entities
        .first()
        .is_some_and(|e| entity_json(e).contains_key(property))
}

pub fn key_renders(store: &Store, property: &str) -> bool {
    store.schema.entities.iter().any(|e| {
        e.alternate_keys
            .iter()
            .any(|k| key_json(e, k).contains_key(property))
    })
}

pub fn relationship_renders(store: &Store, property: &str) -> bool {
    store
        .schema
        .relationships
        .first()
        .is_some_and(|r| relationship_json(store, r).contains_key(property))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> crate::schema::Schema {
        crate::catalog::schema()
    }

    #[test]
    fn an_entity_renders_its_names_codes_and_labels() {
        let schema = catalog();
        let account = schema.table(schema.entity("account").unwrap());
        let m = entity_json(account);
        assert_eq!(m["LogicalName"], "account");
        assert_eq!(m["EntitySetName"], "accounts");
        assert_eq!(m["ObjectTypeCode"], 1);
        assert_eq!(m["PrimaryIdAttribute"], "accountid");
        assert_eq!(m["MetadataId"], account.metadata_id.to_string());
        assert_eq!(m["DisplayName"]["UserLocalizedLabel"]["Label"], "Account");
        assert_eq!(m["DisplayName"]["LocalizedLabels"][0]["LanguageCode"], 1033);
    }

    #[test]
    fn a_choice_column_renders_its_options_only_when_asked() {
        let schema = catalog();
        let account = schema.table(schema.entity("account").unwrap());
        let industry = &account.attributes[account.attr("industrycode").unwrap()];
        let bare = attribute_json(account, industry, false);
        assert_eq!(bare["AttributeType"], "Picklist");
        assert_eq!(
            bare["@odata.type"],
            "#Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
        );
        assert!(bare.get("OptionSet").is_none_or(Value::is_null));
        let with_options = attribute_json(account, industry, true);
        let options = with_options["OptionSet"]["Options"].as_array().unwrap();
        assert_eq!(options[0]["Value"], 1);
        assert_eq!(
            options[0]["Label"]["UserLocalizedLabel"]["Label"],
            "Accounting"
        );
    }

    #[test]
    fn relationships_and_keys_name_their_tables_and_columns() {
        let schema = catalog();
        let store = Store::new(std::sync::Arc::new(schema));
        let accounts = store.schema.entity("account").unwrap();
        let rel = store
            .schema
            .single_nav(accounts, "primarycontactid")
            .unwrap();
        let m = relationship_json(&store, rel);
        assert_eq!(m["ReferencingEntity"], "account");
        assert_eq!(m["ReferencedEntity"], "contact");
        assert_eq!(m["ReferencingAttribute"], "primarycontactid");
        let account = store.entity(accounts);
        let k = key_json(account, &account.alternate_keys[0]);
        assert_eq!(k["KeyAttributes"], json!(["accountnumber"]));
        assert_eq!(k["EntityLogicalName"], "account");
    }

    #[test]
    fn a_metadata_object_answers_filter_paths() {
        let schema = catalog();
        let m = entity_json(schema.table(schema.entity("account").unwrap()));
        let path = |p: &str| -> Vec<String> { p.split('/').map(String::from).collect() };
        assert_eq!(m.property(&path("LogicalName")), Term::Str("account"));
        assert_eq!(m.property(&path("ObjectTypeCode")), Term::Num(1.0));
        assert_eq!(m.property(&path("IsCustomEntity")), Term::Bool(false));
        assert_eq!(
            m.property(&path("DisplayName/UserLocalizedLabel/Label")),
            Term::Str("Account")
        );
        assert_eq!(m.property(&path("DisplayName")), Term::Other);
        assert_eq!(m.property(&path("NoSuchProperty")), Term::Null);
    }

    #[test]
    fn rendered_properties_are_known_per_type() {
        let store = Store::new(std::sync::Arc::new(catalog()));
        assert!(entity_renders(&store, "LogicalName"));
        assert!(!entity_renders(&store, "NoSuchProperty"));
        assert!(attribute_renders(
            &store,
            "PicklistAttributeMetadata",
            "OptionSet"
        ));
        assert!(!attribute_renders(
            &store,
            "StringAttributeMetadata",
            "OptionSet"
        ));
        assert!(attribute_renders(&store, "AttributeMetadata", "Precision"));
        assert!(key_renders(&store, "KeyAttributes"));
        assert!(relationship_renders(&store, "ReferencedEntity"));
    }
}
