//! `EntityDefinitions`, their `Attributes`, `Keys` and relationships, and
//! `RelationshipDefinitions`, generated from the same schema that types the rows.
//! Metadata queries are not paged and rows carry no ETag.
//!
//! `$select` is checked against the type the path declares (`types`): a property the
//! type does not have answers the documented 400, one the emulator does not render answers 501.
//!
//! - `json`: the metadata objects, generated from the schema, and what they render;
//! - `read`: the paths, `$select`, `$filter` (through `odata::eval`: there is one `$filter`
//!   evaluator) and `$expand`;
//! - `write`: column creation and updates;
//! - `types`: the properties of each metadata type, as the Web API reference lists them.

mod define_table;
mod json;
mod option_sets;
mod read;
mod relationships;
mod types;
mod write;

pub use read::handle;
pub use write::handle_write;

use crate::error::DvError;
use crate::odata::filter::Lit;
use crate::odata::path::{self, Key, Segment};
use crate::schema::TableId;
use crate::store::Store;

/// The table an `EntityDefinitions(...)` segment names: by `MetadataId`, `LogicalName='x'` or
/// `'x'`; else the documented 404.
fn find_entity(store: &Store, seg: &Segment) -> Result<TableId, DvError> {
    let raw = seg.key.as_deref().unwrap_or("");
    let found = match path::parse_key(raw)? {
        Key::Id(g) => store
            .schema
            .tables()
            .find(|(_, e)| e.metadata_id == g)
            .map(|(id, _)| id),
        Key::Named(pairs) => match pairs.as_slice() {
            [(k, Lit::Str(v))] if k == "LogicalName" => store.schema.entity(v),
            _ => None,
        },
        Key::Single(Lit::Str(v)) => store.schema.entity(&v),
        Key::Single(_) => None,
    };
    found.ok_or_else(|| {
        DvError::new(
            404,
            crate::error::OBJECT_DOES_NOT_EXIST,
            format!("Could not find entity with key '{raw}'."),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::OBJECT_DOES_NOT_EXIST;

    #[test]
    fn an_entity_definition_is_found_by_logical_name_or_metadata_id() {
        let store = Store::new(Arc::new(crate::catalog::schema()));
        let accounts = store.schema.entity("account").unwrap();
        let id = store.entity(accounts).metadata_id;
        for key in [
            "LogicalName='account'".to_string(),
            "'account'".to_string(),
            id.to_string(),
        ] {
            let seg = &path::segments(&format!("EntityDefinitions({key})")).unwrap()[0];
            assert_eq!(find_entity(&store, seg).ok(), Some(accounts), "{key}");
        }
        let seg = &path::segments("EntityDefinitions(LogicalName='acount')").unwrap()[0];
        let err = find_entity(&store, seg).unwrap_err();
        assert_eq!(
            (err.status, err.code.as_str()),
            (404, OBJECT_DOES_NOT_EXIST)
        );
        assert!(err.message.contains("'acount'"), "{}", err.message);
    }
}
