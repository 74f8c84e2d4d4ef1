//! The one error a call into the component can end with.
//!
//! A call either gets the component's own answer, which may be a [`ConnectorError`] (the
//! service or the input was refused: the caller's problem to show), or never gets one because
//! the host stopped it ([`HostError`]: a limit, a trap, the token store). Both come back as a
//! [`CallError`], so callers use `?` once instead of unwrapping a nested result, and can still
//! tell the two apart with [`CallError::connector`] and [`CallError::host`].

use crate::{ConnectorError, HostError};

/// Why a call into the component did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The component answered with an error.
    #[error("{}", crate::describe_error(.0))]
    Connector(ConnectorError),
    /// The host could not get the component's answer.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// What every call into the component returns.
pub type CallResult<T> = Result<T, CallError>;

impl From<ConnectorError> for CallError {
    fn from(error: ConnectorError) -> CallError {
        CallError::Connector(error)
    }
}

impl CallError {
    /// The component's error, when it answered with one.
    pub fn connector(&self) -> Option<&ConnectorError> {
        match self {
            CallError::Connector(error) => Some(error),
            CallError::Host(_) => None,
        }
    }

    /// The host's error, when the call did not get the component's answer.
    pub fn host(&self) -> Option<&HostError> {
        match self {
            CallError::Host(error) => Some(error),
            CallError::Connector(_) => None,
        }
    }

    /// The component's error, by value.
    pub fn into_connector(self) -> Option<ConnectorError> {
        match self {
            CallError::Connector(error) => Some(error),
            CallError::Host(_) => None,
        }
    }

    /// The host's error, by value.
    pub fn into_host(self) -> Option<HostError> {
        match self {
            CallError::Host(error) => Some(error),
            CallError::Connector(_) => None,
        }
    }

    /// Whether the component answered with an error (as opposed to the host failing the call).
    pub fn is_connector(&self) -> bool {
        matches!(self, CallError::Connector(_))
    }
}

/// A call's nested result (the host's error outside, the component's inside) as one.
pub(crate) fn flatten<T>(result: Result<Result<T, ConnectorError>, HostError>) -> CallResult<T> {
    Ok(result??)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn refusal() -> ConnectorError {
        ConnectorError {
            code: ErrorCode::NotFound,
            message: "no such record".to_string(),
            http_status: Some(404),
            service_code: None,
            retry_after_ms: None,
            hint: None,
            field: None,
        }
    }

    #[test]
    fn a_call_error_keeps_which_side_failed_and_reads_like_its_cause() {
        let connector = CallError::from(refusal());
        assert!(connector.is_connector());
        assert_eq!(
            connector.connector().map(|e| e.code),
            Some(ErrorCode::NotFound)
        );
        assert!(connector.host().is_none());
        assert_eq!(connector.to_string(), crate::describe_error(&refusal()));

        let host = CallError::from(HostError::MemoryLimit(16));
        assert!(!host.is_connector() && host.connector().is_none());
        assert!(matches!(host.host(), Some(HostError::MemoryLimit(16))));
        assert_eq!(host.to_string(), HostError::MemoryLimit(16).to_string());
    }

    #[test]
    fn a_nested_result_flattens_to_the_same_outcome() {
        assert_eq!(flatten::<u8>(Ok(Ok(7))).unwrap(), 7);
        assert!(
            flatten::<u8>(Ok(Err(refusal())))
                .unwrap_err()
                .is_connector()
        );
        assert!(
            flatten::<u8>(Err(HostError::Trap("x".into())))
                .unwrap_err()
                .host()
                .is_some()
        );
    }
}
