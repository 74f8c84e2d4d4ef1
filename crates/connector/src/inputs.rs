//! Inputs several actions share, with the labels and comments of the product brief.

use crate::definition::{Format, InputDef, Kind};

pub const CONNECTION: InputDef =
    InputDef::new("connection", "Connection", Kind::Connection).required();

pub const ENTITY_TYPE: InputDef = InputDef::new("entityType", "Entity Type", Kind::Text)
    .required()
    .comments("The type of Entity to query, usually a pluralized name")
    .example("accounts")
    .data_source("entity-types")
    .format(Format::Identifier);

pub const ENTITY_ID: InputDef = InputDef::new("entityId", "Entity ID", Kind::Text)
    .required()
    .comments("The ID of a specific Entity record")
    .example("00000000-0000-0000-0000-000000000002");

pub const FIELD_NAMES: InputDef = InputDef::new("fieldNames", "Field Name", Kind::StringList)
    .comments("The names of the fields to retrieve")
    .example("name, accountnumber")
    .data_source("columns")
    .format(Format::Identifiers);

pub const EXPAND: InputDef = InputDef::new("expand", "Expand Property Name", Kind::StringList)
    .comments("The names of entity properties to linked entities that should be included")
    .example("primarycontactid($select=fullname)");

pub const FILTER: InputDef = InputDef::new("filterExpression", "Filter Expression", Kind::Text)
    .comments("The filter expression that used for querying entity collections")
    .example("name eq 'Contoso'");

pub const FIELD_VALUES: InputDef = InputDef::new("fieldValues", "Field Value", Kind::FieldMap)
    .comments("The names of the fields and their values to use when creating/updating a record")
    .example(r#"{"name": "Contoso"}"#);

pub const DYNAMIC_VALUES: InputDef = InputDef::new("dynamicValues", "Dynamic Values", Kind::Code)
    .example(r#"{"creditlimit": 1000, "primarycontactid": {"table": "contacts", "id": "00000000-0000-0000-0000-000000000001"}}"#);

pub const NEXT_PAGE_ID: InputDef = InputDef::new("nextPageId", "Next Page Id", Kind::Text).comments(
    "The id or cookie to use for retrieving the next page of results when paginating through a large result set",
);

/// The entity named by metadata actions: the seed labels it "Entity ID", it takes a logical
/// name or a MetadataId.
pub const METADATA_ENTITY_ID: InputDef = InputDef::new("entityId", "Entity ID", Kind::Text)
    .required()
    .comments("The ID of a specific Entity record")
    .example("account")
    .data_source("tables");

pub const IMPERSONATE_USER_ID: InputDef = InputDef::new("impersonateUserId", "Impersonate User Id", Kind::Text)
    .comments("The systemuserid of a user to act as (sent as MSCRMCallerID); the connection's user needs the Act on Behalf of Another User privilege")
    .format(Format::Guid);

pub const IMPERSONATE_OBJECT_ID: InputDef = InputDef::new("impersonateObjectId", "Impersonate Entra Object Id", Kind::Text)
    .comments("The Entra ID object ID of a user to act as (sent as CallerObjectId); use instead of Impersonate User Id")
    .format(Format::Guid);

pub const INCLUDE_FORMATTED_VALUES: InputDef =
    InputDef::new("includeFormattedValues", "Include Formatted Values", Kind::Boolean)
        .default("false")
        .comments("Adds formatted values and lookup annotations, such as name@OData.Community.Display.V1.FormattedValue");

pub const RETURN_REPRESENTATION: InputDef = InputDef::new(
    "returnRepresentation",
    "Return Representation",
    Kind::Boolean,
)
.default("false")
.comments("Return the record as stored after the change, not only its ID");

pub const ETAG: InputDef = InputDef::new("etag", "ETag", Kind::Text)
    .comments("Apply the change only if the record still has this @odata.etag (optimistic concurrency), such as W/\"12345\"")
    .format(Format::EntityTag);

/// The attribute definition of Create Attribute and Update Attribute, with the brief's Money example.
pub const ATTRIBUTE_BODY: InputDef = InputDef::new("attributeBody", "Attribute Body", Kind::Code)
    .required()
    .comments("Attribute body payload to send")
    .default(
        r#"{
  "AttributeType": "Money",
  "AttributeTypeName": {
    "Value": "MoneyType"
  },
  "Description": {
    "@odata.type": "Microsoft.Dynamics.CRM.Label",
    "LocalizedLabels": [
      {
        "@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel",
        "Label": "Enter the balance amount",
        "LanguageCode": 1033
      }
    ]
  },
  "DisplayName": {
    "@odata.type": "Microsoft.Dynamics.CRM.Label",
    "LocalizedLabels": [
      {
        "@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel",
        "Label": "Balance",
        "LanguageCode": 1033
      }
    ]
  },
  "RequiredLevel": {
    "Value": "None",
    "CanBeChanged": true,
    "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"
  },
  "SchemaName": "new_Balance",
  "@odata.type": "Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
  "PrecisionSource": 2
}"#,
    );

// Files and images (issue 15 item 3).

/// The file or image column of Upload and Download File or Image.
pub const FILE_COLUMN: InputDef = InputDef::new("column", "Column", Kind::Text)
    .required()
    .comments("The file or image column, by logical name")
    .example("sample_filecolumn")
    .data_source("file-columns")
    .format(Format::Identifier);

pub const FILE_NAME: InputDef = InputDef::new("fileName", "File Name", Kind::Text)
    .required()
    .comments("The name the file is stored under, with its extension (the service reads the MIME type from it)")
    .example("contract.pdf");

pub const FILE_CONTENT: InputDef = InputDef::new("fileContent", "File Content", Kind::File)
    .required()
    .comments("The file's bytes, in base64 (a data: URL is accepted)");

pub const FILE_OFFSET: InputDef = InputDef::new("offset", "Offset", Kind::Number)
    .comments("Download from this byte (0 is the first); empty for the start")
    .format(Format::Range(0, 1 << 40));

pub const FILE_LENGTH: InputDef = InputDef::new("length", "Length", Kind::Number)
    .comments("Download at most this many bytes; empty for the rest of the file")
    .format(Format::Range(1, 1 << 40));

pub const IMAGE_SIZE: InputDef = InputDef::new("imageSize", "Image Size", Kind::Picklist)
    .comments("Image columns only: the full-size image, or the 144x144 thumbnail Dataverse makes; a column that keeps no full-size image (CanStoreFullImage off) gives its thumbnail, and the output's imageSize says which came")
    .choices(&[("Full size", "full"), ("Thumbnail", "thumbnail")])
    .default("full");

/// The note of Download Note Attachment.
pub const NOTE_ID: InputDef = InputDef::new("noteId", "Note ID", Kind::Text)
    .required()
    .comments("The annotationid of the note holding the attachment")
    .example("00000000-0000-0000-0000-000000000002")
    .format(Format::Guid);

pub const NOTE_SUBJECT: InputDef = InputDef::new("subject", "Subject", Kind::Text)
    .comments("The note's title")
    .example("Signed contract");

pub const NOTE_TEXT: InputDef =
    InputDef::new("noteText", "Note Text", Kind::Multiline).comments("The note's text");

pub const MIME_TYPE: InputDef = InputDef::new("mimeType", "MIME Type", Kind::Text)
    .comments("The file's MIME type, such as application/pdf; empty to take it from the file name's extension")
    .example("application/pdf");

// Dataverse search (issue 15 item 4).

pub const SEARCH_TEXT: InputDef = InputDef::new("search", "Search Text", Kind::Text)
    .required()
    .comments("The text to look for: at most 100 characters (3 at least for suggestions); + is AND, | is OR, - is NOT, a trailing * matches any ending, quotes match a phrase")
    .example("Contoso");

pub const SEARCH_TABLES: InputDef = InputDef::new("tables", "Tables", Kind::StringList)
    .comments("The tables to search, by logical name; empty for every table enabled for search. Each table is searched and answered on its primary name column; use Search Entities for other columns")
    .example("account, contact")
    .data_source("tables")
    .format(Format::Identifiers);

pub const SEARCH_ENTITIES: InputDef = InputDef::new("searchEntities", "Search Entities", Kind::Code)
    .comments("Instead of Tables: a JSON list of tables with the columns to answer and search and a filter each, such as [{\"name\": \"account\", \"selectColumns\": [\"name\", \"address1_city\"], \"searchColumns\": [\"name\"], \"filter\": \"statecode eq 0\"}]");

pub const SEARCH_FILTER: InputDef = InputDef::new("filter", "Filter", Kind::Text)
    .comments("A filter on columns every searched table has, such as createdon gt 2024-01-01")
    .example("modifiedon ge 2024-01-01T00:00:00Z");

pub const SEARCH_FACETS: InputDef = InputDef::new("facets", "Facets", Kind::StringList)
    .comments("Facets to count the results by, such as entityname,count:100 or ownerid")
    .example("entityname,count:100");

pub const SEARCH_ORDER_BY: InputDef = InputDef::new("orderBy", "Order By", Kind::StringList)
    .comments("Sort clauses in order of precedence, such as createdon desc; empty sorts by relevance (@search.score desc)")
    .example("@search.score desc, modifiedon desc");

pub const SEARCH_TOP: InputDef = InputDef::new("top", "Top", Kind::Number)
    .comments("How many results to return, 1 to 100")
    .default("50")
    .format(Format::Range(1, 100));

pub const SEARCH_SKIP: InputDef = InputDef::new("skip", "Skip", Kind::Number)
    .comments("How many results to skip: the nextSkip of the previous page, for the next page")
    .format(Format::Range(0, 1 << 31));

pub const SEARCH_MODE: InputDef = InputDef::new("searchMode", "Search Mode", Kind::Picklist)
    .comments("Whether a result must match any of the words or all of them")
    .choices(&[("Any word", "any"), ("All words", "all")])
    .default("any");

pub const SEARCH_QUERY_TYPE: InputDef = InputDef::new("queryType", "Query Type", Kind::Picklist)
    .comments("simple, or lucene for fuzzy (word~), proximity (\"a b\"~5), boosting (word^2), regular expressions and leading wildcards")
    .choices(&[("Simple", "simple"), ("Lucene", "lucene")])
    .default("simple");

pub const SEARCH_FUZZY: InputDef = InputDef::new("fuzzy", "Fuzzy", Kind::Boolean)
    .comments("Tolerate misspellings")
    .default("false");

pub const SUGGEST_TOP: InputDef = InputDef::new("top", "Top", Kind::Number)
    .comments("How many suggestions to return, 1 to 100")
    .default("5")
    .format(Format::Range(1, 100));

// Metadata writes (issue 15 item 8).

/// The table of a metadata write, by logical name; keyed `entityType` so the `columns` data
/// source of a later input can list its columns.
pub const DEFINITION_TABLE: InputDef = InputDef::new("entityType", "Table", Kind::Text)
    .required()
    .comments("The table, by logical name")
    .example("account")
    .data_source("tables")
    .format(Format::Identifier);

pub const SCHEMA_NAME: InputDef = InputDef::new("schemaName", "Schema Name", Kind::Text)
    .required()
    .comments("The new definition's name with the publisher's customization prefix, such as new_BankAccount; its logical name is the same in lower case")
    .example("new_BankAccount");

pub const PUBLISHER_PREFIX: InputDef = InputDef::new("publisherPrefix", "Publisher Prefix", Kind::Text)
    .comments("The solution publisher's customization prefix (2 to 8 letters and digits, such as new); when given, every schema name must start with it and an underscore")
    .example("new");

pub const DISPLAY_NAME: InputDef = InputDef::new("displayName", "Display Name", Kind::Text)
    .required()
    .comments("The name people see")
    .example("Bank Account");

pub const PLURAL_DISPLAY_NAME: InputDef =
    InputDef::new("pluralDisplayName", "Plural Display Name", Kind::Text)
        .required()
        .comments("The table's name for many rows (DisplayCollectionName)")
        .example("Bank Accounts");

pub const DESCRIPTION: InputDef =
    InputDef::new("description", "Description", Kind::Text).comments("What the definition is for");

pub const OWNERSHIP: InputDef = InputDef::new("ownership", "Ownership", Kind::Picklist)
    .comments("User or team owned rows have an owner and follow security roles by owner; organization-owned rows do not")
    .choices(&[
        ("User or team", "UserOwned"),
        ("Organization", "OrganizationOwned"),
    ])
    .default("UserOwned");

pub const PRIMARY_NAME_SCHEMA_NAME: InputDef =
    InputDef::new("primaryNameSchemaName", "Primary Name Column", Kind::Text)
        .comments("Schema name of the primary name column (text, the name each row is shown by); empty for <prefix>_Name")
        .example("new_AccountName");

pub const PRIMARY_NAME_DISPLAY_NAME: InputDef = InputDef::new(
    "primaryNameDisplayName",
    "Primary Name Display Name",
    Kind::Text,
)
.comments("The primary name column's display name")
.default("Name");

pub const PRIMARY_NAME_MAX_LENGTH: InputDef = InputDef::new(
    "primaryNameMaxLength",
    "Primary Name Max Length",
    Kind::Number,
)
.comments("The most characters the primary name takes, 1 to 4000")
.default("100")
.format(Format::Range(1, 4000));

pub const HAS_NOTES: InputDef = InputDef::new("hasNotes", "Notes", Kind::Boolean)
    .comments("Rows can have notes and attachments")
    .default("false");

pub const HAS_ACTIVITIES: InputDef = InputDef::new("hasActivities", "Activities", Kind::Boolean)
    .comments("Rows can have activities (tasks, emails, ...)")
    .default("false");

pub const LANGUAGE_CODE: InputDef = InputDef::new("languageCode", "Language Code", Kind::Number)
    .comments("The language (LCID) of the labels; 1033 is English")
    .default("1033")
    .format(Format::Range(1, 99_999));

pub const SOLUTION_UNIQUE_NAME: InputDef =
    InputDef::new("solutionUniqueName", "Solution", Kind::Text)
        .comments("The unique name of the unmanaged solution the definition joins (MSCRM.SolutionUniqueName); empty for the default solution")
        .format(Format::Identifier);

pub const KEY_COLUMNS: InputDef = InputDef::new("keyColumns", "Key Columns", Kind::StringList)
    .required()
    .comments("The columns whose values together identify a row, by logical name")
    .example("accountnumber")
    .data_source("columns")
    .format(Format::Identifiers);

pub const REFERENCED_TABLE: InputDef =
    InputDef::new("referencedTable", "Primary Table (one)", Kind::Text)
        .required()
        .comments("The table on the one side, which the lookup points to, by logical name")
        .example("contact")
        .data_source("tables")
        .format(Format::Identifier);

pub const REFERENCING_TABLE: InputDef =
    InputDef::new("referencingTable", "Related Table (many)", Kind::Text)
        .required()
        .comments("The table on the many side, which gets the lookup column, by logical name")
        .example("new_bankaccount")
        .data_source("tables")
        .format(Format::Identifier);

pub const LOOKUP_SCHEMA_NAME: InputDef =
    InputDef::new("lookupSchemaName", "Lookup Column Schema Name", Kind::Text)
        .required()
        .comments("The schema name of the lookup column made on the related table")
        .example("new_AccountOwner");

pub const LOOKUP_DISPLAY_NAME: InputDef = InputDef::new(
    "lookupDisplayName",
    "Lookup Column Display Name",
    Kind::Text,
)
.required()
.example("Account Owner");

pub const LOOKUP_REQUIRED: InputDef =
    InputDef::new("lookupRequiredLevel", "Lookup Requirement", Kind::Picklist)
        .choices(&[
            ("Optional", "None"),
            ("Recommended", "Recommended"),
            ("Business required", "ApplicationRequired"),
        ])
        .default("None");

pub const CASCADE_DELETE: InputDef =
    InputDef::new("cascadeDelete", "When the Primary Row Is Deleted", Kind::Picklist)
        .comments("What happens to related rows: their lookup is cleared, they are deleted too, or the delete is refused while they exist; other cascades keep the service's defaults")
        .choices(&[
            ("Clear the lookup", "RemoveLink"),
            ("Delete related rows", "Cascade"),
            ("Refuse the delete", "Restrict"),
        ])
        .default("RemoveLink");

pub const TABLE_1: InputDef = InputDef::new("table1", "First Table", Kind::Text)
    .required()
    .example("account")
    .data_source("tables")
    .format(Format::Identifier);

pub const TABLE_2: InputDef = InputDef::new("table2", "Second Table", Kind::Text)
    .required()
    .example("contact")
    .data_source("tables")
    .format(Format::Identifier);

pub const INTERSECT_NAME: InputDef = InputDef::new(
    "intersectEntityName",
    "Intersect Table Name",
    Kind::Text,
)
.comments(
    "The logical name of the table that holds the pairs; empty for the schema name in lower case",
)
.format(Format::Identifier);

pub const CHOICE_OPTIONS: InputDef = InputDef::new("options", "Options", Kind::KeyValueList)
    .required()
    .comments("Each option's label and its whole-number value, such as Red = 100000000")
    .example(r#"{"Red": "100000000", "Green": "100000001"}"#);

pub const COLUMN_NAME: InputDef = InputDef::new("column", "Column", Kind::Text)
    .required()
    .comments("The column to delete, by logical name")
    .data_source("columns")
    .format(Format::Identifier);
