//! Messages that report on the environment.

use serde_json::{Map, Value};

use super::Output;
use super::params::Params;
use crate::error::{self, DvError};
use crate::store::Store;

/// The version `RetrieveVersion` reports: a Dataverse 9.2 build number, fixed so tests can
/// compare it.
pub const VERSION: &str = "9.2.24101.00000";

/// `RetrieveVersion()`: "Contains the data that is needed to retrieve the version number of the
/// Microsoft Dynamics 365 Server." Response: `RetrieveVersionResponse { Version: Edm.String }`
/// (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/retrieveversion).
pub fn retrieve_version(params: &Params) -> Result<Output, DvError> {
    params.check(&super::builtin_params(&params.op))?;
    let mut out = Map::new();
    out.insert("Version".into(), Value::String(VERSION.into()));
    Ok(Output::Properties(out))
}

/// `RetrieveTotalRecordCount(EntityNames=@p1)?@p1=["account"]`: the number of rows of each
/// table, as `EntityRecordCountCollection { Count, IsReadOnly, Keys, Values }`
/// (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/retrievetotalrecordcount;
/// "the count is from a snapshot within the last 24 hours": the emulator's snapshot is the
/// current table). A name that is no table is refused naming it.
pub fn retrieve_total_record_count(store: &Store, params: &Params) -> Result<Output, DvError> {
    params.check(&super::builtin_params(&params.op))?;
    let names: Vec<&str> = params
        .get("EntityNames")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut values = Vec::new();
    for name in &names {
        let e = store.schema.entity(name).ok_or_else(|| {
            DvError::new(
                404,
                error::OBJECT_DOES_NOT_EXIST,
                format!(
                    "The entity with a name = '{name}' named in EntityNames was not found in the MetadataCache."
                ),
            )
        })?;
        values.push(store.rows(e).len());
    }
    let mut out = Map::new();
    out.insert(
        "EntityRecordCountCollection".into(),
        serde_json::json!({
            "Count": names.len(),
            "IsReadOnly": false,
            "Keys": names,
            "Values": values,
        }),
    );
    Ok(Output::Properties(out))
}
