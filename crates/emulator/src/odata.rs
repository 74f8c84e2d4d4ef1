//! OData v4 as Dataverse speaks it: paths, query options, `$filter`.

pub mod eval;
pub mod filter;
pub mod path;
pub mod query;
