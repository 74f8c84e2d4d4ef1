//! The Web API's dispatcher: which handler answers a request below `/api/data/v9.x/`. The only
//! module that knows every handler, and one that no handler imports: the HTTP front
//! (`server.rs`) and `$batch` (`batch.rs`, for the requests inside a batch) call it. Reads of
//! rows live in `read.rs`, writes in `writes.rs`, metadata in `metadata.rs`, FetchXML in
//! `fetchxml.rs`, change tracking in `delta.rs`, the CSDL document in `csdl.rs`.

use crate::error::DvError;
use crate::odata::path;
use crate::odata::query::QueryOptions;
use crate::store::Store;
use crate::wire::{Req, Resp};
use crate::{metadata, read, writes};

/// Read-only requests run under the read lock; everything else under the write lock.
pub fn is_read(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

/// Handles a read request.
pub fn handle_read(store: &Store, req: &Req) -> Result<Resp, DvError> {
    let segs = path::segments(req.path)?;
    // The search functions (search.rs) run before the 501 for messages.
    if let Some(answer) = crate::search::handle(store, req, &segs) {
        return answer;
    }
    // Messages, casts and `?sql=` the emulator does not implement answer 501 (messages.rs).
    if let Some(e) = crate::messages::refusal(store, &segs, req.query) {
        return Err(e);
    }
    let Some(first) = segs.first() else {
        return Ok(read::service_document(store, req));
    };
    match first.name.as_str() {
        "$metadata" => return Ok(crate::csdl::document(store, req)),
        "WhoAmI" if first.key.as_deref().is_none_or(str::is_empty) && segs.len() == 1 => {
            return read::whoami(store, req);
        }
        "EntityDefinitions" | "RelationshipDefinitions" | "GlobalOptionSetDefinitions" => {
            return metadata::handle(store, req, &segs);
        }
        _ => {}
    }
    // Functions: built-in messages and custom APIs (messages.rs).
    if let Some(answer) = crate::messages::read(store, req, &segs) {
        return answer;
    }
    let Some(e) = store.schema.entity_by_set(&first.name) else {
        return Err(DvError::segment_not_found(&first.name));
    };
    let rest = &segs[1..];
    let opts = QueryOptions::parse(req.query)?;
    match (&first.key, rest) {
        (None, []) if opts.params.contains_key("fetchXml") => {
            let xml = opts.params.get("fetchXml").map_or("", String::as_str);
            crate::fetchxml::handle(store, req, e, xml, opts.count)
        }
        (None, []) if crate::delta::is_tracked(req, &opts) => {
            crate::delta::handle(store, req, e, &opts)
        }
        (None, []) => read::collection(store, req, e, &opts, None),
        (None, [s]) if s.name == "$count" && s.key.is_none() && opts.deltatoken.is_some() => {
            crate::delta::count(store, req, e, &opts)
        }
        (None, [s]) if s.name == "$count" && s.key.is_none() => {
            read::count(store, req, e, &opts, None)
        }
        (Some(k), rest) if let Some(answer) = crate::files::read(store, req, e, k, rest) => answer,
        (Some(k), rest) => read::entity(store, req, e, k, rest, &opts),
        (None, [s, ..]) => Err(DvError::segment_not_found(&s.name)),
    }
}

/// Handles a write request.
pub fn handle_write(store: &mut Store, req: &Req) -> Result<Resp, DvError> {
    let segs = path::segments(req.path)?;
    // The data-load switches of a write are checked before it runs (switches.rs).
    crate::switches::Switches::of(store, req)?;
    // The bulk messages bound to a table (bulk_messages.rs) run before the 501 for messages.
    if let Some((e, message)) = crate::bulk_messages::target(store, &segs) {
        return crate::bulk_messages::handle(store, req, e, message);
    }
    // The file messages (files.rs) and the search messages (search.rs) run before the 501 too.
    if let Some(answer) = crate::files::message(store, req, &segs) {
        return answer;
    }
    if let Some(answer) = crate::search::handle(store, req, &segs) {
        return answer;
    }
    if let Some(e) = crate::messages::refusal(store, &segs, req.query) {
        return Err(e);
    }
    let Some(first) = segs.first() else {
        return Err(DvError::method_not_allowed(
            req.method,
            "the service document",
        ));
    };
    match first.name.as_str() {
        "$batch" => {
            return Err(DvError::new(
                501,
                crate::error::ODATA_ERROR,
                "$batch is not implemented by the emulator yet.",
            ));
        }
        "WhoAmI" => {
            return Err(DvError::method_not_allowed(
                req.method,
                "the function WhoAmI",
            ));
        }
        "EntityDefinitions" | "RelationshipDefinitions" | "GlobalOptionSetDefinitions" => {
            return metadata::handle_write(store, req, &segs);
        }
        _ => {}
    }
    // Actions: built-in messages and custom APIs (messages.rs).
    if let Some(answer) = crate::messages::write(store, req, &segs) {
        return answer;
    }
    let Some(e) = store.schema.entity_by_set(&first.name) else {
        return Err(DvError::segment_not_found(&first.name));
    };
    if let Some(k) = &first.key
        && let Some(answer) = crate::files::write(store, req, e, k, &segs[1..])
    {
        return answer;
    }
    // The rows of a many-to-many intersect table are written by (dis)associating only.
    if let Some(refusal) = crate::many_to_many::write_refusal(store, e, req.method) {
        return Err(refusal);
    }
    writes::handle(store, req, e, first, &segs[1..])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::ODATA_ERROR;

    fn seeded() -> Store {
        let mut store = Store::new(Arc::new(crate::catalog::schema()));
        crate::seed::seed(&mut store, 3, &[], "client");
        store
    }

    fn get(store: &Store, path: &str, query: &str) -> Result<Resp, DvError> {
        handle_read(store, &Req::test("GET", path, query, &[], b""))
    }

    #[test]
    fn reads_reach_the_handler_their_path_names() {
        let store = seeded();
        let context = |r: Resp| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            body["@odata.context"].as_str().unwrap_or("").to_string()
        };
        let api = "http://127.0.0.1/api/data/v9.2";
        assert_eq!(
            context(get(&store, "", "").unwrap()),
            format!("{api}/$metadata")
        );
        assert_eq!(
            context(get(&store, "WhoAmI", "").unwrap()),
            format!("{api}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")
        );
        assert_eq!(
            context(get(&store, "accounts", "$select=name").unwrap()),
            format!("{api}/$metadata#accounts(name)")
        );
        let count = get(&store, "accounts/$count", "").unwrap();
        assert_eq!(count.content_type, Some("text/plain"));
        let csdl = get(&store, "$metadata", "").unwrap();
        assert!(csdl.body.starts_with(b"<?xml"));
        let metadata = get(&store, "EntityDefinitions(LogicalName='account')", "").unwrap();
        assert!(context(metadata).ends_with("EntityDefinitions/$entity"));
    }

    #[test]
    fn unknown_segments_are_the_documented_404() {
        let store = seeded();
        let err = get(&store, "acounts", "").unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (404, ODATA_ERROR));
        assert!(err.message.contains("'acounts'"), "{}", err.message);
        let below = get(&store, "accounts/nosuchthing", "").unwrap_err();
        assert_eq!(below.status, 404);
    }

    #[test]
    fn writes_to_what_cannot_be_written_are_refused() {
        let mut store = seeded();
        let mut write = |method, path| {
            handle_write(&mut store, &Req::test(method, path, "", &[], b"{}")).unwrap_err()
        };
        assert_eq!(write("POST", "").status, 405);
        assert_eq!(write("POST", "WhoAmI").status, 405);
        assert_eq!(write("DELETE", "RelationshipDefinitions").status, 501);
        assert_eq!(write("POST", "acounts").status, 404);
    }
}
