//! The partitions of elastic tables, as reads and deletes name them
//! ("Use elastic tables using code", learn.microsoft.com/power-apps/developer/data-platform/use-elastic-tables):
//!
//! - "For `GET` and `DELETE` operations, you can use a special query parameter `partitionId` to
//!   specify the value of `partitionid` column" (`contoso_sensordatas(<id>)?partitionId='device-001'`);
//! - the `KeyForNoSqlEntityWithPKPartitionId` key names it beside the primary key
//!   (`contoso_sensordatas(contoso_sensordataid=<id>,partitionid='device-001')`);
//! - "Query rows of an elastic table": `GET contoso_sensordatas?partitionId=device-001` returns
//!   the rows of that partition only.
//!
//! A row named with a partition it is not in is not found, as a row in no partition of that
//! name would not be. Standard tables ignore the parameter here, as the emulator has nothing to
//! partition there. The rows' own `partitionid` defaults to their primary key (`writes`).

use crate::error::DvError;
use crate::guid::Guid;
use crate::odata::filter::Lit;
use crate::odata::path::{self, Key};
use crate::odata::query::parse_pairs;
use crate::schema::{Entity, TableId};
use crate::store::{Row, Store, Val};

/// The partition a request's `partitionId` query parameter names on an elastic table (quotes
/// around the value, as the documentation writes it, are not part of it).
pub fn requested(ent: &Entity, query: &str) -> Option<String> {
    if ent.table_type != "Elastic" {
        return None;
    }
    parse_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "partitionId")
        .map(|(_, v)| {
            let v = v.trim();
            v.strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                .unwrap_or(v)
                .replace("''", "'")
        })
}

/// Whether a row of an elastic table is in `partition`.
pub fn holds(ent: &Entity, row: &Row, partition: &str) -> bool {
    ent.attr("partitionid")
        .is_some_and(|c| matches!(&row.vals[c], Val::Str(s) if &**s == partition))
}

/// The documented 404 for row `id` of table `e` when the request names it with a partition
/// (`partitionId=` or the `partitionid` of its key) that does not hold it.
pub fn check(
    store: &Store,
    e: TableId,
    id: Guid,
    raw_key: &str,
    query: &str,
) -> Result<(), DvError> {
    let ent = store.entity(e);
    if ent.table_type != "Elastic" {
        return Ok(());
    }
    let from_key = match path::parse_key(raw_key) {
        Ok(Key::Named(pairs)) => pairs.into_iter().find_map(|(k, v)| match v {
            Lit::Str(s) if k == "partitionid" => Some(s),
            _ => None,
        }),
        _ => None,
    };
    let Some(row) = store.get(e, &id) else {
        return Ok(());
    };
    for partition in [from_key, requested(ent, query)].into_iter().flatten() {
        if !holds(ent, row, &partition) {
            return Err(DvError::not_found(&ent.logical_name, &id));
        }
    }
    Ok(())
}
