//! Building `connector-error` values: from bad input, from the host's HTTP errors, and from
//! Dataverse and Entra error answers.

use dataverse::entra::{EntraError, EntraErrorKind};
use dataverse::error::{ErrorKind, ServiceError};

use crate::bindings::dynamics::connector::http::HttpError;
use crate::bindings::dynamics::connector::types::{ConnectorError, ErrorCode};
use crate::definition::InputDef;

pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

pub fn error(code: ErrorCode, message: impl Into<String>) -> ConnectorError {
    ConnectorError {
        code,
        message: message.into(),
        http_status: None,
        service_code: None,
        retry_after_ms: None,
        hint: None,
        field: None,
    }
}

pub fn with_hint(mut error: ConnectorError, hint: impl Into<String>) -> ConnectorError {
    error.hint = Some(hint.into());
    error
}

/// Bad input: names the input by key and label.
pub fn invalid_input(input: &InputDef, problem: impl AsRef<str>) -> ConnectorError {
    invalid_field(input.key, Some(input.label), problem)
}

/// Bad input for a key that may not have a definition (unknown keys, nested fields).
pub fn invalid_field(key: &str, label: Option<&str>, problem: impl AsRef<str>) -> ConnectorError {
    let name = match label {
        Some(label) => format!("input \"{key}\" ({label})"),
        None => format!("input \"{key}\""),
    };
    ConnectorError {
        field: Some(key.to_string()),
        ..error(
            ErrorCode::InvalidInput,
            format!("{name}: {}", problem.as_ref()),
        )
    }
}

/// A transport failure the host reported, for a request to `target` (method and path only).
pub fn from_http_error(failure: HttpError, target: &str) -> ConnectorError {
    match failure {
        HttpError::Denied(reason) => with_hint(
            error(
                ErrorCode::Forbidden,
                format!("the host refused the request {target}: {}", short(&reason)),
            ),
            "only the connection's environment and token endpoint may be reached; check the Web API URL",
        ),
        HttpError::RedirectDenied(reason) => with_hint(
            error(
                ErrorCode::Forbidden,
                format!(
                    "the request {target} was redirected to a host that is not allowed: {reason}"
                ),
            ),
            "check the Web API URL: the service redirected to another site",
        ),
        HttpError::Timeout => with_hint(
            error(
                ErrorCode::Timeout,
                format!("no response to {target} in time"),
            ),
            "retry, or ask for fewer records per page",
        ),
        HttpError::TooLarge(limit) => with_hint(
            error(
                ErrorCode::Upstream,
                format!(
                    "the response to {target} was larger than the host's limit of {limit} bytes"
                ),
            ),
            "select fewer columns or fewer records per page",
        ),
        HttpError::ConnectionFailed(reason) => with_hint(
            error(
                ErrorCode::Unavailable,
                format!("could not reach the service for {target}: {reason}"),
            ),
            "check the Web API URL and the network, then retry",
        ),
        HttpError::InvalidRequest(reason) => error(
            ErrorCode::InvalidInput,
            format!("the request {target} is not valid: {reason}"),
        ),
    }
}

/// A Dataverse error answer.
pub fn from_service(service: ServiceError) -> ConnectorError {
    let code = match service.kind {
        ErrorKind::BadRequest => ErrorCode::InvalidInput,
        ErrorKind::Unauthenticated => ErrorCode::Unauthenticated,
        ErrorKind::Forbidden => ErrorCode::Forbidden,
        ErrorKind::NotFound => ErrorCode::NotFound,
        ErrorKind::Conflict => ErrorCode::Conflict,
        ErrorKind::PreconditionFailed => ErrorCode::PreconditionFailed,
        ErrorKind::Throttled => ErrorCode::Throttled,
        ErrorKind::Timeout => ErrorCode::Timeout,
        ErrorKind::Unavailable => ErrorCode::Unavailable,
        ErrorKind::Upstream => ErrorCode::Upstream,
    };
    // A duplicate detection rule's refusal (DuplicateRecordsFound) is answered 500 in the doc
    // and 412 by newer builds: either way the write was refused because of its data, not the
    // service. See <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/manage-duplicate-detection-create-update>.
    let duplicate_detected = service
        .code
        .as_deref()
        .is_some_and(|code| code.eq_ignore_ascii_case(DUPLICATE_DETECTED));
    let (code, hint) = if duplicate_detected {
        (
            ErrorCode::Conflict,
            Some("a duplicate detection rule matched an existing row, so nothing was written; change the values, or write without Detect Duplicates".to_string()),
        )
    } else {
        (code, service.hint)
    };
    ConnectorError {
        code,
        message: service.message,
        http_status: Some(service.status),
        service_code: service.code,
        retry_after_ms: service.retry_after_ms,
        hint,
        field: None,
    }
}

/// DuplicateRecordsFound: "A record was not created or updated because a duplicate of the
/// current record already exists."
const DUPLICATE_DETECTED: &str = "0x80040333";

/// An Entra token endpoint error answer.
pub fn from_entra(entra: EntraError) -> ConnectorError {
    let code = match entra.kind {
        EntraErrorKind::Unauthenticated => ErrorCode::Unauthenticated,
        EntraErrorKind::Forbidden => ErrorCode::Forbidden,
        EntraErrorKind::Upstream => ErrorCode::Upstream,
    };
    let message = match &entra.aadsts {
        Some(_) => format!("sign-in failed: {}", entra.description),
        None if entra.error.is_empty() => format!("sign-in failed: {}", entra.description),
        None => format!("sign-in failed ({}): {}", entra.error, entra.description),
    };
    ConnectorError {
        code,
        message,
        http_status: Some(entra.status),
        service_code: entra.aadsts,
        retry_after_ms: None,
        hint: entra.hint,
        field: None,
    }
}

pub fn malformed(what: impl AsRef<str>) -> ConnectorError {
    error(ErrorCode::MalformedResponse, what.as_ref().to_string())
}

/// Adds the input at fault to an error built by hand.
pub trait ConnectorErrorExt {
    fn with_field(self, key: &str) -> Self;
}

impl ConnectorErrorExt for ConnectorError {
    fn with_field(mut self, key: &str) -> Self {
        self.field = Some(key.to_string());
        self
    }
}

/// At most 120 characters of `text`, for messages: URLs can be long and hold personal data.
pub fn short(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(120) {
        Some((end, _)) => format!("{}…", &text[..end]).into(),
        None => text.into(),
    }
}
