//! The bulk operation messages: `CreateMultiple`, `UpdateMultiple`, `UpsertMultiple` and
//! `DeleteMultiple`, bound to a table's collection
//! (`POST [api]/accounts/Microsoft.Dynamics.CRM.CreateMultiple` with `{"Targets": [...]}`).
//!
//! What Dataverse documents, and the emulator does:
//!
//! - Shapes ("Use bulk operation messages",
//!   learn.microsoft.com/power-apps/developer/data-platform/bulk-operations, and the action
//!   references .../webapi/reference/createmultiple, updatemultiple, upsertmultiple):
//!   `CreateMultiple` answers 200 with `{"@odata.context": ...#Microsoft.Dynamics.CRM.CreateMultipleResponse,
//!   "Ids": [...]}` in input order; `UpdateMultiple` and `DeleteMultiple` answer 204; "The
//!   `UpsertMultiple` action returns `204 NoContent`. The `UpsertMultipleResponse` complex type
//!   is not returned." Every item of `Targets` must carry `@odata.type` ("You must set the
//!   `@odata.type` property for each item in the `Targets` parameter"), naming the bound table.
//!   An upsert or update target names its record by its primary key, by `@odata.id` with an
//!   alternate key ("The `@odata.id` annotation identifies the record with a relative URL", the
//!   upsertmultiple reference) or by the values of an alternate key's columns.
//! - Availability ("Availability with standard tables"): not every standard table has the
//!   messages, and the documented way to ask is the `sdkmessagefilters` query
//!   (`$filter=sdkmessageid/name eq 'CreateMultiple' and primaryobjecttypecode eq 'account'`).
//!   The emulator seeds those rows ([`seed`]) and consults them: a table without a filter row
//!   answers `SdkEntityDoesNotSupportMessage` ("The 'CreateMultiple' method does not support
//!   entities of type 'annotation'."), as the service does for a message a table lacks.
//!   `DeleteMultiple` exists only for elastic tables ("DeleteMultiple availability").
//! - On error ("On Error behavior"): "Any error that occurs in a bulk operation with a standard
//!   table causes the entire operation to roll back"; with elastic tables "a bulk operation may
//!   partially succeed": the records that can be written are, and the error lists each record's
//!   status. With `Prefer: odata.include-annotations=*` (or
//!   `Microsoft.PowerApps.CDS.ErrorDetails.*`) the error carries the SDK's
//!   `Plugin.BulkApiErrorDetails` error detail (a list of `RequestIndex`, `Id`, `StatusCode`) as
//!   the annotation `@Microsoft.PowerApps.CDS.ErrorDetails.Plugin.BulkApiErrorDetails` — the way
//!   error details reach the Web API ("Include more details with errors",
//!   .../webapi/compose-http-requests-handle-errors). The emulator gives the same list for the
//!   one failing record of a standard table.
//! - "Message pipelines merged": each target is written as the single message would write it.
//!   Here each target goes through the same handler as a single `POST`, `PATCH` or `DELETE`
//!   (`writes`), with the request's headers, so impersonation, the data-load switches,
//!   change tracking and webhooks treat it as one; the whole message is one request.
//!
//! An upsert on an elastic table replaces the row it finds ("Upsert operations are expected to
//! contain the full payload [and] will over-write any existing record", use-elastic-tables).
//!
//! Not emulated: a limit on the number of records ("There's no set limit on the number of
//! records you can send"; the 116.85 MB sandbox limit applies only when a plug-in runs) and
//! `x-ms-session-token`.
//!
//! Two records of one request naming the same row are refused before anything is written: the
//! documentation does not say what the service makes of them, and writing one of them would be
//! a plausible wrong answer.

use serde_json::{Map, Value, json};

use crate::error::{self, DvError};
use crate::guid::Guid;
use crate::messages::NAMESPACE;
use crate::odata::path::{self, Segment};
use crate::schema::{AttrKind, Entity, TableId};
use crate::store::{Store, Val};
use crate::wire::{Req, Resp};

/// The bulk messages, in the order of the documentation.
pub const MESSAGES: &[&str] = &[
    "CreateMultiple",
    "UpdateMultiple",
    "UpsertMultiple",
    "DeleteMultiple",
];

/// The Web API annotation carrying the SDK's `Plugin.BulkApiErrorDetails` error detail.
pub const ERROR_DETAILS: &str = "Microsoft.PowerApps.CDS.ErrorDetails.Plugin.BulkApiErrorDetails";

/// Standard tables that do not have the bulk messages (the documentation: "not all"): notes,
/// so that a client's fallback to `$batch` can be rehearsed.
const WITHOUT_BULK: &[&str] = &["annotation"];

/// Tables that hold the message registrations themselves.
const REGISTRATION_TABLES: &[&str] = &[
    "serviceendpoint",
    "sdkmessage",
    "sdkmessagefilter",
    "sdkmessageprocessingstep",
    "sdkmessageprocessingstepimage",
];

/// The bulk message a request below a table names (`accounts/Microsoft.Dynamics.CRM.CreateMultiple`),
/// if any: the table and the message's name.
pub fn target(store: &Store, segs: &[Segment]) -> Option<(TableId, &'static str)> {
    let [table, message] = segs else {
        return None;
    };
    if table.key.is_some() || message.key.is_some() {
        return None;
    }
    let name = message
        .name
        .strip_prefix(NAMESPACE)
        .unwrap_or(&message.name);
    let name = MESSAGES.iter().copied().find(|m| *m == name)?;
    Some((store.schema.entity_by_set(&table.name)?, name))
}

/// Runs a bulk message bound to table `e`.
pub fn handle(
    store: &mut Store,
    req: &Req,
    e: TableId,
    message: &'static str,
) -> Result<Resp, DvError> {
    if req.method != "POST" {
        return Err(DvError::method_not_allowed(
            req.method,
            &format!("the action {message}"),
        ));
    }
    let ent = store.entity(e).clone();
    if !supports(store, message, &ent.logical_name) {
        return Err(DvError::new(
            400,
            error::ENTITY_DOES_NOT_SUPPORT_MESSAGE,
            format!(
                "The '{message}' method does not support entities of type '{}'. MessageProcessorCache returned MessageProcessor.Empty.",
                ent.logical_name
            ),
        ));
    }
    let targets = parse_targets(req.body, message, &ent)?;
    let ops = targets
        .iter()
        .enumerate()
        .map(|(i, t)| plan(store, e, &ent, message, i, t))
        .collect::<Result<Vec<_>, _>>()?;
    refuse_repeats(&ops, message)?;

    let elastic = ent.table_type == "Elastic";
    // A standard table's message is all or nothing. Inside a change set (or a write guarded
    // by synchronous webhooks) the journal is its owner's: a failure undoes it, which is where
    // the owner was headed anyway.
    let own_tx = !elastic && !store.in_tx();
    if own_tx {
        store.begin_tx();
    }
    let mut ids = Vec::with_capacity(ops.len());
    let mut failures: Vec<(usize, String, DvError)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match run(store, req, &ent, op) {
            Ok(id) => ids.push(id),
            Err(err) => {
                failures.push((i, op.id.map(|g| g.to_string()).unwrap_or_default(), err));
                if !elastic {
                    break;
                }
            }
        }
    }
    if !failures.is_empty() {
        if !elastic {
            store.rollback_tx();
        }
        return Ok(failure(req, &failures));
    }
    if own_tx {
        store.commit_tx();
    }
    if message == "CreateMultiple" {
        let ids: Vec<String> = ids.iter().map(Guid::to_string).collect();
        let body = json!({
            "@odata.context": format!("{}/$metadata#{NAMESPACE}CreateMultipleResponse", req.api),
            "Ids": ids,
        });
        return Ok(Resp::json(200, body.to_string().into_bytes()));
    }
    Ok(Resp::empty(204))
}

/// Whether `message` is registered for `table` in `sdkmessagefilter` (the documented
/// availability query: a filter row whose message has that name and whose
/// `primaryobjecttypecode` is the table).
fn supports(store: &Store, message: &str, table: &str) -> bool {
    let (Some(msgs), Some(filters)) = (
        store.schema.entity("sdkmessage"),
        store.schema.entity("sdkmessagefilter"),
    ) else {
        return false;
    };
    let (Some(name), Some(msg_col), Some(otc)) = (
        store.entity(msgs).attr("name"),
        store.entity(filters).attr("sdkmessageid"),
        store.entity(filters).attr("primaryobjecttypecode"),
    ) else {
        return false;
    };
    let ids: Vec<Guid> = store
        .rows(msgs)
        .iter()
        .filter(|(_, r)| matches!(&r.vals[name], Val::Str(s) if &**s == message))
        .map(|(id, _)| *id)
        .collect();
    store.rows(filters).values().any(|r| {
        matches!(&r.vals[msg_col], Val::Ref(g, _) if ids.contains(g))
            && matches!(&r.vals[otc], Val::Str(s) if &**s == table)
    })
}

/// The `Targets` of a request body, each an object typed as the bound table.
fn parse_targets(
    body: &[u8],
    message: &str,
    ent: &Entity,
) -> Result<Vec<Map<String, Value>>, DvError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| DvError::bad_request(format!("Invalid JSON. {e}")))?;
    let Some(targets) = body.get("Targets") else {
        return Err(DvError::bad_request(format!(
            "The parameter 'Targets' of {message} is required: a list of {} records.",
            ent.logical_name
        )));
    };
    let Value::Array(items) = targets else {
        return Err(DvError::bad_request(format!(
            "The parameter 'Targets' of {message} must be an array."
        )));
    };
    if items.is_empty() {
        return Err(DvError::new(
            400,
            error::INVALID_ARGUMENT,
            format!("The parameter 'Targets' of {message} holds no records."),
        ));
    }
    let expected = format!("{NAMESPACE}{}", ent.logical_name);
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(DvError::bad_request(format!(
                "Targets[{i}] of {message} must be an object."
            )));
        };
        let Some(t) = map.get("@odata.type") else {
            return Err(DvError::bad_request(format!(
                "Targets[{i}] of {message} has no '@odata.type': every record must name its type ('{expected}')."
            )));
        };
        let t = t.as_str().unwrap_or_default().trim_start_matches('#');
        if t != expected {
            return Err(DvError::new(
                400,
                error::INVALID_ARGUMENT,
                format!(
                    "Targets[{i}] of {message} is of type '{t}', but the message is bound to '{expected}': all records must be of the same table."
                ),
            ));
        }
        out.push(map.clone());
    }
    Ok(out)
}

/// One target, ready to run as the single write it stands for.
struct Op {
    method: &'static str,
    /// The key in the URL (`<guid>` or `col='v',...`), none for a create.
    key: Option<String>,
    /// The primary key, when the target gives it.
    id: Option<Guid>,
    body: Map<String, Value>,
    /// What names the row, to find two targets naming the same one.
    identity: Option<String>,
    /// `UpdateMultiple` writes existing rows only, as an update with `If-Match: *` does.
    update_only: bool,
    /// An upsert on an elastic table replaces the whole row it finds.
    replace: bool,
}

fn plan(
    store: &Store,
    e: TableId,
    ent: &Entity,
    message: &str,
    i: usize,
    target: &Map<String, Value>,
) -> Result<Op, DvError> {
    let mut body = target.clone();
    body.remove("@odata.type");
    let id_name = ent.primary_id_name();
    let id = match body.get(id_name) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_str().and_then(Guid::parse).ok_or_else(|| {
            DvError::bad_request(format!(
                "Targets[{i}] of {message}: '{id_name}' must be a GUID, not {v}."
            ))
        })?),
    };
    if message == "CreateMultiple" {
        return Ok(Op {
            method: "POST",
            key: None,
            id,
            body,
            identity: id.map(|g| g.to_string()),
            update_only: false,
            replace: false,
        });
    }
    let key = match (body.remove("@odata.id"), id) {
        (Some(Value::String(url)), _) => Some(key_of_reference(store, e, ent, &url, message, i)?),
        (Some(other), _) => {
            return Err(DvError::bad_request(format!(
                "Targets[{i}] of {message}: '@odata.id' must be a string, not {other}."
            )));
        }
        // An elastic row is named by its key with its partition
        // (KeyForNoSqlEntityWithPKPartitionId), so a wrong partition finds no row (elastic.rs).
        (None, Some(g)) => match body.get("partitionid").and_then(Value::as_str) {
            Some(p) if ent.table_type == "Elastic" => Some(format!(
                "{id_name}={g},partitionid='{}'",
                p.replace('\'', "''")
            )),
            _ => Some(g.to_string()),
        },
        (None, None) => alternate_key(ent, &body),
    };
    let Some(key) = key else {
        return Err(DvError::bad_request(format!(
            "Targets[{i}] of {message} does not identify a {} record: give '{id_name}', '@odata.id' or the columns of an alternate key.",
            ent.logical_name
        )));
    };
    let method = match message {
        "DeleteMultiple" => "DELETE",
        _ => "PATCH",
    };
    Ok(Op {
        method,
        identity: Some(key.to_lowercase()),
        key: Some(key),
        id,
        body,
        update_only: message == "UpdateMultiple",
        replace: message == "UpsertMultiple" && ent.table_type == "Elastic",
    })
}

/// The key part of an `@odata.id` reference to a row of the bound table:
/// `accounts(accountnumber='A-1')`, `/accounts(<guid>)` or an absolute URL.
fn key_of_reference(
    store: &Store,
    e: TableId,
    ent: &Entity,
    url: &str,
    message: &str,
    i: usize,
) -> Result<String, DvError> {
    let mut t = url.trim();
    if let Some(at) = t.find("/api/data/v") {
        t = &t[at + "/api/data/v".len()..];
        t = t.split_once('/').map_or("", |x| x.1);
    }
    let segs = path::segments(t.trim_start_matches('/'))?;
    match segs.as_slice() {
        [seg] if store.schema.entity_by_set(&seg.name) == Some(e) && seg.key.is_some() => {
            Ok(seg.key.clone().unwrap_or_default())
        }
        _ => Err(DvError::bad_request(format!(
            "Targets[{i}] of {message}: '@odata.id' '{url}' does not name a record of '{}'.",
            ent.entity_set_name
        ))),
    }
}

/// The URL key of the first alternate key whose columns the body all gives.
fn alternate_key(ent: &Entity, body: &Map<String, Value>) -> Option<String> {
    ent.alternate_keys.iter().find_map(|k| {
        let parts = k
            .attributes
            .iter()
            .map(|name| {
                let col = ent.attr(name)?;
                let literal = match (&ent.attributes[col].kind, body.get(name)?) {
                    (_, Value::Null) => return None,
                    (AttrKind::String { .. } | AttrKind::Memo { .. }, Value::String(s)) => {
                        format!("'{}'", s.replace('\'', "''"))
                    }
                    (_, Value::String(s)) => s.clone(),
                    (_, v) => v.to_string(),
                };
                Some(format!("{name}={literal}"))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(parts.join(","))
    })
}

/// Two targets naming the same row are refused, naming both.
fn refuse_repeats(ops: &[Op], message: &str) -> Result<(), DvError> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        let Some(identity) = op.identity.as_deref() else {
            continue;
        };
        if let Some(first) = seen.insert(identity, i) {
            return Err(DvError::new(
                400,
                error::INVALID_ARGUMENT,
                format!(
                    "Targets[{first}] and Targets[{i}] of {message} name the same record ({identity}): each record may appear once."
                ),
            ));
        }
    }
    Ok(())
}

/// Writes one target through the single-record handler; returns its id (for a create).
fn run(store: &mut Store, req: &Req, ent: &Entity, op: &Op) -> Result<Guid, DvError> {
    // The key is already decoded text (from `@odata.id` or the target's columns) and the path
    // below is decoded again by `path::segments`: escape what decoding or splitting would
    // change, so `accountnumber='100%41'` names that row and not `100A`.
    let path = match &op.key {
        Some(k) => format!(
            "{}({})",
            ent.entity_set_name,
            k.replace('%', "%25").replace('/', "%2F")
        ),
        None => ent.entity_set_name.clone(),
    };
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(k, _)| {
            !["prefer", "if-match", "if-none-match", "content-length"]
                .iter()
                .any(|h| k.eq_ignore_ascii_case(h))
        })
        .cloned()
        .collect();
    if op.update_only {
        headers.push(("If-Match".into(), "*".into()));
    }
    let body = match op.method {
        "DELETE" => Vec::new(),
        _ if op.replace => serde_json::to_vec(&replacement(store, ent, op)?)
            .map_err(|e| DvError::internal(&e.to_string()))?,
        _ => serde_json::to_vec(&op.body).map_err(|e| DvError::internal(&e.to_string()))?,
    };
    let single = Req {
        method: op.method,
        path: &path,
        query: "",
        headers: &headers,
        body: &body,
        api: req.api.clone(),
        caller: req.caller,
        impersonator: req.impersonator,
        delegates: req.delegates,
        organization_id: req.organization_id,
        limits: req.limits,
    };
    let segs = path::segments(&path)?;
    let e = store
        .schema
        .entity_by_set(&ent.entity_set_name)
        .ok_or_else(|| DvError::segment_not_found(&ent.entity_set_name))?;
    let resp = crate::writes::handle(store, &single, e, &segs[0], &segs[1..])?;
    let entity_id = resp
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("OData-EntityId"))
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let created = entity_id
        .rsplit_once('(')
        .and_then(|(_, k)| Guid::parse(k.trim_end_matches(')')));
    Ok(created.or(op.id).unwrap_or_default())
}

/// The body of an elastic upsert: "Upsert operations are expected to contain the full payload
/// [and] will over-write any existing record" (use-elastic-tables, "Upsert a record in an
/// elastic table"), so a row that exists loses the values the target does not give. Keys,
/// state, ownership and system columns stay.
fn replacement(store: &Store, ent: &Entity, op: &Op) -> Result<Map<String, Value>, DvError> {
    let mut body = op.body.clone();
    let (Some(e), Some(key)) = (store.schema.entity_by_set(&ent.entity_set_name), &op.key) else {
        return Ok(body);
    };
    let key = crate::row_key::key_ref(store, e, key)?;
    if crate::row_key::find(store, e, &key).is_none() {
        return Ok(body);
    }
    for a in &ent.attributes {
        let plain = matches!(
            a.kind,
            AttrKind::String { .. }
                | AttrKind::Memo { .. }
                | AttrKind::Integer { .. }
                | AttrKind::BigInt
                | AttrKind::Decimal { .. }
                | AttrKind::Money
                | AttrKind::Boolean { .. }
                | AttrKind::DateTime { .. }
                | AttrKind::Picklist { .. }
        );
        let kept = a.is_primary_id
            || a.logical_name == "partitionid"
            || !a.writable
            || !plain
            || ent
                .alternate_keys
                .iter()
                .any(|k| k.attributes.contains(&a.logical_name));
        if !kept && !body.contains_key(&a.logical_name) {
            body.insert(a.logical_name.clone(), Value::Null);
        }
    }
    Ok(body)
}

/// The error answer for failed records: the first failure's status, code and message, and
/// with the annotations asked for, every failed record's `RequestIndex`, `Id` and `StatusCode`.
fn failure(req: &Req, failures: &[(usize, String, DvError)]) -> Resp {
    let (_, _, first) = &failures[0];
    let mut err = Map::new();
    err.insert("code".into(), Value::String(first.code.clone()));
    err.insert("message".into(), Value::String(first.message.clone()));
    if req.prefer().wants(ERROR_DETAILS) {
        let details: Vec<Value> = failures
            .iter()
            .map(|(i, id, e)| json!({"RequestIndex": i, "Id": id, "StatusCode": e.status}))
            .collect();
        err.insert(
            format!("@{ERROR_DETAILS}"),
            Value::String(Value::Array(details).to_string()),
        );
    }
    let mut resp = Resp::json(
        first.status,
        json!({ "error": Value::Object(err) })
            .to_string()
            .into_bytes(),
    );
    resp.headers.extend(first.headers.iter().cloned());
    resp
}

/// Seeds `sdkmessage` rows for the bulk messages and an `sdkmessagefilter` per table that has
/// them: `CreateMultiple`, `UpdateMultiple` and `UpsertMultiple` for every data table but
/// [`WITHOUT_BULK`], and all four for elastic tables.
pub fn seed(store: &mut Store) {
    let Some(msg) = store.schema.entity("sdkmessage") else {
        return;
    };
    let now = (store.clock)();
    for name in MESSAGES {
        let mut vals = store.blank_row(msg);
        let pk = store.entity(msg).primary_id;
        vals[pk] = Val::Guid(crate::schema::meta_guid("sdkmessage", name));
        set(store, msg, &mut vals, "name", Val::str(name));
        set(store, msg, &mut vals, "createdon", Val::Date(now));
        set(store, msg, &mut vals, "modifiedon", Val::Date(now));
        let _ = store.insert(msg, vals, false);
    }
    let tables: Vec<String> = store
        .schema
        .entities
        .iter()
        .filter(|e| !REGISTRATION_TABLES.contains(&e.logical_name.as_str()))
        .filter(|e| !WITHOUT_BULK.contains(&e.logical_name.as_str()))
        .map(|e| e.logical_name.clone())
        .collect();
    for table in &tables {
        for message in bulk_messages_of(store, table) {
            add_filter(store, message, table);
        }
    }
}

/// Registers the messages of a table created through the metadata API: `Create`, `Update`
/// and `Delete` (which webhooks register steps on) and its bulk messages, as for the seeded
/// tables ("You can use the CreateMultiple and UpdateMultiple bulk operation messages with
/// custom standard tables").
pub fn register_table(store: &mut Store, table: &str) {
    for message in ["Create", "Update", "Delete"] {
        add_filter(store, message, table);
    }
    for message in bulk_messages_of(store, table) {
        add_filter(store, message, table);
    }
}

/// The bulk messages a table has: all four on an elastic table, all but `DeleteMultiple` on
/// a standard one.
fn bulk_messages_of(store: &Store, table: &str) -> Vec<&'static str> {
    let elastic = store
        .schema
        .entity(table)
        .is_some_and(|e| store.entity(e).table_type == "Elastic");
    MESSAGES
        .iter()
        .copied()
        .filter(|m| elastic || *m != "DeleteMultiple")
        .collect()
}

fn set(store: &Store, e: TableId, vals: &mut [Val], col: &str, v: Val) {
    if let Some(c) = store.entity(e).attr(col) {
        vals[c] = v;
    }
}

/// An `sdkmessagefilter` row: `message` is available on `table`. Its id and its message's
/// follow the seeding of the webhook registration tables (`webhooks.rs`).
fn add_filter(store: &mut Store, message: &str, table: &str) {
    let (Some(msg), Some(filter)) = (
        store.schema.entity("sdkmessage"),
        store.schema.entity("sdkmessagefilter"),
    ) else {
        return;
    };
    let now = (store.clock)();
    let mut vals = store.blank_row(filter);
    let pk = store.entity(filter).primary_id;
    vals[pk] = Val::Guid(crate::schema::meta_guid(
        "sdkmessagefilter",
        &format!("{message}.{table}"),
    ));
    let name = Val::str(&format!("{message} of {table}"));
    set(store, filter, &mut vals, "name", name);
    set(
        store,
        filter,
        &mut vals,
        "primaryobjecttypecode",
        Val::str(table),
    );
    set(
        store,
        filter,
        &mut vals,
        "secondaryobjecttypecode",
        Val::str("none"),
    );
    set(
        store,
        filter,
        &mut vals,
        "iscustomprocessingstepallowed",
        Val::Bool(true),
    );
    let message_id = crate::schema::meta_guid("sdkmessage", message);
    set(
        store,
        filter,
        &mut vals,
        "sdkmessageid",
        Val::Ref(message_id, msg),
    );
    set(store, filter, &mut vals, "createdon", Val::Date(now));
    set(store, filter, &mut vals, "modifiedon", Val::Date(now));
    let _ = store.insert(filter, vals, false);
}
