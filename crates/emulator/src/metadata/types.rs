//! The properties of the metadata entity types, as the Web API reference documents them, so that
//! `$select` on `EntityDefinitions`, `Attributes`, `Keys` and the relationship collections can be
//! checked the way Dataverse checks it:
//!
//! - a name the type does not have answers 400 "Could not find a property named 'X' on type
//!   'Microsoft.Dynamics.CRM.EntityMetadata'." with code 0x80060888 (the OData error of
//!   compose-http-requests-handle-errors, protocol notes sections 6 and 8). A property of a
//!   derived type is selected through the cast, as query-metadata-web-api's examples do
//!   (`Attributes/Microsoft.Dynamics.CRM.MoneyAttributeMetadata?$select=LogicalName,Precision`,
//!   protocol notes section 7.2): the declared type of `Attributes` is AttributeMetadata.
//! - a documented property the emulator does not render answers 501 naming it, not a 200
//!   without it.
//!
//! Sources, one page per type under learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/:
//! `entitymetadata`, `attributemetadata` and its derived types (`stringattributemetadata`,
//! `picklistattributemetadata`, …), `entitykeymetadata`, `relationshipmetadatabase`,
//! `onetomanyrelationshipmetadata`, `manytomanyrelationshipmetadata`, with `metadatabase`
//! (`MetadataId`, `HasChanged`) under all of them. The EntityMetadata and AttributeMetadata lists
//! were checked against a captured `RetrieveMetadataChanges` answer of a live environment.

use crate::error::DvError;
use crate::odata::query::QueryOptions;

/// `MetadataBase`: under every metadata type.
const METADATA_BASE: &[&str] = &["HasChanged", "MetadataId"];

/// `EntityMetadata` (reference/entitymetadata), structural and navigation properties.
const ENTITY: &[&str] = &[
    "ActivityTypeMask",
    "AutoCreateAccessTeams",
    "AutoReplicateClusterRecords",
    "AutoRouteToOwnerQueue",
    "CanBeInCustomEntityAssociation",
    "CanBeInManyToMany",
    "CanBePrimaryEntityInRelationship",
    "CanBeRelatedEntityInRelationship",
    "CanChangeClusterMode",
    "CanChangeHierarchicalRelationship",
    "CanChangeTrackingBeEnabled",
    "CanCreateAttributes",
    "CanCreateCharts",
    "CanCreateForms",
    "CanCreateViews",
    "CanEnableSyncToExternalSearchIndex",
    "CanModifyAdditionalSettings",
    "CanTriggerWorkflow",
    "ChangeTrackingEnabled",
    "ClusterMode",
    "CollectionSchemaName",
    "CreatedOn",
    "DataProviderId",
    "DataSourceId",
    "DaysSinceRecordLastModified",
    "Description",
    "DisplayCollectionName",
    "DisplayName",
    "EnforceStateTransitions",
    "EntityColor",
    "EntityHelpUrl",
    "EntityHelpUrlEnabled",
    "EntitySetName",
    "ExternalCollectionName",
    "ExternalName",
    "HasActivities",
    "HasEmailAddresses",
    "HasFeedback",
    "HasNotes",
    "IconLargeName",
    "IconMediumName",
    "IconSmallName",
    "IconVectorName",
    "IntroducedVersion",
    "IsAIRUpdated",
    "IsActivity",
    "IsActivityParty",
    "IsArchivalEnabled",
    "IsAuditEnabled",
    "IsAvailableOffline",
    "IsBPFEntity",
    "IsBusinessProcessEnabled",
    "IsChildEntity",
    "IsConnectionsEnabled",
    "IsCustomEntity",
    "IsCustomizable",
    "IsDocumentManagementEnabled",
    "IsDocumentRecommendationsEnabled",
    "IsDuplicateDetectionEnabled",
    "IsEnabledForCharts",
    "IsEnabledForExternalChannels",
    "IsEnabledForTrace",
    "IsImportable",
    "IsInteractionCentricEnabled",
    "IsIntersect",
    "IsKnowledgeManagementEnabled",
    "IsLogicalEntity",
    "IsMSTeamsIntegrationEnabled",
    "IsMailMergeEnabled",
    "IsManaged",
    "IsMappable",
    "IsOfflineInMobileClient",
    "IsOneNoteIntegrationEnabled",
    "IsOptimisticConcurrencyEnabled",
    "IsPrivate",
    "IsQuickCreateEnabled",
    "IsReadOnlyInMobileClient",
    "IsReadingPaneEnabled",
    "IsRenameable",
    "IsRetentionEnabled",
    "IsRetrieveAuditEnabled",
    "IsRetrieveMultipleAuditEnabled",
    "IsSLAEnabled",
    "IsSolutionAware",
    "IsStateModelAware",
    "IsValidForAdvancedFind",
    "IsValidForQueue",
    "IsVisibleInMobile",
    "IsVisibleInMobileClient",
    "LogicalCollectionName",
    "LogicalName",
    "MobileOfflineFilters",
    "ModifiedOn",
    "ObjectTypeCode",
    "OwnershipType",
    "PrimaryIdAttribute",
    "PrimaryImageAttribute",
    "PrimaryNameAttribute",
    "Privileges",
    "RecurrenceBaseEntityLogicalName",
    "ReportViewName",
    "SchemaName",
    "SettingOf",
    "Settings",
    "SyncToExternalSearchIndex",
    "TableType",
    "UsesBusinessDataLabelTable",
    // Collection-valued navigation properties.
    "Attributes",
    "Keys",
    "ManyToManyRelationships",
    "ManyToOneRelationships",
    "OneToManyRelationships",
];

/// `AttributeMetadata` (reference/attributemetadata).
const ATTRIBUTE: &[&str] = &[
    "AttributeOf",
    "AttributeType",
    "AttributeTypeName",
    "AutoNumberFormat",
    "CanBeSecuredForCreate",
    "CanBeSecuredForRead",
    "CanBeSecuredForUpdate",
    "CanModifyAdditionalSettings",
    "ColumnNumber",
    "CreatedOn",
    "DeprecatedVersion",
    "Description",
    "DisplayName",
    "EntityLogicalName",
    "ExternalName",
    "InheritsFrom",
    "IntroducedVersion",
    "IsAuditEnabled",
    "IsCustomAttribute",
    "IsCustomizable",
    "IsDataSourceSecret",
    "IsFilterable",
    "IsGlobalFilterEnabled",
    "IsLogical",
    "IsManaged",
    "IsPrimaryId",
    "IsPrimaryName",
    "IsRenameable",
    "IsRequiredForForm",
    "IsRetrievable",
    "IsSearchable",
    "IsSecured",
    "IsSortableEnabled",
    "IsValidForAdvancedFind",
    "IsValidForCreate",
    "IsValidForForm",
    "IsValidForGrid",
    "IsValidForRead",
    "IsValidForUpdate",
    "IsValidODataAttribute",
    "LinkedAttributeId",
    "LogicalName",
    "ModifiedOn",
    "RequiredLevel",
    "SchemaName",
    "Settings",
    "SourceType",
];

/// `EnumAttributeMetadata`, the base of the choice types.
const ENUM: &[&str] = &["DefaultFormValue", "GlobalOptionSet", "OptionSet"];

/// The AttributeMetadata types and the properties each adds to [`ATTRIBUTE`] (and, for the
/// choice types, to [`ENUM`]).
const ATTRIBUTE_TYPES: &[(&str, bool, &[&str])] = &[
    ("AttributeMetadata", false, &[]),
    ("BigIntAttributeMetadata", false, &["MaxValue", "MinValue"]),
    (
        "BooleanAttributeMetadata",
        false,
        &[
            "DefaultValue",
            "FormulaDefinition",
            "SourceTypeMask",
            "GlobalOptionSet",
            "OptionSet",
        ],
    ),
    (
        "DateTimeAttributeMetadata",
        false,
        &[
            "CanChangeDateTimeBehavior",
            "DateTimeBehavior",
            "Format",
            "FormulaDefinition",
            "ImeMode",
            "MaxSupportedValue",
            "MinSupportedValue",
            "SourceTypeMask",
        ],
    ),
    (
        "DecimalAttributeMetadata",
        false,
        &[
            "FormulaDefinition",
            "ImeMode",
            "MaxValue",
            "MinValue",
            "Precision",
            "SourceTypeMask",
        ],
    ),
    (
        "DoubleAttributeMetadata",
        false,
        &[
            "FormulaDefinition",
            "ImeMode",
            "MaxValue",
            "MinValue",
            "Precision",
            "SourceTypeMask",
        ],
    ),
    (
        "EntityNameAttributeMetadata",
        true,
        &["IsEntityReferenceStored"],
    ),
    ("EnumAttributeMetadata", true, &[]),
    ("FileAttributeMetadata", false, &["MaxSizeInKB"]),
    (
        "ImageAttributeMetadata",
        false,
        &[
            "CanStoreFullImage",
            "IsPrimaryImage",
            "MaxHeight",
            "MaxSizeInKB",
            "MaxWidth",
        ],
    ),
    (
        "IntegerAttributeMetadata",
        false,
        &[
            "Format",
            "FormulaDefinition",
            "MaxValue",
            "MinValue",
            "SourceTypeMask",
        ],
    ),
    ("LookupAttributeMetadata", false, &["Format", "Targets"]),
    (
        "ManagedPropertyAttributeMetadata",
        false,
        &[
            "ManagedPropertyLogicalName",
            "ParentAttributeName",
            "ParentComponentType",
            "ValueAttributeTypeCode",
        ],
    ),
    (
        "MemoAttributeMetadata",
        false,
        &[
            "Format",
            "FormatName",
            "ImeMode",
            "IsLocalizable",
            "MaxLength",
        ],
    ),
    (
        "MoneyAttributeMetadata",
        false,
        &[
            "CalculationOf",
            "FormulaDefinition",
            "ImeMode",
            "IsBaseCurrency",
            "MaxValue",
            "MinValue",
            "Precision",
            "PrecisionSource",
            "SourceTypeMask",
        ],
    ),
    (
        "MultiSelectPicklistAttributeMetadata",
        true,
        &[
            "ChildPicklistLogicalNames",
            "FormulaDefinition",
            "ParentPicklistLogicalName",
            "SourceTypeMask",
        ],
    ),
    (
        "PicklistAttributeMetadata",
        true,
        &[
            "ChildPicklistLogicalNames",
            "FormulaDefinition",
            "ParentPicklistLogicalName",
            "SourceTypeMask",
        ],
    ),
    ("StateAttributeMetadata", true, &[]),
    ("StatusAttributeMetadata", true, &[]),
    (
        "StringAttributeMetadata",
        false,
        &[
            "DatabaseLength",
            "Format",
            "FormatName",
            "FormulaDefinition",
            "ImeMode",
            "IsLocalizable",
            "MaxLength",
            "SourceTypeMask",
            "YomiOf",
        ],
    ),
    ("UniqueIdentifierAttributeMetadata", false, &[]),
];

/// `EntityKeyMetadata` (reference/entitykeymetadata).
const KEY: &[&str] = &[
    "AsyncJob",
    "DisplayName",
    "EntityKeyIndexStatus",
    "EntityLogicalName",
    "IntroducedVersion",
    "IsCustomizable",
    "IsExportKey",
    "IsManaged",
    "IsSecondaryKey",
    "IsSynchronous",
    "KeyAttributes",
    "LogicalName",
    "SchemaName",
];

/// `RelationshipMetadataBase` (reference/relationshipmetadatabase).
const RELATIONSHIP: &[&str] = &[
    "IntroducedVersion",
    "IsCustomRelationship",
    "IsCustomizable",
    "IsManaged",
    "IsValidForAdvancedFind",
    "RelationshipBehavior",
    "RelationshipType",
    "SchemaName",
    "SecurityTypes",
];

/// `OneToManyRelationshipMetadata` (reference/onetomanyrelationshipmetadata).
const ONE_TO_MANY: &[&str] = &[
    "AssociatedMenuConfiguration",
    "CascadeConfiguration",
    "DenormalizedAttributeName",
    "IsDenormalizedLookup",
    "IsHierarchical",
    "ReferencedAttribute",
    "ReferencedEntity",
    "ReferencedEntityNavigationPropertyName",
    "ReferencingAttribute",
    "ReferencingEntity",
    "ReferencingEntityNavigationPropertyName",
    "RelationshipAttributes",
];

/// `ManyToManyRelationshipMetadata` (reference/manytomanyrelationshipmetadata).
const MANY_TO_MANY: &[&str] = &[
    "Entity1AssociatedMenuConfiguration",
    "Entity1IntersectAttribute",
    "Entity1LogicalName",
    "Entity1NavigationPropertyName",
    "Entity2AssociatedMenuConfiguration",
    "Entity2IntersectAttribute",
    "Entity2LogicalName",
    "Entity2NavigationPropertyName",
    "IntersectEntityName",
];

/// Whether `name` is an AttributeMetadata type (`StringAttributeMetadata`, …).
pub fn is_attribute_type(name: &str) -> bool {
    ATTRIBUTE_TYPES.iter().any(|(t, _, _)| *t == name)
}

/// Whether the metadata type `type_name` (without namespace) documents `property`.
pub fn documents(type_name: &str, property: &str) -> bool {
    let has = |list: &[&str]| list.contains(&property);
    if has(METADATA_BASE) {
        return true;
    }
    match type_name {
        "EntityMetadata" => has(ENTITY),
        "EntityKeyMetadata" => has(KEY),
        "RelationshipMetadataBase" => has(RELATIONSHIP),
        "OneToManyRelationshipMetadata" => has(RELATIONSHIP) || has(ONE_TO_MANY),
        "ManyToManyRelationshipMetadata" => has(RELATIONSHIP) || has(MANY_TO_MANY),
        t => ATTRIBUTE_TYPES
            .iter()
            .find(|(n, _, _)| *n == t)
            .is_some_and(|(_, choice, own)| has(ATTRIBUTE) || (*choice && has(ENUM)) || has(own)),
    }
}

/// Checks the `$select` of a request on metadata of type `type_name`: 400 for a property the type
/// does not have, 501 for one the emulator does not render (`rendered` says which it does).
pub fn check_select(
    q: &QueryOptions,
    type_name: &str,
    rendered: impl Fn(&str) -> bool,
) -> Result<(), DvError> {
    let Some(select) = &q.select else {
        return Ok(());
    };
    for p in select.iter().map(|p| p.trim()).filter(|p| *p != "*") {
        if !documents(type_name, p) {
            return Err(DvError::unknown_property(p, type_name));
        }
        if !rendered(p) {
            return Err(DvError::not_implemented(format_args!(
                "the {type_name} property '{p}'"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(select: &str) -> QueryOptions {
        QueryOptions::parse(&format!("$select={select}")).unwrap()
    }

    #[test]
    fn an_unknown_property_is_the_documented_400() {
        let e = check_select(&q("LogicalName,Nope"), "EntityMetadata", |_| true).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.code, "0x80060888");
        assert_eq!(
            e.message,
            "Could not find a property named 'Nope' on type 'Microsoft.Dynamics.CRM.EntityMetadata'."
        );
    }

    #[test]
    fn derived_properties_need_the_cast() {
        assert!(!documents("AttributeMetadata", "MaxLength"));
        assert!(documents("StringAttributeMetadata", "MaxLength"));
        assert!(documents("StringAttributeMetadata", "LogicalName"));
        assert!(documents("PicklistAttributeMetadata", "OptionSet"));
        assert!(!documents("StringAttributeMetadata", "OptionSet"));
        assert!(!documents("RelationshipMetadataBase", "ReferencedEntity"));
        assert!(documents(
            "OneToManyRelationshipMetadata",
            "ReferencedEntity"
        ));
    }

    #[test]
    fn a_documented_property_not_rendered_is_501() {
        let e = check_select(&q("LogicalName,IconVectorName"), "EntityMetadata", |p| {
            p == "LogicalName"
        })
        .unwrap_err();
        assert_eq!(e.status, 501);
        assert!(e.message.contains("'IconVectorName'"), "{}", e.message);
        assert!(check_select(&q("LogicalName"), "EntityMetadata", |_| false).is_err());
        assert!(check_select(&QueryOptions::default(), "EntityMetadata", |_| false).is_ok());
    }
}
