//! Dataverse's error answers: the `{"error":{"code","message"}}` body, the status, and what a
//! user should do about the common ones.

use serde_json::Value;

/// The broad kind of a failed response, independent of any transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400 and other client errors not listed below.
    BadRequest,
    /// 401.
    Unauthenticated,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 409, and 412 with a duplicate-key code.
    Conflict,
    /// 412 other than duplicates.
    PreconditionFailed,
    /// 429.
    Throttled,
    /// 408 and 504.
    Timeout,
    /// 502 and 503.
    Unavailable,
    /// Other 5xx, 3xx and unexpected statuses.
    Upstream,
}

/// A failed response, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// The HTTP status.
    pub status: u16,
    /// Broad kind from the status and code.
    pub kind: ErrorKind,
    /// Dataverse's code, such as `0x80040217`, when the body carried one.
    pub code: Option<String>,
    /// Dataverse's message, or a description of the status when the body had none.
    pub message: String,
    /// What to do about it, when known.
    pub hint: Option<String>,
    /// `Retry-After` in milliseconds, for 429 and 503.
    pub retry_after_ms: Option<u64>,
}

/// Duplicate-key codes, which Dataverse answers with 412 although they are conflicts.
const DUPLICATE_CODES: &[&str] = &["0x80040237", "0x80040333"];

/// Reads a non-2xx response. `retry_after` is the raw `Retry-After` header value, if any.
pub fn read_error(status: u16, body: &[u8], retry_after: Option<&str>) -> ServiceError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    let code = error
        .and_then(|error| error.get("code"))
        .and_then(Value::as_str)
        .filter(|code| !code.is_empty())
        .map(str::to_string);
    let message = error
        .and_then(|error| error.get("message"))
        .and_then(Value::as_str)
        .filter(|message| !message.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| describe_status(status, body));
    let is_duplicate = code
        .as_deref()
        .is_some_and(|code| DUPLICATE_CODES.iter().any(|d| d.eq_ignore_ascii_case(code)));
    let kind = match status {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        412 if is_duplicate => ErrorKind::Conflict,
        412 => ErrorKind::PreconditionFailed,
        429 => ErrorKind::Throttled,
        408 | 504 => ErrorKind::Timeout,
        502 | 503 => ErrorKind::Unavailable,
        400..=499 => ErrorKind::BadRequest,
        _ => ErrorKind::Upstream,
    };
    let hint = hint_for(status, code.as_deref(), &message);
    ServiceError {
        status,
        kind,
        code,
        message,
        hint,
        retry_after_ms: retry_after.and_then(parse_retry_after),
    }
}

/// `Retry-After` as delay-seconds (integer or decimal), in milliseconds.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64)
}

fn describe_status(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let snippet: String = text.trim().chars().take(200).collect();
    if snippet.is_empty() {
        format!("the service answered HTTP {status} with no error details")
    } else {
        format!("the service answered HTTP {status}: {snippet}")
    }
}

fn hint_for(status: u16, code: Option<&str>, message: &str) -> Option<String> {
    let code = code.map(str::to_ascii_lowercase);
    let hint = match (status, code.as_deref()) {
        (401, _) => {
            "the access token is missing, expired or for another environment; sign in again or check the connection's Web API URL and scope"
        }
        (403, _) | (_, Some("0x80040220")) => {
            "the user or application user lacks a privilege for this; ask an administrator to add a security role that grants it"
        }
        (404, Some("0x80040217")) => "no record has that ID; check the ID and the entity type",
        (404, Some("0x80060891")) => {
            "no record matches that alternate key; check the key's column names and values"
        }
        (_, Some("0x80040237")) | (_, Some("0x80040333")) => {
            "a record with the same key already exists; update it instead, or use Upsert"
        }
        (412, Some("0x80060882")) => {
            "the record changed since you read it; read it again and retry with the new ETag"
        }
        (429, _) => {
            "Dataverse service protection limits were hit; wait for the Retry-After period, then retry with fewer or smaller requests"
        }
        (404, _) if message.contains("Resource not found for the segment") => {
            "the entity set name is not known to this environment; entity set names are usually plural logical names, such as accounts"
        }
        (400, _) if message.contains("Could not find a property named") => {
            "a column name is not known on this table; column names are logical names in lower case"
        }
        (502..=504, _) => "the service is temporarily unavailable; retry later",
        _ => return None,
    };
    Some(hint.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataverse_error_body_gives_code_message_and_hint() {
        let body = br#"{"error":{"code":"0x80040217","message":"account With Id = 6f4b8d4e-0000-0000-0000-000000000000 Does Not Exist"}}"#;
        let error = read_error(404, body, None);
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert_eq!(error.code.as_deref(), Some("0x80040217"));
        assert!(error.message.starts_with("account With Id"));
        assert!(error.hint.unwrap().contains("no record has that ID"));
    }

    #[test]
    fn duplicate_key_on_412_is_a_conflict_and_other_412_is_a_precondition() {
        let duplicate = read_error(412, br#"{"error":{"code":"0x80040237","message":"A record with matching key values already exists."}}"#, None);
        assert_eq!(duplicate.kind, ErrorKind::Conflict);
        let stale = read_error(412, br#"{"error":{"code":"0x80060882","message":"The version of the existing record doesn't match the RowVersion property provided."}}"#, None);
        assert_eq!(stale.kind, ErrorKind::PreconditionFailed);
        assert!(stale.hint.unwrap().contains("ETag"));
    }

    #[test]
    fn throttling_reads_retry_after_seconds() {
        let error = read_error(429, br#"{"error":{"code":"0x80072322","message":"Number of requests exceeded the limit of 6000 over time window of 300 seconds."}}"#, Some("7"));
        assert_eq!(error.kind, ErrorKind::Throttled);
        assert_eq!(error.retry_after_ms, Some(7000));
        assert_eq!(parse_retry_after("0.5"), Some(500));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn non_json_bodies_are_described_not_lost() {
        let error = read_error(502, b"<html>Bad Gateway</html>", None);
        assert_eq!(error.kind, ErrorKind::Unavailable);
        assert_eq!(error.code, None);
        assert!(error.message.contains("HTTP 502"));
        assert!(error.message.contains("Bad Gateway"));
        let empty = read_error(500, b"", None);
        assert!(empty.message.contains("no error details"));
    }
}
