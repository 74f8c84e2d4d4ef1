//! The Web API below `/api/data/v9.x/`: routing. Reads of rows live in `read.rs`, writes in
//! `writes.rs`, metadata in `metadata_api.rs`.

use crate::error::DvError;
use crate::odata::path;
use crate::odata::query::QueryOptions;
use crate::store::Store;
use crate::wire::{Req, Resp};
use crate::{metadata_api, read, writes};

/// Read-only requests run under the read lock; everything else under the write lock.
pub fn is_read(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

/// Handles a read request.
pub fn handle_read(store: &Store, req: &Req) -> Result<Resp, DvError> {
    let segs = path::segments(req.path)?;
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
            return metadata_api::handle(store, req, &segs);
        }
        _ => {}
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
        (Some(k), rest) => read::entity(store, req, e, k, rest, &opts),
        (None, [s, ..]) => Err(DvError::segment_not_found(&s.name)),
    }
}

/// Handles a write request.
pub fn handle_write(store: &mut Store, req: &Req) -> Result<Resp, DvError> {
    let segs = path::segments(req.path)?;
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
        "EntityDefinitions" => return metadata_api::handle_write(store, req, &segs),
        "RelationshipDefinitions" | "GlobalOptionSetDefinitions" => {
            return Err(DvError::new(
                501,
                crate::error::ODATA_ERROR,
                "Changes to relationships and global choices are not implemented by the emulator.",
            ));
        }
        _ => {}
    }
    let Some(e) = store.schema.entity_by_set(&first.name) else {
        return Err(DvError::segment_not_found(&first.name));
    };
    writes::handle(store, req, e, first, &segs[1..])
}
