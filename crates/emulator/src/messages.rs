//! Dataverse messages (Web API actions and functions) the emulator knows by name but does not
//! implement, and the honest answer to them: 501 naming the message, never the 404 or 405 that
//! tells a client its own request is wrong.
//!
//! The names come from the Web API reference: the action list
//! (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/actions) and the
//! function list (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/functions),
//! each message documented at `.../webapi/reference/<name in lower case>`. They are called
//! unbound at the root (`POST WinOpportunity`, `GET RetrieveVersion()`) or bound to a table or a
//! row with the namespace (`POST accounts/Microsoft.Dynamics.CRM.CreateMultiple`,
//! `POST leads(<id>)/Microsoft.Dynamics.CRM.QualifyLead`; "Use Web API actions" and "Use Web API
//! functions", learn.microsoft.com/power-apps/developer/data-platform/webapi/use-web-api-actions
//! and .../use-web-api-functions). Either spelling, with or without `Microsoft.Dynamics.CRM.`,
//! is recognised here.
//!
//! A name in no list is not a message: it keeps the documented 404 "Resource not found for the
//! segment 'x'." (compose-http-requests-handle-errors; 0x80060888), as a typo or a custom API this
//! environment does not have gets from Dataverse. A namespace-qualified segment naming a table
//! (`.../Microsoft.Dynamics.CRM.contact`, a type cast) is not emulated either and answers 501.
//!
//! `?sql=` (the Dataverse SQL query option the Power Platform Dataverse client uses) is answered
//! 501 too: the emulator has no SQL (TDS) engine, and returning the table as if the option were
//! not there would be a plausible wrong answer.

use crate::error::DvError;
use crate::odata::path::Segment;
use crate::odata::query::parse_pairs;
use crate::store::Store;

/// The namespace of Dataverse's actions, functions and types in URLs.
pub const NAMESPACE: &str = "Microsoft.Dynamics.CRM.";

/// Whether a message is an action (POST) or a function (GET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Action,
    Function,
}

/// Messages the emulator implements (the rest of [`MESSAGES`] answers 501).
pub const IMPLEMENTED: &[&str] = &["WhoAmI"];

/// Commonly used Dataverse messages of the Web API reference (actions: .../webapi/reference/actions;
/// functions: .../webapi/reference/functions). Not every message of the reference, but every one
/// a connector, an SDK or a migration tool commonly calls.
pub const MESSAGES: &[(&str, Kind)] = &[
    // Actions (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/actions).
    ("AddItemCampaign", Kind::Action),
    ("AddItemCampaignActivity", Kind::Action),
    ("AddListMembersList", Kind::Action),
    ("AddMemberList", Kind::Action),
    ("AddMembersTeam", Kind::Action),
    ("AddPrincipalToQueue", Kind::Action),
    ("AddPrivilegesRole", Kind::Action),
    ("AddRecurrence", Kind::Action),
    ("AddSolutionComponent", Kind::Action),
    ("AddToQueue", Kind::Action),
    ("AddUserToRecordTeam", Kind::Action),
    ("ApplyRecordCreationAndUpdateRule", Kind::Action),
    ("ApplyRoutingRule", Kind::Action),
    ("AssociateEntities", Kind::Action),
    ("AutoMapEntity", Kind::Action),
    ("BackgroundSendEmail", Kind::Action),
    ("Book", Kind::Action),
    ("BulkDelete", Kind::Action),
    ("BulkDetectDuplicates", Kind::Action),
    ("CalculateActualValueOpportunity", Kind::Action),
    ("CalculatePrice", Kind::Action),
    ("CancelContract", Kind::Action),
    ("CancelSalesOrder", Kind::Action),
    ("CloneAsPatch", Kind::Action),
    ("CloneAsSolution", Kind::Action),
    ("CloneContract", Kind::Action),
    ("CloseIncident", Kind::Action),
    ("CloseQuote", Kind::Action),
    ("CommitAnnotationBlocksUpload", Kind::Action),
    ("CommitAttachmentBlocksUpload", Kind::Action),
    ("CommitFileBlocksUpload", Kind::Action),
    ("ConvertQuoteToSalesOrder", Kind::Action),
    ("ConvertSalesOrderToInvoice", Kind::Action),
    ("CopyDynamicListToStatic", Kind::Action),
    ("CopyMembersList", Kind::Action),
    ("CopySystemForm", Kind::Action),
    ("CreateAsyncJobToRevokeInheritedAccess", Kind::Action),
    ("CreateCustomerRelationships", Kind::Action),
    ("CreateEntities", Kind::Action),
    ("CreateException", Kind::Action),
    ("CreateInstance", Kind::Action),
    ("CreateKnowledgeArticleTranslation", Kind::Action),
    ("CreateKnowledgeArticleVersion", Kind::Action),
    ("CreateMultiple", Kind::Action),
    ("CreatePolymorphicLookupAttribute", Kind::Action),
    ("CreateWorkflowFromTemplate", Kind::Action),
    ("DeleteAndPromote", Kind::Action),
    ("DeleteAuditData", Kind::Action),
    ("DeleteFile", Kind::Action),
    ("DeleteMultiple", Kind::Action),
    ("DeleteOpenInstances", Kind::Action),
    ("DeliverIncomingEmail", Kind::Action),
    ("DeliverPromoteEmail", Kind::Action),
    ("DeprovisionLanguage", Kind::Action),
    ("DisassociateEntities", Kind::Action),
    ("DistributeCampaignActivity", Kind::Action),
    ("DownloadBlock", Kind::Action),
    ("DownloadSolutionExportData", Kind::Action),
    ("ExecuteWorkflow", Kind::Action),
    ("ExportSolution", Kind::Action),
    ("ExportSolutionAsync", Kind::Action),
    ("ExportTranslation", Kind::Action),
    ("FulfillSalesOrder", Kind::Action),
    ("FullTextSearchKnowledgeArticle", Kind::Action),
    ("GenerateInvoiceFromOpportunity", Kind::Action),
    ("GenerateQuoteFromOpportunity", Kind::Action),
    ("GenerateSalesOrderFromOpportunity", Kind::Action),
    ("GrantAccess", Kind::Action),
    ("ImportSolution", Kind::Action),
    ("ImportSolutionAsync", Kind::Action),
    ("ImportTranslation", Kind::Action),
    ("InitializeAnnotationBlocksDownload", Kind::Action),
    ("InitializeAnnotationBlocksUpload", Kind::Action),
    ("InitializeAttachmentBlocksDownload", Kind::Action),
    ("InitializeAttachmentBlocksUpload", Kind::Action),
    ("InitializeFileBlocksDownload", Kind::Action),
    ("InitializeFileBlocksUpload", Kind::Action),
    ("InstallSampleData", Kind::Action),
    ("InstantiateFilters", Kind::Action),
    ("InstantiateTemplate", Kind::Action),
    ("LockInvoicePricing", Kind::Action),
    ("LockSalesOrderPricing", Kind::Action),
    ("LoseOpportunity", Kind::Action),
    ("Merge", Kind::Action),
    ("ModifyAccess", Kind::Action),
    ("PickFromQueue", Kind::Action),
    ("ProvisionLanguage", Kind::Action),
    ("PublishAllXml", Kind::Action),
    ("PublishDuplicateRule", Kind::Action),
    ("PublishProductHierarchy", Kind::Action),
    ("PublishTheme", Kind::Action),
    ("PublishXml", Kind::Action),
    ("QualifyLead", Kind::Action),
    ("ReassignObjectsOwner", Kind::Action),
    ("ReassignObjectsSystemUser", Kind::Action),
    ("Recalculate", Kind::Action),
    ("ReleaseToQueue", Kind::Action),
    ("RemoveFromQueue", Kind::Action),
    ("RemoveMemberList", Kind::Action),
    ("RemoveMembersTeam", Kind::Action),
    ("RemoveParent", Kind::Action),
    ("RemovePrivilegeRole", Kind::Action),
    ("RemoveSolutionComponent", Kind::Action),
    ("RemoveUserFromRecordTeam", Kind::Action),
    ("RenewContract", Kind::Action),
    ("RenewEntitlement", Kind::Action),
    ("ReplacePrivilegesRole", Kind::Action),
    ("Reschedule", Kind::Action),
    ("ResetUserFilters", Kind::Action),
    ("RevertProduct", Kind::Action),
    ("ReviseQuote", Kind::Action),
    ("RevokeAccess", Kind::Action),
    ("RouteTo", Kind::Action),
    ("SendBulkMail", Kind::Action),
    ("SendEmail", Kind::Action),
    ("SendEmailFromTemplate", Kind::Action),
    ("SendFax", Kind::Action),
    ("SendTemplate", Kind::Action),
    ("SetAutoNumberSeed", Kind::Action),
    ("SetBusinessEquipment", Kind::Action),
    ("SetBusinessSystemUser", Kind::Action),
    ("SetDataEncryptionKey", Kind::Action),
    ("SetFeatureStatus", Kind::Action),
    ("SetLocLabels", Kind::Action),
    ("SetParentBusinessUnit", Kind::Action),
    ("SetParentSystemUser", Kind::Action),
    ("SetParentTeam", Kind::Action),
    ("SetProcess", Kind::Action),
    ("SetReportRelated", Kind::Action),
    ("StageAndUpgrade", Kind::Action),
    ("StageSolution", Kind::Action),
    ("SyncBulkOperation", Kind::Action),
    ("TriggerServiceEndpointCheck", Kind::Action),
    ("UninstallSampleData", Kind::Action),
    ("UnlockInvoicePricing", Kind::Action),
    ("UnlockSalesOrderPricing", Kind::Action),
    ("UnpublishDuplicateRule", Kind::Action),
    ("UpdateMultiple", Kind::Action),
    ("UpdateProductProperties", Kind::Action),
    ("UpdateSolutionComponent", Kind::Action),
    ("UploadBlock", Kind::Action),
    ("UpsertMultiple", Kind::Action),
    ("ValidateRecurrenceRule", Kind::Action),
    ("WinOpportunity", Kind::Action),
    ("WinQuote", Kind::Action),
    ("searchautocomplete", Kind::Action),
    ("searchquery", Kind::Action),
    ("searchsuggest", Kind::Action),
    // Functions (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/functions).
    ("CalculateRollupField", Kind::Function),
    ("CalculateTotalTimeIncident", Kind::Function),
    ("CheckIncomingEmail", Kind::Function),
    ("CheckPromoteEmail", Kind::Function),
    ("DownloadReportDefinition", Kind::Function),
    ("ExecuteCosmosSqlQuery", Kind::Function),
    ("ExpandCalendar", Kind::Function),
    ("ExportFieldTranslation", Kind::Function),
    ("FetchXmlToQueryExpression", Kind::Function),
    ("FindParentResourceGroup", Kind::Function),
    ("FormatAddress", Kind::Function),
    ("GetAllTimeZonesWithDisplayName", Kind::Function),
    ("GetAutoNumberSeed", Kind::Function),
    ("GetDefaultPriceLevel", Kind::Function),
    ("GetDistinctValuesImportFile", Kind::Function),
    ("GetFileSasUrl", Kind::Function),
    ("GetHeaderColumnsImportFile", Kind::Function),
    ("GetNextAutoNumberValue", Kind::Function),
    ("GetQuantityDecimal", Kind::Function),
    ("GetReportHistoryLimit", Kind::Function),
    ("GetTimeZoneCodeByLocalizedName", Kind::Function),
    ("GetTrackingTokenEmail", Kind::Function),
    ("GetValidManyToMany", Kind::Function),
    ("GetValidReferencedEntities", Kind::Function),
    ("GetValidReferencingEntities", Kind::Function),
    ("IncrementKnowledgeArticleViewCount", Kind::Function),
    ("InitializeFrom", Kind::Function),
    ("IsBackOfficeInstalled", Kind::Function),
    ("IsComponentCustomizable", Kind::Function),
    ("IsDataEncryptionActive", Kind::Function),
    ("IsValidStateTransition", Kind::Function),
    ("LocalTimeFromUtcTime", Kind::Function),
    ("QueryExpressionToFetchXml", Kind::Function),
    ("QueryMultipleSchedules", Kind::Function),
    ("QuerySchedule", Kind::Function),
    ("RetrieveAadUserPrivileges", Kind::Function),
    ("RetrieveAadUserRoles", Kind::Function),
    ("RetrieveAadUserSetOfPrivilegesByIds", Kind::Function),
    ("RetrieveAadUserSetOfPrivilegesByNames", Kind::Function),
    ("RetrieveAllChildUsersSystemUser", Kind::Function),
    ("RetrieveAppComponents", Kind::Function),
    ("RetrieveApplicationRibbon", Kind::Function),
    ("RetrieveAttributeChangeHistory", Kind::Function),
    ("RetrieveAuditAllAttributeChanges", Kind::Function),
    ("RetrieveAuditDetails", Kind::Function),
    ("RetrieveAuditPartitionList", Kind::Function),
    ("RetrieveAvailableLanguages", Kind::Function),
    ("RetrieveBusinessHierarchyBusinessUnit", Kind::Function),
    ("RetrieveCurrentOrganization", Kind::Function),
    ("RetrieveDataEncryptionKey", Kind::Function),
    ("RetrieveDependenciesForDelete", Kind::Function),
    ("RetrieveDependenciesForUninstall", Kind::Function),
    ("RetrieveDependentComponents", Kind::Function),
    ("RetrieveDeploymentLicenseType", Kind::Function),
    ("RetrieveDeprovisionedLanguages", Kind::Function),
    ("RetrieveDuplicates", Kind::Function),
    ("RetrieveEntityRibbon", Kind::Function),
    ("RetrieveExchangeRate", Kind::Function),
    ("RetrieveFilteredForms", Kind::Function),
    ("RetrieveFormattedImportJobResults", Kind::Function),
    ("RetrieveInstalledLanguagePacks", Kind::Function),
    ("RetrieveInstalledLanguagePackVersion", Kind::Function),
    ("RetrieveLicenseInfo", Kind::Function),
    ("RetrieveLocLabels", Kind::Function),
    ("RetrieveMailboxTrackingFolders", Kind::Function),
    ("RetrieveMembersBulkOperation", Kind::Function),
    ("RetrieveMetadataChanges", Kind::Function),
    ("RetrieveMissingComponents", Kind::Function),
    ("RetrieveMissingDependencies", Kind::Function),
    ("RetrieveOrganizationInfo", Kind::Function),
    ("RetrieveOrganizationResources", Kind::Function),
    ("RetrieveParentGroupsResourceGroup", Kind::Function),
    ("RetrieveParsedDataImportFile", Kind::Function),
    ("RetrievePersonalWall", Kind::Function),
    ("RetrievePrincipalAccess", Kind::Function),
    ("RetrievePrincipalAttributePrivileges", Kind::Function),
    ("RetrievePrincipalSyncAttributeMappings", Kind::Function),
    ("RetrievePrivilegeSet", Kind::Function),
    ("RetrieveProvisionedLanguagePackVersion", Kind::Function),
    ("RetrieveProvisionedLanguages", Kind::Function),
    ("RetrieveRecordWall", Kind::Function),
    ("RetrieveRequiredComponents", Kind::Function),
    ("RetrieveRolePrivilegesRole", Kind::Function),
    ("RetrieveSharedPrincipalsAndAccess", Kind::Function),
    ("RetrieveSubGroupsResourceGroup", Kind::Function),
    ("RetrieveTeamPrivileges", Kind::Function),
    ("RetrieveTimestamp", Kind::Function),
    ("RetrieveTotalRecordCount", Kind::Function),
    ("RetrieveUnpublished", Kind::Function),
    ("RetrieveUnpublishedMultiple", Kind::Function),
    ("RetrieveUserLicenseInfo", Kind::Function),
    ("RetrieveUserPrivilegeByPrivilegeId", Kind::Function),
    ("RetrieveUserPrivilegeByPrivilegeName", Kind::Function),
    ("RetrieveUserPrivileges", Kind::Function),
    ("RetrieveUserQueues", Kind::Function),
    ("RetrieveUserSetOfPrivilegesByIds", Kind::Function),
    ("RetrieveUserSetOfPrivilegesByNames", Kind::Function),
    ("RetrieveUserSettingsSystemUser", Kind::Function),
    ("RetrieveUsersPrivilegesThroughTeams", Kind::Function),
    ("RetrieveVersion", Kind::Function),
    ("SearchByKeywordsKbArticle", Kind::Function),
    ("SearchByTitleKbArticle", Kind::Function),
    ("UtcTimeFromLocalTime", Kind::Function),
    ("ValidateFetchXmlExpression", Kind::Function),
    ("ValidateSavedQuery", Kind::Function),
    ("ValidateUnpublished", Kind::Function),
    ("VerifyProcessStateData", Kind::Function),
    ("WhoAmI", Kind::Function),
    ("searchstatistics", Kind::Function),
    ("searchstatus", Kind::Function),
];

/// The message a path segment names (with or without the namespace), if it is one of
/// [`MESSAGES`]. Names are case-sensitive, as OData's are.
pub fn message(segment: &str) -> Option<(&'static str, Kind)> {
    let name = segment.strip_prefix(NAMESPACE).unwrap_or(segment);
    MESSAGES.iter().find(|(n, _)| *n == name).copied()
}

/// The 501 for a known message the emulator does not implement, naming it and its doc page.
pub fn not_implemented(name: &str, kind: Kind) -> DvError {
    let what = match kind {
        Kind::Action => "action",
        Kind::Function => "function",
    };
    DvError::not_implemented(format_args!(
        "the {name} {what} (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/{})",
        name.to_ascii_lowercase()
    ))
}

/// The metadata roots, whose casts (`Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata`)
/// `metadata` serves.
fn is_metadata_root(name: &str) -> bool {
    matches!(
        name,
        "EntityDefinitions" | "RelationshipDefinitions" | "GlobalOptionSetDefinitions"
    )
}

/// The refusal a request gets before routing, if any: 501 for a message the emulator does not
/// implement (unbound at the root, or bound below a table or a row), for a type-cast segment, and
/// for `?sql=`; 404 for a namespace-qualified segment that names neither a message nor a table.
/// `None` lets the request through to its handler (which answers unknown names with 404 itself).
pub fn refusal(store: &Store, segs: &[Segment], query: &str) -> Option<DvError> {
    if parse_pairs(query).iter().any(|(k, _)| k == "sql") {
        return Some(DvError::not_implemented(
            "the sql query option: Dataverse's SQL (TDS) query language is not emulated",
        ));
    }
    let first = segs.first()?;
    if let Some((name, kind)) = message(&first.name) {
        return (!IMPLEMENTED.contains(&name)).then(|| not_implemented(name, kind));
    }
    // Below the root, only under a table the emulator has (an unknown first segment keeps its
    // 404) or a metadata root.
    let under_table = store.schema.entity_by_set(&first.name).is_some();
    if !under_table && !is_metadata_root(&first.name) {
        return None;
    }
    for s in &segs[1..] {
        if let Some((name, kind)) = message(&s.name) {
            return Some(not_implemented(name, kind));
        }
        let Some(cast) = s.name.strip_prefix(NAMESPACE) else {
            continue;
        };
        if !under_table {
            // Metadata casts are served (or refused) by metadata.
            return None;
        }
        return Some(match store.schema.entity(cast) {
            Some(_) => {
                DvError::not_implemented(format_args!("type-cast segments such as '{}'", s.name))
            }
            None => DvError::segment_not_found(&s.name),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_are_found_with_and_without_the_namespace() {
        assert_eq!(
            message("Microsoft.Dynamics.CRM.CreateMultiple"),
            Some(("CreateMultiple", Kind::Action))
        );
        assert_eq!(
            message("RetrieveVersion"),
            Some(("RetrieveVersion", Kind::Function))
        );
        assert_eq!(message("createmultiple"), None, "names are case-sensitive");
        assert_eq!(message("Microsoft.Dynamics.CRM.new_MyApi"), None);
    }

    #[test]
    fn the_table_has_no_duplicates() {
        let mut names: Vec<&str> = MESSAGES.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
        for implemented in IMPLEMENTED {
            assert!(message(implemented).is_some());
        }
    }

    #[test]
    fn the_refusal_names_the_message_and_its_page() {
        let e = not_implemented("WinOpportunity", Kind::Action);
        assert_eq!(e.status, 501);
        assert_eq!(e.code, crate::error::NOT_IMPLEMENTED);
        assert_eq!(
            e.message,
            "The emulator does not implement the WinOpportunity action (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/winopportunity)."
        );
    }
}
