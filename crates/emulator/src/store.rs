//! The in-memory rows. One `BTreeMap` per table, keyed by primary key, so the default order
//! (by primary key) pages by key range in O(page) and single rows are O(log n).
//!
//! Every write goes through [`Store::insert`], [`Store::update`] or [`Store::remove`], which
//! stamp a store-wide version (the row version behind ETags) and append to the change log.
//! Change tracking (delta links), webhooks and `$batch` change sets can be layered on that log
//! later: a change set can record the versions it touched and undo them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::datetime;
use crate::error::DvError;
use crate::guid::Guid;
use crate::schema::{AttrKind, Entity, Schema, TableId};

/// A typed cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Str(Box<str>),
    Int(i64),
    Num(f64),
    Bool(bool),
    /// Seconds since the epoch, UTC.
    Date(i64),
    Guid(Guid),
    /// A lookup: the target row id and the target table.
    Ref(Guid, TableId),
}

impl Val {
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    pub fn str(s: &str) -> Val {
        Val::Str(s.into())
    }
}

/// One row: values in schema column order plus its row version.
#[derive(Debug, Clone)]
pub struct Row {
    pub vals: Vec<Val>,
    pub version: u64,
}

/// What happened to a row, in version order.
#[derive(Debug, Clone)]
pub struct Change {
    pub version: u64,
    pub entity: TableId,
    pub id: Guid,
    pub kind: ChangeKind,
}

/// The kind of a change in the store's change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
}

/// A logged write with the row states webhooks report (captured only while processing steps
/// are registered).
#[derive(Debug, Clone)]
pub struct WriteEvent {
    pub entity: TableId,
    pub id: Guid,
    pub kind: ChangeKind,
    /// Columns the write set (all non-null columns for a create).
    pub changed: Vec<usize>,
    /// The row before the write (update, delete).
    pub pre: Option<Vec<Val>>,
    /// The row after the write (create, update).
    pub post: Option<Vec<Val>>,
}

/// A custom API that ran to success, for the steps registered on its `sdkmessage` (custom-api:
/// "Select a Custom Processing Step Type": with Async Only or Sync and Async, others may register
/// asynchronous steps that run after the main operation).
#[derive(Debug, Clone)]
pub struct MessageEvent {
    /// The custom API's unique name, which is its message name.
    pub name: String,
    /// The bound row (table, id) of an entity-bound custom API.
    pub bound: Option<(TableId, Guid)>,
    /// The request parameters as sent.
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// The response properties as answered.
    pub outputs: serde_json::Map<String, serde_json::Value>,
}

/// One table's rows and alternate-key indexes.
#[derive(Debug, Default)]
pub struct Table {
    pub rows: BTreeMap<Guid, Row>,
    /// One map per alternate key: joined key values → row id.
    alt: Vec<HashMap<String, Guid>>,
}

/// How long a delta token stays valid by default: Organization.ExpireChangeTrackingInDays = 7.
pub const DEFAULT_TOKEN_LIFETIME_SECS: i64 = 7 * 86_400;

/// All tables.
pub struct Store {
    pub schema: Arc<Schema>,
    /// One per table of the schema, at the table's [`TableId::index`].
    tables: Vec<Table>,
    version: u64,
    id_counter: u64,
    pub changes: Vec<Change>,
    /// The clock used for createdon/modifiedon; tests may pin it.
    pub clock: fn() -> i64,
    /// Delta tokens naming a version below this one have expired.
    pub delta_floor: u64,
    /// Seconds a delta token stays valid after it was issued (Dataverse: 7 days).
    pub delta_token_lifetime: i64,
    /// Prior row states recorded while a `$batch` change set runs.
    journal: Option<Journal>,
    /// Writes not yet handed to the webhook dispatcher.
    pub events: Vec<WriteEvent>,
    /// Custom API runs not yet handed to the webhook dispatcher.
    pub message_events: Vec<MessageEvent>,
    /// The `sdkmessageprocessingstep` table: events are captured while it has rows.
    step_table: Option<TableId>,
    /// The `callbackregistration` table: flows subscribed to changes also capture events.
    callback_table: Option<TableId>,
    /// File and image data kept outside the rows (`blobs.rs`).
    pub blobs: crate::blobs::Blobs,
}

/// What a change set must restore on rollback.
#[derive(Debug, Default)]
struct Journal {
    /// (table, row id, state before the change set first touched it)
    rows: Vec<(TableId, Guid, Option<Row>)>,
    changes_len: usize,
    events_len: usize,
}

impl Store {
    pub fn new(schema: Arc<Schema>) -> Store {
        let tables = schema
            .entities
            .iter()
            .map(|e| Table {
                rows: BTreeMap::new(),
                alt: vec![HashMap::new(); e.alternate_keys.len()],
            })
            .collect();
        let step_table = schema.entity("sdkmessageprocessingstep");
        let callback_table = schema.entity("callbackregistration");
        Store {
            schema,
            tables,
            version: 1_000,
            id_counter: 0,
            changes: Vec::new(),
            clock: datetime::now_secs,
            delta_floor: 0,
            delta_token_lifetime: DEFAULT_TOKEN_LIFETIME_SECS,
            journal: None,
            events: Vec::new(),
            message_events: Vec::new(),
            step_table,
            callback_table,
            blobs: crate::blobs::Blobs::default(),
        }
    }

    /// Whether writes are captured for webhooks (some processing step is registered).
    pub fn captures_events(&self) -> bool {
        [self.step_table, self.callback_table]
            .into_iter()
            .flatten()
            .any(|t| !self.tables[t.index()].rows.is_empty())
    }

    /// Appends a column to a table (a metadata create): every row gets a null cell.
    pub fn add_column(&mut self, entity: TableId, attribute: crate::schema::Attribute) -> usize {
        let schema = Arc::make_mut(&mut self.schema);
        let col = schema.table_mut(entity).add_attribute(attribute);
        for row in self.tables[entity.index()].rows.values_mut() {
            row.vals.push(Val::Null);
        }
        if let Some(j) = self.journal.as_mut() {
            for (e, _, prior) in &mut j.rows {
                if *e == entity
                    && let Some(r) = prior
                {
                    r.vals.push(Val::Null);
                }
            }
        }
        col
    }

    /// Adds a table created through the metadata API, with no rows.
    pub fn add_table(&mut self, entity: Entity) -> TableId {
        let keys = entity.alternate_keys.len();
        let id = Arc::make_mut(&mut self.schema).add_table(entity);
        self.tables.push(Table {
            rows: BTreeMap::new(),
            alt: vec![HashMap::new(); keys],
        });
        id
    }

    /// Adds an alternate key and indexes the rows by it; fails, adding nothing, when two rows
    /// share a value of it.
    pub fn add_key(&mut self, entity: TableId, key: crate::schema::AltKey) -> Result<(), DvError> {
        Arc::make_mut(&mut self.schema)
            .table_mut(entity)
            .alternate_keys
            .push(key);
        let k = self.entity(entity).alternate_keys.len() - 1;
        let mut index = HashMap::new();
        for (id, row) in &self.tables[entity.index()].rows {
            if let Some(text) = self.alt_key_string(entity, k, &row.vals)
                && index.insert(text, *id).is_some()
            {
                Arc::make_mut(&mut self.schema)
                    .table_mut(entity)
                    .alternate_keys
                    .pop();
                return Err(DvError::duplicate_key());
            }
        }
        self.tables[entity.index()].alt.push(index);
        Ok(())
    }

    /// Adds a one-to-many relationship over an existing lookup column (a metadata create).
    pub fn add_relationship(&mut self, r: &crate::schema::RelDecl) -> Option<usize> {
        Arc::make_mut(&mut self.schema).add_relationship(r)
    }

    /// Keeps the properties a relationship was created with, for its reads.
    pub fn keep_relationship_properties(
        &mut self,
        schema_name: &str,
        properties: Vec<(String, serde_json::Value)>,
    ) {
        Arc::make_mut(&mut self.schema)
            .additions
            .relationship_properties
            .push((schema_name.to_string(), properties));
    }

    /// Adds a many-to-many relationship whose intersect table exists (a metadata create).
    pub fn add_many_to_many(&mut self, m: crate::schema::ManyToMany) {
        Arc::make_mut(&mut self.schema)
            .additions
            .many_to_many
            .push(m);
    }

    /// Adds a global choice (a metadata create).
    pub fn add_global_option_set(&mut self, set: crate::schema::GlobalOptionSet) {
        Arc::make_mut(&mut self.schema)
            .additions
            .global_option_sets
            .push(set);
    }

    /// Removes a column from a table's definition and from every row (a metadata delete).
    pub fn remove_column(&mut self, entity: TableId, col: usize) {
        Arc::make_mut(&mut self.schema).remove_attribute(entity, col);
        for row in self.tables[entity.index()].rows.values_mut() {
            row.vals.remove(col);
        }
        if let Some(j) = self.journal.as_mut() {
            for (e, _, prior) in &mut j.rows {
                if *e == entity
                    && let Some(r) = prior
                {
                    r.vals.remove(col);
                }
            }
        }
    }

    /// Changes the definition of a column in place (a metadata update; same type).
    pub fn replace_column(
        &mut self,
        entity: TableId,
        col: usize,
        attribute: crate::schema::Attribute,
    ) {
        let schema = Arc::make_mut(&mut self.schema);
        schema.table_mut(entity).attributes[col] = attribute;
    }

    /// The current (latest stamped) row version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Starts recording prior row states so that [`Store::rollback_tx`] can undo every write
    /// made until [`Store::commit_tx`]. Nested calls keep the outer journal.
    pub fn begin_tx(&mut self) {
        if self.journal.is_none() {
            self.journal = Some(Journal {
                rows: Vec::new(),
                changes_len: self.changes.len(),
                events_len: self.events.len(),
            });
        }
    }

    /// Whether writes are being journaled for a rollback (a change set, or a write guarded by
    /// synchronous webhooks): a handler that undoes its own writes leaves such a journal to
    /// its owner.
    pub fn in_tx(&self) -> bool {
        self.journal.is_some()
    }

    /// Keeps the writes made since [`Store::begin_tx`].
    pub fn commit_tx(&mut self) {
        self.journal = None;
    }

    /// Undoes every write made since [`Store::begin_tx`], including their change-log entries.
    pub fn rollback_tx(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        for (entity, id, prior) in journal.rows.into_iter().rev() {
            if let Some(current) = self.tables[entity.index()].rows.remove(&id) {
                for k in 0..self.tables[entity.index()].alt.len() {
                    if let Some(text) = self.alt_key_string(entity, k, &current.vals) {
                        self.tables[entity.index()].alt[k].remove(&text);
                    }
                }
            }
            if let Some(row) = prior {
                for k in 0..self.tables[entity.index()].alt.len() {
                    if let Some(text) = self.alt_key_string(entity, k, &row.vals) {
                        self.tables[entity.index()].alt[k].insert(text, id);
                    }
                }
                self.tables[entity.index()].rows.insert(id, row);
            }
        }
        self.changes.truncate(journal.changes_len);
        self.events.truncate(journal.events_len);
    }

    /// Records the state of a row before a write, when a change set is running.
    fn touch(&mut self, entity: TableId, id: Guid) {
        if self.journal.is_none() {
            return;
        }
        let prior = self.tables[entity.index()].rows.get(&id).cloned();
        if let Some(j) = self.journal.as_mut() {
            j.rows.push((entity, id, prior));
        }
    }

    /// Makes every delta token issued so far expire.
    pub fn expire_delta_tokens(&mut self) {
        self.delta_floor = self.next_version();
    }

    /// The next row version.
    pub fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// A new, deterministic id for a created row.
    pub fn new_id(&mut self, entity: TableId) -> Guid {
        self.id_counter += 1;
        Guid::from_seed(0xc0ffee ^ entity.index() as u64, self.id_counter)
    }

    pub fn entity(&self, entity: TableId) -> &Entity {
        self.schema.table(entity)
    }

    pub fn get(&self, entity: TableId, id: &Guid) -> Option<&Row> {
        self.tables[entity.index()].rows.get(id)
    }

    /// The rows of a table, by primary key.
    pub fn rows(&self, entity: TableId) -> &BTreeMap<Guid, Row> {
        &self.tables[entity.index()].rows
    }

    /// The key string of alternate key `k` for a row, or None when a key column is null.
    fn alt_key_string(&self, entity: TableId, k: usize, vals: &[Val]) -> Option<String> {
        let e = self.entity(entity);
        let mut key = String::new();
        for name in &e.alternate_keys[k].attributes {
            let i = e.attr(name)?;
            match &vals[i] {
                Val::Null => return None,
                v => key.push_str(&key_text(v)),
            }
            key.push('\u{1f}');
        }
        Some(key)
    }

    /// Finds a row by alternate key values given as (column, value) pairs.
    pub fn find_by_alt_key(&self, entity: TableId, values: &[(usize, Val)]) -> Option<Guid> {
        let e = self.entity(entity);
        for (k, key) in e.alternate_keys.iter().enumerate() {
            if key.attributes.len() != values.len() {
                continue;
            }
            let mut text = String::new();
            let mut complete = true;
            for name in &key.attributes {
                let Some(i) = e.attr(name) else {
                    complete = false;
                    break;
                };
                match values.iter().find(|(c, _)| *c == i) {
                    Some((_, v)) => text.push_str(&key_text(v)),
                    None => {
                        complete = false;
                        break;
                    }
                }
                text.push('\u{1f}');
            }
            if complete {
                return self.tables[entity.index()].alt[k].get(&text).copied();
            }
        }
        // Not a declared key: scan (used for ad-hoc key addressing).
        self.tables[entity.index()]
            .rows
            .iter()
            .find(|(_, r)| {
                values
                    .iter()
                    .all(|(c, v)| vals_equal_for_key(&r.vals[*c], v))
            })
            .map(|(id, _)| *id)
    }

    /// Inserts a complete row (primary key already set in `vals`). Fails on a duplicate
    /// primary or alternate key.
    pub fn insert(
        &mut self,
        entity: TableId,
        mut vals: Vec<Val>,
        log: bool,
    ) -> Result<Guid, DvError> {
        let e = self.entity(entity);
        let Val::Guid(id) = vals[e.primary_id] else {
            return Err(DvError::internal("row without primary key"));
        };
        if self.tables[entity.index()].rows.contains_key(&id) {
            return Err(DvError::duplicate_key());
        }
        let mut keys = Vec::new();
        for k in 0..self.tables[entity.index()].alt.len() {
            if let Some(text) = self.alt_key_string(entity, k, &vals) {
                if self.tables[entity.index()].alt[k].contains_key(&text) {
                    return Err(DvError::duplicate_key());
                }
                keys.push((k, text));
            }
        }
        self.touch(entity, id);
        let version = self.next_version();
        if let Some(vn) = self.entity(entity).attr("versionnumber") {
            vals[vn] = Val::Int(version as i64);
        }
        let table = &mut self.tables[entity.index()];
        for (k, text) in keys {
            table.alt[k].insert(text, id);
        }
        let post = (log && self.captures_events()).then(|| vals.clone());
        let table = &mut self.tables[entity.index()];
        table.rows.insert(id, Row { vals, version });
        if let Some(post) = post {
            let changed = (0..post.len()).filter(|&c| !post[c].is_null()).collect();
            self.events.push(WriteEvent {
                entity,
                id,
                kind: ChangeKind::Create,
                changed,
                pre: None,
                post: Some(post),
            });
        }
        if log {
            self.changes.push(Change {
                version,
                entity,
                id,
                kind: ChangeKind::Create,
            });
        }
        Ok(id)
    }

    /// Applies column changes to an existing row; returns the new version.
    pub fn update(
        &mut self,
        entity: TableId,
        id: Guid,
        changes: Vec<(usize, Val)>,
    ) -> Result<u64, DvError> {
        let Some(row) = self.tables[entity.index()].rows.get(&id) else {
            return Err(DvError::not_found(&self.entity(entity).logical_name, &id));
        };
        let mut vals = row.vals.clone();
        let changed: Vec<usize> = changes.iter().map(|(c, _)| *c).collect();
        for (c, v) in changes {
            vals[c] = v;
        }
        // Alternate keys must stay unique.
        let mut rekey = Vec::new();
        for k in 0..self.tables[entity.index()].alt.len() {
            let old = self.alt_key_string(entity, k, &row.vals);
            let new = self.alt_key_string(entity, k, &vals);
            if old != new {
                if let Some(n) = &new
                    && self.tables[entity.index()].alt[k]
                        .get(n)
                        .is_some_and(|g| *g != id)
                {
                    return Err(DvError::duplicate_key());
                }
                rekey.push((k, old, new));
            }
        }
        self.touch(entity, id);
        let version = self.next_version();
        if let Some(vn) = self.entity(entity).attr("versionnumber") {
            vals[vn] = Val::Int(version as i64);
        }
        let table = &mut self.tables[entity.index()];
        for (k, old, new) in rekey {
            if let Some(o) = old {
                table.alt[k].remove(&o);
            }
            if let Some(n) = new {
                table.alt[k].insert(n, id);
            }
        }
        let capture = self.captures_events();
        let table = &mut self.tables[entity.index()];
        let pre = if capture {
            table.rows.get(&id).map(|r| r.vals.clone())
        } else {
            None
        };
        let post = capture.then(|| vals.clone());
        table.rows.insert(id, Row { vals, version });
        if capture {
            let mut changed = changed;
            changed.sort_unstable();
            changed.dedup();
            self.events.push(WriteEvent {
                entity,
                id,
                kind: ChangeKind::Update,
                changed,
                pre,
                post,
            });
        }
        self.changes.push(Change {
            version,
            entity,
            id,
            kind: ChangeKind::Update,
        });
        Ok(version)
    }

    /// Deletes a row and clears lookups that pointed at it (remove-link cascade).
    pub fn remove(&mut self, entity: TableId, id: Guid) -> Result<(), DvError> {
        if self.tables[entity.index()].rows.contains_key(&id) {
            self.touch(entity, id);
        }
        let Some(row) = self.tables[entity.index()].rows.remove(&id) else {
            return Err(DvError::not_found(&self.entity(entity).logical_name, &id));
        };
        for k in 0..self.tables[entity.index()].alt.len() {
            if let Some(text) = self.alt_key_string(entity, k, &row.vals) {
                self.tables[entity.index()].alt[k].remove(&text);
            }
        }
        let version = self.next_version();
        if self.captures_events() {
            self.events.push(WriteEvent {
                entity,
                id,
                kind: ChangeKind::Delete,
                changed: Vec::new(),
                pre: Some(row.vals.clone()),
                post: None,
            });
        }
        self.changes.push(Change {
            version,
            entity,
            id,
            kind: ChangeKind::Delete,
        });
        let schema = self.schema.clone();
        for rel in schema
            .relationships
            .iter()
            .filter(|r| r.referenced_entity == entity)
        {
            let col = rel.referencing_attribute;
            let child = rel.referencing_entity;
            let pointing: Vec<Guid> = self.tables[child.index()]
                .rows
                .iter()
                .filter(|(_, r)| matches!(&r.vals[col], Val::Ref(g, e) if *g == id && *e == entity))
                .map(|(cid, _)| *cid)
                .collect();
            for cid in pointing {
                self.touch(child, cid);
                if let Some(r) = self.tables[child.index()].rows.get_mut(&cid) {
                    r.vals[col] = Val::Null;
                }
            }
        }
        Ok(())
    }

    /// The primary-name text of a lookup target, for formatted values.
    pub fn primary_name_of(&self, entity: TableId, id: &Guid) -> Option<String> {
        let e = self.entity(entity);
        match &self.get(entity, id)?.vals[e.primary_name] {
            Val::Str(s) => Some(s.to_string()),
            _ => None,
        }
    }

    /// The stored default values of a new row.
    pub fn blank_row(&self, entity: TableId) -> Vec<Val> {
        vec![Val::Null; self.entity(entity).attributes.len()]
    }

    /// Whether a column holds a value of its declared type (used by debug assertions in seeding).
    pub fn fits(kind: &AttrKind, v: &Val) -> bool {
        matches!(
            (kind, v),
            (_, Val::Null)
                | (AttrKind::Uniqueidentifier, Val::Guid(_))
                | (AttrKind::String { .. } | AttrKind::Memo { .. }, Val::Str(_))
                | (
                    AttrKind::Integer { .. }
                        | AttrKind::BigInt
                        | AttrKind::Picklist { .. }
                        | AttrKind::State { .. }
                        | AttrKind::Status { .. },
                    Val::Int(_)
                )
                | (AttrKind::Decimal { .. } | AttrKind::Money, Val::Num(_))
                | (AttrKind::Boolean { .. }, Val::Bool(_))
                | (AttrKind::DateTime { .. }, Val::Date(_))
                | (AttrKind::Lookup { .. }, Val::Ref(..))
        )
    }
}

fn key_text(v: &Val) -> String {
    match v {
        Val::Null => String::new(),
        Val::Str(s) => s.to_lowercase(),
        Val::Int(i) => i.to_string(),
        Val::Num(n) => n.to_string(),
        Val::Bool(b) => b.to_string(),
        Val::Date(d) => d.to_string(),
        Val::Guid(g) | Val::Ref(g, _) => g.to_string(),
    }
}

fn vals_equal_for_key(a: &Val, b: &Val) -> bool {
    !a.is_null() && key_text(a) == key_text(b)
}
