//! Change tracking: `Prefer: odata.track-changes` answers a collection with an
//! `@odata.deltaLink`; following it lists rows created or changed since, then deleted rows.
//! Built on the store's change log; the token is `<version>!<MM/dd/yyyy HH:mm:ss>`.

use std::collections::HashMap;

use crate::datetime;
use crate::error::DvError;
use crate::guid::Guid;
use crate::odata::query::QueryOptions;
use crate::render::{self, Annotations, Ctx, Selection};
use crate::store::{ChangeKind, Store};
use crate::webapi::{self, Req, Resp};

/// The code answered for a delta token older than the change-tracking window.
pub const EXPIRED_VERSION_STAMP: &str = "0x80044352";

fn token(store: &Store) -> String {
    let now = (store.clock)();
    let (y, m, d) = datetime::civil_from_days(now.div_euclid(86_400));
    let rem = now.rem_euclid(86_400);
    let text = format!(
        "{}!{m:02}/{d:02}/{y:04} {:02}:{:02}:{:02}",
        store.version(),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

fn delta_link(store: &Store, req: &Req) -> String {
    let mut link = format!("{}/{}?", req.api, req.path.trim_start_matches('/'));
    for p in req.query.split('&').filter(|p| !p.is_empty()) {
        let k = p.split('=').next().unwrap_or("");
        if matches!(
            k,
            "$deltatoken" | "%24deltatoken" | "$skiptoken" | "%24skiptoken"
        ) {
            continue;
        }
        link.push_str(p);
        link.push('&');
    }
    link.push_str("$deltatoken=");
    link.push_str(&token(store));
    link
}

fn unsupported(opts: &QueryOptions) -> Option<DvError> {
    let name = if opts.filter.is_some() {
        "$filter"
    } else if !opts.orderby.is_empty() {
        "$orderby"
    } else if !opts.expand.is_empty() {
        "$expand"
    } else if opts.top.is_some() {
        "$top"
    } else {
        return None;
    };
    Some(DvError::bad_request(format!(
        "The \"{name}\" query parameter isn't supported when Change Tracking is enabled."
    )))
}

/// Serves a tracked collection (initial request) or a delta link.
pub fn handle(store: &Store, req: &Req, e: usize, opts: &QueryOptions) -> Result<Resp, DvError> {
    if let Some(err) = unsupported(opts) {
        return Err(err);
    }
    let Some(raw) = &opts.deltatoken else {
        return initial(store, req, e, opts);
    };
    let version: u64 = raw
        .split('!')
        .next()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| DvError::bad_request(format!("The delta token '{raw}' is not valid.")))?;
    if version < store.delta_floor || version > store.version() {
        return Err(DvError::new(
            400,
            EXPIRED_VERSION_STAMP,
            "Version stamp associated with the client has expired. Please perform a full sync.",
        ));
    }
    let ent = store.entity(e);
    let start = store.changes.partition_point(|c| c.version <= version);
    // Per row: first and last change after the token, and the version of the last one.
    let mut seen: HashMap<Guid, (ChangeKind, ChangeKind, u64)> = HashMap::new();
    for c in &store.changes[start..] {
        if c.entity != e {
            continue;
        }
        seen.entry(c.id)
            .and_modify(|s| {
                s.1 = c.kind;
                s.2 = c.version;
            })
            .or_insert((c.kind, c.kind, c.version));
    }
    let mut changed: Vec<(u64, Guid)> = Vec::new();
    let mut deleted: Vec<(u64, Guid)> = Vec::new();
    for (id, (first, last, v)) in seen {
        if store.get(e, &id).is_some() {
            changed.push((v, id));
        } else if last == ChangeKind::Delete && first != ChangeKind::Create {
            deleted.push((v, id));
        }
    }
    changed.sort();
    deleted.sort();
    let sel = Selection::compile(store, e, opts, req.caller)?;
    let ctx = Ctx {
        store,
        api: &req.api,
        ann: Annotations::from_prefer(&req.prefer()),
        child_index: render::child_indexes(store, &sel, e),
    };
    let mut out = Vec::with_capacity(changed.len() * 400 + deleted.len() * 160 + 256);
    out.extend_from_slice(b"{\"@odata.context\":");
    render::write_str(
        &mut out,
        &format!(
            "{}/$metadata#{}{}/$delta",
            req.api,
            ent.entity_set_name,
            sel.context_list(opts)
        ),
    );
    out.extend_from_slice(b",\"@odata.deltaLink\":");
    render::write_str(&mut out, &delta_link(store, req));
    out.extend_from_slice(b",\"value\":[");
    let mut first = true;
    for (_, id) in &changed {
        if let Some(row) = store.get(e, id) {
            if !first {
                out.push(b',');
            }
            first = false;
            render::write_row(&mut out, &ctx, &sel, row, true);
        }
    }
    let deleted_context = format!(
        "{}/$metadata#{}/$deletedEntity",
        req.api, ent.entity_set_name
    );
    for (_, id) in &deleted {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"{\"@odata.context\":");
        render::write_str(&mut out, &deleted_context);
        out.extend_from_slice(b",\"id\":");
        render::write_str(&mut out, &id.to_string());
        out.extend_from_slice(b",\"reason\":\"deleted\"}");
    }
    out.extend_from_slice(b"]}");
    Ok(Resp::json(200, out))
}

/// The first request: every row (paged as usual), with a delta link on the last page.
fn initial(store: &Store, req: &Req, e: usize, opts: &QueryOptions) -> Result<Resp, DvError> {
    let link = delta_link(store, req);
    let mut resp = webapi::collection(store, req, e, opts, None)?;
    let has_next = resp
        .body
        .windows(b"\"@odata.nextLink\"".len())
        .any(|w| w == b"\"@odata.nextLink\"");
    if !has_next {
        // Insert the delta link right after @odata.context, before value.
        if let Some(pos) = find(&resp.body, b",\"value\":[") {
            let mut text = Vec::new();
            text.extend_from_slice(b",\"@odata.deltaLink\":");
            render::write_str(&mut text, &link);
            resp.body.splice(pos..pos, text);
        }
    }
    let mut applied = vec!["odata.track-changes".to_string()];
    resp.headers.retain(|(k, v)| {
        if k.eq_ignore_ascii_case("Preference-Applied") {
            applied.push(v.clone());
            false
        } else {
            true
        }
    });
    Ok(resp.header("Preference-Applied", applied.join(",")))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
