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

use serde_json::{Map, Value};

use crate::error::DvError;
use crate::guid::Guid;
use crate::odata::path::Segment;
use crate::odata::query::parse_pairs;
use crate::schema::TableId;
use crate::store::Store;
use crate::wire::{Req, Resp};

mod access;
pub mod custom_api;
mod info;
mod jobs;
pub mod params;
mod sales;
pub mod set_state;

use params::Params;

/// The namespace of Dataverse's actions, functions and types in URLs.
pub const NAMESPACE: &str = "Microsoft.Dynamics.CRM.";

/// Whether a message is an action (POST) or a function (GET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Action,
    Function,
}

/// Messages the emulator implements (the rest of [`MESSAGES`] answers 501).
pub const IMPLEMENTED: &[&str] = &[
    "WhoAmI",
    "RetrieveVersion",
    "RetrieveTotalRecordCount",
    "QualifyLead",
    "WinOpportunity",
    "LoseOpportunity",
    "FulfillSalesOrder",
    "CancelSalesOrder",
    "GrantAccess",
    "RetrievePrincipalAccess",
    "ExecuteWorkflow",
    "BulkDelete",
];

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
            return (!IMPLEMENTED.contains(&name)).then(|| not_implemented(name, kind));
        }
        let Some(cast) = s.name.strip_prefix(NAMESPACE) else {
            continue;
        };
        if under_table && custom_api::find(store, cast).is_some() {
            return None;
        }
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

/// What a message is bound to: nothing (called at the root), a table (`accounts/...`) or a row
/// (`leads(<id>)/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Unbound,
    Collection(TableId),
    Row(TableId, Guid),
}

/// A message call found in a path.
pub struct Call {
    /// The message name without the namespace.
    pub name: String,
    pub kind: Kind,
    pub binding: Binding,
    /// The raw text between the parentheses of a function segment (`EntityNames=@p1`).
    pub args: Option<String>,
    /// The custom API row, when the message is one.
    pub custom: Option<Guid>,
}

/// The tables a built-in message is bound to (Web API reference, each message's page): an
/// empty list means unbound.
fn bound_to(name: &str) -> &'static [&'static str] {
    match name {
        "QualifyLead" => &["lead"],
        "ExecuteWorkflow" => &["workflow"],
        "RetrievePrincipalAccess" => &["systemuser", "team"],
        _ => &[],
    }
}

/// The message call a path names, if it names one the emulator runs: `Name` or `Name(args)` at
/// the root, or `set(key)/Microsoft.Dynamics.CRM.Name` / `set/Microsoft.Dynamics.CRM.Name` below
/// a table. A built-in message bound to another table is not found there (404), as Dataverse
/// answers for an operation the bound type does not have.
pub fn locate(store: &Store, segs: &[Segment]) -> Result<Option<Call>, DvError> {
    let (seg, binding) = match segs {
        [only] => (only, Binding::Unbound),
        [set, op] => {
            let Some(e) = store.schema.entity_by_set(&set.name) else {
                return Ok(None);
            };
            let binding = match &set.key {
                Some(k) => Binding::Row(e, crate::row_key::resolve_existing(store, e, k)?),
                None => Binding::Collection(e),
            };
            (op, binding)
        }
        _ => return Ok(None),
    };
    let name = seg.name.strip_prefix(NAMESPACE).unwrap_or(&seg.name);
    // Most paths name a table or something below one: no message lookup for them.
    let plain_table = binding == Binding::Unbound && store.schema.entity_by_set(name).is_some();
    if plain_table || (binding != Binding::Unbound && !seg.name.starts_with(NAMESPACE)) {
        return Ok(None);
    }
    let bound_table = match binding {
        Binding::Unbound => None,
        Binding::Collection(e) | Binding::Row(e, _) => Some(store.entity(e).logical_name.as_str()),
    };
    if let Some((builtin, kind)) = message(name)
        && IMPLEMENTED.contains(&builtin)
        && builtin != "WhoAmI"
    {
        let tables = bound_to(builtin);
        let fits = match (binding, bound_table) {
            (Binding::Unbound, _) => tables.is_empty(),
            (Binding::Row(..), Some(t)) => tables.contains(&t),
            _ => false,
        };
        if !fits {
            return Err(DvError::segment_not_found(&seg.name));
        }
        return Ok(Some(Call {
            name: builtin.to_string(),
            kind,
            binding,
            args: seg.key.clone(),
            custom: None,
        }));
    }
    let Some(api) = custom_api::find(store, name) else {
        return Ok(None);
    };
    if !api.binds(binding, bound_table) {
        return Err(DvError::segment_not_found(&seg.name));
    }
    Ok(Some(Call {
        name: api.unique_name.clone(),
        kind: if api.is_function {
            Kind::Function
        } else {
            Kind::Action
        },
        binding,
        args: seg.key.clone(),
        custom: Some(api.id),
    }))
}

/// A function call (GET), if the path names a message; an action called with GET is 405
/// ("Use Web API actions": actions are invoked with POST).
pub fn read(store: &Store, req: &Req, segs: &[Segment]) -> Option<Result<Resp, DvError>> {
    let call = match locate(store, segs) {
        Ok(Some(call)) => call,
        Ok(None) => return None,
        Err(e) => return Some(Err(e)),
    };
    if call.kind == Kind::Action {
        return Some(Err(DvError::method_not_allowed(
            req.method,
            &format!("the action {}", call.name),
        )));
    }
    Some(run_function(store, req, &call))
}

/// An action call (POST), if the path names a message; a function called with POST is 405
/// ("Use Web API functions": functions are invoked with GET).
pub fn write(store: &mut Store, req: &Req, segs: &[Segment]) -> Option<Result<Resp, DvError>> {
    let call = match locate(store, segs) {
        Ok(Some(call)) => call,
        Ok(None) => return None,
        Err(e) => return Some(Err(e)),
    };
    if call.kind == Kind::Function || req.method != "POST" {
        let what = match call.kind {
            Kind::Function => "function",
            Kind::Action => "action",
        };
        return Some(Err(DvError::method_not_allowed(
            req.method,
            &format!("the {what} {}", call.name),
        )));
    }
    Some(run_action(store, req, &call))
}

fn run_function(store: &Store, req: &Req, call: &Call) -> Result<Resp, DvError> {
    let params = Params::from_function(&call.name, call.args.as_deref(), req.query)?;
    let out = match call.name.as_str() {
        "RetrieveVersion" => info::retrieve_version(&params)?,
        "RetrieveTotalRecordCount" => info::retrieve_total_record_count(store, &params)?,
        "RetrievePrincipalAccess" => access::retrieve_principal_access(store, call, &params)?,
        _ if call.custom.is_some() => custom_api::run(store, call, &params)?,
        other => return Err(DvError::internal(&format!("no handler for {other}"))),
    };
    Ok(response(req, &call.name, out))
}

fn run_action(store: &mut Store, req: &Req, call: &Call) -> Result<Resp, DvError> {
    let params = Params::from_body(&call.name, req.body)?;
    if call.custom.is_some() && crate::async_ops::wants_async(req) {
        return crate::async_ops::start(store, req, call, &params);
    }
    // A message's writes stand or fall together, as in Dataverse's transaction per request.
    store.begin_tx();
    let out = match call.name.as_str() {
        "QualifyLead" => sales::qualify_lead(store, req, call, &params),
        "WinOpportunity" => sales::close_opportunity(store, req, &params, sales::Close::Won),
        "LoseOpportunity" => sales::close_opportunity(store, req, &params, sales::Close::Lost),
        "FulfillSalesOrder" => sales::close_order(store, req, &params, sales::Close::Won),
        "CancelSalesOrder" => sales::close_order(store, req, &params, sales::Close::Lost),
        "GrantAccess" => access::grant_access(store, req, &params),
        "ExecuteWorkflow" => jobs::execute_workflow(store, req, call, &params),
        "BulkDelete" => jobs::bulk_delete(store, req, &params),
        _ if call.custom.is_some() => custom_api::run(store, call, &params),
        other => Err(DvError::internal(&format!("no handler for {other}"))),
    };
    match out {
        Ok(out) => {
            store.commit_tx();
            if call.custom.is_some() {
                custom_api::ran(store, call, &params, &out);
            }
            Ok(response(req, &call.name, out))
        }
        Err(e) => {
            store.rollback_tx();
            Err(e)
        }
    }
}

/// What a message answered: its response properties, or a collection (`QualifyLead`).
pub enum Output {
    /// No response properties: 204 No Content.
    Nothing,
    /// `{Name}Response` complex type properties.
    Properties(Map<String, Value>),
    /// A collection of entities, with the context of its type.
    Collection(&'static str, Vec<Value>),
}

/// The answer to a message: 204 without response properties, else 200 with the
/// `{Name}Response` complex type ("Use Web API actions", "Use Web API functions").
pub fn response(req: &Req, name: &str, out: Output) -> Resp {
    match out {
        Output::Nothing => Resp::empty(204),
        Output::Properties(props) => {
            let mut body = Map::new();
            body.insert(
                "@odata.context".into(),
                Value::String(format!("{}/$metadata#{NAMESPACE}{name}Response", req.api)),
            );
            body.extend(props);
            Resp::json(200, Value::Object(body).to_string().into_bytes())
        }
        Output::Collection(ty, items) => {
            let body = serde_json::json!({
                "@odata.context": format!("{}/$metadata#Collection({NAMESPACE}{ty})", req.api),
                "value": items,
            });
            Resp::json(200, body.to_string().into_bytes())
        }
    }
}

/// The parameters of each built-in message the emulator runs, as its Web API reference page
/// lists them: the handlers check calls against them and `$metadata` declares them.
pub fn builtin_params(name: &str) -> Vec<params::Param> {
    use params::{Ty, optional, required};
    match name {
        "RetrieveVersion" => vec![],
        "RetrieveTotalRecordCount" => vec![required("EntityNames", Ty::StringArray)],
        "QualifyLead" => vec![
            required("CreateAccount", Ty::Bool),
            required("CreateContact", Ty::Bool),
            required("CreateOpportunity", Ty::Bool),
            optional(
                "OpportunityCurrencyId",
                Ty::EntityRef("transactioncurrency".into()),
            ),
            optional(
                "OpportunityCustomerId",
                Ty::EntityRef("crmbaseentity".into()),
            ),
            optional("SourceCampaignId", Ty::EntityRef("crmbaseentity".into())),
            optional("ProcessInstanceId", Ty::EntityRef("crmbaseentity".into())),
            required("Status", Ty::Int),
            optional("SuppressDuplicateDetection", Ty::Bool),
        ],
        "WinOpportunity" | "LoseOpportunity" => vec![
            required("OpportunityClose", Ty::Entity("opportunityclose".into())),
            required("Status", Ty::Int),
        ],
        "FulfillSalesOrder" | "CancelSalesOrder" => vec![
            required("OrderClose", Ty::Entity("orderclose".into())),
            required("Status", Ty::Int),
        ],
        "GrantAccess" => vec![
            required("Target", Ty::EntityRef("crmbaseentity".into())),
            required("PrincipalAccess", Ty::Complex("PrincipalAccess")),
        ],
        "RetrievePrincipalAccess" => {
            vec![required("Target", Ty::EntityRef("crmbaseentity".into()))]
        }
        "ExecuteWorkflow" => vec![
            required("EntityId", Ty::Guid),
            optional("InputArguments", Ty::Complex("InputArgumentCollection")),
        ],
        "BulkDelete" => vec![
            required("QuerySet", Ty::ComplexCollection("QueryExpression")),
            required("JobName", Ty::Str),
            required("SendEmailNotification", Ty::Bool),
            required("ToRecipients", Ty::GuidArray),
            required("CCRecipients", Ty::GuidArray),
            required("RecurrencePattern", Ty::Str),
            required("StartDateTime", Ty::DateTime),
            optional("SourceImportId", Ty::Guid),
            optional("RunNow", Ty::Bool),
        ],
        _ => Vec::new(),
    }
}

/// A message as `$metadata` declares it.
pub struct Signature {
    pub name: String,
    pub kind: Kind,
    /// The tables it is bound to (one declaration each), or none for an unbound message.
    pub bound: Vec<String>,
    /// Bound to the table's collection rather than a row.
    pub collection: bool,
    pub params: Vec<params::Param>,
    /// `{Name}Response` properties.
    pub response: Vec<(String, params::Ty)>,
    /// A return type other than `{Name}Response` (`Collection(mscrm.crmbaseentity)`).
    pub returns: Option<&'static str>,
    pub description: String,
}

/// The response properties of the built-in messages (each message's reference page).
fn builtin_response(name: &str) -> Vec<(String, params::Ty)> {
    use params::Ty;
    let props: &[(&str, Ty)] = match name {
        "RetrieveVersion" => &[("Version", Ty::Str)],
        "RetrieveTotalRecordCount" => &[(
            "EntityRecordCountCollection",
            Ty::Complex("EntityRecordCountCollection"),
        )],
        "RetrievePrincipalAccess" => &[("AccessRights", Ty::Complex("AccessRights"))],
        "ExecuteWorkflow" => &[("Id", Ty::Guid)],
        "BulkDelete" => &[("JobId", Ty::Guid)],
        _ => &[],
    };
    props
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
}

/// Every message the emulator runs, built-in and custom, for `$metadata`.
pub fn signatures(store: &Store) -> Vec<Signature> {
    let mut out: Vec<Signature> = IMPLEMENTED
        .iter()
        .filter(|n| **n != "WhoAmI")
        .filter_map(|n| message(n))
        .map(|(name, kind)| Signature {
            name: name.to_string(),
            kind,
            bound: bound_to(name).iter().map(|t| t.to_string()).collect(),
            collection: false,
            params: builtin_params(name),
            response: builtin_response(name),
            returns: (name == "QualifyLead").then_some("Collection(mscrm.crmbaseentity)"),
            description: String::new(),
        })
        .collect();
    for api in custom_api::all(store) {
        out.push(Signature {
            kind: if api.is_function {
                Kind::Function
            } else {
                Kind::Action
            },
            bound: match api.binding_type {
                0 => Vec::new(),
                _ => vec![api.bound_entity.clone()],
            },
            collection: api.binding_type == 2,
            params: api.parameters,
            response: api.responses,
            returns: None,
            description: api.description,
            name: api.unique_name,
        });
    }
    out
}

/// The `nav@odata.bind` member that points column `column` of table `e` at row `id` of
/// `target`, for bodies messages build to create rows.
pub fn bind(
    store: &Store,
    e: TableId,
    column: &str,
    target: TableId,
    id: Guid,
) -> Option<(String, Value)> {
    let col = store.entity(e).attr(column)?;
    let rel = store.schema.relationship_for(e, col, target)?;
    Some((
        format!("{}@odata.bind", rel.referencing_nav),
        Value::String(format!("/{}({id})", store.entity(target).entity_set_name)),
    ))
}

/// A column of a row, when the table has it.
pub fn cell<'a>(
    store: &'a Store,
    e: TableId,
    id: &Guid,
    column: &str,
) -> Option<&'a crate::store::Val> {
    let c = store.entity(e).attr(column)?;
    store.get(e, id).map(|r| &r.vals[c])
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
