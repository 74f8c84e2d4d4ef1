//! The table definitions behind both the data and the metadata endpoints.

use std::collections::HashMap;

use crate::error::DvError;
use crate::guid::Guid;

/// How a column is typed; drives JSON conversion, `$filter` literals, metadata and CSDL.
#[derive(Debug, Clone)]
pub enum AttrKind {
    Uniqueidentifier,
    String {
        max_len: u32,
    },
    Memo {
        max_len: u32,
    },
    Integer {
        min: i64,
        max: i64,
    },
    BigInt,
    Decimal {
        precision: u32,
    },
    Money,
    Boolean {
        true_label: String,
        false_label: String,
    },
    DateTime {
        date_only: bool,
    },
    Picklist {
        options: Vec<(i64, String)>,
    },
    State {
        options: Vec<(i64, String)>,
    },
    Status {
        options: Vec<(i64, String)>,
    },
    /// `Lookup`, `Customer` and `Owner` columns; `type_name` is the metadata AttributeType.
    Lookup {
        targets: Vec<String>,
        type_name: &'static str,
    },
    /// A file column (FileAttributeMetadata; learn.microsoft.com/power-apps/developer/data-platform/file-attributes):
    /// the row holds the file's id, the bytes live in the store's file data (`blobs.rs`), and
    /// `MaxSizeInKB` bounds an upload (default 32,768 KB, at most 10,485,760 KB).
    File {
        max_size_kb: u32,
    },
    /// An image column (ImageAttributeMetadata; learn.microsoft.com/power-apps/developer/data-platform/image-attributes):
    /// the row holds the image as base64 (`Edm.Binary`); `MaxSizeInKB` bounds an upload
    /// (default 10,240 KB, at most 30,720 KB) and `CanStoreFullImage` whether the full-size
    /// image is kept beside the thumbnail.
    Image {
        max_size_kb: u32,
        can_store_full_image: bool,
    },
}

impl AttrKind {
    /// The `AttributeType` metadata value.
    pub fn type_name(&self) -> &'static str {
        match self {
            AttrKind::Uniqueidentifier => "Uniqueidentifier",
            AttrKind::String { .. } => "String",
            AttrKind::Memo { .. } => "Memo",
            AttrKind::Integer { .. } => "Integer",
            AttrKind::BigInt => "BigInt",
            AttrKind::Decimal { .. } => "Decimal",
            AttrKind::Money => "Money",
            AttrKind::Boolean { .. } => "Boolean",
            AttrKind::DateTime { .. } => "DateTime",
            AttrKind::Picklist { .. } => "Picklist",
            AttrKind::State { .. } => "State",
            AttrKind::Status { .. } => "Status",
            AttrKind::Lookup { type_name, .. } => type_name,
            AttrKind::File { .. } | AttrKind::Image { .. } => "Virtual",
        }
    }

    /// The `AttributeTypeName` metadata value: `FileType` and `ImageType` for the two virtual
    /// kinds, `<AttributeType>Type` otherwise.
    pub fn attribute_type_name(&self) -> String {
        match self {
            AttrKind::File { .. } => "FileType".into(),
            AttrKind::Image { .. } => "ImageType".into(),
            _ => format!("{}Type", self.type_name()),
        }
    }

    /// The derived metadata type, e.g. `StringAttributeMetadata`.
    pub fn metadata_type(&self) -> &'static str {
        match self {
            AttrKind::Uniqueidentifier => "UniqueIdentifierAttributeMetadata",
            AttrKind::String { .. } => "StringAttributeMetadata",
            AttrKind::Memo { .. } => "MemoAttributeMetadata",
            AttrKind::Integer { .. } => "IntegerAttributeMetadata",
            AttrKind::BigInt => "BigIntAttributeMetadata",
            AttrKind::Decimal { .. } => "DecimalAttributeMetadata",
            AttrKind::Money => "MoneyAttributeMetadata",
            AttrKind::Boolean { .. } => "BooleanAttributeMetadata",
            AttrKind::DateTime { .. } => "DateTimeAttributeMetadata",
            AttrKind::Picklist { .. } => "PicklistAttributeMetadata",
            AttrKind::State { .. } => "StateAttributeMetadata",
            AttrKind::Status { .. } => "StatusAttributeMetadata",
            AttrKind::Lookup { .. } => "LookupAttributeMetadata",
            AttrKind::File { .. } => "FileAttributeMetadata",
            AttrKind::Image { .. } => "ImageAttributeMetadata",
        }
    }

    /// The CSDL primitive type of the column (lookups are exposed as `_x_value` GUIDs).
    pub fn edm_type(&self) -> &'static str {
        match self {
            AttrKind::Uniqueidentifier | AttrKind::Lookup { .. } | AttrKind::File { .. } => {
                "Edm.Guid"
            }
            AttrKind::Image { .. } => "Edm.Binary",
            AttrKind::String { .. } | AttrKind::Memo { .. } => "Edm.String",
            AttrKind::Integer { .. }
            | AttrKind::Picklist { .. }
            | AttrKind::State { .. }
            | AttrKind::Status { .. } => "Edm.Int32",
            AttrKind::BigInt => "Edm.Int64",
            AttrKind::Decimal { .. } | AttrKind::Money => "Edm.Decimal",
            AttrKind::Boolean { .. } => "Edm.Boolean",
            AttrKind::DateTime { date_only: true } => "Edm.Date",
            AttrKind::DateTime { date_only: false } => "Edm.DateTimeOffset",
        }
    }

    /// Options of a choice column.
    pub fn options(&self) -> Option<&[(i64, String)]> {
        match self {
            AttrKind::Picklist { options }
            | AttrKind::State { options }
            | AttrKind::Status { options } => Some(options),
            _ => None,
        }
    }

    pub fn is_lookup(&self) -> bool {
        matches!(self, AttrKind::Lookup { .. })
    }
}

/// One column.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub logical_name: String,
    pub schema_name: String,
    pub display_name: String,
    pub description: String,
    pub kind: AttrKind,
    pub required: &'static str,
    pub is_primary_id: bool,
    pub is_primary_name: bool,
    pub is_custom: bool,
    /// False for system-maintained columns (createdon, versionnumber, ...): ignored on write.
    pub writable: bool,
    pub metadata_id: Guid,
    /// Every localized display label as (LanguageCode, text); empty means `display_name` in 1033.
    pub display_labels: Vec<(i64, String)>,
    /// Every localized description as (LanguageCode, text); empty means `description` in 1033.
    pub description_labels: Vec<(i64, String)>,
    /// Metadata properties kept as sent when the column was created or updated through the
    /// Web API (e.g. `PrecisionSource`, `FormatName`), echoed back on reads.
    pub extra: Vec<(String, serde_json::Value)>,
}

impl Attribute {
    /// A column as created through the metadata API.
    pub fn custom(
        entity_logical_name: &str,
        schema_name: &str,
        kind: AttrKind,
        required: &'static str,
    ) -> Attribute {
        let logical = schema_name.to_lowercase();
        Attribute {
            metadata_id: meta_guid(entity_logical_name, &logical),
            logical_name: logical,
            schema_name: schema_name.into(),
            display_name: String::new(),
            description: String::new(),
            kind,
            required,
            is_primary_id: false,
            is_primary_name: false,
            is_custom: true,
            writable: true,
            display_labels: Vec::new(),
            description_labels: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// The property name on the wire: `_x_value` for lookups, the logical name otherwise.
    pub fn wire_name(&self) -> String {
        if self.kind.is_lookup() {
            format!("_{}_value", self.logical_name)
        } else {
            self.logical_name.clone()
        }
    }
}

/// An alternate key.
#[derive(Debug, Clone)]
pub struct AltKey {
    pub schema_name: String,
    pub logical_name: String,
    pub display_name: String,
    pub attributes: Vec<String>,
    pub metadata_id: Guid,
}

/// A table: its position in [`Schema::entities`], which is also the position of its rows in the
/// store. Only the schema makes them (by logical name, by entity set name, or by listing its
/// tables), so a `TableId` always names a table that exists, and a name that finds no table is a
/// `None` the caller has to answer, never a silent "first table". Held in 16 bits, so a lookup
/// cell ([`crate::store::Val::Ref`]) stays as small as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(u16);

impl TableId {
    /// The table's position in [`Schema::entities`] and in the store.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// The most tables a schema holds (a [`TableId`] is 16 bits).
pub const MAX_TABLES: usize = u16::MAX as usize;

/// A one-to-many relationship, seen as many-to-one from the referencing table.
#[derive(Debug, Clone)]
pub struct Relationship {
    pub schema_name: String,
    pub referenced_entity: TableId,
    pub referencing_entity: TableId,
    /// Attribute index in the referencing table.
    pub referencing_attribute: usize,
    /// Single-valued navigation property on the referencing table.
    pub referencing_nav: String,
    /// Collection-valued navigation property on the referenced table.
    pub referenced_nav: String,
    pub is_custom: bool,
    pub metadata_id: Guid,
}

/// Who owns the rows of a table (variant names are the metadata's `OwnershipTypes` members).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum Ownership {
    UserOwned,
    OrganizationOwned,
    BusinessOwned,
}

impl Ownership {
    pub fn as_str(&self) -> &'static str {
        match self {
            Ownership::UserOwned => "UserOwned",
            Ownership::OrganizationOwned => "OrganizationOwned",
            Ownership::BusinessOwned => "BusinessOwned",
        }
    }
}

/// One table.
#[derive(Debug, Clone)]
pub struct Entity {
    pub logical_name: String,
    pub schema_name: String,
    pub entity_set_name: String,
    pub display_name: String,
    pub display_collection_name: String,
    pub description: String,
    pub object_type_code: i64,
    pub is_custom: bool,
    pub is_activity: bool,
    pub ownership: Ownership,
    pub primary_id: usize,
    pub primary_name: usize,
    pub attributes: Vec<Attribute>,
    pub alternate_keys: Vec<AltKey>,
    pub metadata_id: Guid,
    /// `ChangeTrackingEnabled`: `Prefer: odata.track-changes` is refused without it.
    pub change_tracking: bool,
    /// The `CanChangeTrackingBeEnabled` managed property (false for tables not eligible).
    pub can_change_tracking_be_enabled: bool,
    /// `TableType`: "Standard", or "Elastic" for a table stored the way elastic tables are
    /// (learn.microsoft.com/power-apps/developer/data-platform/elastic-tables): bulk messages
    /// succeed partially on it and `DeleteMultiple` is available.
    pub table_type: &'static str,
    index: HashMap<String, usize>,
    wire_index: HashMap<String, usize>,
}

impl Entity {
    /// Column by logical name.
    pub fn attr(&self, logical_name: &str) -> Option<usize> {
        self.index.get(logical_name).copied()
    }

    /// Column by wire name (`name`, `_primarycontactid_value`).
    pub fn attr_by_wire(&self, wire: &str) -> Option<usize> {
        self.wire_index.get(wire).copied()
    }

    /// Whether a column is a read-only companion of a file or image column (`<file>_name`,
    /// `<image>id`, `<image>_timestamp`, `<image>_url`): empty until a file or image is stored.
    pub fn is_file_companion(&self, logical_name: &str) -> bool {
        let of = |base: Option<&str>, image_only: bool| {
            base.and_then(|b| self.attr(b)).is_some_and(|c| {
                matches!(self.attributes[c].kind, AttrKind::Image { .. })
                    || !image_only && matches!(self.attributes[c].kind, AttrKind::File { .. })
            })
        };
        of(logical_name.strip_suffix("_name"), false)
            || of(logical_name.strip_suffix("id"), true)
            || of(logical_name.strip_suffix("_timestamp"), true)
            || of(logical_name.strip_suffix("_url"), true)
    }

    pub fn primary_id_name(&self) -> &str {
        &self.attributes[self.primary_id].logical_name
    }

    pub fn primary_name_name(&self) -> &str {
        &self.attributes[self.primary_name].logical_name
    }

    /// Appends a column and indexes it; returns its position.
    pub fn add_attribute(&mut self, a: Attribute) -> usize {
        let i = self.attributes.len();
        self.index.insert(a.logical_name.clone(), i);
        self.wire_index.insert(a.wire_name(), i);
        self.attributes.push(a);
        i
    }
}

/// A builder for [`Entity`], used by the catalogue.
pub struct EntityBuilder {
    entity: Entity,
}

impl EntityBuilder {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        logical_name: &str,
        schema_name: &str,
        entity_set_name: &str,
        display_name: &str,
        display_collection_name: &str,
        object_type_code: i64,
        ownership: Ownership,
        description: &str,
    ) -> EntityBuilder {
        EntityBuilder {
            entity: Entity {
                logical_name: logical_name.into(),
                schema_name: schema_name.into(),
                entity_set_name: entity_set_name.into(),
                display_name: display_name.into(),
                display_collection_name: display_collection_name.into(),
                description: description.into(),
                object_type_code,
                is_custom: logical_name.contains('_'),
                is_activity: false,
                ownership,
                primary_id: 0,
                primary_name: 0,
                attributes: Vec::new(),
                alternate_keys: Vec::new(),
                metadata_id: meta_guid(logical_name, ""),
                change_tracking: false,
                can_change_tracking_be_enabled: true,
                table_type: "Standard",
                index: HashMap::new(),
                wire_index: HashMap::new(),
            },
        }
    }

    /// An elastic table: `partitionid` and `ttlinseconds` columns and the
    /// `KeyForNoSqlEntityWithPKPartitionId` alternate key over the primary key and `partitionid`
    /// ("Create elastic tables", learn.microsoft.com/power-apps/developer/data-platform/create-elastic-tables,
    /// "Alternate keys"). Call after `id`.
    pub fn elastic(mut self) -> Self {
        self.entity.table_type = "Elastic";
        self.push(
            "partitionid",
            "Partition Id",
            AttrKind::String { max_len: 100 },
        );
        self.push(
            "ttlinseconds",
            "Time to live (in seconds)",
            AttrKind::Integer {
                min: -1,
                max: 2_147_483_647,
            },
        );
        let id = self.entity.attributes[self.entity.primary_id]
            .logical_name
            .clone();
        self.alt_key(
            "KeyForNoSqlEntityWithPKPartitionId",
            "Key for NoSql Entity with PK and PartitionId",
            &[&id, "partitionid"],
        )
    }

    pub fn activity(mut self) -> Self {
        self.entity.is_activity = true;
        self
    }

    fn push(&mut self, logical: &str, display: &str, kind: AttrKind) -> &mut Attribute {
        let schema = schema_case(logical, self.entity.is_custom);
        let custom = self.entity.is_custom && logical.starts_with("new_");
        self.entity.attributes.push(Attribute {
            logical_name: logical.into(),
            schema_name: schema,
            display_name: display.into(),
            description: String::new(),
            kind,
            required: "None",
            is_primary_id: false,
            is_primary_name: false,
            is_custom: custom,
            writable: true,
            metadata_id: meta_guid(&self.entity.logical_name, logical),
            display_labels: Vec::new(),
            description_labels: Vec::new(),
            extra: Vec::new(),
        });
        let last = self.entity.attributes.len() - 1;
        &mut self.entity.attributes[last]
    }

    pub fn id(mut self, logical: &str, display: &str) -> Self {
        let i = self.entity.attributes.len();
        let a = self.push(logical, display, AttrKind::Uniqueidentifier);
        a.is_primary_id = true;
        a.required = "SystemRequired";
        self.entity.primary_id = i;
        self
    }

    pub fn name(mut self, logical: &str, display: &str, max_len: u32) -> Self {
        let i = self.entity.attributes.len();
        let a = self.push(logical, display, AttrKind::String { max_len });
        a.is_primary_name = true;
        a.required = "ApplicationRequired";
        self.entity.primary_name = i;
        self
    }

    /// A GUID column (the intersect tables of many-to-many relationships hold two).
    pub fn uniqueidentifier(mut self, logical: &str, display: &str) -> Self {
        self.push(logical, display, AttrKind::Uniqueidentifier);
        self
    }

    pub fn string(mut self, logical: &str, display: &str, max_len: u32) -> Self {
        self.push(logical, display, AttrKind::String { max_len });
        self
    }

    pub fn memo(mut self, logical: &str, display: &str) -> Self {
        self.push(logical, display, AttrKind::Memo { max_len: 100_000 });
        self
    }

    pub fn int(mut self, logical: &str, display: &str, min: i64, max: i64) -> Self {
        self.push(logical, display, AttrKind::Integer { min, max });
        self
    }

    pub fn decimal(mut self, logical: &str, display: &str, precision: u32) -> Self {
        self.push(logical, display, AttrKind::Decimal { precision });
        self
    }

    pub fn money(mut self, logical: &str, display: &str) -> Self {
        self.push(logical, display, AttrKind::Money);
        self
    }

    pub fn boolean(mut self, logical: &str, display: &str, yes: &str, no: &str) -> Self {
        self.push(
            logical,
            display,
            AttrKind::Boolean {
                true_label: yes.into(),
                false_label: no.into(),
            },
        );
        self
    }

    pub fn datetime(mut self, logical: &str, display: &str, date_only: bool) -> Self {
        self.push(logical, display, AttrKind::DateTime { date_only });
        self
    }

    pub fn picklist(mut self, logical: &str, display: &str, options: &[(i64, &str)]) -> Self {
        let options = options.iter().map(|(v, l)| (*v, l.to_string())).collect();
        self.push(logical, display, AttrKind::Picklist { options });
        self
    }

    /// A file column and its read-only `<column>_name` companion holding the file name
    /// (learn.microsoft.com/power-apps/developer/data-platform/file-column-data, "File name column").
    pub fn file(mut self, logical: &str, display: &str, max_size_kb: u32) -> Self {
        self.push(logical, display, AttrKind::File { max_size_kb });
        self.push(
            &format!("{logical}_name"),
            &format!("{display} Name"),
            AttrKind::String { max_len: 255 },
        )
        .writable = false;
        self
    }

    /// An image column with its read-only companions `<column>id` (the image's id),
    /// `<column>_timestamp` and `<column>_url`
    /// (learn.microsoft.com/power-apps/developer/data-platform/image-attributes, "Image columns").
    pub fn image(
        mut self,
        logical: &str,
        display: &str,
        max_size_kb: u32,
        can_store_full_image: bool,
    ) -> Self {
        self.push(
            logical,
            display,
            AttrKind::Image {
                max_size_kb,
                can_store_full_image,
            },
        );
        self.push(
            &format!("{logical}id"),
            &format!("{display} Id"),
            AttrKind::Uniqueidentifier,
        )
        .writable = false;
        self.push(
            &format!("{logical}_timestamp"),
            &format!("{display} Timestamp"),
            AttrKind::BigInt,
        )
        .writable = false;
        self.push(
            &format!("{logical}_url"),
            &format!("{display} URL"),
            AttrKind::String { max_len: 200 },
        )
        .writable = false;
        self
    }

    pub fn lookup(mut self, logical: &str, display: &str, targets: &[&str]) -> Self {
        let type_name = if logical == "ownerid" {
            "Owner"
        } else if targets.len() > 1 && targets.contains(&"account") && targets.contains(&"contact")
        {
            "Customer"
        } else {
            "Lookup"
        };
        let targets = targets.iter().map(|t| t.to_string()).collect();
        self.push(logical, display, AttrKind::Lookup { targets, type_name });
        self
    }

    /// statecode / statuscode with their options.
    pub fn state_status(mut self, states: &[(i64, &str)], statuses: &[(i64, &str)]) -> Self {
        let states = states.iter().map(|(v, l)| (*v, l.to_string())).collect();
        let statuses = statuses.iter().map(|(v, l)| (*v, l.to_string())).collect();
        self.push("statecode", "Status", AttrKind::State { options: states })
            .required = "SystemRequired";
        self.push(
            "statuscode",
            "Status Reason",
            AttrKind::Status { options: statuses },
        );
        self
    }

    /// createdon, modifiedon, createdby, modifiedby, createdonbehalfby, modifiedonbehalfby,
    /// versionnumber (system maintained). The `...onbehalfby` pair names the calling user of an
    /// impersonated write (learn.microsoft.com/power-apps/developer/data-platform/webapi/
    /// impersonate-another-user-web-api, "Determine the actual user").
    pub fn audit(mut self) -> Self {
        for (l, d) in [("createdon", "Created On"), ("modifiedon", "Modified On")] {
            self.push(l, d, AttrKind::DateTime { date_only: false })
                .writable = false;
        }
        for (l, d) in [
            ("createdby", "Created By"),
            ("modifiedby", "Modified By"),
            ("createdonbehalfby", "Created By (Delegate)"),
            ("modifiedonbehalfby", "Modified By (Delegate)"),
        ] {
            self.push(
                l,
                d,
                AttrKind::Lookup {
                    targets: vec!["systemuser".into()],
                    type_name: "Lookup",
                },
            )
            .writable = false;
        }
        self.push("versionnumber", "Version Number", AttrKind::BigInt)
            .writable = false;
        self
    }

    pub fn described(mut self, logical: &str, description: &str) -> Self {
        if let Some(a) = self
            .entity
            .attributes
            .iter_mut()
            .find(|a| a.logical_name == logical)
        {
            a.description = description.into();
        }
        self
    }

    pub fn alt_key(mut self, schema_name: &str, display: &str, attrs: &[&str]) -> Self {
        self.entity.alternate_keys.push(AltKey {
            schema_name: schema_name.into(),
            logical_name: schema_name.to_lowercase(),
            display_name: display.into(),
            attributes: attrs.iter().map(|a| a.to_string()).collect(),
            metadata_id: meta_guid(&self.entity.logical_name, schema_name),
        });
        self
    }

    pub fn build(mut self) -> Entity {
        for (i, a) in self.entity.attributes.iter().enumerate() {
            self.entity.index.insert(a.logical_name.clone(), i);
            self.entity.wire_index.insert(a.wire_name(), i);
        }
        self.entity
    }
}

/// `new_projectid` → `new_ProjectId`-style schema names for custom columns; system columns keep
/// their logical name with an upper-case first letter, which is close enough for tooling.
fn schema_case(logical: &str, custom: bool) -> String {
    if custom && let Some(rest) = logical.strip_prefix("new_") {
        let mut s = String::from("new_");
        let mut up = true;
        for c in rest.chars() {
            s.extend(if up {
                c.to_uppercase().collect::<Vec<_>>()
            } else {
                vec![c]
            });
            up = false;
        }
        return s;
    }
    let mut c = logical.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Deterministic metadata ids.
pub fn meta_guid(entity: &str, attribute: &str) -> Guid {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in entity.bytes().chain([0u8]).chain(attribute.bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    Guid::from_seed(h, 0x6d65_7461)
}

/// All tables and their relationships.
#[derive(Debug, Clone)]
pub struct Schema {
    pub entities: Vec<Entity>,
    pub relationships: Vec<Relationship>,
    by_logical: HashMap<String, TableId>,
    by_set: HashMap<String, TableId>,
    /// (entity, single-valued nav name) → relationship
    single_nav: HashMap<(TableId, String), usize>,
    /// (entity, collection nav name) → relationship
    collection_nav: HashMap<(TableId, String), usize>,
    /// Global choices and other definitions made through the metadata API.
    pub additions: SchemaAdditions,
}

/// A global choice (`GlobalOptionSetDefinitions`), created through the metadata API
/// (learn.microsoft.com/power-apps/developer/data-platform/webapi/create-update-optionsets).
#[derive(Debug, Clone)]
pub struct GlobalOptionSet {
    pub name: String,
    pub display_labels: Vec<(i64, String)>,
    pub description_labels: Vec<(i64, String)>,
    pub options: Vec<(i64, String)>,
    pub metadata_id: Guid,
}

/// What the metadata API adds to a schema after it is built: tables, relationships, keys,
/// global choices, and the removal of a column.
#[derive(Debug, Clone, Default)]
pub struct SchemaAdditions {
    pub global_option_sets: Vec<GlobalOptionSet>,
    /// Properties kept as sent when a relationship was created (`CascadeConfiguration`,
    /// `AssociatedMenuConfiguration`, ...), by relationship schema name, echoed on reads.
    pub relationship_properties: Vec<(String, Vec<(String, serde_json::Value)>)>,
    /// Many-to-many relationships (`many_to_many.rs`).
    pub many_to_many: Vec<ManyToMany>,
}

/// A many-to-many relationship: the pairs live in the rows of its intersect table, which holds
/// the primary keys of both tables.
#[derive(Debug, Clone)]
pub struct ManyToMany {
    pub schema_name: String,
    pub entity1: TableId,
    pub entity2: TableId,
    pub intersect: TableId,
    /// Collection-valued navigation property of `entity1`, to rows of `entity2`.
    pub entity1_nav: String,
    /// Collection-valued navigation property of `entity2`, to rows of `entity1`.
    pub entity2_nav: String,
    pub metadata_id: Guid,
    /// Properties kept as sent (the menu configurations, `SecurityTypes`).
    pub kept: Vec<(String, serde_json::Value)>,
}

/// A relationship declaration, resolved by [`Schema::new`].
pub struct RelDecl {
    pub schema_name: String,
    pub referencing: String,
    pub attribute: String,
    pub referenced: String,
    pub referencing_nav: String,
    pub referenced_nav: String,
}

impl Schema {
    /// The schema of `entities`, with the relationships whose tables and column exist.
    ///
    /// Panics with more than [`MAX_TABLES`] tables: the catalogue is fixed at build time and
    /// holds a few dozen.
    pub fn new(entities: Vec<Entity>, rels: &[RelDecl]) -> Schema {
        assert!(
            entities.len() <= MAX_TABLES,
            "a schema holds at most {MAX_TABLES} tables, not {}",
            entities.len()
        );
        let ids = || (0..entities.len() as u16).map(TableId);
        let mut s = Schema {
            by_logical: ids()
                .zip(&entities)
                .map(|(id, e)| (e.logical_name.clone(), id))
                .collect(),
            by_set: ids()
                .zip(&entities)
                .map(|(id, e)| (e.entity_set_name.clone(), id))
                .collect(),
            entities,
            relationships: Vec::new(),
            single_nav: HashMap::new(),
            collection_nav: HashMap::new(),
            additions: SchemaAdditions::default(),
        };
        for r in rels {
            let (Some(ing), Some(ed)) = (s.entity(&r.referencing), s.entity(&r.referenced)) else {
                continue;
            };
            let Some(attr) = s.table(ing).attr(&r.attribute) else {
                continue;
            };
            let idx = s.relationships.len();
            s.relationships.push(Relationship {
                schema_name: r.schema_name.clone(),
                referenced_entity: ed,
                referencing_entity: ing,
                referencing_attribute: attr,
                referencing_nav: r.referencing_nav.clone(),
                referenced_nav: r.referenced_nav.clone(),
                is_custom: r.schema_name.starts_with("new_"),
                metadata_id: meta_guid(&r.schema_name, "relationship"),
            });
            s.single_nav.insert((ing, r.referencing_nav.clone()), idx);
            s.collection_nav.insert((ed, r.referenced_nav.clone()), idx);
        }
        s
    }

    /// The table with this logical name.
    pub fn entity(&self, logical_name: &str) -> Option<TableId> {
        self.by_logical.get(logical_name).copied()
    }

    /// A table the emulator's own rules need (`systemuser` behind `createdby`, `businessunit`
    /// behind a user's business unit): a schema without it is a bug in the catalogue, answered
    /// as a 500 that names the table rather than a write pointing at some other table.
    pub fn required(&self, logical_name: &str) -> Result<TableId, DvError> {
        self.entity(logical_name)
            .ok_or_else(|| DvError::internal(&format!("the schema has no table '{logical_name}'")))
    }

    /// The table with this entity set name.
    pub fn entity_by_set(&self, set: &str) -> Option<TableId> {
        self.by_set.get(set).copied()
    }

    /// The definition of a table.
    pub fn table(&self, id: TableId) -> &Entity {
        &self.entities[id.index()]
    }

    /// The definition of a table, to change it (metadata writes).
    pub fn table_mut(&mut self, id: TableId) -> &mut Entity {
        &mut self.entities[id.index()]
    }

    /// Every table with its id, in schema order.
    pub fn tables(&self) -> impl Iterator<Item = (TableId, &Entity)> {
        (0..self.entities.len() as u16)
            .map(TableId)
            .zip(&self.entities)
    }

    /// Single-valued navigation property of `entity`.
    pub fn single_nav(&self, entity: TableId, nav: &str) -> Option<&Relationship> {
        self.single_nav
            .get(&(entity, nav.to_string()))
            .map(|&i| &self.relationships[i])
    }

    /// Collection-valued navigation property of `entity`.
    pub fn collection_nav(&self, entity: TableId, nav: &str) -> Option<&Relationship> {
        self.collection_nav
            .get(&(entity, nav.to_string()))
            .map(|&i| &self.relationships[i])
    }

    /// The relationship behind a lookup value pointing at `target`.
    pub fn relationship_for(
        &self,
        entity: TableId,
        attribute: usize,
        target: TableId,
    ) -> Option<&Relationship> {
        self.relationships.iter().find(|r| {
            r.referencing_entity == entity
                && r.referencing_attribute == attribute
                && r.referenced_entity == target
        })
    }
}

/// Changes the metadata API makes to a built schema (metadata/write.rs and its siblings).
impl Schema {
    /// Appends a table and indexes its names; the caller adds its rows' table to the store.
    pub fn add_table(&mut self, entity: Entity) -> TableId {
        let id = TableId(self.entities.len() as u16);
        self.by_logical.insert(entity.logical_name.clone(), id);
        self.by_set.insert(entity.entity_set_name.clone(), id);
        self.entities.push(entity);
        id
    }

    /// Adds a one-to-many relationship over an existing lookup column; None when a table or
    /// the column is missing.
    pub fn add_relationship(&mut self, r: &RelDecl) -> Option<usize> {
        let (ing, ed) = (self.entity(&r.referencing)?, self.entity(&r.referenced)?);
        let attr = self.table(ing).attr(&r.attribute)?;
        let idx = self.relationships.len();
        self.relationships.push(Relationship {
            schema_name: r.schema_name.clone(),
            referenced_entity: ed,
            referencing_entity: ing,
            referencing_attribute: attr,
            referencing_nav: r.referencing_nav.clone(),
            referenced_nav: r.referenced_nav.clone(),
            is_custom: true,
            metadata_id: meta_guid(&r.schema_name, "relationship"),
        });
        self.single_nav
            .insert((ing, r.referencing_nav.clone()), idx);
        self.collection_nav
            .insert((ed, r.referenced_nav.clone()), idx);
        Some(idx)
    }

    /// Removes column `col` of a table: later columns move down one place, and the
    /// relationships of the table follow them.
    pub fn remove_attribute(&mut self, entity: TableId, col: usize) {
        let e = &mut self.entities[entity.index()];
        e.attributes.remove(col);
        e.index.clear();
        e.wire_index.clear();
        for (i, a) in e.attributes.iter().enumerate() {
            e.index.insert(a.logical_name.clone(), i);
            e.wire_index.insert(a.wire_name(), i);
        }
        let shift = |i: &mut usize| {
            if *i > col {
                *i -= 1;
            }
        };
        shift(&mut e.primary_id);
        shift(&mut e.primary_name);
        for r in &mut self.relationships {
            if r.referencing_entity == entity {
                shift(&mut r.referencing_attribute);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widgets() -> Entity {
        EntityBuilder::new(
            "new_widget",
            "new_Widget",
            "new_widgets",
            "Widget",
            "Widgets",
            10_001,
            Ownership::OrganizationOwned,
            "",
        )
        .id("new_widgetid", "Widget")
        .name("new_name", "Name", 100)
        .audit()
        .build()
    }

    #[test]
    fn a_table_id_names_the_table_it_was_found_by() {
        let schema = crate::catalog::schema();
        let account = schema.entity("account").unwrap();
        assert_eq!(schema.table(account).logical_name, "account");
        assert_eq!(schema.entity_by_set("accounts"), Some(account));
        let listed: Vec<(TableId, &str)> = schema
            .tables()
            .map(|(id, e)| (id, e.logical_name.as_str()))
            .collect();
        assert_eq!(listed.len(), schema.entities.len());
        assert_eq!(listed[account.index()], (account, "account"));
        assert!(
            listed
                .iter()
                .enumerate()
                .all(|(i, (id, _))| id.index() == i)
        );
    }

    #[test]
    fn names_of_no_table_find_none() {
        let schema = crate::catalog::schema();
        assert_eq!(schema.entity("acount"), None);
        assert_eq!(schema.entity_by_set("account"), None);
        assert_eq!(schema.entity(""), None);
    }

    #[test]
    fn a_table_the_rules_need_is_found_or_is_an_error_naming_it() {
        let schema = Schema::new(vec![widgets()], &[]);
        assert_eq!(
            schema.required("new_widget").ok(),
            schema.entity("new_widget")
        );
        let err = schema.required("systemuser").unwrap_err();
        assert_eq!(err.status, 500);
        assert!(err.message.contains("'systemuser'"), "{}", err.message);
    }

    #[test]
    fn relationships_to_a_missing_table_are_left_out_not_pointed_at_another() {
        let rel = RelDecl {
            schema_name: "lk_new_widget_createdby".into(),
            referencing: "new_widget".into(),
            attribute: "createdby".into(),
            referenced: "systemuser".into(),
            referencing_nav: "createdby".into(),
            referenced_nav: "lk_new_widget_createdby".into(),
        };
        let schema = Schema::new(vec![widgets()], std::slice::from_ref(&rel));
        let widget = schema.entity("new_widget").unwrap();
        assert!(schema.relationships.is_empty());
        assert!(schema.single_nav(widget, "createdby").is_none());

        let catalog = crate::catalog::schema();
        let account = catalog.entity("account").unwrap();
        let users = catalog.entity("systemuser").unwrap();
        let owner = catalog.single_nav(account, "ownerid").unwrap();
        assert_eq!(
            (owner.referencing_entity, owner.referenced_entity),
            (account, users)
        );
    }
}
