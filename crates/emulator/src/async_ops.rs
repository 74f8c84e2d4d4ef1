//! Background operations: a custom API called with `Prefer: respond-async` is accepted (202)
//! and run later ("Background operations (preview)",
//! learn.microsoft.com/power-apps/developer/data-platform/background-operations). The request
//! becomes a `backgroundoperations` row (Ready / Waiting For Resources); a runner thread of the
//! emulator picks it up after [`crate::Config::background_operation_delay`], marks it Locked / In
//! Progress, runs the custom API and completes it: Succeeded with `outputparameters`, or Failed
//! with `errorcode` and `errormessage`. A row set to Locked / Canceling before it runs (a PATCH
//! of the row, or DELETE on the status monitor resource) completes as Canceled without
//! running. The status monitor resource `GET|DELETE [org]/api/backgroundoperation/{id}` is
//! served too.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::error::{self, DvError};
use crate::guid::Guid;
use crate::messages::params::Params;
use crate::messages::{Binding, Call, Kind};
use crate::schema::TableId;
use crate::server::App;
use crate::store::{Store, Val};
use crate::wire::{Req, Resp};

/// backgroundoperationstatecode / backgroundoperationstatuscode values (background-operations,
/// "Background operations table").
const READY: i64 = 0;
const LOCKED: i64 = 2;
const COMPLETED: i64 = 3;
const WAITING: i64 = 0;
const IN_PROGRESS: i64 = 20;
const CANCELING: i64 = 22;
const SUCCEEDED: i64 = 30;
const FAILED: i64 = 31;
const CANCELED: i64 = 32;

/// Default time to live of a row: 90 days.
const TTL_SECONDS: i64 = 90 * 86_400;

/// Whether the request asked to run in the background (`Prefer: respond-async`).
pub fn wants_async(req: &Req) -> bool {
    req.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("prefer"))
        .flat_map(|(_, v)| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

/// `[org]/api/backgroundoperation/{id}`: the status monitor resource (not part of the Web API:
/// no `/data/v9.x`).
fn monitor_url(req: &Req, id: Guid) -> String {
    let org = req.api.split("/api/data/").next().unwrap_or(&req.api);
    format!("{org}/api/backgroundoperation/{id}")
}

fn table(store: &Store) -> Result<TableId, DvError> {
    store.schema.required("backgroundoperation")
}

fn col(store: &Store, e: TableId, name: &str) -> Result<usize, DvError> {
    store
        .entity(e)
        .attr(name)
        .ok_or_else(|| DvError::internal(&format!("backgroundoperation has no {name}")))
}

/// Accepts a custom API call to run in the background: checks its parameters, records the
/// operation and answers `202 Accepted` with `Location` (the status monitor resource) and
/// `x-ms-dyn-backgroundoperationid`.
pub fn start(store: &mut Store, req: &Req, call: &Call, params: &Params) -> Result<Resp, DvError> {
    let api = crate::messages::custom_api::find(store, &call.name)
        .ok_or_else(|| DvError::segment_not_found(&call.name))?;
    params.check(&api.parameters)?;
    // "Request a callback": the emulator calls no one back; accepting the preference and
    // never calling would be a plausible wrong answer.
    let callback = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("prefer"))
        .flat_map(|(_, v)| v.split([',', ';']))
        .any(|p| p.trim().to_ascii_lowercase().starts_with("odata.callback"));
    if callback {
        return Err(DvError::not_implemented(
            "callbacks of background operations (Prefer: odata.callback)",
        ));
    }
    let e = table(store)?;
    let mut inputs: Vec<Value> = params
        .values
        .iter()
        .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
        .collect();
    if let Binding::Row(t, id) = call.binding {
        inputs.push(serde_json::json!({
            "Key": "Target",
            "Value": format!("{}({id})", store.entity(t).entity_set_name),
        }));
    }
    let mut body = Map::new();
    body.insert("name".into(), Value::String(api.unique_name.clone()));
    body.insert(
        "displayname".into(),
        Value::String(api.display_name.clone()),
    );
    body.insert("backgroundoperationstatecode".into(), Value::from(READY));
    body.insert("backgroundoperationstatuscode".into(), Value::from(WAITING));
    body.insert(
        "inputparameters".into(),
        Value::String(Value::Array(inputs).to_string()),
    );
    body.insert("retrycount".into(), Value::from(0));
    body.insert("runas".into(), Value::String(req.caller.user.to_string()));
    body.insert("ttlinseconds".into(), Value::from(TTL_SECONDS));
    let id = crate::writes::create_from_json(store, req, e, &body)?;
    Ok(Resp::empty(202)
        .header("Location", monitor_url(req, id))
        .header("x-ms-dyn-backgroundoperationid", id.to_string())
        .header("Preference-Applied", "respond-async"))
}

fn int(v: &Val) -> i64 {
    match v {
        Val::Int(n) => *n,
        _ => -1,
    }
}

fn text(v: &Val) -> String {
    match v {
        Val::Str(s) => s.to_string(),
        _ => String::new(),
    }
}

/// The call a row records: its custom API, its parameters and (for a bound one) its row.
fn recorded_call(store: &Store, name: &str, inputs: &str) -> Result<(Call, Params), DvError> {
    let api = crate::messages::custom_api::find(store, name)
        .ok_or_else(|| DvError::segment_not_found(name))?;
    let pairs: Vec<Value> = serde_json::from_str(inputs).unwrap_or_default();
    let mut values = Map::new();
    let mut binding = Binding::Unbound;
    for p in pairs {
        let (Some(k), Some(v)) = (p.get("Key").and_then(Value::as_str), p.get("Value")) else {
            continue;
        };
        if k == "Target" && api.binding_type == 1 {
            let (t, id) = crate::writes::resolve_reference(store, v.as_str().unwrap_or(""))?;
            binding = Binding::Row(t, id);
        } else {
            values.insert(k.to_string(), v.clone());
        }
    }
    let call = Call {
        name: api.unique_name.clone(),
        kind: if api.is_function {
            Kind::Function
        } else {
            Kind::Action
        },
        binding,
        args: None,
        custom: Some(api.id),
    };
    Ok((
        call,
        Params {
            op: api.unique_name,
            values,
        },
    ))
}

/// The number Dataverse gives an error code in `errorcode` (`0x80040203` → -2147220989).
fn code_number(code: &str) -> i64 {
    u32::from_str_radix(code.trim_start_matches("0x"), 16).map_or(0, |n| i64::from(n as i32))
}

/// Runs (or cancels) the operations that are due; returns whether any was.
fn step(
    store: &mut Store,
    seen: &mut HashMap<Guid, Instant>,
    delay: Duration,
) -> Result<(), DvError> {
    let e = table(store)?;
    let (st, sc) = (
        col(store, e, "backgroundoperationstatecode")?,
        col(store, e, "backgroundoperationstatuscode")?,
    );
    let now = Instant::now();
    let mut due = Vec::new();
    for (id, row) in store.rows(e) {
        let (state, status) = (int(&row.vals[st]), int(&row.vals[sc]));
        if state == LOCKED && status == CANCELING {
            due.push((*id, true));
        } else if state == READY {
            let first = *seen.entry(*id).or_insert(now);
            if now.duration_since(first) >= delay {
                due.push((*id, false));
            }
        }
    }
    seen.retain(|id, _| store.get(e, id).is_some_and(|r| int(&r.vals[st]) == READY));
    let clock = (store.clock)();
    for (id, cancel) in due {
        let set = |store: &Store, pairs: &[(&str, Val)]| -> Result<Vec<(usize, Val)>, DvError> {
            pairs
                .iter()
                .map(|(c, v)| Ok((col(store, e, c)?, v.clone())))
                .collect()
        };
        if cancel {
            let cols = set(
                store,
                &[
                    ("backgroundoperationstatecode", Val::Int(COMPLETED)),
                    ("backgroundoperationstatuscode", Val::Int(CANCELED)),
                    ("endtime", Val::Date(clock)),
                ],
            )?;
            store.update(e, id, cols)?;
            continue;
        }
        let cols = set(
            store,
            &[
                ("backgroundoperationstatecode", Val::Int(LOCKED)),
                ("backgroundoperationstatuscode", Val::Int(IN_PROGRESS)),
                ("starttime", Val::Date(clock)),
            ],
        )?;
        store.update(e, id, cols)?;
        let (name, inputs) = match store.get(e, &id) {
            Some(r) => (
                text(&r.vals[col(store, e, "name")?]),
                text(&r.vals[col(store, e, "inputparameters")?]),
            ),
            None => continue,
        };
        let result = recorded_call(store, &name, &inputs)
            .and_then(|(call, params)| crate::messages::custom_api::run(store, &call, &params));
        let cols = match result {
            Ok(out) => {
                let props = match out {
                    crate::messages::Output::Properties(p) => p,
                    _ => Map::new(),
                };
                let pairs: Vec<Value> = props
                    .iter()
                    .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
                    .collect();
                set(
                    store,
                    &[
                        ("backgroundoperationstatecode", Val::Int(COMPLETED)),
                        ("backgroundoperationstatuscode", Val::Int(SUCCEEDED)),
                        (
                            "outputparameters",
                            Val::str(&Value::Array(pairs).to_string()),
                        ),
                        ("endtime", Val::Date(clock)),
                    ],
                )?
            }
            Err(err) => set(
                store,
                &[
                    ("backgroundoperationstatecode", Val::Int(COMPLETED)),
                    ("backgroundoperationstatuscode", Val::Int(FAILED)),
                    ("errorcode", Val::Int(code_number(&err.code))),
                    ("errormessage", Val::str(&err.message)),
                    ("endtime", Val::Date(clock)),
                ],
            )?,
        };
        store.update(e, id, cols)?;
    }
    Ok(())
}

/// Starts the runner thread; it stops when the emulator is dropped.
pub fn spawn(app: Weak<App>, delay: Duration) {
    let _ = std::thread::Builder::new()
        .name("dataverse-emulator-background-operations".into())
        .spawn(move || {
            let mut seen = HashMap::new();
            loop {
                std::thread::sleep(Duration::from_millis(20));
                let Some(app) = app.upgrade() else {
                    return;
                };
                let pending = {
                    let store = app.store.read().unwrap_or_else(|p| p.into_inner());
                    has_pending(&store)
                };
                if pending {
                    let mut store = app.store.write().unwrap_or_else(|p| p.into_inner());
                    let _ = step(&mut store, &mut seen, delay);
                }
            }
        });
}

fn has_pending(store: &Store) -> bool {
    let Ok(e) = table(store) else {
        return false;
    };
    let Some(st) = store.entity(e).attr("backgroundoperationstatecode") else {
        return false;
    };
    store
        .rows(e)
        .values()
        .any(|r| matches!(int(&r.vals[st]), READY | LOCKED))
}

type Parts = (u16, Vec<(String, String)>, Vec<u8>);

fn json(status: u16, body: Value) -> Parts {
    (
        status,
        vec![("Content-Type".into(), "application/json".into())],
        body.to_string().into_bytes(),
    )
}

/// The status monitor resource: `GET` answers the state, status and (once succeeded) the
/// output parameters, or the error; `DELETE` cancels an operation that has not completed
/// (background-operations, "Poll the status monitor resource", "Send a DELETE request to the
/// status monitor resource"). Like the Web API, it needs a valid bearer token.
pub fn monitor(app: &App, method: &str, id: &str, headers: &[(String, String)]) -> Parts {
    let token = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let valid = token.is_some_and(|t| {
        app.auth
            .lock()
            .map(|a| a.validate(&t).is_some())
            .unwrap_or(false)
    });
    if app.config.require_auth && !valid {
        return json(
            401,
            serde_json::json!({"error": {
                "code": error::NOT_AUTHENTICATED,
                "message": "Bearer token is missing, expired or not valid for this organization.",
            }}),
        );
    }
    let not_found = || {
        json(
            404,
            serde_json::json!({"error": {"message": format!("Could not find item '{id}'.")}}),
        )
    };
    let Some(gid) = Guid::parse(id) else {
        return not_found();
    };
    let mut store = app.store.write().unwrap_or_else(|p| p.into_inner());
    let Ok(e) = table(&store) else {
        return not_found();
    };
    let Some(row) = store.get(e, &gid) else {
        return not_found();
    };
    let get = |name: &str| {
        store
            .entity(e)
            .attr(name)
            .map(|c| row.vals[c].clone())
            .unwrap_or(Val::Null)
    };
    let (state, status) = (
        int(&get("backgroundoperationstatecode")),
        int(&get("backgroundoperationstatuscode")),
    );
    match method {
        "GET" => {
            let mut body = Map::new();
            body.insert("backgroundOperationStateCode".into(), Value::from(state));
            body.insert("backgroundOperationStatusCode".into(), Value::from(status));
            if status == FAILED {
                body.insert(
                    "backgroundOperationErrorCode".into(),
                    Value::from(int(&get("errorcode"))),
                );
                body.insert(
                    "backgroundOperationErrorMessage".into(),
                    Value::String(text(&get("errormessage"))),
                );
            }
            if status == SUCCEEDED {
                let pairs: Vec<Value> =
                    serde_json::from_str(&text(&get("outputparameters"))).unwrap_or_default();
                for p in pairs {
                    if let (Some(k), Some(v)) =
                        (p.get("Key").and_then(Value::as_str), p.get("Value"))
                    {
                        body.insert(k.to_string(), v.clone());
                    }
                }
            }
            json(200, Value::Object(body))
        }
        "DELETE" => {
            if state == COMPLETED {
                return json(
                    400,
                    serde_json::json!({"error": {
                        "code": error::INVALID_STATE,
                        "message": "Canceling background operation is not allowed after it is in terminal state.",
                    }}),
                );
            }
            let cols = [
                ("backgroundoperationstatecode", LOCKED),
                ("backgroundoperationstatuscode", CANCELING),
            ]
            .iter()
            .filter_map(|(c, v)| Some((store.entity(e).attr(c)?, Val::Int(*v))))
            .collect();
            if let Err(err) = store.update(e, gid, cols) {
                return json(
                    err.status,
                    serde_json::json!({"error": {"code": err.code, "message": err.message}}),
                );
            }
            json(
                200,
                serde_json::json!({
                    "backgroundOperationStateCode": LOCKED,
                    "backgroundOperationStatusCode": CANCELING,
                }),
            )
        }
        m => json(
            405,
            serde_json::json!({"error": {
                "code": error::ODATA_ERROR,
                "message": format!("The HTTP method '{m}' is not supported on the status monitor resource: use GET or DELETE."),
            }}),
        ),
    }
}
