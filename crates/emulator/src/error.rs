//! Dataverse error answers: `{"error":{"code":"0x...","message":"..."}}` with the status the
//! service uses for that code.

use crate::guid::Guid;

/// Not found by primary key.
pub const OBJECT_DOES_NOT_EXIST: &str = "0x80040217";
/// Not found by alternate key.
pub const RECORD_NOT_FOUND_BY_KEY: &str = "0x80060891";
/// Duplicate primary or alternate key.
pub const DUPLICATE_RECORD: &str = "0x80040237";
/// Stale row version in If-Match.
pub const CONCURRENCY_VERSION_MISMATCH: &str = "0x80060882";
/// OData URI, query and payload-shape errors.
pub const ODATA_ERROR: &str = "0x80060888";
/// Payload that cannot be converted to the column type.
pub const PAYLOAD_ERROR: &str = "0x80048d19";
/// Validation failure (length, range).
pub const VALIDATION_ERROR: &str = "0x80044331";
/// Service protection: number of requests.
pub const THROTTLED_REQUESTS: &str = "0x80072322";
/// Service protection: combined execution time (-2147015903; api-limits, "Execution time").
pub const THROTTLED_EXECUTION_TIME: &str = "0x80072321";
/// Service protection: concurrent requests (-2147015898; api-limits, "Concurrent requests").
pub const THROTTLED_CONCURRENCY: &str = "0x80072326";
/// Missing or invalid bearer token. The reference lists the 401 codes of the status map without
/// naming which one the live service sends for a missing token; this one is our choice.
pub const NOT_AUTHENTICATED: &str = "0x8004a101";
/// `InvalidArgument`: a request value of the wrong shape (400 in the status map, reference §6.2).
pub const INVALID_ARGUMENT: &str = "0x80040203";
/// `CannotActOnBehalfOfAnotherUser`: impersonation without `prvActOnBehalfOfAnotherUser`
/// (learn.microsoft.com/power-apps/developer/data-platform/reference/web-service-error-codes).
pub const CANNOT_ACT_ON_BEHALF_OF_ANOTHER_USER: &str = "0x8004A110";
/// `unManagedidsusernotenabled`: the user is disabled (web-service-error-codes).
pub const USER_NOT_ENABLED: &str = "0x80040225";
/// `UserNotMemberOfOrg`: no user of the environment has that Entra identity
/// (web-service-error-codes).
pub const USER_NOT_MEMBER_OF_ORG: &str = "0x80072560";

/// `UnExpected` (web-service-error-codes): a failure on the server's side, such as a handler
/// that panicked or a service that is unavailable (fault injection).
pub const UNEXPECTED: &str = "0x80040216";
/// What the emulator answers, with 501, for a Dataverse feature it does not emulate (a message,
/// `?sql=`, a metadata property it does not render). Dataverse documents no "not implemented"
/// code; this is its `UnExpected` code (web-service-error-codes), chosen because the failure is
/// on the server's side, not in the request. The message always names the feature.
pub const NOT_IMPLEMENTED: &str = UNEXPECTED;
/// A request body over the size the service takes; the service's status map pairs this code
/// with 413.
pub const REQUEST_TOO_LARGE: &str = "0x8004418a";
/// A choice (picklist, state, status) value the column does not list.
pub const VALUE_OUT_OF_RANGE: &str = "0x8004431a";
/// A synchronous plug-in step (here: a synchronous webhook) failed and the write was undone.
pub const SYNCHRONOUS_STEP_FAILED: &str = "0x80040265";
/// FetchXML: an attribute the table does not have.
pub const NO_ATTRIBUTE: &str = "0x80041103";
/// FetchXML: too many link-entity elements.
pub const TOO_MANY_LINKS: &str = "0x8004430D";
/// FetchXML: an aggregate over more rows than allowed.
pub const AGGREGATE_LIMIT: &str = "0x8004E023";
/// `unManagedidsattachmentinvalidfilesize`: a file or image over the column's `MaxSizeInKB`
/// (learn.microsoft.com/power-apps/developer/data-platform/file-column-data, "Check maximum file
/// size").
pub const ATTACHMENT_INVALID_FILE_SIZE: &str = "0x80044a02";
/// `SdkEntityDoesNotSupportMessage`: "The '{0}' method does not support entities of type
/// '{1}'." (web-service-error-codes): a bulk message on a table without it (bulk-operations,
/// "Availability").
pub const ENTITY_DOES_NOT_SUPPORT_MESSAGE: &str = "0x80040800";
/// `InvalidStateCodeStatusCode`: a statuscode that does not belong to the statecode of the row
/// ("State code is invalid or state code is valid but status code is invalid for a specified
/// state code.", web-service-error-codes).
pub const INVALID_STATE_CODE_STATUS_CODE: &str = "0x80048408";
/// `DuplicateRecord` of duplicate detection: "A record was not created or updated because a
/// duplicate of the current record already exists." (webapi/manage-duplicate-detection-create-update).
pub const DUPLICATE_DETECTED: &str = "0x80040333";
/// `InvalidState`: "The object is not in a valid state to perform this operation." (a closed
/// opportunity or order, an inactive process, a completed job; web-service-error-codes).
pub const INVALID_STATE: &str = "0x80040233";
/// `LeadAlreadyInClosedState`: "The lead is already closed." (web-service-error-codes).
pub const LEAD_ALREADY_CLOSED: &str = "0x80040519";
/// `PrivilegeDenied`: the calling user lacks a privilege the request needs, such as
/// `prvBypassCustomBusinessLogic` for the bypass headers (bypass-custom-business-logic;
/// web-service-error-codes).
pub const PRIVILEGE_DENIED: &str = "0x80040220";
/// `ProcessImageFailure`: an image over its column's size or not of an image type
/// (learn.microsoft.com/power-apps/developer/data-platform/image-column-data).
pub const PROCESS_IMAGE_FAILURE: &str = "0x80072553";
/// `ExpiredVersionStamp`: a change-tracking delta token older than the window.
pub const EXPIRED_VERSION_STAMP: &str = "0x80044352";

/// An error the Web API answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct DvError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// Extra response headers (e.g. Retry-After).
    pub headers: Vec<(String, String)>,
}

impl DvError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> DvError {
        DvError {
            status,
            code: code.into(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> DvError {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// 404 for an unknown entity set, function or path segment.
    pub fn segment_not_found(segment: &str) -> DvError {
        DvError::new(
            404,
            ODATA_ERROR,
            format!("Resource not found for the segment '{segment}'."),
        )
    }

    /// 404 for a missing row.
    pub fn not_found(entity: &str, id: &Guid) -> DvError {
        DvError::new(
            404,
            OBJECT_DOES_NOT_EXIST,
            format!("{entity} With Id = {id} Does Not Exist"),
        )
    }

    /// 404 for a missing row addressed by alternate key.
    pub fn not_found_by_key(entity: &str) -> DvError {
        DvError::new(
            404,
            RECORD_NOT_FOUND_BY_KEY,
            format!("A record with the specified key values does not exist in {entity} entity"),
        )
    }

    /// 412 for a duplicate key.
    pub fn duplicate_key() -> DvError {
        DvError::new(
            412,
            DUPLICATE_RECORD,
            "A record with matching key values already exists.",
        )
    }

    /// 412 for a stale ETag.
    pub fn version_mismatch() -> DvError {
        DvError::new(
            412,
            CONCURRENCY_VERSION_MISMATCH,
            "The version of the existing record doesn't match the RowVersion property provided.",
        )
    }

    /// 400 for a property the type does not have.
    pub fn unknown_property(name: &str, entity: &str) -> DvError {
        DvError::new(
            400,
            ODATA_ERROR,
            format!(
                "Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{entity}'."
            ),
        )
    }

    /// 400 for a malformed query or URL.
    pub fn bad_request(message: impl Into<String>) -> DvError {
        DvError::new(400, ODATA_ERROR, message)
    }

    /// 400 for a payload that does not fit the column.
    pub fn payload(entity_set: &str, detail: impl Into<String>) -> DvError {
        DvError::new(
            400,
            PAYLOAD_ERROR,
            format!(
                "Error identified in Payload provided by the user for Entity :'{entity_set}', For more information on this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293  ---->  InnerException : Microsoft.OData.ODataException: {}",
                detail.into()
            ),
        )
    }

    /// 405 for a method the resource does not support.
    pub fn method_not_allowed(method: &str, what: &str) -> DvError {
        DvError::new(
            405,
            ODATA_ERROR,
            format!("The HTTP method '{method}' is not supported on {what}."),
        )
    }

    /// 501 for a Dataverse feature the emulator does not emulate: "The emulator does not
    /// implement {what}." (never a plausible wrong answer instead).
    pub fn not_implemented(what: impl std::fmt::Display) -> DvError {
        DvError::new(
            501,
            NOT_IMPLEMENTED,
            format!("The emulator does not implement {what}."),
        )
    }

    /// 500 for a bug in the emulator; never expected.
    pub fn internal(message: &str) -> DvError {
        DvError::new(
            500,
            UNEXPECTED,
            format!("An unexpected error occurred: {message}"),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({"error": {"code": self.code, "message": self.message}})
            .to_string()
            .into_bytes()
    }
}

impl std::fmt::Display for DvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for DvError {}
