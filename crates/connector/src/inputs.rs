//! Inputs several actions share, with the labels and comments of the product brief.

use crate::definition::{Format, InputDef, Kind};

pub const CONNECTION: InputDef =
    InputDef::new("connection", "Connection", Kind::Connection).required();

pub const ENTITY_TYPE: InputDef = InputDef::new("entityType", "Entity Type", Kind::Text)
    .required()
    .comments("The type of Entity to query, usually a pluralized name")
    .example("accounts")
    .format(Format::Identifier);

pub const ENTITY_ID: InputDef = InputDef::new("entityId", "Entity ID", Kind::Text)
    .required()
    .comments("The ID of a specific Entity record")
    .example("00000000-0000-0000-0000-000000000002");

pub const FIELD_NAMES: InputDef = InputDef::new("fieldNames", "Field Name", Kind::StringList)
    .comments("The names of the fields to retrieve")
    .example("name, accountnumber")
    .format(Format::Identifiers);

pub const EXPAND: InputDef = InputDef::new("expand", "Expand Property Name", Kind::StringList)
    .comments("The names of entity properties to linked entities that should be included")
    .example("primarycontactid($select=fullname)");

pub const FILTER: InputDef = InputDef::new("filterExpression", "Filter Expression", Kind::Text)
    .comments("The filter expression that used for querying entity collections")
    .example("name eq 'Contoso'");

pub const FIELD_VALUES: InputDef = InputDef::new("fieldValues", "Field Value", Kind::KeyValueList)
    .comments("The names of the fields and their values to use when creating/updating a record")
    .example(r#"{"name": "Contoso"}"#);

pub const DYNAMIC_VALUES: InputDef = InputDef::new("dynamicValues", "Dynamic Values", Kind::Code)
    .example(r#"{"creditlimit": 1000}"#);

pub const NEXT_PAGE_ID: InputDef = InputDef::new("nextPageId", "Next Page Id", Kind::Text).comments(
    "The id or cookie to use for retrieving the next page of results when paginating through a large result set",
);

/// The entity named by metadata actions: the seed labels it "Entity ID", it takes a logical
/// name or a MetadataId.
pub const METADATA_ENTITY_ID: InputDef = InputDef::new("entityId", "Entity ID", Kind::Text)
    .required()
    .comments("The ID of a specific Entity record")
    .example("account");
