//! Power Automate flows as the emulator sees them: rows of the `callbackregistration` table
//! ("Callback Registration that stores configuration",
//! learn.microsoft.com/power-apps/developer/data-platform/reference/entities/callbackregistration)
//! subscribe a URL to changes of a table (`entityname`, `message`, `filteringattributes`). A
//! matching write queues one asynchronous POST to that URL, unless the write sent
//! `MSCRM.SuppressCallbackRegistrationExpanderJob: true` ("Bypass Power Automate flows",
//! .../bypass-power-automate-flows; switches.rs). Microsoft does not document what a flow's
//! trigger receives, so the body is the emulator's own, stated here: `{"callbackregistrationid",
//! "message" ("Create" | "Update" | "Delete"), "entityname", "id", "row"}` with the row as the
//! emulator's test snapshots render it (null after a delete).

use serde_json::{Value, json};

use crate::guid::Guid;
use crate::store::{ChangeKind, Store, Val, WriteEvent};
use crate::webhooks::Outbound;

/// The header that marks a call as a flow callback (the emulator's own, for the filter in
/// switches.rs and for tests).
pub const CALLBACK_HEADER: &str = "x-ms-emulator-callbackregistrationid";

struct Registration {
    id: Guid,
    table: String,
    /// The `message` choice: which of create (1), delete (2), update (3) and their
    /// combinations (4–7) it listens to.
    message: i64,
    url: String,
    filtering: Vec<String>,
}

fn registrations(store: &Store) -> Vec<Registration> {
    let Some(e) = store.schema.entity("callbackregistration") else {
        return Vec::new();
    };
    let ent = store.entity(e);
    let text = |vals: &[Val], col: &str| match ent.attr(col).map(|c| &vals[c]) {
        Some(Val::Str(s)) => s.to_string(),
        _ => String::new(),
    };
    store
        .rows(e)
        .iter()
        .map(|(id, r)| Registration {
            id: *id,
            table: text(&r.vals, "entityname").to_lowercase(),
            message: match ent.attr("message").map(|c| &r.vals[c]) {
                Some(Val::Int(n)) => *n,
                _ => 0,
            },
            url: text(&r.vals, "url"),
            filtering: text(&r.vals, "filteringattributes")
                .split(',')
                .map(|a| a.trim().to_lowercase())
                .filter(|a| !a.is_empty())
                .collect(),
        })
        .collect()
}

fn listens(message: i64, kind: ChangeKind) -> bool {
    match kind {
        ChangeKind::Create => matches!(message, 1 | 4 | 5 | 7),
        ChangeKind::Delete => matches!(message, 2 | 5 | 6 | 7),
        ChangeKind::Update => matches!(message, 3 | 4 | 6 | 7),
    }
}

/// The flow callbacks the captured writes trigger.
pub fn calls(store: &Store, events: &[WriteEvent]) -> Vec<Outbound> {
    let regs = registrations(store);
    if regs.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for ev in events {
        let ent = store.entity(ev.entity);
        for reg in &regs {
            if reg.table != ent.logical_name || !listens(reg.message, ev.kind) || reg.url.is_empty()
            {
                continue;
            }
            if ev.kind == ChangeKind::Update && !reg.filtering.is_empty() {
                let hit = ev
                    .changed
                    .iter()
                    .any(|&c| reg.filtering.contains(&ent.attributes[c].logical_name));
                if !hit {
                    continue;
                }
            }
            let row = match (&ev.post, store.get(ev.entity, &ev.id)) {
                (Some(_), Some(r)) => crate::render::row_to_json(store, ev.entity, r),
                _ => Value::Null,
            };
            let message = match ev.kind {
                ChangeKind::Create => "Create",
                ChangeKind::Update => "Update",
                ChangeKind::Delete => "Delete",
            };
            let body = json!({
                "callbackregistrationid": reg.id.to_string(),
                "message": message,
                "entityname": ent.logical_name,
                "id": ev.id.to_string(),
                "row": row,
            });
            out.push(Outbound {
                url: reg.url.clone(),
                headers: vec![
                    ("Content-Type".into(), "application/json".into()),
                    (CALLBACK_HEADER.into(), reg.id.to_string()),
                ],
                body: body.to_string().into_bytes(),
                synchronous: false,
            });
        }
    }
    out
}
