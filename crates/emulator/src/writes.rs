//! Create, update, upsert, delete, single-property writes and `$ref` (dis)association.

use serde_json::{Map, Value};

use crate::error::{self, DvError};
use crate::guid::Guid;
use crate::odata::path::Segment;
use crate::odata::query::QueryOptions;
use crate::read;
use crate::row_key::{self, KeyRef};
use crate::schema::{AttrKind, TableId};
use crate::seed;
use crate::store::{Store, Val};
use crate::wire::{Req, Resp};

/// Routes a write below an entity set.
pub fn handle(
    store: &mut Store,
    req: &Req,
    e: TableId,
    first: &Segment,
    rest: &[Segment],
) -> Result<Resp, DvError> {
    let m = req.method;
    match (&first.key, rest) {
        (None, []) if m == "POST" => create(store, req, e),
        (None, _) => Err(DvError::method_not_allowed(m, "a collection")),
        (Some(k), []) => match m {
            "PATCH" => upsert(store, req, e, k),
            "DELETE" => delete(store, req, e, k),
            _ => Err(DvError::method_not_allowed(m, "an entity")),
        },
        (Some(k), [s]) if store.entity(e).attr_by_wire(&s.name).is_some() && s.key.is_none() => {
            let id = row_key::resolve_existing(store, e, k)?;
            let col = store
                .entity(e)
                .attr_by_wire(&s.name)
                .ok_or_else(|| DvError::segment_not_found(&s.name))?;
            let value = match m {
                "PUT" => {
                    let body = parse_body(req.body)?;
                    let v = body.get("value").cloned().unwrap_or(Value::Null);
                    convert(store, e, col, &v)?
                }
                "DELETE" => Val::Null,
                _ => return Err(DvError::method_not_allowed(m, "a property")),
            };
            let mut changes = vec![(col, value)];
            stamp_update(store, e, req, &mut changes)?;
            store.update(e, id, changes)?;
            Ok(Resp::empty(204))
        }
        (Some(k), rest) => refs(store, req, e, k, rest),
    }
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, DvError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(DvError::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(DvError::bad_request(format!("Invalid JSON. {e}"))),
    }
}

/// Converts a JSON value for column `col`.
fn convert(store: &Store, e: TableId, col: usize, v: &Value) -> Result<Val, DvError> {
    let ent = store.entity(e);
    let a = &ent.attributes[col];
    let mismatch = || {
        DvError::payload(
            &ent.entity_set_name,
            format!(
                "Cannot convert the literal '{v}' to the expected type '{}'.",
                a.kind.edm_type()
            ),
        )
    };
    if v.is_null() {
        return Ok(Val::Null);
    }
    let out = match &a.kind {
        AttrKind::String { max_len } | AttrKind::Memo { max_len } => {
            let s = v.as_str().ok_or_else(mismatch)?;
            if s.chars().count() > *max_len as usize {
                return Err(DvError::new(
                    400,
                    error::VALIDATION_ERROR,
                    format!(
                        "A validation error occurred.  The length of the '{}' attribute of the '{}' entity exceeded the maximum allowed length of '{max_len}'.",
                        a.logical_name, ent.logical_name
                    ),
                ));
            }
            Val::str(s)
        }
        AttrKind::Integer { min, max } => {
            let n = v.as_i64().ok_or_else(mismatch)?;
            if n < *min || n > *max {
                return Err(DvError::new(
                    400,
                    error::VALIDATION_ERROR,
                    format!(
                        "A validation error occurred.  The value {n} of '{}' on record of type '{}' is outside the valid range. Accepted range: {min} to {max}.",
                        a.logical_name, ent.logical_name
                    ),
                ));
            }
            Val::Int(n)
        }
        AttrKind::BigInt => Val::Int(v.as_i64().ok_or_else(mismatch)?),
        AttrKind::Picklist { options }
        | AttrKind::State { options }
        | AttrKind::Status { options } => {
            let n = v.as_i64().ok_or_else(mismatch)?;
            if !options.iter().any(|(o, _)| *o == n) {
                return Err(DvError::new(
                    400,
                    crate::error::VALUE_OUT_OF_RANGE,
                    format!(
                        "A validation error occurred. The value {n} of '{}' on record of type '{}' is outside the valid range.",
                        a.logical_name, ent.logical_name
                    ),
                ));
            }
            Val::Int(n)
        }
        AttrKind::Decimal { .. } | AttrKind::Money => match v {
            Value::Number(n) => Val::Num(n.as_f64().ok_or_else(mismatch)?),
            Value::String(s) => Val::Num(s.trim().parse().map_err(|_| mismatch())?),
            _ => return Err(mismatch()),
        },
        AttrKind::Boolean { .. } => Val::Bool(v.as_bool().ok_or_else(mismatch)?),
        AttrKind::DateTime { date_only } => {
            let s = v.as_str().ok_or_else(mismatch)?;
            let t = crate::datetime::parse_iso(s).ok_or_else(mismatch)?;
            Val::Date(if *date_only {
                t - t.rem_euclid(86_400)
            } else {
                t
            })
        }
        AttrKind::Uniqueidentifier => {
            Val::Guid(v.as_str().and_then(Guid::parse).ok_or_else(mismatch)?)
        }
        AttrKind::Lookup { .. } => {
            return Err(DvError::bad_request(
                "CRM do not support direct update of Entity Reference properties, Use Navigation properties instead.",
            ));
        }
        // File data is written through its own requests; an image may also come as
        // base64 in the record (files.rs).
        AttrKind::File { .. } => {
            return Err(crate::files::set_in_record(&ent.logical_name, a));
        }
        AttrKind::Image { .. } => crate::files::image_value(&ent.logical_name, a, v)?,
    };
    Ok(out)
}

/// Resolves an `@odata.bind` / `@odata.id` reference (`/contacts(<id>)`, `contacts(key='x')`,
/// or an absolute URL) to an existing row.
pub fn resolve_reference(store: &Store, text: &str) -> Result<(TableId, Guid), DvError> {
    let mut t = text.trim();
    if let Some(i) = t.find("/api/data/v") {
        t = &t[i + "/api/data/v".len()..];
        t = t.split_once('/').map(|x| x.1).unwrap_or("");
    }
    let t = t.trim_start_matches('/');
    let segs = crate::odata::path::segments(t)?;
    let [seg] = segs.as_slice() else {
        return Err(DvError::bad_request(format!(
            "The reference '{text}' is not a valid entity reference."
        )));
    };
    let e = store
        .schema
        .entity_by_set(&seg.name)
        .ok_or_else(|| DvError::segment_not_found(&seg.name))?;
    let key = seg.key.as_deref().ok_or_else(|| {
        DvError::bad_request(format!("The reference '{text}' does not name a record."))
    })?;
    Ok((e, row_key::resolve_existing(store, e, key)?))
}

/// Column changes of a payload, and what it does besides.
type Payload = (Vec<(usize, Val)>, Vec<Deferred>);

/// What a payload does besides setting columns of its own row.
enum Deferred {
    /// Deep insert of related rows pointing back at the new row.
    Children {
        child: TableId,
        col: usize,
        bodies: Vec<Map<String, Value>>,
    },
    /// `Nav@odata.bind: [..]` on a collection: point those rows at this one.
    Bind {
        child: TableId,
        col: usize,
        ids: Vec<Guid>,
    },
}

/// Column changes and deferred work of a payload. Nested single-valued deep inserts are
/// created right away (they must exist before the parent can point at them).
fn apply_payload(
    store: &mut Store,
    req: &Req,
    e: TableId,
    body: &Map<String, Value>,
    created: &mut Vec<(TableId, Guid)>,
) -> Result<Payload, DvError> {
    let schema = store.schema.clone();
    let ent = schema.table(e);
    let mut cols = Vec::new();
    let mut deferred = Vec::new();
    for (k, v) in body {
        if let Some(nav) = k.strip_suffix("@odata.bind") {
            if let Some(rel) = schema.single_nav(e, nav) {
                let val = match v {
                    Value::Null => Val::Null,
                    Value::String(s) => {
                        let (te, id) = resolve_reference(store, s)?;
                        if te != rel.referenced_entity {
                            return Err(DvError::bad_request(format!(
                                "The navigation property '{nav}' expects a '{}' reference but got '{}'.",
                                schema.table(rel.referenced_entity).logical_name,
                                schema.table(te).logical_name
                            )));
                        }
                        Val::Ref(id, te)
                    }
                    _ => {
                        return Err(DvError::bad_request(format!(
                            "The value of '{k}' must be a reference string."
                        )));
                    }
                };
                cols.push((rel.referencing_attribute, val));
            } else if let Some(rel) = schema.collection_nav(e, nav) {
                let Value::Array(items) = v else {
                    return Err(DvError::bad_request(format!(
                        "The value of '{k}' must be an array of references."
                    )));
                };
                let mut ids = Vec::new();
                for item in items {
                    let s = item.as_str().ok_or_else(|| {
                        DvError::bad_request(format!(
                            "The value of '{k}' must be an array of references."
                        ))
                    })?;
                    let (te, id) = resolve_reference(store, s)?;
                    if te != rel.referencing_entity {
                        return Err(DvError::bad_request(format!(
                            "The reference '{s}' does not match navigation property '{nav}'."
                        )));
                    }
                    ids.push(id);
                }
                deferred.push(Deferred::Bind {
                    child: rel.referencing_entity,
                    col: rel.referencing_attribute,
                    ids,
                });
            } else {
                return Err(DvError::unknown_property(nav, &ent.logical_name));
            }
            continue;
        }
        if k.starts_with('@') || k.contains('@') {
            continue; // instance annotations (@odata.type, @odata.etag, x@OData.Community...)
        }
        if let Some(rel) = schema.single_nav(e, k) {
            match v {
                Value::Null => cols.push((rel.referencing_attribute, Val::Null)),
                Value::Object(nested) => {
                    let target = rel.referenced_entity;
                    let id = create_row(store, req, target, nested, None, created)?;
                    cols.push((rel.referencing_attribute, Val::Ref(id, target)));
                }
                _ => {
                    return Err(DvError::bad_request(format!(
                        "The value of navigation property '{k}' must be an object or null."
                    )));
                }
            }
            continue;
        }
        if let Some(rel) = schema.collection_nav(e, k) {
            let Value::Array(items) = v else {
                return Err(DvError::bad_request(format!(
                    "The value of navigation property '{k}' must be an array."
                )));
            };
            let mut bodies = Vec::new();
            for item in items {
                match item {
                    Value::Object(o) => bodies.push(o.clone()),
                    _ => {
                        return Err(DvError::bad_request(format!(
                            "The items of '{k}' must be objects."
                        )));
                    }
                }
            }
            deferred.push(Deferred::Children {
                child: rel.referencing_entity,
                col: rel.referencing_attribute,
                bodies,
            });
            continue;
        }
        let col = ent
            .attr(k)
            .filter(|&c| !ent.attributes[c].kind.is_lookup())
            .or_else(|| ent.attr_by_wire(k))
            .ok_or_else(|| DvError::unknown_property(k, &ent.logical_name))?;
        if !ent.attributes[col].writable {
            continue;
        }
        cols.push((col, convert(store, e, col, v)?));
    }
    // A note's file sets its size (files.rs).
    crate::files::note_document(store, e, &mut cols)?;
    crate::files::image_companions(store, e, &mut cols);
    Ok((cols, deferred))
}

fn run_deferred(
    store: &mut Store,
    req: &Req,
    e: TableId,
    id: Guid,
    deferred: Vec<Deferred>,
    created: &mut Vec<(TableId, Guid)>,
) -> Result<(), DvError> {
    for d in deferred {
        match d {
            Deferred::Children { child, col, bodies } => {
                for mut b in bodies {
                    b.remove(&store.entity(child).attributes[col].logical_name);
                    create_row(store, req, child, &b, Some((col, Val::Ref(id, e))), created)?;
                }
            }
            Deferred::Bind { child, col, ids } => {
                for cid in ids {
                    let mut changes = vec![(col, Val::Ref(id, e))];
                    stamp_update(store, child, req, &mut changes)?;
                    store.update(child, cid, changes)?;
                }
            }
        }
    }
    Ok(())
}

fn set_if_null(vals: &mut [Val], col: Option<usize>, v: Val) {
    if let Some(c) = col
        && vals[c].is_null()
    {
        vals[c] = v;
    }
}

fn compute_names(store: &Store, e: TableId, vals: &mut [Val]) {
    let ent = store.entity(e);
    if !matches!(ent.logical_name.as_str(), "contact" | "lead" | "systemuser") {
        return;
    }
    let (Some(f), Some(l), Some(full)) = (
        ent.attr("firstname"),
        ent.attr("lastname"),
        ent.attr("fullname"),
    ) else {
        return;
    };
    let text = |v: &Val| match v {
        Val::Str(s) => s.to_string(),
        _ => String::new(),
    };
    let name = format!("{} {}", text(&vals[f]), text(&vals[l]))
        .trim()
        .to_string();
    vals[full] = if name.is_empty() {
        Val::Null
    } else {
        Val::str(&name)
    };
}

/// Creates one row (and what its payload deep-inserts); returns its id.
fn create_row(
    store: &mut Store,
    req: &Req,
    e: TableId,
    body: &Map<String, Value>,
    extra: Option<(usize, Val)>,
    created: &mut Vec<(TableId, Guid)>,
) -> Result<Guid, DvError> {
    let (cols, deferred) = apply_payload(store, req, e, body, created)?;
    let schema = store.schema.clone();
    let ent = schema.table(e);
    let mut vals = store.blank_row(e);
    for (c, v) in cols {
        vals[c] = v;
    }
    if let Some((c, v)) = extra {
        vals[c] = v;
    }
    let id = match vals[ent.primary_id] {
        Val::Guid(g) => g,
        _ => {
            let g = store.new_id(e);
            vals[ent.primary_id] = Val::Guid(g);
            g
        }
    };
    // An elastic row created without a partitionid takes its primary key as its partition
    // (learn.microsoft.com/power-apps/developer/data-platform/use-elastic-tables, "Specifying
    // PartitionId").
    if ent.table_type == "Elastic" {
        set_if_null(
            &mut vals,
            ent.attr("partitionid"),
            Val::str(&id.to_string()),
        );
    }
    let now = (store.clock)();
    let users = schema.required("systemuser")?;
    let caller = Val::Ref(req.caller.user, users);
    set_if_null(&mut vals, ent.attr("createdon"), Val::Date(now));
    set_if_null(&mut vals, ent.attr("modifiedon"), Val::Date(now));
    set_if_null(&mut vals, ent.attr("createdby"), caller.clone());
    set_if_null(&mut vals, ent.attr("modifiedby"), caller.clone());
    set_if_null(&mut vals, ent.attr("ownerid"), caller);
    // Impersonated: createdby names the impersonated user, createdonbehalfby the calling user
    // (learn.microsoft.com/power-apps/developer/data-platform/webapi/
    // impersonate-another-user-web-api, "Determine the actual user").
    if let Some(calling) = req.impersonator {
        let calling = Val::Ref(calling, users);
        set_if_null(&mut vals, ent.attr("createdonbehalfby"), calling.clone());
        set_if_null(&mut vals, ent.attr("modifiedonbehalfby"), calling);
    }
    set_if_null(&mut vals, ent.attr("statecode"), Val::Int(0));
    if let (Some(sc), Some(st)) = (ent.attr("statuscode"), ent.attr("statecode")) {
        let state = match vals[st] {
            Val::Int(s) => s,
            _ => 0,
        };
        set_if_null(
            &mut vals,
            Some(sc),
            Val::Int(seed::default_status(ent, state)),
        );
    }
    if let (Some(cur), Some(ct)) = (
        ent.attr("transactioncurrencyid"),
        schema.entity("transactioncurrency"),
    ) && let Some((g, _)) = store.rows(ct).iter().next()
    {
        let g = *g;
        set_if_null(&mut vals, Some(cur), Val::Ref(g, ct));
    }
    if e == users {
        set_if_null(
            &mut vals,
            ent.attr("businessunitid"),
            Val::Ref(req.caller.business_unit, schema.required("businessunit")?),
        );
    }
    compute_names(store, e, &mut vals);
    crate::webhooks::before_create(store, e, &mut vals)?;
    if req.header("MSCRM.SuppressDuplicateDetection").is_some() {
        crate::switches::check_duplicates(store, req, e, None, &vals)?;
    }
    store.insert(e, vals, true)?;
    created.push((e, id));
    run_deferred(store, req, e, id, deferred, created)?;
    Ok(id)
}

fn rollback(store: &mut Store, created: &[(TableId, Guid)]) {
    for (e, id) in created.iter().rev() {
        let _ = store.remove(*e, *id);
    }
}

fn entity_id_url(req: &Req, store: &Store, e: TableId, id: Guid) -> String {
    format!("{}/{}({id})", req.api, store.entity(e).entity_set_name)
}

fn representation(
    store: &Store,
    req: &Req,
    e: TableId,
    id: Guid,
    status: u16,
) -> Result<Resp, DvError> {
    let opts = QueryOptions::parse(req.query)?;
    let row = store
        .get(e, &id)
        .ok_or_else(|| DvError::not_found(&store.entity(e).logical_name, &id))?;
    let resp = read::single_row(store, req, e, row, &opts, status)?;
    Ok(resp.header("Preference-Applied", "return=representation"))
}

fn create(store: &mut Store, req: &Req, e: TableId) -> Result<Resp, DvError> {
    let body = parse_body(req.body)?;
    // Validate the query before writing anything.
    QueryOptions::parse(req.query)?;
    let mut created = Vec::new();
    let id = match create_row(store, req, e, &body, None, &mut created) {
        Ok(id) => id,
        Err(err) => {
            rollback(store, &created);
            return Err(err);
        }
    };
    if req.prefer().return_representation {
        return representation(store, req, e, id, 201);
    }
    Ok(Resp::empty(204).header("OData-EntityId", entity_id_url(req, store, e, id)))
}

pub(crate) fn stamp_update(
    store: &Store,
    e: TableId,
    req: &Req,
    changes: &mut Vec<(usize, Val)>,
) -> Result<(), DvError> {
    let ent = store.entity(e);
    let users = store.schema.required("systemuser")?;
    if let Some(c) = ent.attr("modifiedon") {
        changes.push((c, Val::Date((store.clock)())));
    }
    if let Some(c) = ent.attr("modifiedby") {
        changes.push((c, Val::Ref(req.caller.user, users)));
    }
    // modifiedonbehalfby names the calling user of an impersonated update, and nobody after
    // an update made without impersonation (impersonate-another-user-web-api).
    if let Some(c) = ent.attr("modifiedonbehalfby") {
        changes.push((
            c,
            req.impersonator.map_or(Val::Null, |u| Val::Ref(u, users)),
        ));
    }
    Ok(())
}

fn etag_matches(header: &str, version: u64) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == format!("W/\"{version}\"") || t == format!("\"{version}\""))
}

fn upsert(store: &mut Store, req: &Req, e: TableId, raw_key: &str) -> Result<Resp, DvError> {
    let key = row_key::key_ref(store, e, raw_key)?;
    let existing = row_key::find(store, e, &key);
    let if_match = req.header("if-match");
    let if_none_match = req.header("if-none-match").filter(|v| v.trim() != "null");
    let body = parse_body(req.body)?;
    let logical = store.entity(e).logical_name.clone();
    let missing = || match &key {
        KeyRef::Id(g) => DvError::not_found(&logical, g),
        KeyRef::Alt(_) => DvError::not_found_by_key(&logical),
    };
    if let Some(m) = if_match {
        let Some(id) = existing else {
            return Err(missing());
        };
        let version = store.get(e, &id).map(|r| r.version).unwrap_or(0);
        if !etag_matches(m, version) {
            return Err(DvError::version_mismatch());
        }
    }
    if if_none_match.is_some_and(|v| v.trim() == "*") && existing.is_some() {
        return Err(DvError::duplicate_key());
    }
    let mut created = Vec::new();
    let (id, status) = match existing {
        Some(id) => {
            let (mut cols, deferred) = match apply_payload(store, req, e, &body, &mut created) {
                Ok(x) => x,
                Err(err) => {
                    rollback(store, &created);
                    return Err(err);
                }
            };
            // Key values in the URL win over the body on update.
            if let KeyRef::Alt(kv) = &key {
                cols.retain(|(c, _)| !kv.iter().any(|(k, _)| k == c));
            }
            let ent = store.entity(e).clone();
            cols.retain(|(c, _)| *c != ent.primary_id);
            // statecode changes bring the default statuscode unless one is given.
            if let (Some(st), Some(sc)) = (ent.attr("statecode"), ent.attr("statuscode"))
                && let Some((_, Val::Int(s))) = cols.iter().find(|(c, _)| *c == st)
                && !cols.iter().any(|(c, _)| *c == sc)
            {
                let s = *s;
                cols.push((sc, Val::Int(seed::default_status(&ent, s))));
            }
            let names_change = ["firstname", "lastname"].iter().any(|n| {
                ent.attr(n)
                    .is_some_and(|c| cols.iter().any(|(x, _)| *x == c))
            });
            if names_change && let Some(row) = store.get(e, &id) {
                let mut vals = row.vals.clone();
                for (c, v) in &cols {
                    vals[*c] = v.clone();
                }
                compute_names(store, e, &mut vals);
                if let Some(full) = ent.attr("fullname") {
                    cols.push((full, vals[full].clone()));
                }
            }
            // A statecode/statuscode pair must agree (messages/set_state.rs).
            crate::messages::set_state::check(store, e, id, &cols)?;
            if req.header("MSCRM.SuppressDuplicateDetection").is_some()
                && let Some(row) = store.get(e, &id)
            {
                let mut merged = row.vals.clone();
                for (c, v) in &cols {
                    merged[*c] = v.clone();
                }
                crate::switches::check_duplicates(store, req, e, Some(id), &merged)?;
            }
            stamp_update(store, e, req, &mut cols)?;
            store.update(e, id, cols)?;
            if let Err(err) = run_deferred(store, req, e, id, deferred, &mut created) {
                rollback(store, &created);
                return Err(err);
            }
            (id, 200)
        }
        None => {
            let mut body = body;
            // The key's values go into the new row's body; the table is only read here, so it
            // is borrowed, not copied (a copy per upsert-create cost more than the create).
            let ent = store.entity(e);
            match &key {
                KeyRef::Id(g) => {
                    body.insert(
                        ent.primary_id_name().to_string(),
                        Value::String(g.to_string()),
                    );
                }
                KeyRef::Alt(kv) => {
                    for (c, v) in kv {
                        let name = &ent.attributes[*c].logical_name;
                        if !body.contains_key(name) {
                            let mut tmp = Vec::new();
                            crate::render::write_val(&mut tmp, &ent.attributes[*c].kind, v);
                            let json: Value = serde_json::from_slice(&tmp).unwrap_or(Value::Null);
                            body.insert(name.clone(), json);
                        }
                    }
                }
            }
            let id = match create_row(store, req, e, &body, None, &mut created) {
                Ok(id) => id,
                Err(err) => {
                    rollback(store, &created);
                    return Err(err);
                }
            };
            (id, 201)
        }
    };
    if req.prefer().return_representation {
        return representation(store, req, e, id, status);
    }
    let entity_id = match (&key, req.limits.alt_key_entity_id_as_guid) {
        (KeyRef::Alt(_), false) => {
            format!("{}/{}({raw_key})", req.api, store.entity(e).entity_set_name)
        }
        _ => entity_id_url(req, store, e, id),
    };
    Ok(Resp::empty(204).header("OData-EntityId", entity_id))
}

fn delete(store: &mut Store, req: &Req, e: TableId, raw_key: &str) -> Result<Resp, DvError> {
    let id = row_key::resolve_existing(store, e, raw_key)?;
    crate::elastic::check(store, e, id, raw_key, req.query)?;
    if let Some(m) = req.header("if-match") {
        let version = store.get(e, &id).map(|r| r.version).unwrap_or(0);
        if !etag_matches(m, version) {
            return Err(DvError::version_mismatch());
        }
    }
    // Rows related through a relationship created with Delete: Cascade go first (cascade.rs).
    crate::cascade::before_delete(store, e, id)?;
    store.remove(e, id)?;
    Ok(Resp::empty(204))
}

fn refs(
    store: &mut Store,
    req: &Req,
    e: TableId,
    raw_key: &str,
    rest: &[Segment],
) -> Result<Resp, DvError> {
    let id = row_key::resolve_existing(store, e, raw_key)?;
    let schema = store.schema.clone();
    let (nav, tail) = match rest {
        [nav, tail @ ..] => (nav, tail),
        [] => return Err(DvError::internal("empty $ref path")),
    };
    let is_ref = matches!(tail, [t] if t.name == "$ref");
    if !is_ref {
        return Err(match tail.first() {
            Some(t) => DvError::segment_not_found(&t.name),
            None => DvError::method_not_allowed(req.method, "a navigation property"),
        });
    }
    if let Some(rel) = schema.single_nav(e, &nav.name) {
        let col = rel.referencing_attribute;
        let value = match req.method {
            "PUT" | "POST" => {
                let body = parse_body(req.body)?;
                let target = body
                    .get("@odata.id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        DvError::bad_request("The request body must contain '@odata.id'.")
                    })?;
                let (te, tid) = resolve_reference(store, target)?;
                if te != rel.referenced_entity {
                    return Err(DvError::bad_request(format!(
                        "'{target}' is not a valid target of '{}'.",
                        nav.name
                    )));
                }
                Val::Ref(tid, te)
            }
            "DELETE" => Val::Null,
            m => return Err(DvError::method_not_allowed(m, "a $ref")),
        };
        let mut changes = vec![(col, value)];
        stamp_update(store, e, req, &mut changes)?;
        store.update(e, id, changes)?;
        return Ok(Resp::empty(204));
    }
    if let Some(rel) = schema.collection_nav(e, &nav.name) {
        let child = rel.referencing_entity;
        let col = rel.referencing_attribute;
        let (cid, value) = match req.method {
            "POST" => {
                let body = parse_body(req.body)?;
                let target = body
                    .get("@odata.id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        DvError::bad_request("The request body must contain '@odata.id'.")
                    })?;
                let (te, cid) = resolve_reference(store, target)?;
                if te != child {
                    return Err(DvError::bad_request(format!(
                        "'{target}' is not a valid target of '{}'.",
                        nav.name
                    )));
                }
                (cid, Val::Ref(id, e))
            }
            "DELETE" => {
                let cid = match &nav.key {
                    Some(k) => row_key::resolve_existing(store, child, k)?,
                    None => {
                        let target = crate::odata::query::parse_pairs(req.query)
                            .into_iter()
                            .find(|(k, _)| k == "$id")
                            .map(|(_, v)| v)
                            .ok_or_else(|| DvError::bad_request("The $id query option is required to remove a reference from a collection."))?;
                        resolve_reference(store, &target)?.1
                    }
                };
                let points_here = store
                    .get(child, &cid)
                    .is_some_and(|r| matches!(&r.vals[col], Val::Ref(g, _) if *g == id));
                if !points_here {
                    return Err(DvError::not_found(&schema.table(child).logical_name, &cid));
                }
                (cid, Val::Null)
            }
            m => return Err(DvError::method_not_allowed(m, "a collection $ref")),
        };
        let mut changes = vec![(col, value)];
        stamp_update(store, child, req, &mut changes)?;
        store.update(child, cid, changes)?;
        return Ok(Resp::empty(204));
    }
    // Many-to-many navigation properties (many_to_many.rs).
    if crate::many_to_many::find(store, e, &nav.name).is_some() {
        let target = match req.method {
            "POST" | "PUT" => {
                let body = parse_body(req.body)?;
                let t = body
                    .get("@odata.id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        DvError::bad_request("The request body must contain '@odata.id'.")
                    })?;
                Some(resolve_reference(store, t)?)
            }
            _ => match crate::odata::query::parse_pairs(req.query)
                .into_iter()
                .find(|(k, _)| k == "$id")
            {
                Some((_, t)) => Some(resolve_reference(store, &t)?),
                None => None,
            },
        };
        if let Some(answer) = crate::many_to_many::refs(store, req, e, id, nav, target) {
            return answer;
        }
    }
    Err(DvError::segment_not_found(&nav.name))
}

/// Creates a row from a JSON body as a POST to its entity set does (columns, `@odata.bind`,
/// defaults, audit columns); nothing is left behind when it fails. Messages create the rows
/// their documentation names this way.
pub fn create_from_json(
    store: &mut Store,
    req: &Req,
    e: TableId,
    body: &Map<String, Value>,
) -> Result<Guid, DvError> {
    let mut created = Vec::new();
    create_row(store, req, e, body, None, &mut created).inspect_err(|_| rollback(store, &created))
}

/// Sets columns of an existing row as a PATCH does (audit columns stamped).
pub fn update_columns(
    store: &mut Store,
    req: &Req,
    e: TableId,
    id: Guid,
    mut changes: Vec<(usize, Val)>,
) -> Result<(), DvError> {
    stamp_update(store, e, req, &mut changes)?;
    store.update(e, id, changes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::schema::{EntityBuilder, Ownership, Schema};

    fn post<'a>(path: &'a str, body: &'a [u8]) -> Req<'a> {
        Req::test("POST", path, "", &[], body)
    }

    /// A schema of one audited table and no `systemuser` table behind its `createdby`.
    fn widgets_without_users() -> (Store, TableId) {
        let widget = EntityBuilder::new(
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
        .build();
        let store = Store::new(Arc::new(Schema::new(vec![widget], &[])));
        let e = store.schema.entity("new_widget").unwrap();
        (store, e)
    }

    #[test]
    fn a_create_whose_createdby_has_no_table_fails_naming_it_and_writes_nothing() {
        let (mut store, e) = widgets_without_users();
        let segs = crate::odata::path::segments("new_widgets").unwrap();
        let req = post("new_widgets", br#"{"new_name":"Sprocket"}"#);
        let err = handle(&mut store, &req, e, &segs[0], &[]).unwrap_err();
        assert_eq!(err.status, 500);
        assert!(err.message.contains("'systemuser'"), "{}", err.message);
        assert!(store.rows(e).is_empty());
    }

    #[test]
    fn a_create_stamps_createdby_with_the_users_table() {
        let mut store = Store::new(Arc::new(crate::catalog::schema()));
        let accounts = store.schema.entity("account").unwrap();
        let users = store.schema.entity("systemuser").unwrap();
        let segs = crate::odata::path::segments("accounts").unwrap();
        let req = post("accounts", br#"{"name":"Contoso"}"#);
        let resp = handle(&mut store, &req, accounts, &segs[0], &[]).unwrap();
        assert_eq!(resp.status, 204);
        let (_, row) = store.rows(accounts).iter().next().unwrap();
        let createdby = store.entity(accounts).attr("createdby").unwrap();
        assert_eq!(
            row.vals[createdby],
            Val::Ref(req.caller.user, users),
            "createdby points at the caller in the systemuser table"
        );
    }
}
