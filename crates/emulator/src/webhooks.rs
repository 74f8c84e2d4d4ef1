//! Webhooks: `serviceendpoint` rows (contract 8) reached through `sdkmessageprocessingstep`
//! registrations. Writes captured by the store are matched against the registered steps and
//! turned into POSTs of a `RemoteExecutionContext`, with the endpoint's authentication and
//! the headers Dataverse sends.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::DvError;
use crate::guid::Guid;
use crate::schema::{AttrKind, TableId};
use crate::store::{ChangeKind, MessageEvent, Store, Val, WriteEvent};

/// Payloads above this size lose their contexts, inputs and images (and get a header).
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// How long one POST may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

const ENTITY_TYPE: &str = "Entity:http://schemas.microsoft.com/xrm/2011/Contracts";
const REF_TYPE: &str = "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts";
const OPTION_TYPE: &str = "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts";
const MONEY_TYPE: &str = "Money:http://schemas.microsoft.com/xrm/2011/Contracts";

/// One webhook call the emulator made (or tried to make).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// The URL posted to, with the authentication query string.
    pub url: String,
    /// Request headers as sent (names as written by the emulator).
    pub headers: Vec<(String, String)>,
    /// The JSON body (a serialized `RemoteExecutionContext`).
    pub body: Vec<u8>,
    /// The final HTTP status, or 0 when the endpoint could not be reached.
    pub status: u16,
    /// Attempts made: 2 when the first answer was 502, 503 or 504.
    pub attempts: u32,
}

impl WebhookDelivery {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (Null when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Whether the endpoint answered 2xx.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A call ready to be made.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Mode 0: the write waits for it and fails with it.
    pub synchronous: bool,
}

/// Who and where a write ran, for the context.
pub struct EventCtx<'a> {
    pub user: Guid,
    pub business_unit: Guid,
    pub organization_id: Guid,
    pub organization_name: &'a str,
    /// The environment's host, sent as `x-ms-dynamics-organization`.
    pub organization_host: &'a str,
    pub correlation_id: Guid,
    pub now_ms: i64,
}

/// Delivered calls and a worker that makes asynchronous ones in order.
pub struct Dispatcher {
    log: Arc<(Mutex<Vec<WebhookDelivery>>, Condvar)>,
    queue: Mutex<Option<Sender<Outbound>>>,
}

impl Default for Dispatcher {
    fn default() -> Self {
        Dispatcher::new()
    }
}

impl Dispatcher {
    /// Starts the delivery thread (it ends when the dispatcher is dropped).
    pub fn new() -> Dispatcher {
        let log: Arc<(Mutex<Vec<WebhookDelivery>>, Condvar)> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel::<Outbound>();
        let worker_log = log.clone();
        let spawned = std::thread::Builder::new()
            .name("dataverse-emulator-webhooks".into())
            .spawn(move || worker(rx, worker_log));
        Dispatcher {
            log,
            queue: Mutex::new(spawned.ok().map(|_| tx)),
        }
    }

    /// Queues asynchronous calls; they are made one after another, in order.
    pub fn enqueue(&self, calls: Vec<Outbound>) {
        let Ok(q) = self.queue.lock() else { return };
        for call in calls {
            match q.as_ref() {
                Some(tx) if tx.send(call.clone()).is_ok() => {}
                _ => record(&self.log, deliver(call)),
            }
        }
    }

    /// Makes a call now and records it.
    pub fn deliver_now(&self, call: Outbound) -> WebhookDelivery {
        let d = deliver(call);
        record(&self.log, d.clone());
        d
    }

    /// Every call made so far, in order of completion.
    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.log.0.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until at least `n` calls completed or the timeout passed; returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<WebhookDelivery> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.log;
        let Ok(mut guard) = lock.lock() else {
            return Vec::new();
        };
        while guard.len() < n {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            guard = match cv.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(_) => return Vec::new(),
            };
        }
        guard.clone()
    }

    /// Forgets the recorded calls.
    pub fn clear(&self) {
        if let Ok(mut l) = self.log.0.lock() {
            l.clear();
        }
    }
}

fn record(log: &(Mutex<Vec<WebhookDelivery>>, Condvar), d: WebhookDelivery) {
    if let Ok(mut l) = log.0.lock() {
        l.push(d);
    }
    log.1.notify_all();
}

fn worker(rx: Receiver<Outbound>, log: Arc<(Mutex<Vec<WebhookDelivery>>, Condvar)>) {
    while let Ok(call) = rx.recv() {
        record(&log, deliver(call));
    }
}

/// POSTs a call; 502, 503 and 504 get exactly one more attempt.
fn deliver(call: Outbound) -> WebhookDelivery {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .build()
        .into();
    let mut status = 0;
    let mut attempts = 0;
    for _ in 0..2 {
        attempts += 1;
        let mut req = agent.post(&call.url);
        for (k, v) in &call.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        status = match req.send(&call.body[..]) {
            Ok(mut r) => {
                let _ = r.body_mut().read_to_vec();
                r.status().as_u16()
            }
            Err(_) => 0,
        };
        if !matches!(status, 502..=504) {
            break;
        }
    }
    WebhookDelivery {
        url: call.url,
        headers: call.headers,
        body: call.body,
        status,
        attempts,
    }
}

/// A new id for correlation, operation and request ids (unique within the process).
pub fn fresh_guid() -> Guid {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    Guid::from_seed(nanos ^ 0x7765_6268_6f6f_6b73, n)
}

// ---- seeding -------------------------------------------------------------------------------

/// The SDK messages a step can name.
pub const MESSAGES: &[&str] = &[
    "Create",
    "Update",
    "Delete",
    "Retrieve",
    "RetrieveMultiple",
    "Associate",
    "Disassociate",
];

const REGISTRATION_TABLES: &[&str] = &[
    "serviceendpoint",
    "sdkmessage",
    "sdkmessagefilter",
    "sdkmessageprocessingstep",
    "sdkmessageprocessingstepimage",
];

/// The id of the seeded `sdkmessage` row of a message.
pub fn message_id(name: &str) -> Guid {
    crate::schema::meta_guid("sdkmessage", name)
}

/// The id of the seeded `sdkmessagefilter` row of a message on a table.
pub fn filter_id(message: &str, table: &str) -> Guid {
    crate::schema::meta_guid("sdkmessagefilter", &format!("{message}.{table}"))
}

fn set(store: &Store, e: TableId, vals: &mut [Val], col: &str, v: Val) {
    if let Some(c) = store.entity(e).attr(col) {
        vals[c] = v;
    }
}

/// Seeds `sdkmessage` rows and a `sdkmessagefilter` for Create, Update and Delete of every
/// data table.
pub fn seed(store: &mut Store) {
    let (Some(msg), Some(filter)) = (
        store.schema.entity("sdkmessage"),
        store.schema.entity("sdkmessagefilter"),
    ) else {
        return;
    };
    let now = (store.clock)();
    for name in MESSAGES {
        let mut vals = store.blank_row(msg);
        let pk = store.entity(msg).primary_id;
        vals[pk] = Val::Guid(message_id(name));
        set(store, msg, &mut vals, "name", Val::str(name));
        set(store, msg, &mut vals, "createdon", Val::Date(now));
        set(store, msg, &mut vals, "modifiedon", Val::Date(now));
        let _ = store.insert(msg, vals, false);
    }
    let tables: Vec<String> = store
        .schema
        .entities
        .iter()
        .map(|e| e.logical_name.clone())
        .filter(|n| !REGISTRATION_TABLES.contains(&n.as_str()))
        .collect();
    for table in &tables {
        for message in ["Create", "Update", "Delete"] {
            let mut vals = store.blank_row(filter);
            let pk = store.entity(filter).primary_id;
            vals[pk] = Val::Guid(filter_id(message, table));
            set(
                store,
                filter,
                &mut vals,
                "name",
                Val::str(&format!("{message} of {table}")),
            );
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
            set(
                store,
                filter,
                &mut vals,
                "sdkmessageid",
                Val::Ref(message_id(message), msg),
            );
            set(store, filter, &mut vals, "createdon", Val::Date(now));
            set(store, filter, &mut vals, "modifiedon", Val::Date(now));
            let _ = store.insert(filter, vals, false);
        }
    }
}

// ---- custom API messages -------------------------------------------------------------------

/// Gives a custom API row its `sdkmessage` (and, when bound to a table, the message's
/// `sdkmessagefilter` on it), and links it through `customapi.sdkmessageid` (the SdkMessageId
/// lookup of reference/entities/customapi): the unique name "will be the name of the message
/// created" (custom-api-tables, UniqueName), and steps are registered on that message like on
/// any other (custom-api, "Select a custom processing step type").
/// `vals` is the custom API row about to be inserted; a row that already names a message keeps it.
pub fn add_custom_api_message(store: &mut Store, apis: TableId, vals: &mut [Val]) {
    let (Some(msg), Some(filter)) = (
        store.schema.entity("sdkmessage"),
        store.schema.entity("sdkmessagefilter"),
    ) else {
        return;
    };
    let Some(link) = store.entity(apis).attr("sdkmessageid") else {
        return;
    };
    if !matches!(vals[link], Val::Null) {
        return;
    }
    let name = text(cell(store, apis, vals, "uniquename"));
    if name.is_empty() {
        return;
    }
    let allowed = int(cell(store, apis, vals, "allowedcustomprocessingsteptype")).unwrap_or(0);
    let bound = text(cell(store, apis, vals, "boundentitylogicalname"));
    let now = (store.clock)();
    let id = message_id(&name);
    if store.get(msg, &id).is_none() {
        let mut row = store.blank_row(msg);
        let pk = store.entity(msg).primary_id;
        row[pk] = Val::Guid(id);
        set(store, msg, &mut row, "name", Val::str(&name));
        set(store, msg, &mut row, "createdon", Val::Date(now));
        set(store, msg, &mut row, "modifiedon", Val::Date(now));
        let _ = store.insert(msg, row, false);
    }
    if !bound.is_empty() && store.get(filter, &filter_id(&name, &bound)).is_none() {
        let mut row = store.blank_row(filter);
        let pk = store.entity(filter).primary_id;
        row[pk] = Val::Guid(filter_id(&name, &bound));
        set(
            store,
            filter,
            &mut row,
            "name",
            Val::str(&format!("{name} of {bound}")),
        );
        set(
            store,
            filter,
            &mut row,
            "primaryobjecttypecode",
            Val::str(&bound),
        );
        set(
            store,
            filter,
            &mut row,
            "secondaryobjecttypecode",
            Val::str("none"),
        );
        set(
            store,
            filter,
            &mut row,
            "iscustomprocessingstepallowed",
            Val::Bool(allowed != 0),
        );
        set(store, filter, &mut row, "sdkmessageid", Val::Ref(id, msg));
        set(store, filter, &mut row, "createdon", Val::Date(now));
        set(store, filter, &mut row, "modifiedon", Val::Date(now));
        let _ = store.insert(filter, row, false);
    }
    vals[link] = Val::Ref(id, msg);
}

/// Checks a row about to be created: a custom API gets its message (above); a step on a custom
/// API's message must be one its AllowedCustomProcessingStepType allows (custom-api-tables,
/// AllowedCustomProcessingStepType: 0 None "No custom processing steps allowed", 1 Async Only
/// "Only asynchronous custom processing steps allowed", 2 Sync and Async). Dataverse refuses
/// the registration; the refusal names the custom API and its setting.
pub fn before_create(store: &mut Store, e: TableId, vals: &mut [Val]) -> Result<(), DvError> {
    let name = store.entity(e).logical_name.clone();
    if name == "customapi" {
        add_custom_api_message(store, e, vals);
        return Ok(());
    }
    if name != "sdkmessageprocessingstep" {
        return Ok(());
    }
    let Some(apis) = store.schema.entity("customapi") else {
        return Ok(());
    };
    let Val::Ref(message, _) = cell(store, e, vals, "sdkmessageid").clone() else {
        return Ok(());
    };
    // The custom API whose message this is; a step on any other message is not restricted here.
    let Some((api_name, allowed)) = store.rows(apis).values().find_map(|r| {
        matches!(cell(store, apis, &r.vals, "sdkmessageid"), Val::Ref(m, _) if *m == message).then(
            || {
                (
                    text(cell(store, apis, &r.vals, "uniquename")),
                    int(cell(
                        store,
                        apis,
                        &r.vals,
                        "allowedcustomprocessingsteptype",
                    ))
                    .unwrap_or(0),
                )
            },
        )
    }) else {
        return Ok(());
    };
    let mode = int(cell(store, e, vals, "mode")).unwrap_or(0);
    match allowed {
        0 => Err(DvError::bad_request(format!(
            "The custom API '{api_name}' does not allow custom processing steps: its AllowedCustomProcessingStepType is None (0)."
        ))),
        1 if mode != 1 => Err(DvError::bad_request(format!(
            "The custom API '{api_name}' allows only asynchronous custom processing steps (AllowedCustomProcessingStepType Async Only (1)): the step's mode must be 1 (Asynchronous)."
        ))),
        _ => Ok(()),
    }
}

// ---- matching ------------------------------------------------------------------------------

/// A registered step, read from its rows.
struct Step {
    id: Guid,
    name: String,
    message: String,
    /// None: every table.
    table: Option<String>,
    filtering: Vec<String>,
    stage: i64,
    mode: i64,
    url: String,
    authtype: i64,
    authvalue: String,
    images: Vec<Image>,
    /// "Run in User's Context": the context's UserId is this user, InitiatingUserId stays the
    /// caller (learn.microsoft.com/power-apps/developer/data-platform/impersonate-a-user:
    /// "When this default option is applied, the SdkMessageProcessingStep.ImpersonatingUserId
    /// will be set to null or Empty"; the step's user is IExecutionContext.UserId, the user who
    /// initiated the action is InitiatingUserId).
    impersonating: Option<Guid>,
}

struct Image {
    alias: String,
    /// 0 pre, 1 post, 2 both.
    kind: i64,
    attributes: Vec<String>,
}

fn cell<'a>(store: &'a Store, e: TableId, vals: &'a [Val], col: &str) -> &'a Val {
    store
        .entity(e)
        .attr(col)
        .and_then(|c| vals.get(c))
        .unwrap_or(&Val::Null)
}

fn text(v: &Val) -> String {
    match v {
        Val::Str(s) => s.to_string(),
        _ => String::new(),
    }
}

fn int(v: &Val) -> Option<i64> {
    match v {
        Val::Int(i) => Some(*i),
        _ => None,
    }
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_lowercase())
        .filter(|x| !x.is_empty())
        .collect()
}

fn steps(store: &Store) -> Vec<Step> {
    let s = &store.schema;
    let (Some(se), Some(st), Some(msg), Some(fl), Some(im)) = (
        s.entity("serviceendpoint"),
        s.entity("sdkmessageprocessingstep"),
        s.entity("sdkmessage"),
        s.entity("sdkmessagefilter"),
        s.entity("sdkmessageprocessingstepimage"),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (id, row) in store.rows(st) {
        let v = &row.vals;
        if int(cell(store, st, v, "statecode")).unwrap_or(0) != 0 {
            continue;
        }
        let Val::Ref(handler, _) = cell(store, st, v, "eventhandler") else {
            continue;
        };
        let Some(endpoint) = store.get(se, handler) else {
            continue;
        };
        let ev = &endpoint.vals;
        if int(cell(store, se, ev, "contract")) != Some(8) {
            continue;
        }
        let message = match cell(store, st, v, "sdkmessageid") {
            Val::Ref(m, _) => store
                .get(msg, m)
                .map(|r| text(cell(store, msg, &r.vals, "name")))
                .unwrap_or_default(),
            _ => String::new(),
        };
        let table = match cell(store, st, v, "sdkmessagefilterid") {
            Val::Ref(f, _) => match store.get(fl, f) {
                Some(r) => Some(text(cell(store, fl, &r.vals, "primaryobjecttypecode"))),
                None => continue,
            },
            _ => None,
        };
        let images = store.rows(im)
            .values()
            .filter(|r| matches!(cell(store, im, &r.vals, "sdkmessageprocessingstepid"), Val::Ref(g, _) if g == id))
            .map(|r| Image {
                alias: text(cell(store, im, &r.vals, "entityalias")),
                kind: int(cell(store, im, &r.vals, "imagetype")).unwrap_or(0),
                attributes: list(&text(cell(store, im, &r.vals, "attributes"))),
            })
            .collect();
        out.push(Step {
            id: *id,
            name: text(cell(store, st, v, "name")),
            message,
            table,
            filtering: list(&text(cell(store, st, v, "filteringattributes"))),
            stage: int(cell(store, st, v, "stage")).unwrap_or(40),
            mode: int(cell(store, st, v, "mode")).unwrap_or(1),
            url: text(cell(store, se, ev, "url")),
            authtype: int(cell(store, se, ev, "authtype")).unwrap_or(0),
            authvalue: text(cell(store, se, ev, "authvalue")),
            images,
            impersonating: match cell(store, st, v, "impersonatinguserid") {
                Val::Ref(user, _) => Some(*user),
                _ => None,
            },
        });
    }
    out
}

fn message_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Create => "Create",
        ChangeKind::Update => "Update",
        ChangeKind::Delete => "Delete",
    }
}

/// Takes the captured writes and returns the calls the registered steps ask for.
pub fn collect(store: &mut Store, ctx: &EventCtx) -> Vec<Outbound> {
    if store.events.is_empty() && store.message_events.is_empty() {
        return Vec::new();
    }
    let events = std::mem::take(&mut store.events);
    let runs = std::mem::take(&mut store.message_events);
    let steps = steps(store);
    let mut out = Vec::new();
    for run in &runs {
        let table = run.bound.map(|(t, _)| store.entity(t).logical_name.clone());
        for step in &steps {
            let table_matches = match (&step.table, &table) {
                (None, _) => true,
                (Some(s), Some(t)) => s.eq_ignore_ascii_case(t),
                (Some(_), None) => false,
            };
            if step.message == run.name && table_matches {
                out.push(message_call(store, ctx, run, step));
            }
        }
    }
    for ev in &events {
        let ent = store.entity(ev.entity);
        let message = message_name(ev.kind);
        for step in &steps {
            if !step.message.eq_ignore_ascii_case(message) {
                continue;
            }
            if step
                .table
                .as_ref()
                .is_some_and(|t| !t.eq_ignore_ascii_case(&ent.logical_name))
            {
                continue;
            }
            if ev.kind == ChangeKind::Update && !step.filtering.is_empty() {
                let hit = ev.changed.iter().any(|&c| {
                    let a = &ent.attributes[c];
                    a.writable && step.filtering.contains(&a.logical_name)
                });
                if !hit {
                    continue;
                }
            }
            out.push(call(store, ctx, ev, step));
        }
    }
    // Power Automate flows subscribed through callback registrations (flows.rs).
    out.extend(crate::flows::calls(store, &events));
    out
}

// ---- the RemoteExecutionContext ------------------------------------------------------------

fn date_ms(secs: i64) -> String {
    format!("/Date({})/", secs.saturating_mul(1000))
}

fn reference(store: &Store, target: TableId, id: &Guid) -> Value {
    let name = store
        .primary_name_of(target, id)
        .map_or(Value::Null, Value::String);
    json!({
        "__type": REF_TYPE,
        "Id": id.to_string(),
        "KeyAttributes": [],
        "LogicalName": store.entity(target).logical_name,
        "Name": name,
        "RowVersion": null,
    })
}

/// A cell in DataContract JSON form.
fn value(store: &Store, kind: &AttrKind, v: &Val) -> Value {
    match (kind, v) {
        (_, Val::Null) => Value::Null,
        (
            AttrKind::Picklist { .. } | AttrKind::State { .. } | AttrKind::Status { .. },
            Val::Int(i),
        ) => {
            json!({"__type": OPTION_TYPE, "Value": i})
        }
        (AttrKind::Money, Val::Num(n)) => json!({"__type": MONEY_TYPE, "Value": n}),
        (_, Val::Ref(g, t)) => reference(store, *t, g),
        (_, Val::Str(s)) => Value::String(s.to_string()),
        (_, Val::Int(i)) => json!(i),
        (_, Val::Num(n)) => json!(n),
        (_, Val::Bool(b)) => json!(b),
        (_, Val::Date(d)) => Value::String(date_ms(*d)),
        (_, Val::Guid(g)) => Value::String(g.to_string()),
    }
}

fn entity_value(
    store: &Store,
    e: TableId,
    id: &Guid,
    vals: &[Val],
    cols: &[usize],
    typed: bool,
) -> Value {
    let ent = store.entity(e);
    let attrs: Vec<Value> = cols
        .iter()
        .filter_map(|&c| Some((ent.attributes.get(c)?, vals.get(c)?)))
        .map(|(a, v)| json!({"key": a.logical_name, "value": value(store, &a.kind, v)}))
        .collect();
    let mut m = serde_json::Map::new();
    if typed {
        m.insert("__type".into(), json!(ENTITY_TYPE));
    }
    m.insert("Attributes".into(), Value::Array(attrs));
    m.insert("EntityState".into(), Value::Null);
    m.insert("FormattedValues".into(), json!([]));
    m.insert("Id".into(), json!(id.to_string()));
    m.insert("KeyAttributes".into(), json!([]));
    m.insert("LogicalName".into(), json!(ent.logical_name));
    m.insert("RelatedEntities".into(), json!([]));
    m.insert("RowVersion".into(), Value::Null);
    Value::Object(m)
}

fn image_value(store: &Store, ev: &WriteEvent, vals: &[Val], attributes: &[String]) -> Value {
    let ent = store.entity(ev.entity);
    let cols: Vec<usize> = (0..vals.len())
        .filter(|&c| {
            let a = &ent.attributes[c];
            if attributes.is_empty() {
                !vals[c].is_null() || c == ent.primary_id
            } else {
                attributes.contains(&a.logical_name) || c == ent.primary_id
            }
        })
        .collect();
    let mut image = entity_value(store, ev.entity, &ev.id, vals, &cols, false);
    if attributes.iter().any(|a| a == "owningbusinessunit")
        && ent.attr("owningbusinessunit").is_none()
        && let Some(unit) = owning_business_unit(store, ev.entity, vals)
        && let Some(Value::Array(list)) = image.get_mut("Attributes")
    {
        list.push(json!({"key": "owningbusinessunit", "value": unit}));
    }
    image
}

/// The emulator's tables keep no `owningbusinessunit` column; an image that names it gets what
/// Dataverse stores there, the business unit of the row's owner (entities/account
/// OwningBusinessUnit: "Unique identifier for the business unit that owns the record"; a user's
/// or a team's `businessunitid`). None when the row has no owner.
fn owning_business_unit(store: &Store, e: TableId, vals: &[Val]) -> Option<Value> {
    let owner = store.entity(e).attr("ownerid")?;
    let Val::Ref(owner, owner_table) = vals.get(owner)? else {
        return None;
    };
    let row = store.get(*owner_table, owner)?;
    match cell(store, *owner_table, &row.vals, "businessunitid") {
        Val::Ref(unit, units) => Some(reference(store, *units, unit)),
        _ => None,
    }
}

fn call(store: &Store, ctx: &EventCtx, ev: &WriteEvent, step: &Step) -> Outbound {
    let ent = store.entity(ev.entity);
    let message = message_name(ev.kind);
    let target = match (ev.kind, &ev.post) {
        (ChangeKind::Delete, _) | (_, None) => json!({
            "__type": REF_TYPE,
            "Id": ev.id.to_string(),
            "KeyAttributes": [],
            "LogicalName": ent.logical_name,
            "Name": null,
            "RowVersion": null,
        }),
        (_, Some(post)) => {
            let mut cols = ev.changed.clone();
            if !cols.contains(&ent.primary_id) {
                cols.insert(0, ent.primary_id);
            }
            entity_value(store, ev.entity, &ev.id, post, &cols, true)
        }
    };
    let mut pre_images = Vec::new();
    let mut post_images = Vec::new();
    for image in &step.images {
        if matches!(image.kind, 0 | 2)
            && let Some(pre) = &ev.pre
        {
            pre_images.push(json!({"key": image.alias, "value": image_value(store, ev, pre, &image.attributes)}));
        }
        if matches!(image.kind, 1 | 2)
            && let Some(post) = &ev.post
        {
            post_images.push(json!({"key": image.alias, "value": image_value(store, ev, post, &image.attributes)}));
        }
    }
    let output = match ev.kind {
        ChangeKind::Create => json!([{"key": "id", "value": ev.id.to_string()}]),
        _ => json!([]),
    };
    let operation_id = fresh_guid();
    let owning = json!({
        "Id": step.id.to_string(),
        "KeyAttributes": [],
        "LogicalName": "sdkmessageprocessingstep",
        "Name": if step.name.is_empty() { Value::Null } else { json!(step.name) },
        "RowVersion": null,
    });
    let inputs = json!([{"key": "Target", "value": target}]);
    let context = |stage: i64,
                   inputs: Value,
                   parent: Value,
                   pre: Vec<Value>,
                   post: Vec<Value>,
                   output: Value| {
        json!({
            "BusinessUnitId": ctx.business_unit.to_string(),
            "CorrelationId": ctx.correlation_id.to_string(),
            "Depth": 1,
            "InitiatingUserId": ctx.user.to_string(),
            "InputParameters": inputs,
            "IsExecutingOffline": false,
            "IsInTransaction": step.mode == 0,
            "IsOfflinePlayback": false,
            "IsolationMode": 1,
            "MessageName": message,
            "Mode": step.mode,
            "OperationCreatedOn": format!("/Date({}+0000)/", ctx.now_ms),
            "OperationId": operation_id.to_string(),
            "OrganizationId": ctx.organization_id.to_string(),
            "OrganizationName": ctx.organization_name,
            "OutputParameters": output,
            "OwningExtension": owning,
            "ParentContext": parent,
            "PostEntityImages": post,
            "PreEntityImages": pre,
            "PrimaryEntityId": ev.id.to_string(),
            "PrimaryEntityName": ent.logical_name,
            "RequestId": null,
            "SecondaryEntityName": "none",
            "SharedVariables": [],
            "Stage": stage,
            "UserId": step.impersonating.unwrap_or(ctx.user).to_string(),
        })
    };
    let mut parent_inputs = inputs.clone();
    if let Value::Array(a) = &mut parent_inputs
        && ev.kind != ChangeKind::Delete
    {
        a.push(json!({"key": "SuppressDuplicateDetection", "value": false}));
    }
    let parent = context(
        30,
        parent_inputs,
        Value::Null,
        Vec::new(),
        Vec::new(),
        json!([]),
    );
    let body = context(step.stage, inputs, parent, pre_images, post_images, output);
    let headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("x-request-id".to_string(), fresh_guid().to_string()),
        (
            "x-ms-dynamics-organization".to_string(),
            ctx.organization_host.to_string(),
        ),
        (
            "x-ms-dynamics-entity-name".to_string(),
            ent.logical_name.clone(),
        ),
        (
            "x-ms-dynamics-request-name".to_string(),
            message.to_string(),
        ),
        (
            "x-ms-correlation-request-id".to_string(),
            ctx.correlation_id.to_string(),
        ),
    ];
    outbound(step, body, headers)
}

/// Serializes a context and addresses it to the step's endpoint: an oversized body loses its
/// inputs, images and parent (with the size header); the endpoint's authentication is added.
fn outbound(step: &Step, mut body: Value, mut headers: Vec<(String, String)>) -> Outbound {
    let mut bytes = data_contract_json(&body);
    if bytes.len() > MAX_PAYLOAD {
        if let Value::Object(m) = &mut body {
            m.insert("ParentContext".into(), Value::Null);
            m.insert("InputParameters".into(), json!([]));
            m.insert("PreEntityImages".into(), json!([]));
            m.insert("PostEntityImages".into(), json!([]));
        }
        bytes = data_contract_json(&body);
        headers.push((
            "x-ms-dynamics-msg-size-exceeded".to_string(),
            "true".to_string(),
        ));
    }
    let mut url = step.url.clone();
    let mut query: Vec<(String, String)> = Vec::new();
    match step.authtype {
        4 => query.push(("code".into(), step.authvalue.clone())),
        5 => headers.extend(settings(&step.authvalue)),
        6 => query.extend(settings(&step.authvalue)),
        _ => {}
    }
    if !query.is_empty() {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &query {
            q.append_pair(k, v);
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&q.finish());
    }
    Outbound {
        url,
        headers,
        body: bytes,
        synchronous: step.mode == 0,
    }
}

/// The context of a custom API run (custom-api, "Select a Custom Processing Step Type"; the
/// context's members: reference/.../remoteexecutioncontext and "Understand the execution
/// context"): MessageName is the custom API's unique name, InputParameters its request
/// parameters (a bound one's row as `Target`, an EntityReference: custom-api, "Binding type"),
/// OutputParameters its response properties; PrimaryEntityName is `none` for an unbound one
/// and the bound table otherwise, with PrimaryEntityId the bound row (else the empty GUID).
fn message_call(store: &Store, ctx: &EventCtx, run: &MessageEvent, step: &Step) -> Outbound {
    let mut inputs: Vec<Value> = run
        .inputs
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    let (entity, id) = match run.bound {
        Some((table, id)) => {
            let name = store.entity(table).logical_name.clone();
            inputs.insert(
                0,
                json!({"key": "Target", "value": {
                    "__type": REF_TYPE,
                    "Id": id.to_string(),
                    "KeyAttributes": [],
                    "LogicalName": name,
                    "Name": null,
                    "RowVersion": null,
                }}),
            );
            (name, id)
        }
        None => ("none".to_string(), Guid([0; 16])),
    };
    let outputs: Vec<Value> = run
        .outputs
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    let body = json!({
        "BusinessUnitId": ctx.business_unit.to_string(),
        "CorrelationId": ctx.correlation_id.to_string(),
        "Depth": 1,
        "InitiatingUserId": ctx.user.to_string(),
        "InputParameters": inputs,
        "IsExecutingOffline": false,
        "IsInTransaction": step.mode == 0,
        "IsOfflinePlayback": false,
        "IsolationMode": 1,
        "MessageName": run.name,
        "Mode": step.mode,
        "OperationCreatedOn": format!("/Date({}+0000)/", ctx.now_ms),
        "OperationId": fresh_guid().to_string(),
        "OrganizationId": ctx.organization_id.to_string(),
        "OrganizationName": ctx.organization_name,
        "OutputParameters": outputs,
        "OwningExtension": {
            "Id": step.id.to_string(),
            "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep",
            "Name": if step.name.is_empty() { Value::Null } else { json!(step.name) },
            "RowVersion": null,
        },
        "ParentContext": null,
        "PostEntityImages": [],
        "PreEntityImages": [],
        "PrimaryEntityId": id.to_string(),
        "PrimaryEntityName": entity,
        "RequestId": null,
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": step.stage,
        "UserId": step.impersonating.unwrap_or(ctx.user).to_string(),
    });
    let headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("x-request-id".to_string(), fresh_guid().to_string()),
        (
            "x-ms-dynamics-organization".to_string(),
            ctx.organization_host.to_string(),
        ),
        ("x-ms-dynamics-entity-name".to_string(), entity.clone()),
        ("x-ms-dynamics-request-name".to_string(), run.name.clone()),
        (
            "x-ms-correlation-request-id".to_string(),
            ctx.correlation_id.to_string(),
        ),
    ];
    outbound(step, body, headers)
}

/// Serializes like DataContractJsonSerializer: solidus escaped as `\/`.
fn data_contract_json(v: &Value) -> Vec<u8> {
    v.to_string().replace('/', "\\/").into_bytes()
}

/// `<settings><setting name="k" value="v"/></settings>` → pairs, in order.
pub fn settings(xml: &str) -> Vec<(String, String)> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    let mut pending: VecDeque<(String, String)> = VecDeque::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if e.name().as_ref() == "setting" => {
                let mut name = None;
                let mut val = None;
                for a in e.attributes().flatten() {
                    let v = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map(|c| c.into_owned())
                        .unwrap_or_default();
                    match a.key.as_ref() {
                        "name" => name = Some(v),
                        "value" => val = Some(v),
                        _ => {}
                    }
                }
                if let Some(n) = name {
                    pending.push_back((n, val.unwrap_or_default()));
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out.extend(pending);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_xml_gives_name_value_pairs_in_order() {
        let pairs = settings(
            r#"<settings><setting name="x-secret" value="a&amp;b"/><setting name="k2" value="v2"></setting></settings>"#,
        );
        assert_eq!(
            pairs,
            vec![
                ("x-secret".to_string(), "a&b".to_string()),
                ("k2".to_string(), "v2".to_string())
            ]
        );
        assert!(settings("not xml at all").is_empty());
    }

    #[test]
    fn data_contract_json_escapes_solidus() {
        let v = json!({"d": "/Date(1000)/"});
        assert_eq!(
            String::from_utf8(data_contract_json(&v)).unwrap_or_default(),
            r#"{"d":"\/Date(1000)\/"}"#
        );
    }
}
